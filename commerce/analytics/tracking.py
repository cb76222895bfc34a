"""Event tracking: funnel steps the core tables do not already record, stamped with server
time (UTC) in the ``activity`` table.

Holds, orders, claims and the waitlist carry their own timestamps, so the KPIs read them
directly; this records what happens outside those tables — a link issued or opened, a
reminder sent or opened (with its attribution tag), viewer-count samples, restocks.

Usage from an adapter (web, bot, scheduler)::

    await tracker.record(drop_id, ActivityKind.LINK_OPENED, customer_id, tag=link.tag)
    await tracker.record_viewers(drop_id, 412, platform)

``detail`` keywords are stored as JSON; by convention ``tag`` is the attribution tag a
personal link carries (e.g. ``"reminder:5m"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from commerce.domain.errors import InvalidInput
from commerce.domain.events import Event, Restocked
from commerce.storage.database import database_unreachable
from commerce.storage.tables import activity, claims
from commerce.storage.unit_of_work import EventBus, Tx, UnitOfWork

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_KEPT = 100_000  # rows per table kept in memory while the database cannot be reached
_PLATFORM = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


log = logging.getLogger(__name__)


class ActivityKind(StrEnum):
    """The kinds the KPIs read. Other kinds may be recorded; they are kept, not counted."""

    LINK_ISSUED = "link_issued"  # a personal link was handed to a customer
    LINK_OPENED = "link_opened"  # the customer opened it (GET /c/{token}, not a preview)
    REMINDER_SENT = "reminder_sent"  # detail: tag
    REMINDER_OPENED = "reminder_opened"  # detail: tag (the link's attribution tag)
    VIEWERS = "viewers"  # detail: count, platform — a sample of the live audience
    WAITLIST_OFFERED = "waitlist_offered"  # the offer reached the customer (DM sent)
    RESTOCKED = "restocked"  # detail: sku, pool, added — recorded by ``follow``


class Tracker:
    """Writes activity rows. Each call is its own small transaction; ``record_in`` joins
    the caller's transaction when the step must commit (or roll back) with a change."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._buffer: list[dict[str, Any]] = []
        self._claims: list[dict[str, Any]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._committer: asyncio.Task[None] | None = None

    def note(self, drop_id: int, kind: str, customer_id: int | None = None, **detail: Any) -> None:
        """Record a step from a hot path: validated now, written by the next ``flush`` in one
        multi-row insert with its server time of now."""
        row = _row(drop_id, kind, customer_id, detail)
        self._buffer.append({**row, "at": self.uow.clock.now()})

    async def log(
        self, drop_id: int, kind: str, customer_id: int | None = None, **detail: Any
    ) -> None:
        """Record a step durably before the caller answers. Steps logged at the same moment
        share one write (group commit), so a surge costs a few transactions, not one each."""
        self.note(drop_id, kind, customer_id, **detail)
        await self.committed()

    def note_claim(
        self, drop_id: int, customer_id: int, source: str, arrived_at: datetime, outcome: str
    ) -> None:
        """A claim answered without the claim service (from memory, sold out) still belongs
        in the claims log, the fairness audit: written with the next flush."""
        self._claims.append(
            {
                "drop_id": drop_id,
                "customer_id": customer_id,
                "source": source[:32],
                "arrived_at": arrived_at,
                "decided_at": self.uow.clock.now(),
                "outcome": outcome,
                "hold_id": None,
            }
        )

    def committed(self) -> asyncio.Future[None]:
        """Done once every step noted so far is written: the next group commit (``log``).
        A future rather than a task per caller, since every request of a surge waits on one."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_waiting())
        return future

    async def _commit_waiting(self) -> None:
        while self._waiters:
            waiters, self._waiters = self._waiters, []
            try:
                await self.flush()
            except Exception as exc:
                for future in waiters:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    async def flush(self) -> int:
        """Write the noted steps and claims; rows naming a drop or customer that does not
        exist are dropped (and logged), the rest are kept."""
        rows, self._buffer = self._buffer, []
        claim_rows, self._claims = self._claims, []
        if not rows and not claim_rows:
            return 0
        try:
            async with self.uow.write() as tx:
                await self.uow.db.insert_many(tx.conn, activity, rows)
                await self.uow.db.insert_many(tx.conn, claims, claim_rows)
            return len(rows) + len(claim_rows)
        except IntegrityError:
            kept = 0
            for table, row in [(activity, r) for r in rows] + [(claims, r) for r in claim_rows]:
                try:
                    async with self.uow.write() as tx:
                        await tx.conn.execute(insert(table).values(**row))
                    kept += 1
                except IntegrityError:
                    log.warning("dropped a %s row for unknown ids", table.name)
            return kept
        except Exception as exc:
            if database_unreachable(exc):
                self._keep(rows, claim_rows)
            raise

    def _keep(self, rows: list[dict[str, Any]], claim_rows: list[dict[str, Any]]) -> None:
        """Unwritten rows go back in front of newer ones for the next flush; an outage
        long enough to pass ``MAX_KEPT`` loses the oldest, and says so."""
        self._buffer[:0] = rows
        self._claims[:0] = claim_rows
        for name, buffer in (("activity", self._buffer), ("claims", self._claims)):
            excess = len(buffer) - MAX_KEPT
            if excess > 0:
                del buffer[:excess]
                log.error("database unreachable: dropped the %d oldest %s rows", excess, name)

    async def run(self, stop: asyncio.Event, every: float = 0.5) -> None:
        """Flush the buffer every ``every`` seconds until ``stop``, then once more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            try:
                await self.flush()
            except Exception:
                log.exception("could not write activity rows; retrying")

    async def record(
        self, drop_id: int, kind: str, customer_id: int | None = None, **detail: Any
    ) -> None:
        """Record one step now. Raises InvalidInput for a malformed kind or detail, or an
        unknown drop or customer (nothing is written)."""
        row = _row(drop_id, kind, customer_id, detail)
        try:
            async with self.uow.write() as tx:
                await tx.conn.execute(insert(activity).values(at=tx.now, **row))
        except IntegrityError:
            raise InvalidInput(
                "activity", f"drop {drop_id} or customer {customer_id} does not exist"
            ) from None

    async def record_in(
        self, tx: Tx, drop_id: int, kind: str, customer_id: int | None = None, **detail: Any
    ) -> None:
        """Record one step inside an open unit of work (same time, same commit)."""
        row = _row(drop_id, kind, customer_id, detail)
        await tx.conn.execute(insert(activity).values(at=tx.now, **row))

    async def record_viewers(self, drop_id: int, count: int, platform: str) -> None:
        """A sample of the live audience on one platform (its identity scheme, or ``manual``).

        Samples from several platforms add up: the audience at any moment is the sum of each
        platform's latest sample.
        """
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidInput("viewers", "must be a whole number of zero or more")
        if not isinstance(platform, str) or not _PLATFORM.match(platform):
            raise InvalidInput("platform", f"{platform!r} is not a platform name")
        await self.record(drop_id, ActivityKind.VIEWERS, count=count, platform=platform)

    def follow(self, bus: EventBus) -> None:
        """Record domain events the KPIs need from the event bus (restocks, for the stock
        curve). Call once from the composition root."""
        bus.subscribe(self._on_event, Restocked)

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, Restocked):
            await self.record(
                event.drop_id,
                ActivityKind.RESTOCKED,
                sku=event.sku,
                pool=event.pool,
                added=event.added,
            )


def _row(
    drop_id: int, kind: str, customer_id: int | None, detail: dict[str, Any]
) -> dict[str, Any]:
    """Validate one activity row before anything touches the database."""
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidInput("kind", f"{kind!r} must be lower_snake_case, at most 32 characters")
    try:
        encoded = json.dumps(detail, allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput("detail", "must be JSON values (str, int, float, bool, None)") from None
    if len(encoded) > 4000:
        raise InvalidInput("detail", "is too large (at most 4000 characters as JSON)")
    return {
        "drop_id": drop_id,
        "customer_id": customer_id,
        "kind": str(kind),
        "detail": detail or None,
    }
