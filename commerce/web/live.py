"""Live state for the web: cached drop views, the sold-out gate, and the server-sent-event
hub. All three are fed by ``commerce.bus`` (after commit), so one stock count is everywhere."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from commerce.clock import Clock
from commerce.domain.events import (
    DropClosed,
    DropOpened,
    DropScheduled,
    Event,
    HoldCancelled,
    HoldExpired,
    HoldPlaced,
    OrderPaid,
    OrderRefunded,
    Restocked,
    SoldOut,
    StockChanged,
)
from commerce.domain.model import ClaimOutcome, DropState, DropView
from commerce.fresh import SingleFlightCache
from commerce.services.claims import RefusalSnapshot
from commerce.views import drop_status, iso

log = logging.getLogger(__name__)


class ViewCache(SingleFlightCache[int, DropView]):
    """Per-drop DropView cache: a short TTL on the injected clock, single-flight loads, and
    ``forget`` on every event of the drop (see ``SingleFlightCache``), so holds that expire
    by filter (no event yet) show up within ``ttl`` seconds."""

    def __init__(
        self, load: Callable[[int], Awaitable[DropView]], clock: Clock, ttl: float
    ) -> None:
        super().__init__(load, ttl=ttl, clock=clock)


class RefusalGate:
    """Answers "sold out" or "closed" from memory while that answer is certain, so a surge
    on a sold-out or closed drop costs no claim transaction; never to a customer who holds
    or bought a unit of the drop.

    Arming takes one snapshot from the core (the drop refuses every claim right now and
    why, the identities of everyone holding or having bought, when the first open hold
    lapses). It arms on a StockChanged with nothing claimable, on DropClosed, and on a claim
    the database refused as sold out or closed, and stays armed until the first open hold
    lapses and at most ``ttl`` seconds. Anything that can move stock or holders (a hold
    placed, expired or cancelled, a payment, a refund, a restock, opening) disarms it at
    once, and a snapshot being taken meanwhile is thrown away. It can only err towards a
    refusal for someone without a hold, and only while an event from another process is
    late; ``forget_all`` (the event listener reconnected, events may be lost) disarms all.

    Halfway through its ``ttl`` a snapshot in use is renewed in the background while it
    keeps answering, so a drop that stays closed or sold out is never left unguarded while
    the next snapshot is taken (each such gap sent a surge's claims to the database). A
    renewal that finds the drop no longer refusing disarms at once.
    """

    def __init__(
        self,
        clock: Clock,
        snapshot: Callable[[int], Awaitable[RefusalSnapshot | None]],
        ttl: float = 2.0,
    ) -> None:
        self._clock = clock
        self._snapshot = snapshot
        self._ttl = timedelta(seconds=ttl)
        # drop -> (answers until, renewed from, snapshot)
        self._armed: dict[int, tuple[datetime, datetime, RefusalSnapshot]] = {}
        self._epoch: dict[int, int] = {}  # bumped by every disarm: stale snapshots lose
        self._arming: dict[int, asyncio.Task[None]] = {}

    def answer(self, drop_id: int, identity: str) -> ClaimOutcome | None:
        """The refusal for this claimant from memory, or None: ask the database."""
        armed = self._armed.get(drop_id)
        if armed is None:
            return None
        until, renew_at, snapshot = armed
        now = self._clock.now()
        if now >= until:
            del self._armed[drop_id]
            return None
        if now >= renew_at and drop_id not in self._arming:
            self.arm(drop_id)  # in the background: this snapshot answers meanwhile
        return None if identity in snapshot.holders else snapshot.answer

    def armed(self, drop_id: int) -> bool:
        return drop_id in self._armed

    def refused(self, drop_id: int) -> None:
        """The database just refused a claim (sold out or closed): arm, unless armed or
        arming already."""
        if drop_id not in self._armed and drop_id not in self._arming:
            self.arm(drop_id)

    def arm(self, drop_id: int) -> None:
        epoch = self._epoch.get(drop_id, 0)
        running = self._arming.get(drop_id)
        if running is not None:
            running.cancel()
        task = asyncio.get_running_loop().create_task(self._arm(drop_id, epoch))
        self._arming[drop_id] = task
        task.add_done_callback(lambda done: self._arm_done(drop_id, done))

    async def _arm(self, drop_id: int, epoch: int) -> None:
        snapshot = await self._snapshot(drop_id)
        if self._epoch.get(drop_id, 0) != epoch:
            return  # something moved while we looked
        if snapshot is None:  # claims would not all be refused (a renewal: not any more)
            self._armed.pop(drop_id, None)
            return
        now = self._clock.now()
        until = now + self._ttl
        if snapshot.first_lapse is not None and snapshot.answer is ClaimOutcome.SOLD_OUT:
            until = min(until, snapshot.first_lapse)
        self._armed[drop_id] = (until, now + self._ttl / 2, snapshot)

    def _arm_done(self, drop_id: int, task: asyncio.Task[None]) -> None:
        if self._arming.get(drop_id) is task:
            del self._arming[drop_id]
        if not task.cancelled() and task.exception() is not None:
            log.warning("refusal gate for drop %s not armed: %s", drop_id, task.exception())

    def disarm(self, drop_id: int) -> None:
        self._epoch[drop_id] = self._epoch.get(drop_id, 0) + 1
        self._armed.pop(drop_id, None)

    def forget_all(self) -> None:
        for drop_id in set(self._armed) | set(self._arming):
            self.disarm(drop_id)

    async def close(self) -> None:
        tasks = list(self._arming.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_event(self, event: Event) -> None:
        match event:
            case StockChanged(available=0) | DropClosed():
                self.disarm(event.drop_id)
                self.arm(event.drop_id)
            case (
                StockChanged()
                | HoldPlaced()
                | HoldExpired()
                | HoldCancelled()
                | OrderPaid()
                | OrderRefunded()
                | Restocked()
                | DropOpened()
            ):
                self.disarm(event.drop_id)
            case _:
                pass


class StatusFeed:
    """Publishes a drop's status (the one headline, detail, action and counts every screen
    shows: ``commerce.views.drop_status``) on its stream after any change, as a ``status``
    event. One reload per burst: changes arriving while one is published are folded into
    the next."""

    def __init__(self, hub: LiveHub, views: ViewCache) -> None:
        self._hub = hub
        self._views = views
        self._running: dict[int, asyncio.Task[None]] = {}
        self._dirty: set[int] = set()

    def changed(self, drop_id: int) -> None:
        self._dirty.add(drop_id)
        if drop_id not in self._running:
            task = asyncio.get_running_loop().create_task(self._publish(drop_id))
            self._running[drop_id] = task
            task.add_done_callback(lambda _: self._running.pop(drop_id, None))

    async def _publish(self, drop_id: int) -> None:
        while drop_id in self._dirty:
            self._dirty.discard(drop_id)
            try:
                view = await self._views.get(drop_id)
            except Exception as exc:  # the next change publishes again
                log.warning("status of drop %s not published: %s", drop_id, exc)
                return
            if not self._hub.closed:
                self._hub.publish(drop_id, "status", drop_status(view).as_dict())

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def on_event(self, event: Event) -> None:
        if isinstance(event, StockChanged | DropOpened | DropClosed | DropScheduled | Restocked):
            self.changed(event.drop_id)


@dataclass(frozen=True, slots=True)
class SseMessage:
    seq: int
    event: str
    data: str


# A stream's queue: drop events, private frames for a signed-in page (already encoded,
# see commerce.web.inbox), and None to end the stream.
Listener = asyncio.Queue[SseMessage | bytes | None]


@dataclass
class _Channel:
    seq: int = 0  # per drop, so a gap in the buffer means lost messages
    buffer: deque[SseMessage] = field(default_factory=lambda: deque(maxlen=512))
    listeners: set[Listener] = field(default_factory=set)


def sse_event(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveHub:
    """Fans drop events out to SSE listeners and keeps a short replay buffer per drop.

    Event ids are ``<epoch>-<seq>`` with a sequence per drop; the epoch changes per process
    start, so a client resuming across a restart gets a fresh snapshot, not a wrong replay.
    """

    QUEUE_SIZE = 256

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.epoch = secrets.token_hex(4)
        self._channels: dict[int, _Channel] = {}
        self.closed = False

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def last_seq(self, drop_id: int) -> int:
        channel = self._channels.get(drop_id)
        return channel.seq if channel else 0

    def publish(self, drop_id: int, event: str, data: dict[str, Any]) -> None:
        channel = self._channels.setdefault(drop_id, _Channel())
        channel.seq += 1
        data = {"drop_id": drop_id, **data, "server_time": iso(self._clock.now())}
        message = SseMessage(channel.seq, event, json.dumps(data, separators=(",", ":")))
        channel.buffer.append(message)
        for queue in list(channel.listeners):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # a stalled client: end its stream, it will resume
                self._evict(channel, queue)

    def encode(self, message: SseMessage) -> bytes:
        return (
            f"id: {self.event_id(message.seq)}\nevent: {message.event}\ndata: {message.data}\n\n"
        ).encode()

    def subscribe(self, drop_id: int) -> Listener:
        queue: Listener = asyncio.Queue(self.QUEUE_SIZE)
        self._channels.setdefault(drop_id, _Channel()).listeners.add(queue)
        return queue

    def unsubscribe(self, drop_id: int, queue: Listener) -> None:
        channel = self._channels.get(drop_id)
        if channel is not None:
            channel.listeners.discard(queue)

    def listeners(self, drop_id: int) -> int:
        channel = self._channels.get(drop_id)
        return len(channel.listeners) if channel else 0

    def replay(self, drop_id: int, last_event_id: str | None) -> list[SseMessage] | None:
        """Messages after ``last_event_id``; None when they cannot all be replayed."""
        if not last_event_id:
            return None
        epoch, _, seq_text = last_event_id.partition("-")
        if epoch != self.epoch or not seq_text.isdigit():
            return None
        seq = int(seq_text)
        channel = self._channels.get(drop_id)
        last = channel.seq if channel else 0
        if seq > last:
            return None
        if channel is None or seq == last:
            return []
        if not channel.buffer or channel.buffer[0].seq > seq + 1:
            return None  # the buffer no longer reaches back far enough
        return [m for m in channel.buffer if m.seq > seq]

    def close(self) -> None:
        """End every stream (shutdown): clients reconnect to whichever process is up."""
        self.closed = True
        for channel in self._channels.values():
            for queue in list(channel.listeners):
                self._evict(channel, queue)

    @staticmethod
    def _evict(channel: _Channel, queue: Listener) -> None:
        channel.listeners.discard(queue)
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait(None)

    def on_event(self, event: Event) -> None:
        """Translate domain events into the stream's vocabulary."""
        drop_id = event.drop_id
        match event:
            case StockChanged(available=available, held=held, sold=sold, total=total):
                self.publish(
                    drop_id,
                    "stock",
                    {"available": available, "held": held, "sold": sold, "total": total},
                )
            case SoldOut():
                self.publish(drop_id, "sold_out", {})
            case Restocked(sku=sku, pool=pool, added=added):
                self.publish(drop_id, "restocked", {"sku": sku, "pool": pool, "added": added})
            case DropClosed(reason=reason, at=at):
                self.publish(drop_id, "closed", {"reason": reason, "at": iso(at)})
            case DropOpened(at=at):
                self.publish(drop_id, "countdown", {"state": DropState.LIVE.value, "at": iso(at)})
            case DropScheduled(opens_at=opens_at):
                self.publish(
                    drop_id,
                    "countdown",
                    {"state": DropState.SCHEDULED.value, "opens_at": iso(opens_at)},
                )
            case _:
                pass
