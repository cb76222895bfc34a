"""Unit of work: one write transaction plus the events it produced.

Events reach subscribers only after COMMIT. Durable events are inserted into the outbox in
the same transaction, then marked dispatched once published; ``OutboxRelay`` re-publishes
whatever a crash left undispatched.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.clock import Clock
from commerce.domain.events import Event, event_from_payload
from commerce.storage.database import Database
from commerce.storage.tables import outbox

log = logging.getLogger(__name__)

Handler = Callable[[Event], Awaitable[None]]


class EventBus:
    """In-process publish/subscribe. Handlers must be quick (enqueue, don't send)."""

    def __init__(self) -> None:
        self._handlers: list[tuple[tuple[type[Event], ...], Handler]] = []
        self._gap_handlers: list[Callable[[], None]] = []

    def subscribe(self, handler: Handler, *event_types: type[Event]) -> None:
        """Call ``handler`` for events of the given types (all events when none given)."""
        self._handlers.append((event_types or (Event,), handler))

    def on_gap(self, handler: Callable[[], None]) -> None:
        """Call ``handler`` when events from other processes may have been lost (the
        listener reconnected): whatever was derived from them must be re-read."""
        self._gap_handlers.append(handler)

    def gap(self) -> None:
        for handler in self._gap_handlers:
            try:
                handler()
            except Exception:
                log.exception("gap handler %r failed", handler)

    async def publish(self, events: Iterable[Event]) -> None:
        for event in events:
            for types, handler in self._handlers:
                if isinstance(event, types):
                    try:
                        await handler(event)
                    except Exception:  # one broken subscriber must not stop the others
                        log.exception("event handler %r failed on %s", handler, event.name)


@dataclass
class Tx:
    """What a service sees inside a unit of work."""

    conn: AsyncConnection
    now: datetime
    events: list[Event] = field(default_factory=list)

    def emit(self, event: Event) -> None:
        self.events.append(event)


class EventStage(Protocol):
    """Something that must see a transaction's events before it commits (e.g. NOTIFY)."""

    async def stage(self, conn: AsyncConnection, events: Sequence[Event]) -> None: ...


class UnitOfWork:
    def __init__(self, db: Database, bus: EventBus, clock: Clock) -> None:
        self.db = db
        self.bus = bus
        self.clock = clock
        self.stage: EventStage | None = None  # set when events cross processes
        # Work that must commit or roll back with the events (webhook deliveries).
        self.stages: list[EventStage] = []
        # A short-lived process (the CLI) beside a running server on SQLite: leave durable
        # events in the outbox for the server's relay to announce, instead of publishing
        # them to this process's empty bus.
        self.hand_off = False

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        async with self.db.write() as conn:
            tx = Tx(conn=conn, now=self.clock.now())
            yield tx
            durable = [e for e in tx.events if e.durable]
            outbox_ids: list[int] = []
            if durable:
                rows = [
                    {"topic": e.name, "payload": e.to_payload(), "created_at": tx.now}
                    for e in durable
                ]
                result = await conn.execute(insert(outbox).returning(outbox.c.id), rows)
                outbox_ids = list(result.scalars())
            if tx.events:
                for before_commit in self.stages:
                    await before_commit.stage(conn, tx.events)
            if self.stage is not None and tx.events:
                await self.stage.stage(conn, tx.events)
        # Committed: now the world may hear about it.
        if self.hand_off:
            return
        await self.bus.publish(tx.events)
        if outbox_ids:
            async with self.db.write() as conn:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(outbox_ids))
                    .values(dispatched_at=self.clock.now())
                )

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.db.read() as conn:
            yield conn


class OutboxRelay:
    """Re-publishes durable events whose publication a crash interrupted."""

    def __init__(self, uow: UnitOfWork, *, grace: timedelta = timedelta(seconds=2)) -> None:
        self.uow = uow
        self.grace = grace

    async def relay_pending(self, limit: int = 500) -> int:
        cutoff = self.uow.clock.now() - self.grace
        async with self.uow.db.write() as conn:
            rows = (
                await conn.execute(
                    select(outbox.c.id, outbox.c.topic, outbox.c.payload)
                    .where(outbox.c.dispatched_at.is_(None), outbox.c.created_at <= cutoff)
                    .order_by(outbox.c.id)
                    .limit(limit)
                )
            ).all()
            if rows:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([r.id for r in rows]))
                    .values(dispatched_at=self.uow.clock.now())
                )
        await self.uow.bus.publish(event_from_payload(r.topic, r.payload) for r in rows)
        return len(rows)
