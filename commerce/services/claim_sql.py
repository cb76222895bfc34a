"""The claim path's SQL, built once per drop shape and reused with bound parameters.

Building SQLAlchemy expressions costs more CPU than running them on SQLite, so the hot
statements are constructed once per (drop, SKU, pool) and executed with fresh parameters:
``customer_id``, ``qty``, ``claim_key``, ``source``, ``now`` and ``expires_at``.

A surge is decided a batch at a time: ``place_batch`` is one INSERT … SELECT over the whole
batch (its rows bound as parameters, in arrival order) that places a hold for each claimant
the one-by-one statement would have, in one statement per target.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Subquery,
    Table,
    and_,
    bindparam,
    column,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.sql.dml import Insert

from commerce.domain.model import DropState, HoldStatus, WaitlistStatus
from commerce.services.stock import DropShape, ShapeLine, active_hold_filter, lapsed_qty
from commerce.storage.database import UpsertInsert
from commerce.storage.tables import UTCDateTime, drop_products, drop_stock, drops, holds, waitlist

_NO_POSITION = 2**62  # "not in the waitlist": everyone waiting is ahead

CUSTOMER = bindparam("customer_id", type_=BigInteger)
QTY = bindparam("qty", type_=Integer)
KEY = bindparam("claim_key", type_=String)
SOURCE = bindparam("source", type_=String)
NOW = bindparam("now", type_=UTCDateTime)
EXPIRES = bindparam("expires_at", type_=UTCDateTime)

HOLD_COLUMNS = [
    "drop_id",
    "customer_id",
    "sku",
    "pool",
    "qty",
    "price_minor",
    "status",
    "claim_key",
    "source",
    "created_at",
    "expires_at",
]


def customer_taken(drop_id: int, customer: ColumnElement[int] = CUSTOMER) -> ColumnElement[int]:
    """Units this customer holds or has bought in this drop (for the per-customer limit)."""
    return (
        select(func.coalesce(func.sum(holds.c.qty), 0))
        .where(
            holds.c.drop_id == drop_id,
            holds.c.customer_id == customer,
            or_(holds.c.status == HoldStatus.CONVERTED, active_hold_filter(NOW)),
        )
        .scalar_subquery()
    )


def my_waitlist_entry(drop_id: int) -> ColumnElement[int]:
    return (
        select(waitlist.c.id)
        .where(
            waitlist.c.drop_id == drop_id,
            waitlist.c.customer_id == CUSTOMER,
            waitlist.c.status == WaitlistStatus.WAITING,
        )
        .scalar_subquery()
    )


def waiting_ahead(drop_id: int, line: ShapeLine) -> ColumnElement[int]:
    """Customers queued for this line before the claimant (everyone, if not queued)."""
    return (
        select(func.count())
        .select_from(waitlist)
        .where(
            waitlist.c.drop_id == drop_id,
            waitlist.c.status == WaitlistStatus.WAITING,
            waitlist.c.pool == line.pool,
            or_(waitlist.c.sku.is_(None), waitlist.c.sku == line.sku),
            waitlist.c.customer_id != CUSTOMER,
            waitlist.c.id < func.coalesce(my_waitlist_entry(drop_id), _NO_POSITION),
        )
        .scalar_subquery()
    )


def waitlist_position(drop_id: int) -> ColumnElement[int]:
    """The claimant's place in the queue (1 = next), or 0 when not waiting."""
    return (
        select(func.count())
        .select_from(waitlist)
        .where(
            waitlist.c.drop_id == drop_id,
            waitlist.c.status == WaitlistStatus.WAITING,
            waitlist.c.id <= my_waitlist_entry(drop_id),
        )
        .scalar_subquery()
    )


def drop_is_open(drop_id: int) -> ColumnElement[bool]:
    """The drop is live and its closing time (if any) has not come."""
    return exists().where(
        drops.c.id == drop_id,
        drops.c.state == DropState.LIVE,
        or_(drops.c.closes_at.is_(None), drops.c.closes_at > NOW),
    )


def line_free(line: ShapeLine) -> ColumnElement[int]:
    """Units of a stock line neither sold nor in a hold still marked active."""
    return (
        select(drop_stock.c.total - drop_stock.c.sold - drop_stock.c.held)
        .where(drop_stock.c.id == line.stock_id)
        .scalar_subquery()
    )


