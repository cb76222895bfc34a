"""Drops: creation from a spec, the lifecycle (open, close, restock) and read models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import and_, bindparam, case, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.domain.errors import DropNotFound, InvalidInput, InvalidState, UnknownItem
from commerce.domain.events import (
    DropClosed,
    DropOpened,
    DropScheduled,
    PriceChanged,
    ReplayPosted,
    Restocked,
)
from commerce.domain.model import (
    CloseReason,
    Drop,
    DropFormat,
    DropState,
    DropView,
    Money,
    Product,
    WaitlistStatus,
    validate_pool,
)
from commerce.dropfile import DropSpec, parse_when, product_prices
from commerce.fresh import FreshRead
from commerce.services.claims import ClaimService
from commerce.services.stock import ShapeCache, active_hold_filter, stock_lines
from commerce.shipping import parse_rates
from commerce.storage.rows import record
from commerce.storage.tables import (
    activity,
    drop_products,
    drop_stock,
    drops,
    holds,
    products,
    waitlist,
)
from commerce.storage.unit_of_work import Tx, UnitOfWork


def drop_from_row(row: Row[tuple[object, ...]]) -> Drop:
    price_minor, currency = row._mapping["price_minor"], row._mapping["currency"]
    return record(
        Drop, row, price=Money(price_minor, currency) if price_minor is not None else None
    )


# A drop's view is read after every change of it, by every surface: its statements are
# built once (building them cost more CPU than the database spends running them).
_DROP_ID = bindparam("drop_id", type_=drops.c.id.type)
_DROP = select(drops).where(drops.c.id == _DROP_ID)
_PRODUCTS = select(drop_products).where(
    drop_products.c.drop_id == _DROP_ID,
    drop_products.c.sku.in_(bindparam("skus", expanding=True)),
)
_WAITING = (
    select(func.count())
    .select_from(waitlist)
    .where(waitlist.c.drop_id == _DROP_ID, waitlist.c.status == WaitlistStatus.WAITING)
)


class DropService:
    def __init__(self, uow: UnitOfWork, shapes: ShapeCache, claims: ClaimService) -> None:
        self.uow = uow
        self.shapes = shapes
        self.claims = claims
        self._insert = uow.db.insert
        # Every chat command asks which drop is current: a surge of them shares a few reads.
        self._current = FreshRead(self._read_current)

    # -- commands -------------------------------------------------------------------------

    async def create(
        self, spec: DropSpec, *, then: Callable[[Tx, int], Awaitable[None]] | None = None
    ) -> int:
        """Create a drop from a validated spec; returns its id.

        The products the spec lists are upserted into the shared catalogue, and the drop
        gets its own copy of every item's title and price: whatever later drops do to a
        SKU, this drop sells at the price it was created with.
        """
        now = self.uow.clock.now()
        header = spec.drop
        opens_at = parse_when(header.opens_at, now, "drop.opens_at") if header.opens_at else None
        closes_at = (
            parse_when(header.closes_at, now, "drop.closes_at") if header.closes_at else None
        )
        if closes_at is not None and closes_at <= (opens_at or now):
            raise InvalidInput("drop.closes_at", "must be after opens_at")
        prices = product_prices(spec)
        if header.price is not None and header.format is not DropFormat.BUNDLE:
            raise InvalidInput("drop.price", "only a bundle has its own price")
        async with self.uow.write() as tx:
            for product in spec.products:
                money = prices[product.sku]
                values = {
                    "title": product.title,
                    "price_minor": money.amount_minor,
                    "currency": money.currency,
                    "image_url": product.image_url,
                }
                await tx.conn.execute(
                    self._insert(products)
                    .values(sku=product.sku, **values)
                    .on_conflict_do_update(index_elements=["sku"], set_=values)
                )
            skus = list(dict.fromkeys(item.sku for item in spec.items))
            catalogue = {
                r.sku: r
                for r in await tx.conn.execute(select(products).where(products.c.sku.in_(skus)))
            }
            for index, item in enumerate(spec.items):
                if item.sku not in catalogue:
                    raise InvalidInput(
                        f"items[{index}].sku", f"{item.sku!r} is not a product; add [[products]]"
                    )
            currencies = {catalogue[sku].currency for sku in skus}
            if len(currencies) > 1:
                raise InvalidInput("items", "one drop sells in one currency")
            currency = header.currency.upper() if header.currency else currencies.pop()
            shipping = (
                parse_rates(header.shipping, currency, "drop.shipping")
                if header.shipping is not None
                else None
            )
            price = None
            if header.format is DropFormat.BUNDLE:
                price = (
                    Money.parse(header.price, currency, "drop.price")
                    if header.price is not None
                    else Money(
                        sum(catalogue[i.sku].price_minor * i.per_bundle for i in spec.items),
                        currency,
                    )
                )
            drop_id = (
                await tx.conn.execute(
                    insert(drops)
                    .values(
                        title=header.title,
                        format=header.format.value,
                        state=(DropState.SCHEDULED if opens_at else DropState.DRAFT).value,
                        opens_at=opens_at,
                        closes_at=closes_at,
                        demo_seconds=header.demo_seconds,
                        hold_seconds=header.hold_seconds,
                        per_customer_limit=header.per_customer_limit,
                        price_minor=price.amount_minor if price else None,
                        currency=currency,
                        objective=header.objective.model_dump() if header.objective else None,
                        replay_url=header.replay_url,
                        shipping=shipping,
                        created_at=tx.now,
                    )
                    .returning(drops.c.id)
                )
            ).scalar_one()
            await tx.conn.execute(
                insert(drop_products),
                [
                    {
                        "drop_id": drop_id,
                        "sku": sku,
                        "title": catalogue[sku].title,
                        "price_minor": catalogue[sku].price_minor,
                        "currency": catalogue[sku].currency,
                        "image_url": catalogue[sku].image_url,
                    }
                    for sku in skus
                ],
            )
            rows = [
                {
                    "drop_id": drop_id,
                    "sku": item.sku,
                    "pool": pool,
                    "total": units,
                    "sold": 0,
                    "per_unit": item.per_bundle,
                    "position": position,
                }
                for position, item in enumerate(spec.items)
                for pool, units in item.pools.items()
            ]
            await tx.conn.execute(insert(drop_stock), rows)
            if opens_at is not None:
                tx.emit(DropScheduled(drop_id, opens_at))
            if then is not None:  # e.g. record why the drop exists; raising undoes it all
                await then(tx, drop_id)
        return int(drop_id)

    async def set_price(self, drop_id: int, price: str, sku: str | None = None) -> Money:
        """Change what one claim costs from now on: an item's price, or a bundle's.

        Refused while any hold is open (its buyer saw the old price), and on a closed drop.
        Recorded in the drop's activity as ``price_changed`` with the old and new price.
        """
        async with self.uow.write() as tx:
            drop = await self.load(tx.conn, drop_id)
            if drop.state is DropState.CLOSED:
                raise InvalidState(f"drop {drop_id} is closed; its prices are final")
            shape = await self.shapes.get(tx.conn, drop_id)
            currency = drop.currency or ""
            if drop.format is DropFormat.BUNDLE:
                if sku is not None:
                    raise InvalidInput("sku", "a bundle has one price; leave out the SKU")
                target = None
            elif sku is None:
                if len(shape.skus) > 1:
                    raise InvalidInput("sku", f"choose one of {', '.join(shape.skus)}")
                target = shape.skus[0]
            else:
                target = {s.upper(): s for s in shape.skus}.get(sku.upper())
                if target is None:
                    raise UnknownItem(f"{sku!r} is not sold in drop {drop_id}", sku=sku)
            money = Money.parse(price, currency, "price")
            await self.uow.db.lock_drop(tx.conn, drop_id)
            open_holds = (
                await tx.conn.execute(
                    select(func.count())
                    .select_from(holds)
                    .where(holds.c.drop_id == drop_id, active_hold_filter(tx.now))
                )
            ).scalar_one()
            if open_holds:
                raise InvalidState(
                    f"drop {drop_id} has {open_holds} open hold(s) at the current price; "
                    "change it when they have ended",
                    drop_id=drop_id,
                )
            if target is None:
                old = drop.price.amount_minor if drop.price else None
                await tx.conn.execute(
                    update(drops)
                    .where(drops.c.id == drop_id)
                    .values(price_minor=money.amount_minor)
                )
            else:
                old = (
                    await tx.conn.execute(
                        select(drop_products.c.price_minor).where(
                            drop_products.c.drop_id == drop_id, drop_products.c.sku == target
                        )
                    )
                ).scalar_one()
                await tx.conn.execute(
                    update(drop_products)
                    .where(drop_products.c.drop_id == drop_id, drop_products.c.sku == target)
                    .values(price_minor=money.amount_minor)
                )
            await tx.conn.execute(
                insert(activity).values(
                    drop_id=drop_id,
                    kind="price_changed",
                    at=tx.now,
                    detail={
                        "sku": target,
                        "from_minor": old,
                        "to_minor": money.amount_minor,
                        "currency": money.currency,
                    },
                )
            )
            tx.emit(PriceChanged(drop_id, target, money.amount_minor, money.currency))
        return money

    async def open(self, drop_id: int) -> Drop:
        """Open a draft or scheduled drop for claims now (idempotent when already live)."""
        async with self.uow.write() as tx:
            drop = await self.load(tx.conn, drop_id)
            if drop.state is DropState.LIVE:
                return drop
            if drop.state is DropState.CLOSED:
                raise InvalidState(f"drop {drop_id} is closed and cannot reopen", drop_id=drop_id)
            await tx.conn.execute(
                update(drops)
                .where(
                    drops.c.id == drop_id, drops.c.state.in_((DropState.DRAFT, DropState.SCHEDULED))
                )
                .values(state=DropState.LIVE, opened_at=tx.now)
            )
            tx.emit(DropOpened(drop_id, tx.now))
            return await self.load(tx.conn, drop_id)

    async def close(self, drop_id: int, reason: CloseReason = CloseReason.MANUAL) -> Drop:
        """Stop taking claims. Holds already placed may still be paid until they expire."""
        async with self.uow.write() as tx:
            drop = await self.load(tx.conn, drop_id)
            if drop.state is DropState.CLOSED:
                return drop
            await self._close(tx, drop_id, reason)
            return await self.load(tx.conn, drop_id)

    async def restock(
        self,
        drop_id: int,
        sku: str,
        units: int,
        pool: str | None = None,
        *,
        new_pool: bool = False,
    ) -> int:
        """Add units to one of the item's pools; a pool the item does not have yet only with
        ``new_pool`` (a typo must not open a pickup point). Waitlisted customers are served
        first. Returns the number of waitlist offers made."""
        if not isinstance(units, int) or isinstance(units, bool) or not 1 <= units <= 1_000_000:
            raise InvalidInput("units", "must be a whole number from 1 to 1000000")
        pool = validate_pool(pool or "ship")
        async with self.uow.write() as tx:
            drop = await self.load(tx.conn, drop_id)
            shape = await self.shapes.get(tx.conn, drop_id)
            match = {s.upper(): s for s in shape.skus}.get(sku.upper())
            if match is None:
                raise UnknownItem(f"{sku!r} is not sold in drop {drop_id}", sku=sku)
            reopen = drop.state is DropState.CLOSED
            if reopen and drop.close_reason is not CloseReason.SOLD_OUT:
                raise InvalidState(
                    f"drop {drop_id} was closed ({drop.close_reason}); restock needs an open drop",
                    drop_id=drop_id,
                )
            if drop.format is DropFormat.BUNDLE and pool not in shape.pools:
                raise InvalidInput("pool", "a bundle's pools are fixed when it is created")
            pools = [line.pool for line in shape.lines if line.sku == match]
            if pool not in pools and not new_pool:
                raise UnknownItem(
                    f"{match} has no pool {pool!r} in drop {drop_id} (it has "
                    f"{', '.join(pools)}); to open a new pool, ask for it explicitly "
                    "(--new-pool)",
                    pool=pool,
                )
            await self.uow.db.lock_drop(tx.conn, drop_id)
            changed = await tx.conn.execute(
                update(drop_stock)
                .where(
                    drop_stock.c.drop_id == drop_id,
                    drop_stock.c.sku == match,
                    drop_stock.c.pool == pool,
                )
                .values(total=drop_stock.c.total + units)
            )
            if changed.rowcount == 0:
                position = next(line for line in shape.lines if line.sku == match)
                await tx.conn.execute(
                    insert(drop_stock).values(
                        drop_id=drop_id,
                        sku=match,
                        pool=pool,
                        total=units,
                        sold=0,
                        per_unit=position.per_unit,
                        position=shape.lines.index(position),
                    )
                )
                self.shapes.forget(drop_id)
                shape = await self.shapes.get(tx.conn, drop_id)
            if reopen:
                await self.reopen_sold_out(tx, drop)
            # Waitlist first: their offers are decided (and announced privately) before the
            # public "restocked" post goes out.
            offers = await self.claims.offer_waitlist(tx, shape)
            tx.emit(Restocked(drop_id, match, pool, units))
            await self.claims.emit_stock(tx, shape)
        return offers

    async def reopen_sold_out(self, tx: Tx, drop: Drop) -> bool:
        """Units came back (a restock, a refund) to a drop that closed because it sold out:
        it is live again while its window lasts, its waitlist waiting again. A drop closed
        by hand or by its window stays closed. The caller holds the drop's lock."""
        if drop.state is not DropState.CLOSED or drop.close_reason is not CloseReason.SOLD_OUT:
            return False
        if drop.closes_at is not None and drop.closes_at <= tx.now:
            return False
        await tx.conn.execute(
            update(drops)
            .where(drops.c.id == drop.id)
            .values(state=DropState.LIVE, closed_at=None, close_reason=None)
        )
        await tx.conn.execute(
            update(waitlist)
            .where(waitlist.c.drop_id == drop.id, waitlist.c.status == WaitlistStatus.CLOSED)
            .values(status=WaitlistStatus.WAITING)
        )
        tx.emit(DropOpened(drop.id, tx.now))
        return True

    async def set_replay(self, drop_id: int, url: str) -> Drop:
        if not url.startswith(("https://", "http://")):
            raise InvalidInput("replay_url", "must be an http(s) URL")
        async with self.uow.write() as tx:
            await self.load(tx.conn, drop_id)
            await tx.conn.execute(update(drops).where(drops.c.id == drop_id).values(replay_url=url))
            tx.emit(ReplayPosted(drop_id, url))
            return await self.load(tx.conn, drop_id)

    async def open_due(self) -> list[int]:
        """Open every scheduled drop whose time has come (the scheduler's safety net)."""
        now = self.uow.clock.now()
        async with self.uow.read() as conn:
            due = list(
                (
                    await conn.execute(
                        select(drops.c.id).where(
                            drops.c.state == DropState.SCHEDULED, drops.c.opens_at <= now
                        )
                    )
                ).scalars()
            )
        for drop_id in due:
            await self.open(drop_id)
        return due

    async def close_due(self) -> list[int]:
        """Close live drops whose window has ended."""
        now = self.uow.clock.now()
        async with self.uow.read() as conn:
            due = list(
                (
                    await conn.execute(
                        select(drops.c.id).where(
                            drops.c.state == DropState.LIVE,
                            drops.c.closes_at.is_not(None),
                            drops.c.closes_at <= now,
                        )
                    )
                ).scalars()
            )
        for drop_id in due:
            await self.close(drop_id, CloseReason.WINDOW_ENDED)
        return due

    async def close_if_sold_through(self, tx: Tx, drop_id: int) -> bool:
        """Inside a payment: close the drop once every unit is sold and no hold is pending."""
        remaining = (
            await tx.conn.execute(
                select(func.count())
                .select_from(drop_stock)
                .where(drop_stock.c.drop_id == drop_id, drop_stock.c.sold < drop_stock.c.total)
            )
        ).scalar()
        pending = (
            await tx.conn.execute(
                select(func.count())
                .select_from(holds)
                .where(holds.c.drop_id == drop_id, active_hold_filter(tx.now))
            )
        ).scalar()
        state = (await tx.conn.execute(select(drops.c.state).where(drops.c.id == drop_id))).scalar()
        if remaining == 0 and pending == 0 and state == DropState.LIVE:
            await self._close(tx, drop_id, CloseReason.SOLD_OUT)
            return True
        return False

    # -- queries --------------------------------------------------------------------------

    async def get(self, drop_id: int) -> Drop:
        async with self.uow.read() as conn:
            return await self.load(conn, drop_id)

    async def view(self, drop_id: int, now: datetime | None = None) -> DropView:
        """The drop with products and live stock per item and pool, as of ``now``."""
        now = now or self.uow.clock.now()
        async with self.uow.read() as conn:
            drop = await self.load(conn, drop_id)
            lines = await stock_lines(conn, drop_id, now)
            skus = {line.sku for line in lines}
            product_rows = await conn.execute(_PRODUCTS, {"drop_id": drop_id, "skus": list(skus)})
            catalog = {
                r.sku: Product(r.sku, r.title, Money(r.price_minor, r.currency), r.image_url)
                for r in product_rows
            }
            waiting = (await conn.execute(_WAITING, {"drop_id": drop_id})).scalar()
        return DropView(drop, catalog, lines, int(waiting or 0), now)

    async def current(self) -> Drop | None:
        """The drop everyone talks about: the live one (latest opened), else the next
        scheduled, else the most recent."""
        return await self._current()

    async def _read_current(self) -> Drop | None:
        # One ordered query, one row: every chat command asks, and a creator's history of
        # drops only grows. Live first (the latest opened), then scheduled (the soonest to
        # open), then the newest of the rest.
        live = drops.c.state == DropState.LIVE
        scheduled = and_(drops.c.state == DropState.SCHEDULED, drops.c.opens_at.is_not(None))
        query = (
            select(drops)
            .order_by(
                case((live, 0), (scheduled, 1), else_=2),
                case((live, func.coalesce(drops.c.opened_at, drops.c.created_at))).desc(),
                case((scheduled, drops.c.opens_at)),
                case((scheduled, drops.c.id)),
                drops.c.id.desc(),
            )
            .limit(1)
        )
        async with self.uow.read() as conn:
            row = (await conn.execute(query)).first()
        return drop_from_row(row) if row is not None else None

    async def list(self, states: tuple[DropState, ...] | None = None) -> list[Drop]:
        query = select(drops).order_by(drops.c.id)
        if states:
            query = query.where(drops.c.state.in_([s.value for s in states]))
        async with self.uow.read() as conn:
            return [drop_from_row(r) for r in await conn.execute(query)]

    # -- internals ------------------------------------------------------------------------

    async def load(self, conn: AsyncConnection, drop_id: int) -> Drop:
        """The drop as ``conn`` sees it (inside the caller's transaction)."""
        row = (await conn.execute(_DROP, {"drop_id": drop_id})).first()
        if row is None:
            raise DropNotFound(drop_id)
        return drop_from_row(row)

    async def _close(self, tx: Tx, drop_id: int, reason: CloseReason) -> None:
        await tx.conn.execute(
            update(drops)
            .where(drops.c.id == drop_id, drops.c.state != DropState.CLOSED)
            .values(state=DropState.CLOSED, closed_at=tx.now, close_reason=reason.value)
        )
        await tx.conn.execute(
            update(waitlist)
            .where(waitlist.c.drop_id == drop_id, waitlist.c.status == WaitlistStatus.WAITING)
            .values(status=WaitlistStatus.CLOSED)
        )
        tx.emit(DropClosed(drop_id, reason.value, tx.now))
