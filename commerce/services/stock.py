"""Stock arithmetic in SQL, shared by claims, payments, queries and restocks.

A line's held units are counted by filter — active holds whose ``expires_at`` is still in
the future — so an expired hold stops counting the instant it expires, whether or not a
sweeper has tidied it yet. A bundle hold (``sku`` NULL) holds every part of its pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Integer, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ScalarSelect

from commerce.domain.errors import DropNotFound, InvalidInput, UnknownItem
from commerce.domain.model import DropFormat, HoldStatus, StockLine
from commerce.storage.tables import drop_stock, drops, holds


def line_matches_hold(
    sku: ColumnElement[str] | str, pool: ColumnElement[str] | str
) -> ColumnElement[bool]:
    return and_(holds.c.pool == pool, or_(holds.c.sku.is_(None), holds.c.sku == sku))


def active_hold_filter(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    return and_(holds.c.status == HoldStatus.ACTIVE, holds.c.expires_at > now)


def lapsed_qty(
    drop_id: ColumnElement[int] | int,
    sku: ColumnElement[str] | str,
    pool: ColumnElement[str] | str,
    now: datetime | ColumnElement[datetime],
) -> ScalarSelect[int]:
    """Claim-units in holds that have expired but are still 'active' (the sweeper has not
    tidied them yet). ``drop_stock.held`` still counts them; they must not count as held.
    An index on active holds by expiry keeps this to the few just-expired rows."""
    return (
        select(func.coalesce(func.sum(holds.c.qty), 0))
        .where(
            holds.c.drop_id == drop_id,
            holds.c.status == HoldStatus.ACTIVE,
            holds.c.expires_at <= now,
            line_matches_hold(sku, pool),
        )
        .scalar_subquery()
    )


# Built once: constructing an UPDATE costs more CPU than SQLite spends running it.
_HELD_UNITS = bindparam("units", type_=Integer)
_MOVE_POOL = (
    update(drop_stock)
    .where(
        drop_stock.c.drop_id == bindparam("line_drop"), drop_stock.c.pool == bindparam("line_pool")
    )
    .values(held=drop_stock.c.held + drop_stock.c.per_unit * _HELD_UNITS)
)
_MOVE_LINE = _MOVE_POOL.where(drop_stock.c.sku == bindparam("line_sku"))


async def move_held(
    conn: AsyncConnection, *, drop_id: int, sku: str | None, pool: str, qty: int, sign: int
) -> None:
    """Keep ``drop_stock.held`` in step with holds entering (+1) or leaving (-1) the
    'active' status: ``qty`` claim units of one SKU's line, or of every part of a bundle's
    pool (each part moves by its units per bundle)."""
    params = {"line_drop": drop_id, "line_pool": pool, "units": sign * qty}
    if sku is None:
        await conn.execute(_MOVE_POOL, params)
    else:
        await conn.execute(_MOVE_LINE, {**params, "line_sku": sku})


# Built once, like the UPDATEs above: a claim batch and every new view of a drop read its
# lines, and building this SELECT with its correlated subquery cost ~350 µs a time.
_LAPSED = lapsed_qty(
    drop_stock.c.drop_id,
    drop_stock.c.sku,
    drop_stock.c.pool,
    bindparam("now", type_=holds.c.expires_at.type),
)
_STOCK_LINES = (
    select(
        drop_stock.c.id,
        drop_stock.c.sku,
        drop_stock.c.pool,
        drop_stock.c.per_unit,
        drop_stock.c.total,
        drop_stock.c.sold,
        (drop_stock.c.held - _LAPSED * drop_stock.c.per_unit).label("held"),
    )
    .where(drop_stock.c.drop_id == bindparam("drop_id", type_=drop_stock.c.drop_id.type))
    .order_by(drop_stock.c.position, drop_stock.c.id)
)


async def stock_lines(conn: AsyncConnection, drop_id: int, now: datetime) -> list[StockLine]:
    rows = await conn.execute(_STOCK_LINES, {"drop_id": drop_id, "now": now})
    return [StockLine(r.id, r.sku, r.pool, r.per_unit, r.total, r.sold, int(r.held)) for r in rows]


@dataclass(frozen=True, slots=True)
class ShapeLine:
    stock_id: int
    sku: str
    pool: str
    per_unit: int


@dataclass(frozen=True, slots=True)
class DropShape:
    """The parts of a drop that never change once created: cached, so a claim costs no read."""

    drop_id: int
    format: DropFormat
    hold_seconds: int
    per_customer_limit: int
    lines: tuple[ShapeLine, ...]

    @property
    def skus(self) -> list[str]:
        return list(dict.fromkeys(line.sku for line in self.lines))

    @property
    def pools(self) -> list[str]:
        return list(dict.fromkeys(line.pool for line in self.lines))

    def has_target(self, sku: str | None, pool: str | None) -> bool:
        try:
            self.target(sku, pool)
        except (UnknownItem, InvalidInput):
            return False
        return True

    def target(self, sku: str | None, pool: str | None) -> tuple[str | None, str, list[ShapeLine]]:
        """Resolve what a claim asks for: (hold sku, pool, stock lines it takes from)."""
        pool = pool or ("ship" if "ship" in self.pools else self.pools[0])
        if self.format is DropFormat.BUNDLE:
            lines = [line for line in self.lines if line.pool == pool]
            if not lines:
                raise UnknownItem(f"this bundle has no pool {pool!r}", pool=pool)
            return None, pool, lines
        if sku is None:
            if len(self.skus) > 1:
                raise InvalidInput("sku", f"choose one of {', '.join(self.skus)}")
            sku = self.skus[0]
        sku_upper = {s.upper(): s for s in self.skus}.get(sku.upper())
        if sku_upper is None:
            raise UnknownItem(f"{sku!r} is not sold in this drop", sku=sku)
        lines = [line for line in self.lines if line.sku == sku_upper and line.pool == pool]
        if not lines:
            raise UnknownItem(f"{sku_upper} has no pool {pool!r} in this drop", pool=pool)
        return sku_upper, pool, lines


class ShapeCache:
    """Per-process cache of drop shapes; a miss or a new pool reloads from the database."""

    def __init__(self) -> None:
        self._shapes: dict[int, DropShape] = {}

    async def get(self, conn: AsyncConnection, drop_id: int) -> DropShape:
        shape = self._shapes.get(drop_id)
        if shape is None:
            shape = await self._load(conn, drop_id)
            self._shapes[drop_id] = shape
        return shape

    def cached(self, drop_id: int) -> DropShape | None:
        return self._shapes.get(drop_id)

    def forget(self, drop_id: int) -> None:
        self._shapes.pop(drop_id, None)

    async def _load(self, conn: AsyncConnection, drop_id: int) -> DropShape:
        drop = (
            await conn.execute(
                select(drops.c.format, drops.c.hold_seconds, drops.c.per_customer_limit).where(
                    drops.c.id == drop_id
                )
            )
        ).first()
        if drop is None:
            raise DropNotFound(drop_id)
        rows = await conn.execute(
            select(drop_stock.c.id, drop_stock.c.sku, drop_stock.c.pool, drop_stock.c.per_unit)
            .where(drop_stock.c.drop_id == drop_id)
            .order_by(drop_stock.c.position, drop_stock.c.id)
        )
        return DropShape(
            drop_id=drop_id,
            format=DropFormat(drop.format),
            hold_seconds=drop.hold_seconds,
            per_customer_limit=drop.per_customer_limit,
            lines=tuple(ShapeLine(r.id, r.sku, r.pool, r.per_unit) for r in rows),
        )
