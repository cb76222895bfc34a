"""The chat hub: domain events in, messages out to every connected platform.

Bus handlers only enqueue; one worker posts in event order, so a slow platform never slows
a claim. Stock ticks edit one live message per platform (coalesced: at most one edit per
``edit_interval``) and post new messages only when stock falls to a threshold; "sold out"
is its own event and is never coalesced away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.messages import Message
from bot.presenter import Presenter
from commerce.core import Commerce
from commerce.domain.events import Event, StockChanged, WaitlistOffered

log = logging.getLogger(__name__)

LinkIssuer = Callable[[int, str], str]


class Outlet(Protocol):
    """What a platform adapter offers the hub."""

    platform: str  # identities it can reach privately start with "<platform>:"

    async def post(self, message: Message) -> str | None:
        """Post to the platform's drop channel; returns a handle for later edits."""
        ...

    async def edit(self, handle: str, message: Message) -> None: ...

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        """DM / whisper / session message; False when the person cannot be reached there.
        Transient failures raise. ``key`` identifies the notification so that platforms
        which can (Discord's nonce) drop a repeat."""
        ...


@dataclass
class _DropTicks:
    last_available: int | None = None
    handles: dict[str, str] = field(default_factory=dict)  # platform -> live message
    pending: asyncio.Task[None] | None = None
    last_edit: float = 0.0


class ChatHub:
    def __init__(
        self,
        commerce: Commerce,
        presenter: Presenter,
        issue_link: LinkIssuer,
        *,
        thresholds: list[int],
        edit_interval: float = 2.0,
    ) -> None:
        self.commerce = commerce
        self.presenter = presenter
        self.issue_link = issue_link
        self.thresholds = sorted(set(thresholds), reverse=True)
        self.edit_interval = edit_interval
        self.outlets: list[Outlet] = []
        self._queue: asyncio.Queue[Event | tuple[str, int, int]] = asyncio.Queue()
        self._ticks: dict[int, _DropTicks] = {}
        self._worker: asyncio.Task[None] | None = None

    def add_outlet(self, outlet: Outlet) -> None:
        self.outlets.append(outlet)

    def attach(self) -> None:
        self.commerce.bus.subscribe(self._enqueue)

    async def start(self) -> None:
        self.attach()
        self._worker = asyncio.create_task(self._run(), name="chat-hub")

    async def stop(self) -> None:
        for ticks in self._ticks.values():
            if ticks.pending is not None:
                ticks.pending.cancel()
        if self._worker is not None:
            self._worker.cancel()

    async def drain(self) -> None:
        """Wait until every queued event has been handled (tests, shutdown)."""
        await self._queue.join()
        pending = [t.pending for t in self._ticks.values() if t.pending and not t.pending.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def countdown(self, drop_id: int, seconds_left: int) -> None:
        """Called by the scheduler at each countdown offset before a drop opens."""
        await self._queue.put(("countdown", drop_id, seconds_left))

    async def _enqueue(self, event: Event) -> None:
        await self._queue.put(event)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._handle(item)
            except Exception:
                log.exception("chat hub could not handle %r", item)
            finally:
                self._queue.task_done()

    async def _handle(self, item: Event | tuple[str, int, int]) -> None:
        if isinstance(item, tuple):
            _, drop_id, seconds = item
            view = await self.commerce.drops.view(drop_id)
            if view.drop.state.value == "scheduled":
                await self._post_all(self.presenter.countdown(view, seconds))
            return
        if isinstance(item, StockChanged):
            await self._tick(item)
            return
        if isinstance(item, WaitlistOffered):
            await self._offer(item)
            return
        message = await self.presenter.for_event(item)
        if message is None:
            return
        handles = await self._post_all(message)
        if message.kind == "live":
            ticks = self._ticks.setdefault(item.drop_id, _DropTicks())
            ticks.handles.update(handles)

    async def _post_all(self, message: Message) -> dict[str, str]:
        handles: dict[str, str] = {}
        for outlet in self.outlets:
            try:
                handle = await outlet.post(message)
            except Exception:
                log.exception("%s could not post %s", outlet.platform, message.kind)
                continue
            if handle is not None:
                handles[outlet.platform] = handle
        return handles

    async def _tick(self, event: StockChanged) -> None:
        ticks = self._ticks.setdefault(event.drop_id, _DropTicks())
        before, ticks.last_available = ticks.last_available, event.available
        crossed = [
            t
            for t in self.thresholds
            if event.available <= t and (before is None or before > t) and event.available > 0
        ]
        if crossed and before is not None:
            view = await self.commerce.drops.view(event.drop_id)
            await self._post_all(self.presenter.tick(view, threshold=True))
        if ticks.handles and (ticks.pending is None or ticks.pending.done()):
            delay = max(0.0, ticks.last_edit + self.edit_interval - time.monotonic())
            ticks.pending = asyncio.create_task(self._edit_live(event.drop_id, ticks, delay))

    async def _edit_live(self, drop_id: int, ticks: _DropTicks, delay: float) -> None:
        # Coalesce a burst of sales into one edit showing the latest count.
        await asyncio.sleep(delay)
        ticks.last_edit = time.monotonic()
        view = await self.commerce.drops.view(drop_id)
        message = self.presenter.tick(view, threshold=False)
        for outlet in self.outlets:
            handle = ticks.handles.get(outlet.platform)
            if handle is None:
                continue
            try:
                await outlet.edit(handle, message)
            except Exception:
                log.exception("%s could not edit the live message", outlet.platform)

    async def _offer(self, event: WaitlistOffered) -> None:
        customer = await self.commerce.customers.get(event.customer_id)
        view = await self.commerce.drops.view(event.drop_id)
        for identity in customer.identities:
            platform = identity.split(":", 1)[0]
            for outlet in self.outlets:
                if outlet.platform != platform:
                    continue
                message = Message(
                    f"A unit of {view.drop.title} freed up and it's yours until {{at}}: pay with "
                    "your personal link.",
                    kind="waitlist_offer",
                    drop_id=event.drop_id,
                    at=event.expires_at,
                    personal_link=self.issue_link(event.drop_id, identity),
                    private=True,
                )
                if await outlet.send_private(identity, message):
                    self.commerce.tracker.note(
                        event.drop_id, "waitlist_offered", event.customer_id, platform=platform
                    )
                    return
        log.info("waitlist offer for customer %s could not be delivered in chat", event.customer_id)
