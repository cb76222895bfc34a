"""Live state for the web: cached drop views, the sold-out gate, and the server-sent-event
hub. All three are fed by ``commerce.bus`` (after commit), so one stock count is everywhere."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
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
from commerce.domain.model import DropState, DropView
from commerce.views import iso


class ViewCache:
    """Per-drop DropView cache with a short TTL, single-flight loads and event invalidation.

    Entries also lapse when the injected clock moves past the TTL, so holds that expire by
    filter (no event yet) show up within ``ttl`` seconds.
    """

    def __init__(
        self, load: Callable[[int], Awaitable[DropView]], clock: Clock, ttl: float
    ) -> None:
        self._load = load
        self._clock = clock
        self._ttl = ttl
        self._views: dict[int, tuple[float, datetime, DropView]] = {}
        self._loading: dict[int, asyncio.Future[DropView]] = {}

    async def get(self, drop_id: int) -> DropView:
        hit = self._views.get(drop_id)
        if hit is not None:
            loaded, as_of, view = hit
            fresh = time.monotonic() - loaded < self._ttl
            if fresh and self._clock.now() - as_of < timedelta(seconds=self._ttl):
                return view
        pending = self._loading.get(drop_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DropView] = asyncio.get_running_loop().create_future()
        self._loading[drop_id] = future
        try:
            view = await self._load(drop_id)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # consumed: waiters re-raise it, nobody logs it twice
            raise
        finally:
            self._loading.pop(drop_id, None)
        if not future.done():
            future.set_result(view)
        self._views[drop_id] = (time.monotonic(), self._clock.now(), view)
        return view

    def forget(self, drop_id: int) -> None:
        self._views.pop(drop_id, None)


class SoldOutGate:
    """Answers "sold out" from memory while that answer is certain, so a sold-out surge costs
    no database round trip.

    Armed when a StockChanged says nothing is claimable. It stays armed until the earliest
    pending hold could expire (known from HoldPlaced) and at most ``ttl`` seconds, after which
    one claim goes to the database and re-arms it. Restock, refund, reopen and any StockChanged
    with units free disarm it at once. It can only ever err towards "sold out" for at most
    ``ttl`` seconds (an unseen hold in another process); it can never oversell.
    """

    def __init__(self, clock: Clock, ttl: float = 2.0) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=ttl)
        self._until: dict[int, datetime] = {}
        self._holds: dict[int, dict[int, datetime]] = {}
        self._winners: dict[int, set[str]] = {}

    def closed(self, drop_id: int, claim_key: str) -> bool:
        until = self._until.get(drop_id)
        if until is None or claim_key in self._winners.get(drop_id, ()):
            return False
        if self._clock.now() >= until:
            del self._until[drop_id]
            return False
        return True

    def won(self, drop_id: int, claim_key: str) -> None:
        """This claim key holds stock: it must always reach its hold, never the gate."""
        self._winners.setdefault(drop_id, set()).add(claim_key)

    def arm(self, drop_id: int, held: int) -> None:
        now = self._clock.now()
        until = now + self._ttl
        if held > 0:
            pending = {k: t for k, t in self._holds.get(drop_id, {}).items() if t > now}
            self._holds[drop_id] = pending
            if not pending:
                return  # holds we never saw: their expiry is unknown, so do not guess
            until = min(until, *pending.values())
        self._until[drop_id] = until

    def disarm(self, drop_id: int) -> None:
        self._until.pop(drop_id, None)

    def on_event(self, event: Event) -> None:
        drop_id = event.drop_id
        match event:
            case HoldPlaced(hold_id=hold_id, expires_at=expires_at):
                self._holds.setdefault(drop_id, {})[hold_id] = expires_at
            case HoldExpired(hold_id=hold_id) | HoldCancelled(hold_id=hold_id):
                self._holds.get(drop_id, {}).pop(hold_id, None)
            case OrderPaid(hold_id=hold_id):
                self._holds.get(drop_id, {}).pop(hold_id, None)
            case StockChanged(available=available, held=held):
                if available > 0:
                    self.disarm(drop_id)
                else:
                    self.arm(drop_id, held)
            case DropClosed(reason=reason) if reason != "sold_out":
                self.disarm(drop_id)
            case Restocked() | DropOpened() | OrderRefunded():
                self.disarm(drop_id)
            case _:
                pass


@dataclass(frozen=True, slots=True)
class SseMessage:
    seq: int
    event: str
    data: str


@dataclass
class _Channel:
    seq: int = 0  # per drop, so a gap in the buffer means lost messages
    buffer: deque[SseMessage] = field(default_factory=lambda: deque(maxlen=512))
    listeners: set[asyncio.Queue[SseMessage | None]] = field(default_factory=set)


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

    def subscribe(self, drop_id: int) -> asyncio.Queue[SseMessage | None]:
        queue: asyncio.Queue[SseMessage | None] = asyncio.Queue(self.QUEUE_SIZE)
        self._channels.setdefault(drop_id, _Channel()).listeners.add(queue)
        return queue

    def unsubscribe(self, drop_id: int, queue: asyncio.Queue[SseMessage | None]) -> None:
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
    def _evict(channel: _Channel, queue: asyncio.Queue[SseMessage | None]) -> None:
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