def unit_price(drop_id: int, hold_sku: str | None) -> ColumnElement[int]:
    """The drop's price for one claim unit right now: the item's, or the bundle's."""
    if hold_sku is None:
        return select(drops.c.price_minor).where(drops.c.id == drop_id).scalar_subquery()
    return (
        select(drop_products.c.price_minor)
        .where(drop_products.c.drop_id == drop_id, drop_products.c.sku == hold_sku)
        .scalar_subquery()
    )


BatchRow = tuple[int, str, str]  # (customer_id, claim_key, source), in arrival order


def batch_rows(dialect: str) -> Subquery:
    """A batch's claims as one table (``seq`` being the arrival order, from 1), bound as
    parameters whose number does not grow with the batch (``batch_params``): the statement
    is the same for every batch size, so it is compiled and planned as one small statement.
    PostgreSQL unnests one array per column; SQLite reads a JSON array of rows."""
    if dialect == "postgresql":
        # The driver casts each array to its type (``$1::BIGINT[]``), which unnest needs.
        rows = (
            func.unnest(
                bindparam("customers", type_=ARRAY(BigInteger)),
                bindparam("keys", type_=ARRAY(String)),
                bindparam("sources", type_=ARRAY(String)),
            )
            .table_valued(
                column("customer_id", BigInteger),
                column("claim_key", String),
                column("source", String),
                with_ordinality="seq",
            )
            .render_derived("arrivals")
        )
        return select(rows.c.seq, rows.c.customer_id, rows.c.claim_key, rows.c.source).subquery(
            "batch"
        )
    listed = func.json_each(bindparam("batch", type_=String)).table_valued("key", "value")
    return select(
        (listed.c.key + 1).label("seq"),
        func.json_extract(listed.c.value, "$[0]", type_=BigInteger).label("customer_id"),
        func.json_extract(listed.c.value, "$[1]", type_=String).label("claim_key"),
        func.json_extract(listed.c.value, "$[2]", type_=String).label("source"),
    ).subquery("batch")


def batch_params(dialect: str, rows: Sequence[BatchRow]) -> dict[str, object]:
    """Bind a batch's rows, in arrival order, to ``batch_rows``."""
    if dialect == "postgresql":
        return {
            "customers": [customer for customer, _, _ in rows],
            "keys": [key for _, key, _ in rows],
            "sources": [source for _, _, source in rows],
        }
    return {"batch": json.dumps(rows)}


