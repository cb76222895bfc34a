"""Claims, holds, the waitlist and the hold sweeper: the money path.

A hold is placed by ONE conditional INSERT … SELECT … WHERE <every condition>: the drop is
live, the customer is under their limit, and every stock line it takes from still has the
units once active holds and customers ahead in the waitlist are counted. Either the row
appears or nothing changes; there is no read-modify-write. The claim key is unique per drop,
so a retried or double-clicked claim finds its first hold instead of making a second.

Lock order, for every write that takes stock: the drop row (PostgreSQL), then holds.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import BigInteger, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.domain.errors import (
    HoldNotActive,
    HoldNotFound,
    InvalidInput,
)
from commerce.domain.events import (
    HoldCancelled,
    HoldExpired,
    HoldPlaced,
    SoldOut,
    StockChanged,
    WaitlistJoined,
    WaitlistOffered,
)
from commerce.domain.model import (
    ClaimOutcome,
    ClaimResult,
    DropFormat,
    DropState,
    Hold,
    HoldStatus,
    StockLine,
    WaitlistStatus,
    stock_counts,
)
from commerce.services.arrivals import DEFAULT_PATIENCE, Arrival, ArrivalLine, wake
from commerce.services.claim_sql import (
    NOW,
    ClaimStatements,
    customer_taken,
    waitlist_position,
)
from commerce.services.stock import (
    DropShape,
    ShapeCache,
    ShapeLine,
    active_hold_filter,
    move_held,
    stock_lines,
)
from commerce.storage.rows import record
from commerce.storage.tables import claims, customers, drops, holds, identities, waitlist
from commerce.storage.unit_of_work import Tx, UnitOfWork

log = logging.getLogger(__name__)
MAX_CLAIM_KEY = 128
WAITLIST_SOURCE = "waitlist"


def hold_from_row(row: Row[tuple[object, ...]]) -> Hold:
    return record(Hold, row)


def summarize(lines: list[StockLine], fmt: DropFormat) -> tuple[int, int, int, int]:
    """(available, held, sold, total) for a whole drop, in claim units (bundles for a
    bundle drop), so every screen counts the same thing."""
    counts = stock_counts(lines, fmt)
    return counts.available, counts.held, counts.sold, counts.total


# Built once (one per batch; building it cost more CPU than SQLite spends running it).
_DROP_ID = bindparam("drop_id", type_=drops.c.id.type)
_BATCH_CONDITIONS = select(
    drops.c.state,
    drops.c.closes_at,
    select(waitlist.c.id)
    .where(
        waitlist.c.drop_id == _DROP_ID,
        waitlist.c.status.in_((WaitlistStatus.WAITING, WaitlistStatus.OFFERED)),
    )
    .exists(),
).where(drops.c.id == _DROP_ID)


class ClaimService:
    def __init__(
        self,
        uow: UnitOfWork,
        shapes: ShapeCache,
        *,
        max_batch: int = 256,
        patience: float = DEFAULT_PATIENCE,
    ) -> None:
        self.uow = uow
        self.shapes = shapes
        self.max_batch = max_batch
        self.line = ArrivalLine(patience)
        self._batchers: dict[int, _ClaimBatcher] = {}
        self._shape_locks: dict[int, asyncio.Lock] = {}
        self._sql = ClaimStatements(uow.db.insert, uow.db.dialect)
        self._insert = uow.db.insert
        # What a batch's refused claims are told (``_answer_sold_out``): built once, each
        # list bound as one parameter.
        drop = bindparam("drop_id", type_=BigInteger)
        self._holds_of_keys = select(holds).where(
            holds.c.drop_id == drop, uow.db.one_of(holds.c.claim_key, "keys")
        )
        self._holds_of_customers = (
            select(holds)
            .where(
                holds.c.drop_id == drop,
                uow.db.one_of(holds.c.customer_id, "customers"),
                or_(holds.c.status == HoldStatus.CONVERTED, active_hold_filter(NOW)),
            )
            .order_by(holds.c.id)
        )

    # -- commands -------------------------------------------------------------------------

    def arrival(self) -> Arrival:
        """A claim's place in line, taken now: call it as a claim arrives, before awaiting
        anything, and pass it to ``claim`` (see ``commerce.services.arrivals``). Use it as
        a context manager, so a claim that never happens gives its place up."""
        return self.line.arrive(self.uow.clock.now())

    def queued(self, drop_id: int) -> int:
        """How many claims on a drop wait in its queue to be decided."""
        batcher = self._batchers.get(drop_id)
        return len(batcher.queue) if batcher is not None else 0

    async def claim(
        self,
        drop_id: int,
        customer_id: int,
        *,
        sku: str | None = None,
        pool: str | None = None,
        qty: int = 1,
        claim_key: str | None = None,
        source: str = "chat",
        arrived_at: datetime | None = None,
        arrival: Arrival | None = None,
    ) -> ClaimResult:
        """Try to hold ``qty`` units for a customer. Sold out is an outcome, not an error.

        Bad input raises before anything is queued. Valid claims join the drop's queue and
        are decided in the order they arrived (``arrival``, taken when the claim reached
        this process; else now), many to a transaction (see _ClaimBatcher).
        """
        place = arrival or self.line.arrive(arrived_at or self.uow.clock.now())
        try:
            future = await self._enqueue(
                drop_id, customer_id, sku, pool, qty, claim_key, source, place
            )
        finally:
            place.leave()
        result = await future
        log.info(
            "claim %s: drop %s customer %s hold %s",
            result.outcome.value,
            drop_id,
            customer_id,
            result.hold.id if result.hold else None,
            extra={
                "drop_id": drop_id,
                "customer_id": customer_id,
                "outcome": result.outcome.value,
                "hold_id": result.hold.id if result.hold else None,
            },
        )
        return result

    async def _enqueue(
        self,
        drop_id: int,
        customer_id: int,
        sku: str | None,
        pool: str | None,
        qty: int,
        claim_key: str | None,
        source: str,
        place: Arrival,
    ) -> asyncio.Future[ClaimResult]:
        """Check a claim and put it in its drop's queue at its place; its answer to come."""
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            raise InvalidInput("qty", "must be a whole number of at least 1")
        key = claim_key or f"auto:{uuid.uuid4().hex}"
        if len(key) > MAX_CLAIM_KEY:
            raise InvalidInput("claim_key", f"must be at most {MAX_CLAIM_KEY} characters")
        shape = await self._shape(drop_id, sku, pool)
        hold_sku, pool_name, lines = shape.target(sku, pool)
        if qty > shape.per_customer_limit:
            raise InvalidInput("qty", f"at most {shape.per_customer_limit} per customer")
        request = _ClaimRequest(
            customer_id, hold_sku, pool_name, tuple(lines), qty, key, source[:32], place.at
        )
        batcher = self._batchers.get(drop_id)
        if batcher is None:
            batcher = self._batchers[drop_id] = _ClaimBatcher(self, drop_id)
        return batcher.submit(place.seq, request)

    async def holding(self, drop_id: int, customer_id: int) -> Hold | None:
        """The customer's open hold on this drop, if any (the oldest)."""
        async with self.uow.read() as conn:
            return await self._active_hold(conn, drop_id, customer_id, self.uow.clock.now())

    async def validate(
        self, drop_id: int, *, sku: str | None = None, pool: str | None = None
    ) -> None:
        """Raise exactly what ``claim`` would for this SKU and pool, placing nothing."""
        shape = await self._shape(drop_id, sku, pool)
        shape.target(sku, pool)

    async def refusal_snapshot(self, drop_id: int) -> RefusalSnapshot | None:
        """What answering claims from memory needs: None unless every claim on the drop
        would be refused right now (closed, or live with nothing claimable); else that
        answer, every identity of every customer holding or having bought in the drop (they
        must always reach their hold or order) and when the first open hold lapses. One
        read transaction, so the facts are of one moment."""
        async with self.uow.read() as conn:
            now = self.uow.clock.now()
            state = (
                await conn.execute(select(drops.c.state).where(drops.c.id == drop_id))
            ).scalar()
            if state == DropState.CLOSED:
                answer = ClaimOutcome.CLOSED
            elif state == DropState.LIVE:
                shape = await self.shapes.get(conn, drop_id)
                if stock_counts(await stock_lines(conn, drop_id, now), shape.format).available:
                    return None
                answer = ClaimOutcome.SOLD_OUT
            else:
                return None
            holding = select(holds.c.customer_id).where(
                holds.c.drop_id == drop_id,
                or_(holds.c.status == HoldStatus.CONVERTED, active_hold_filter(now)),
            )
            owners = select(func.coalesce(customers.c.merged_into, customers.c.id)).where(
                customers.c.id.in_(holding)
            )
            holders = (
                await conn.execute(
                    select(identities.c.identity).where(identities.c.customer_id.in_(owners))
                )
            ).scalars()
            lapses = (
                await conn.execute(
                    select(func.min(holds.c.expires_at)).where(
                        holds.c.drop_id == drop_id, active_hold_filter(now)
                    )
                )
            ).scalar()
        return RefusalSnapshot(answer, frozenset(holders), lapses)

    async def _decide_batch(self, drop_id: int, batch: list[_ClaimRequest]) -> list[ClaimResult]:
        """Decide queued claims in arrival order inside ONE transaction, with the answers
        deciding them one by one would give.

        While the drop is open and nobody is queued, the batch is cut into runs of distinct
        claimants asking for the same quantity per target, and each run is decided by one
        statement per target (``ClaimStatements.place_batch``). Otherwise each claim is its
        own conditional INSERT in the same transaction. Either way the batch shares one
        BEGIN, the drop lock, one claims-log write and the COMMIT.
        """
        async with self.uow.write() as tx:
            shape = await self.shapes.get(tx.conn, drop_id)
            await self.uow.db.lock_drop(tx.conn, drop_id)
            open_now, queue_in_use = await self._batch_conditions(tx, drop_id)
            if open_now and not queue_in_use:
                decided = await self._decide_runs(tx, shape, batch)
            else:
                decided = await self._decide_each(tx, shape, batch, queue_in_use=queue_in_use)
            await self.uow.db.insert_many(
                tx.conn,
                claims,
                [
                    {
                        "drop_id": drop_id,
                        "customer_id": req.customer_id,
                        "source": req.source,
                        "arrived_at": req.arrived_at,
                        "decided_at": tx.now,
                        "outcome": res.outcome.value,
                        "hold_id": res.hold.id if res.hold else None,
                    }
                    for req, res in zip(batch, decided, strict=True)
                ],
            )
            if any(res.outcome is ClaimOutcome.HELD for res in decided):
                await self.emit_stock(tx, shape, after_claim=True)
        return decided

    async def _batch_conditions(self, tx: Tx, drop_id: int) -> tuple[bool, bool]:
        """(is the drop open, is anyone waiting or holding an offer): a batch is decided a
        run at a time only when open with nobody queued, since a queue makes a claim's
        answer depend on its place in it. One query per batch, under the drop lock."""
        row = (await tx.conn.execute(_BATCH_CONDITIONS, {"drop_id": drop_id})).one()
        state, closes_at, queue_in_use = row
        open_now = state == DropState.LIVE and (closes_at is None or closes_at > tx.now)
        return open_now, bool(queue_in_use)

    async def _decide_each(
        self, tx: Tx, shape: DropShape, batch: list[_ClaimRequest], *, queue_in_use: bool
    ) -> list[ClaimResult]:
        """One conditional INSERT per claim, in arrival order (a queue, or a drop not open).
        Once a target is known sold out, later claims for it skip the INSERT and are
        answered together by ``_answer_sold_out``, unless someone is queued: a stranger
        refused because a free unit belongs to the queue says nothing about a queued one."""
        results: list[ClaimResult | None] = []
        exhausted: dict[tuple[str | None, str], int] = {}  # target -> smallest qty refused
        for request in batch:
            target = (request.hold_sku, request.pool)
            if request.qty >= exhausted.get(target, request.qty + 1):
                results.append(None)
                continue
            result = await self._claim_in_tx(tx, shape, request, queue_in_use=queue_in_use)
            if result.outcome is ClaimOutcome.SOLD_OUT and not queue_in_use:
                exhausted[target] = min(exhausted.get(target, request.qty), request.qty)
            results.append(result)
        skipped = [r for r, res in zip(batch, results, strict=True) if res is None]
        answers = await self._answer_sold_out(tx, shape, skipped) if skipped else {}
        return [
            res if res is not None else answers[id(req)]
            for req, res in zip(batch, results, strict=True)
        ]

    async def _decide_runs(
        self, tx: Tx, shape: DropShape, batch: list[_ClaimRequest]
    ) -> list[ClaimResult]:
        """Cut the batch into runs whose claims cannot affect each other's answers except
        through stock (distinct customers, distinct keys, one quantity per target) and
        decide each run with one statement per target, in arrival order."""
        decided: list[ClaimResult] = []
        run: list[_ClaimRequest] = []
        customers: set[int] = set()
        keys: set[str] = set()
        quantities: dict[tuple[str | None, str], int] = {}
        for request in batch:
            target = (request.hold_sku, request.pool)
            if (
                request.customer_id in customers
                or request.key in keys
                or quantities.get(target, request.qty) != request.qty
            ):
                decided += await self._decide_run(tx, shape, run)
                run, customers, keys, quantities = [], set(), set(), {}
            run.append(request)
            customers.add(request.customer_id)
            keys.add(request.key)
            quantities[target] = request.qty
        decided += await self._decide_run(tx, shape, run)
        return decided

    async def _decide_run(
        self, tx: Tx, shape: DropShape, run: list[_ClaimRequest]
    ) -> list[ClaimResult]:
        drop_id, now = shape.drop_id, tx.now
        expires_at = now + timedelta(seconds=shape.hold_seconds)
        by_target: dict[tuple[str | None, str], list[_ClaimRequest]] = {}
        for request in run:
            by_target.setdefault((request.hold_sku, request.pool), []).append(request)
        placed: dict[str, tuple[int, int]] = {}  # claim key -> (hold id, price)
        for (hold_sku, pool), requests in by_target.items():
            first = requests[0]
            stmt = self._sql.place_batch(shape, hold_sku, pool, first.lines)
            params = self._sql.batch_params([(r.customer_id, r.key, r.source) for r in requests])
            params.update(qty=first.qty, now=now, expires_at=expires_at)
            rows = (await tx.conn.execute(stmt, params)).all()
            if rows:
                await move_held(
                    tx.conn,
                    drop_id=drop_id,
                    sku=hold_sku,
                    pool=pool,
                    qty=first.qty * len(rows),
                    sign=1,
                )
            placed.update((row.claim_key, (row.id, row.price_minor)) for row in rows)
        refused = [r for r in run if r.key not in placed]
        answers = await self._answer_sold_out(tx, shape, refused) if refused else {}
        results: list[ClaimResult] = []
        for request in run:
            if request.key not in placed:
                results.append(answers[id(request)])
                continue
            hold_id, price_minor = placed[request.key]
            results.append(
                ClaimResult(
                    ClaimOutcome.HELD, hold=self._placed(shape, request, hold_id, price_minor, now)
                )
            )
            tx.emit(HoldPlaced(drop_id, hold_id, request.customer_id, expires_at, request.source))
        return results

    async def _answer_sold_out(
        self, tx: Tx, shape: DropShape, requests: list[_ClaimRequest]
    ) -> dict[int, ClaimResult]:
        """Claims on a target already sold out in this batch: replays and current holders
        get their hold back, customers at their limit hear so, everyone else is sold out."""
        listed = self.uow.db.listed
        keys = listed(sorted({r.key for r in requests}))
        customers = listed(sorted({r.customer_id for r in requests}))
        by_key = {
            row.claim_key: hold_from_row(row)
            for row in await tx.conn.execute(
                self._holds_of_keys, {"drop_id": shape.drop_id, "keys": keys}
            )
        }
        active: dict[int, Hold] = {}
        taken: dict[int, int] = {}
        rows = await tx.conn.execute(
            self._holds_of_customers,
            {"drop_id": shape.drop_id, "customers": customers, "now": tx.now},
        )
        for row in rows:
            taken[row.customer_id] = taken.get(row.customer_id, 0) + row.qty
            if row.status == HoldStatus.ACTIVE:
                active.setdefault(row.customer_id, hold_from_row(row))
        answers: dict[int, ClaimResult] = {}
        for request in requests:
            hold = by_key.get(request.key) or active.get(request.customer_id)
            if hold is not None:
                answers[id(request)] = ClaimResult(ClaimOutcome.ALREADY_HELD, hold=hold)
            elif taken.get(request.customer_id, 0) + request.qty > shape.per_customer_limit:
                answers[id(request)] = ClaimResult(ClaimOutcome.LIMIT_REACHED)
            else:
                answers[id(request)] = ClaimResult(ClaimOutcome.SOLD_OUT)
        return answers

    async def cancel_hold(self, hold_id: int, customer_id: int | None = None) -> Hold:
        """The viewer lets go of a hold; the unit goes to the waitlist first."""
        async with self.uow.write() as tx:
            row = (await tx.conn.execute(select(holds).where(holds.c.id == hold_id))).first()
            if row is None or (customer_id is not None and row.customer_id != customer_id):
                raise HoldNotFound(f"hold {hold_id} does not exist", hold_id=hold_id)
            shape = await self.shapes.get(tx.conn, row.drop_id)
            await self.uow.db.lock_drop(tx.conn, row.drop_id)
            changed = await tx.conn.execute(
                update(holds)
                .where(holds.c.id == hold_id, active_hold_filter(tx.now))
                .values(status=HoldStatus.CANCELLED, ended_at=tx.now)
            )
            if changed.rowcount != 1:
                raise HoldNotActive(f"hold {hold_id} is no longer active", hold_id=hold_id)
            await move_held(
                tx.conn, drop_id=row.drop_id, sku=row.sku, pool=row.pool, qty=row.qty, sign=-1
            )
            tx.emit(HoldCancelled(row.drop_id, hold_id, row.customer_id))
            await self._lapse_offers(tx, [hold_id])
            await self.offer_waitlist(tx, shape)
            await self.emit_stock(tx, shape)
        return replace(hold_from_row(row), status=HoldStatus.CANCELLED)

    async def join_waitlist(
        self,
        drop_id: int,
        customer_id: int,
        *,
        sku: str | None = None,
        pool: str | None = None,
        arrival: Arrival | None = None,
    ) -> ClaimResult:
        """Queue for freed units. If a unit is free for them right now, they get it at once.

        Joins keep their place in line (``arrival``; else now) like claims: a join waits
        until every claim and join that arrived before it is decided, and claims that
        arrived after it wait for it, so a waitlist place and a free unit go by arrival."""
        place = arrival or self.line.arrive(self.uow.clock.now())
        try:
            await self._turn(drop_id, place)
            return await self._join_waitlist(drop_id, customer_id, sku, pool)
        finally:
            place.leave()

    async def _turn(self, drop_id: int, place: Arrival) -> None:
        """Wait until nothing that arrived before ``place`` is on its way or undecided in
        the drop's queue (within the line's patience)."""
        while True:
            first = self.line.first_on_the_way()
            if first is not None and first[0] < place.seq:
                await self.line.changed(until=first[1])
                continue
            batcher = self._batchers.get(drop_id)
            if batcher is not None and batcher.undecided_before(place.seq):
                await batcher.decided()
                continue
            return

    async def _join_waitlist(
        self, drop_id: int, customer_id: int, sku: str | None, pool: str | None
    ) -> ClaimResult:
        async with self.uow.write() as tx:
            shape = await self._shape(drop_id, sku, pool)
            hold_sku, pool_name, _ = shape.target(sku, pool)
            await self.uow.db.lock_drop(tx.conn, drop_id)
            state = (
                await tx.conn.execute(select(drops.c.state).where(drops.c.id == drop_id))
            ).scalar_one()
            if state == DropState.CLOSED:
                return ClaimResult(ClaimOutcome.CLOSED)
            active = await self._active_hold(tx.conn, drop_id, customer_id, tx.now)
            if active is not None:
                return ClaimResult(ClaimOutcome.ALREADY_HELD, hold=active)
            taken = (
                await tx.conn.execute(
                    select(customer_taken(drop_id)), {"customer_id": customer_id, "now": tx.now}
                )
            ).scalar_one()
            if taken + 1 > shape.per_customer_limit:
                return ClaimResult(ClaimOutcome.LIMIT_REACHED)
            # An entry already served (a direct claim, an offer that lapsed) queues again at
            # the back: the row id is the queue position, so it is replaced, not revived.
            await tx.conn.execute(
                delete(waitlist).where(
                    waitlist.c.drop_id == drop_id,
                    waitlist.c.customer_id == customer_id,
                    waitlist.c.status.in_(
                        (WaitlistStatus.CLAIMED, WaitlistStatus.OFFERED, WaitlistStatus.LAPSED)
                    ),
                )
            )
            inserted = await tx.conn.execute(
                self._insert(waitlist)
                .values(
                    drop_id=drop_id,
                    customer_id=customer_id,
                    sku=hold_sku,
                    pool=pool_name,
                    status=WaitlistStatus.WAITING,
                    joined_at=tx.now,
                )
                .on_conflict_do_nothing(index_elements=["drop_id", "customer_id"])
                .returning(waitlist.c.id)
            )
            new_id = inserted.scalar()  # None: already waiting, in their place
            position = await self._waitlist_position(tx, drop_id, customer_id)
            if new_id is not None and position is not None:
                tx.emit(WaitlistJoined(drop_id, customer_id, position))
            if state == DropState.LIVE:
                await self.offer_waitlist(tx, shape, joining=customer_id)
                offered = await self._active_hold(tx.conn, drop_id, customer_id, tx.now)
                if offered is not None:
                    await self.emit_stock(tx, shape)
                    return ClaimResult(ClaimOutcome.HELD, hold=offered)
        return ClaimResult(ClaimOutcome.SOLD_OUT, waitlist_position=position)

    async def expire_due(self) -> int:
        """Mark lapsed holds expired and hand their units to the waitlist. Returns the count.

        Expired holds already stopped counting by filter; this only tidies and tells.
        """
        now = self.uow.clock.now()
        async with self.uow.read() as conn:
            drop_ids = list(
                (
                    await conn.execute(
                        select(holds.c.drop_id)
                        .where(holds.c.status == HoldStatus.ACTIVE, holds.c.expires_at <= now)
                        .distinct()
                    )
                ).scalars()
            )
        expired = 0
        for drop_id in drop_ids:
            async with self.uow.write() as tx:
                shape = await self.shapes.get(tx.conn, drop_id)
                await self.uow.db.lock_drop(tx.conn, drop_id)
                rows = (
                    await tx.conn.execute(
                        update(holds)
                        .where(
                            holds.c.drop_id == drop_id,
                            holds.c.status == HoldStatus.ACTIVE,
                            holds.c.expires_at <= tx.now,
                        )
                        .values(status=HoldStatus.EXPIRED, ended_at=tx.now)
                        .returning(
                            holds.c.id,
                            holds.c.customer_id,
                            holds.c.sku,
                            holds.c.pool,
                            holds.c.qty,
                        )
                    )
                ).all()
                for row in rows:
                    await move_held(
                        tx.conn,
                        drop_id=drop_id,
                        sku=row.sku,
                        pool=row.pool,
                        qty=row.qty,
                        sign=-1,
                    )
                    tx.emit(HoldExpired(drop_id, row.id, row.customer_id))
                expired += len(rows)
                await self._lapse_offers(tx, [r.id for r in rows])
                await self.offer_waitlist(tx, shape)
                await self.emit_stock(tx, shape)
        return expired

    # -- inside a transaction (used by other services too) -----------------------------

    async def offer_waitlist(
        self, tx: Tx, shape: DropShape, limit: int = 500, *, joining: int | None = None
    ) -> int:
        """Hold freed units for waiting customers, strictly in queue order. ``joining``: the
        customer joining right now; a unit free for them is their answer to joining, an
        instant hold, not an offer to announce (no WaitlistOffered)."""
        state = (
            await tx.conn.execute(select(drops.c.state).where(drops.c.id == shape.drop_id))
        ).scalar_one()
        if state != DropState.LIVE:
            return 0
        entries = (
            await tx.conn.execute(
                select(waitlist.c.id, waitlist.c.customer_id, waitlist.c.sku, waitlist.c.pool)
                .where(
                    waitlist.c.drop_id == shape.drop_id, waitlist.c.status == WaitlistStatus.WAITING
                )
                .order_by(waitlist.c.id)
                .limit(limit)
            )
        ).all()
        exhausted: set[tuple[str | None, str]] = set()
        offered = 0
        for entry in entries:
            if (entry.sku, entry.pool) in exhausted:
                continue
            hold_sku, pool, lines = shape.target(entry.sku, entry.pool)
            offer = _ClaimRequest(
                customer_id=entry.customer_id,
                hold_sku=hold_sku,
                pool=pool,
                lines=tuple(lines),
                qty=1,
                key=f"waitlist:{entry.id}:{tx.now.timestamp()}",
                source=WAITLIST_SOURCE,
                arrived_at=tx.now,
            )
            result = await self._claim_in_tx(tx, shape, offer)
            if result.outcome is ClaimOutcome.HELD and result.hold is not None:
                await tx.conn.execute(
                    update(waitlist)
                    .where(waitlist.c.id == entry.id)
                    .values(
                        status=WaitlistStatus.OFFERED, offered_at=tx.now, hold_id=result.hold.id
                    )
                )
                if entry.customer_id != joining:
                    tx.emit(
                        WaitlistOffered(
                            shape.drop_id, entry.customer_id, result.hold.id, result.hold.expires_at
                        )
                    )
                offered += 1
            elif result.outcome is ClaimOutcome.SOLD_OUT:
                exhausted.add((entry.sku, entry.pool))
            elif result.outcome in (ClaimOutcome.NOT_OPEN, ClaimOutcome.CLOSED):
                break
            else:  # already holding or at their limit: they no longer need the offer
                await tx.conn.execute(
                    update(waitlist)
                    .where(waitlist.c.id == entry.id)
                    .values(status=WaitlistStatus.LAPSED)
                )
        return offered

    async def _claim_in_tx(
        self, tx: Tx, shape: DropShape, request: _ClaimRequest, *, queue_in_use: bool = True
    ) -> ClaimResult:
        """One conditional INSERT. ``queue_in_use=False`` (nobody is queued for this drop,
        checked once per batch) skips settling the claimant's waitlist entry."""
        drop_id, now = shape.drop_id, tx.now
        expires_at = now + timedelta(seconds=shape.hold_seconds)
        params = {
            "customer_id": request.customer_id,
            "qty": request.qty,
            "claim_key": request.key,
            "source": request.source[:32],
            "now": now,
            "expires_at": expires_at,
        }
        stmt = self._sql.place_hold(shape, request.hold_sku, request.pool, request.lines)
        placed = (await tx.conn.execute(stmt, params)).first()
        if placed is not None:
            hold_id, price_minor = placed
            await move_held(
                tx.conn,
                drop_id=drop_id,
                sku=request.hold_sku,
                pool=request.pool,
                qty=request.qty,
                sign=1,
            )
            hold = self._placed(shape, request, hold_id, price_minor, now)
            if request.source != WAITLIST_SOURCE and queue_in_use:
                await tx.conn.execute(
                    update(waitlist)
                    .where(
                        waitlist.c.drop_id == drop_id,
                        waitlist.c.customer_id == request.customer_id,
                        waitlist.c.status.in_((WaitlistStatus.WAITING, WaitlistStatus.OFFERED)),
                    )
                    .values(status=WaitlistStatus.CLAIMED, hold_id=hold_id)
                )
            tx.emit(HoldPlaced(drop_id, hold_id, request.customer_id, expires_at, request.source))
            return ClaimResult(ClaimOutcome.HELD, hold=hold)
        return await self._why_not(tx, shape, params)

    @staticmethod
    def _placed(
        shape: DropShape, request: _ClaimRequest, hold_id: int, price_minor: int, now: datetime
    ) -> Hold:
        """The hold a claim just placed, as the INSERT wrote it."""
        return Hold(
            id=hold_id,
            drop_id=shape.drop_id,
            customer_id=request.customer_id,
            sku=request.hold_sku,
            pool=request.pool,
            qty=request.qty,
            status=HoldStatus.ACTIVE,
            created_at=now,
            expires_at=now + timedelta(seconds=shape.hold_seconds),
            source=request.source,
            price_minor=price_minor,
        )

    async def _why_not(self, tx: Tx, shape: DropShape, params: dict[str, object]) -> ClaimResult:
        """The insert placed nothing: find out which condition failed (same transaction)."""
        diag = (await tx.conn.execute(self._sql.diagnose(shape), params)).one()
        known_hold = diag.same_claim or None
        if known_hold is None and diag.state == DropState.LIVE:
            known_hold = diag.active_hold
        if known_hold is not None:
            row = (await tx.conn.execute(select(holds).where(holds.c.id == known_hold))).one()
            return ClaimResult(ClaimOutcome.ALREADY_HELD, hold=hold_from_row(row))
        if diag.state in (DropState.DRAFT, DropState.SCHEDULED):
            return ClaimResult(ClaimOutcome.NOT_OPEN, opens_at=diag.opens_at)
        if diag.state == DropState.CLOSED or (
            diag.closes_at is not None and diag.closes_at <= tx.now
        ):
            return ClaimResult(ClaimOutcome.CLOSED)
        if int(diag.taken or 0) + int(str(params["qty"])) > shape.per_customer_limit:
            return ClaimResult(ClaimOutcome.LIMIT_REACHED)
        return ClaimResult(ClaimOutcome.SOLD_OUT, waitlist_position=diag.position or None)

    async def _active_hold(
        self, conn: AsyncConnection, drop_id: int, customer_id: int, now: datetime
    ) -> Hold | None:
        row = (
            await conn.execute(
                select(holds)
                .where(
                    holds.c.drop_id == drop_id,
                    holds.c.customer_id == customer_id,
                    active_hold_filter(now),
                )
                .order_by(holds.c.id)
                .limit(1)
            )
        ).first()
        return hold_from_row(row) if row is not None else None

    async def _waitlist_position(self, tx: Tx, drop_id: int, customer_id: int) -> int | None:
        position = (
            await tx.conn.execute(select(waitlist_position(drop_id)), {"customer_id": customer_id})
        ).scalar()
        return int(position) if position else None

    async def _lapse_offers(self, tx: Tx, hold_ids: list[int]) -> None:
        if hold_ids:
            await tx.conn.execute(
                update(waitlist)
                .where(
                    waitlist.c.hold_id.in_(hold_ids), waitlist.c.status == WaitlistStatus.OFFERED
                )
                .values(status=WaitlistStatus.LAPSED)
            )

    async def emit_stock(self, tx: Tx, shape: DropShape, *, after_claim: bool = False) -> None:
        lines = await stock_lines(tx.conn, shape.drop_id, tx.now)
        available, held, sold, total = summarize(lines, shape.format)
        tx.emit(StockChanged(shape.drop_id, available, held, sold, total))
        if after_claim and available == 0:
            tx.emit(SoldOut(shape.drop_id))

    async def _shape(self, drop_id: int, sku: str | None, pool: str | None) -> DropShape:
        """The drop's cached shape; a miss loads it once however many claims wait on it."""
        cached = self.shapes.cached(drop_id)
        if cached is not None and cached.has_target(sku, pool):
            return cached  # the hot path: no connection needed
        loading = self._shape_locks.setdefault(drop_id, asyncio.Lock())
        async with loading:
            cached = self.shapes.cached(drop_id)
            if cached is not None and cached.has_target(sku, pool):
                return cached
            # A miss, or a pool another process may have added by restocking: reload.
            self.shapes.forget(drop_id)
            async with self.uow.read() as conn:
                return await self.shapes.get(conn, drop_id)


