"""Events across processes on PostgreSQL: LISTEN/NOTIFY.

Each write transaction also NOTIFYs its events; PostgreSQL delivers a notification only if
and when that transaction commits, in commit order. Every process LISTENs and republishes
events from *other* processes on its own bus, so SSE clients, overlays, sold-out gates and
bots in every process see one stock count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.domain.events import Event, event_from_payload
from commerce.storage.database import Database

log = logging.getLogger(__name__)
CHANNEL = "dropcast_events"
MAX_PAYLOAD = 7000  # PostgreSQL caps a notification at 8000 bytes


class EventSink(Protocol):
    """Where events from other processes go: this process's bus (``EventBus`` in the
    services layer, wired by the composition root; storage does not import it)."""

    async def publish(self, events: Iterable[Event]) -> None: ...

    def gap(self) -> None:
        """Events may have been lost (the listener reconnected)."""


class PgEventChannel:
    def __init__(self, db: Database, bus: EventSink) -> None:
        if db.dialect != "postgresql":
            raise ValueError("LISTEN/NOTIFY needs PostgreSQL")
        self.db = db
        self.bus = bus
        self.origin = uuid.uuid4().hex[:12]
        self._conn: AsyncConnection | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def stage(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        """Inside the transaction: queue NOTIFYs that PostgreSQL sends on commit."""
        batch: list[list[Any]] = []
        size = 0
        for event in events:
            item = [event.name, event.to_payload()]
            length = len(json.dumps(item))
            if batch and size + length > MAX_PAYLOAD:
                await self._notify(conn, batch)
                batch, size = [], 0
            batch.append(item)
            size += length
        if batch:
            await self._notify(conn, batch)

    async def _notify(self, conn: AsyncConnection, batch: list[list[Any]]) -> None:
        payload = json.dumps({"o": self.origin, "e": batch}, separators=(",", ":"))
        await conn.execute(select(func.pg_notify(CHANNEL, payload)))

    async def start(self) -> None:
        await self._listen()
        self._watchdog = asyncio.create_task(self._keep_listening())

    async def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        await self._close()

    async def _listen(self) -> None:
        conn = await self.db.writer.connect()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.add_listener(CHANNEL, self._received)
        self._conn = conn

    async def _keep_listening(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                if self._conn is None or self._conn.closed or await self._dead():
                    log.warning("event listener connection lost; reconnecting")
                    await self._close()
                    await self._listen()
                    self.bus.gap()  # what was sent meanwhile never reached us
            except Exception:
                log.exception("could not re-listen for events; retrying")

    async def _dead(self) -> bool:
        assert self._conn is not None
        raw = await self._conn.get_raw_connection()
        return bool(raw.driver_connection.is_closed())  # type: ignore[union-attr]

    async def _close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:
                log.debug("closing the listener connection failed")

    def _received(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("ignored a malformed event notification")
            return
        if data.get("o") == self.origin:
            return  # our own events were published locally after commit
        events = []
        for name, body in data.get("e", []):
            try:
                events.append(event_from_payload(name, body))
            except (KeyError, TypeError, ValueError):
                log.warning("ignored an unknown event %r", name)
        task = asyncio.get_running_loop().create_task(self.bus.publish(events))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