class ClaimStatements:
    def __init__(self, insert: Callable[[Table], UpsertInsert], dialect: str) -> None:
        self._insert = insert
        self.dialect = dialect
        self._holds: dict[tuple[object, ...], Insert] = {}
        self._batches: dict[tuple[object, ...], Insert] = {}
        self._diagnoses: dict[tuple[int, int], Select[tuple[object, ...]]] = {}

    def place_hold(
        self, shape: DropShape, hold_sku: str | None, pool: str, lines: Sequence[ShapeLine]
    ) -> Insert:
        """INSERT … SELECT … WHERE <drop live, under limit, every line has the units>."""
        key = (shape, hold_sku, pool)
        stmt = self._holds.get(key)
        if stmt is None:
            stmt = self._holds[key] = self._build_place_hold(shape, hold_sku, pool, lines)
        return stmt

    def _build_place_hold(
        self, shape: DropShape, hold_sku: str | None, pool: str, lines: Sequence[ShapeLine]
    ) -> Insert:
        drop_id = shape.drop_id
        conditions: list[ColumnElement[bool]] = [
            drop_is_open(drop_id),
            customer_taken(drop_id) + QTY <= shape.per_customer_limit,
        ]
        for line in lines:
            # Holds that expired a moment ago still sit in the counter until swept.
            wanted = (
                waiting_ahead(drop_id, line) + QTY - lapsed_qty(drop_id, line.sku, line.pool, NOW)
            )
            conditions.append(line_free(line) - line.per_unit * wanted >= 0)
        values = select(
            literal(drop_id, BigInteger),
            CUSTOMER,
            literal(hold_sku, String),
            literal(pool, String),
            QTY,
            unit_price(drop_id, hold_sku),
            literal(HoldStatus.ACTIVE.value, String),
            KEY,
            SOURCE,
            NOW,
            EXPIRES,
        ).where(and_(*conditions))
        return (
            self._insert(holds)
            .from_select(HOLD_COLUMNS, values)
            .on_conflict_do_nothing(index_elements=["drop_id", "claim_key"])
            .returning(holds.c.id, holds.c.price_minor)
        )

    def place_batch(
        self, shape: DropShape, hold_sku: str | None, pool: str, lines: Sequence[ShapeLine]
    ) -> Insert:
        """One INSERT … SELECT deciding a batch of claims on one target at once (its rows
        bound by ``batch_params``). Valid only when the one-by-one answers cannot
        depend on each other except through stock: the drop is live with nobody queued,
        the claimants are distinct, their keys are distinct and each asks for ``qty``.

        Each claimant passes or fails on their own (claim key unused, under their limit);
        of those who pass, the ``rank``-th in arrival order gets a hold while every line
        still has ``rank`` × ``qty`` units free. That is what deciding them one by one
        would do, since each hold moves ``held`` by the same amount and nothing in the
        batch frees a unit. RETURNING names each hold by its claim key."""
        key = (shape, hold_sku, pool)
        stmt = self._batches.get(key)
        if stmt is None:
            stmt = self._batches[key] = self._build_place_batch(shape, hold_sku, pool, lines)
        return stmt

    def batch_params(self, rows: Sequence[BatchRow]) -> dict[str, object]:
        return batch_params(self.dialect, rows)

    def _build_place_batch(
        self, shape: DropShape, hold_sku: str | None, pool: str, lines: Sequence[ShapeLine]
    ) -> Insert:
        drop_id = shape.drop_id
        batch = batch_rows(self.dialect)
        # The hold a claim key already made, if any (the key is unique per drop). A scalar
        # subquery, not NOT EXISTS: PostgreSQL turns that into an anti-join, which without
        # fresh statistics (a new shop, autovacuum behind) it ran as a scan of every hold
        # of the drop for each claim of the batch (70-190 ms a batch at 15,000 holds).
        # This is one lookup per claim on the key's unique index.
        key_used = (
            select(holds.c.id)
            .where(holds.c.drop_id == drop_id, holds.c.claim_key == batch.c.claim_key)
            .scalar_subquery()
        )
        eligible = (
            select(
                batch.c.seq,
                batch.c.customer_id,
                batch.c.claim_key,
                batch.c.source,
                func.row_number().over(order_by=batch.c.seq).label("rank"),
            )
            .where(
                key_used.is_(None),
                customer_taken(drop_id, batch.c.customer_id) + QTY <= shape.per_customer_limit,
            )
            .subquery("eligible")
        )
        conditions: list[ColumnElement[bool]] = [drop_is_open(drop_id)]
        for line in lines:
            lapsed = lapsed_qty(drop_id, line.sku, line.pool, NOW)
            wanted = QTY * eligible.c.rank - lapsed
            conditions.append(line_free(line) - line.per_unit * wanted >= 0)
        values = (
            select(
                literal(drop_id, BigInteger),
                eligible.c.customer_id,
                literal(hold_sku, String),
                literal(pool, String),
                QTY,
                unit_price(drop_id, hold_sku),
                literal(HoldStatus.ACTIVE.value, String),
                eligible.c.claim_key,
                eligible.c.source,
                NOW,
                EXPIRES,
            )
            .where(and_(*conditions))
            .order_by(eligible.c.seq)
        )
        return (
            self._insert(holds)
            .from_select(HOLD_COLUMNS, values)
            .on_conflict_do_nothing(index_elements=["drop_id", "claim_key"])
            .returning(holds.c.id, holds.c.claim_key, holds.c.price_minor)
        )

    def diagnose(self, shape: DropShape) -> Select[tuple[object, ...]]:
        """Why a hold was not placed, in one round trip."""
        key = (shape.drop_id, shape.per_customer_limit)
        stmt = self._diagnoses.get(key)
        if stmt is None:
            drop_id = shape.drop_id
            same_claim = (
                select(holds.c.id)
                .where(holds.c.drop_id == drop_id, holds.c.claim_key == KEY)
                .scalar_subquery()
            )
            active = (
                select(holds.c.id)
                .where(
                    holds.c.drop_id == drop_id,
                    holds.c.customer_id == CUSTOMER,
                    active_hold_filter(NOW),
                )
                .order_by(holds.c.id)
                .limit(1)
                .scalar_subquery()
            )
            position = waitlist_position(drop_id)
            stmt = self._diagnoses[key] = select(
                same_claim.label("same_claim"),
                drops.c.state,
                drops.c.opens_at,
                drops.c.closes_at,
                active.label("active_hold"),
                customer_taken(drop_id).label("taken"),
                position.label("position"),
            ).where(drops.c.id == drop_id)
        return stmt