@dataclass(frozen=True, slots=True)
class RefusalSnapshot:
    answer: ClaimOutcome  # SOLD_OUT or CLOSED
    holders: frozenset[str]  # identities that must always reach their hold or order
    first_lapse: datetime | None  # when the earliest open hold expires (None: none open)


@dataclass(frozen=True, slots=True)
class _ClaimRequest:
    customer_id: int
    hold_sku: str | None
    pool: str
    lines: tuple[ShapeLine, ...]
    qty: int
    key: str
    source: str
    arrived_at: datetime


_Queued = tuple[int, _ClaimRequest, asyncio.Future[ClaimResult]]  # (place, claim, answer)


class _ClaimBatcher:
    """One drop's queue: claims wait here in the order they arrived (their place in the
    ``ArrivalLine``) and are decided in batches by a single worker, so the database sees one
    writer per drop per process (fair, FIFO) and a surge costs one COMMIT per batch instead
    of one per claim. A batch takes only claims that arrived before every claim still on
    its way, so a claimant who was slower to get here keeps their place."""

    def __init__(self, service: ClaimService, drop_id: int) -> None:
        self.service = service
        self.drop_id = drop_id
        self.queue: list[_Queued] = []  # in place order
        self.worker: asyncio.Task[None] | None = None
        self.deciding: int | None = None  # the first place of the batch being decided
        self._watchers: list[asyncio.Future[None]] = []

    def undecided_before(self, seq: int) -> bool:
        """Is a claim that arrived before place ``seq`` queued or being decided (by a
        worker still running: one cancelled at shutdown decides nothing more)?"""
        if self.worker is None or self.worker.done():
            return False
        return bool(self.queue and self.queue[0][0] < seq) or (
            self.deciding is not None and self.deciding < seq
        )

    async def decided(self) -> None:
        """Wait until the batch being decided, or the next one, is decided."""
        watcher: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watchers.append(watcher)
        await watcher

    def submit(self, seq: int, request: _ClaimRequest) -> asyncio.Future[ClaimResult]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ClaimResult] = loop.create_future()
        entry = (seq, request, future)
        if not self.queue or self.queue[-1][0] < seq:
            self.queue.append(entry)  # the usual case: arrived after everyone queued
        else:
            bisect.insort(self.queue, entry, key=_place)
        if self.worker is None or self.worker.done():
            self.worker = loop.create_task(self._drain())
        return future

    async def _next_batch(self) -> list[_Queued]:
        """The claims to decide next: those queued ahead of every claim still on its way,
        waiting (within the line's patience) while the queue's first is not among them."""
        line = self.service.line
        while True:
            first = line.first_on_the_way()
            if first is None:
                ready = min(len(self.queue), self.service.max_batch)
            else:
                ready = bisect.bisect_left(
                    self.queue,
                    first[0],
                    hi=min(len(self.queue), self.service.max_batch),
                    key=_place,
                )
            if ready:
                taken = self.queue[:ready]
                del self.queue[:ready]
                return taken
            assert first is not None
            await line.changed(until=first[1])

    async def _drain(self) -> None:
        try:
            while self.queue:
                taken = await self._next_batch()
                self.deciding = taken[0][0]
                try:
                    await self._decide(taken)
                finally:
                    self.deciding = None
                    self._wake_watchers()
        finally:
            self._wake_watchers()  # the worker is gone (cancelled): no one waits for ever

    def _wake_watchers(self) -> None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            wake(watcher)

    async def _decide(self, taken: list[_Queued]) -> None:
        try:
            results = await self.service._decide_batch(self.drop_id, [r for _, r, _ in taken])
        except Exception as exc:
            if len(taken) == 1:
                _settle(taken[0][2], error=exc)
                return
            # The batch rolled back as a whole. Decide each claim on its own, in the
            # same order, so one bad claim cannot fail everyone queued beside it.
            for _, request, future in taken:
                try:
                    (result,) = await self.service._decide_batch(self.drop_id, [request])
                except Exception as own:
                    _settle(future, error=own)
                else:
                    _settle(future, result=result)
            return
        for (_, _, future), result in zip(taken, results, strict=True):
            _settle(future, result=result)


def _place(entry: _Queued) -> int:
    return entry[0]


def _settle(
    future: asyncio.Future[ClaimResult],
    *,
    result: ClaimResult | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():  # the caller gave up (cancelled); nothing to tell
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert result is not None
        future.set_result(result)
