"""The chat hub: domain events in, messages out to every connected platform.

Bus handlers only enqueue; one worker posts in event order, so a slow platform never slows
a claim. Stock ticks edit one live message per platform (coalesced: at most one edit per
``edit_interval``) and post new messages only when stock falls to a threshold; "sold out"
is its own event and is never coalesced away.

Where a platform can edit, nothing the hub posted goes stale: once a drop opens, its
announcement and countdowns stop counting down ("opened 2 min ago", never "opens 2 min
ago"); once it closes, they and the live post say so; once a hold is paid, the private
messages that carried its pay link say "paid".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from bot.messages import Message
from bot.presenter import Presenter
from commerce.core import Commerce
from commerce.domain.events import (
    ClipReady,
    DropClosed,
    DropOpened,
    Event,
    OrderPaid,
    StockChanged,
    WaitlistOffered,
)
from commerce.domain.model import DropState

log = logging.getLogger(__name__)

LinkIssuer = Callable[[int, str], Awaitable[str]]
RecapChart = Callable[[int], Awaitable[bytes]]  # a drop's id → its recap chart (PNG)


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
        which can (Discord's nonce) drop a repeat. A message with a ``hold_id`` is
        remembered for ``edit_private``."""
        ...

    async def edit_private(self, hold_id: int, message: Message) -> None:
        """Replace the private messages sent about ``hold_id`` (its pay link) with
        ``message``; nothing where the platform cannot edit them."""
        ...


@dataclass
class _DropTicks:
    last_available: int | None = None
    handles: dict[str, str] = field(default_factory=dict)  # platform -> live message
    before_live: list[dict[str, str]] = field(default_factory=list)  # announcement, countdowns
    pending: asyncio.Task[None] | None = None
    last_edit: float = 0.0
    stale: bool = False  # a sale came in after the pending edit read the stock


class ChatHub:
    def __init__(
        self,
        commerce: Commerce,
        presenter: Presenter,
        issue_link: LinkIssuer,
        *,
        thresholds: list[int],
        edit_interval: float = 2.0,
        chart: RecapChart | None = None,
    ) -> None:
        self.commerce = commerce
        self.chart = chart
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
        """Cancel the worker and pending edits, and wait until they have ended: a task still
        mid-query when the event loop closes is cancelled a second time there, which can
        leave its aiosqlite connection's close waiting forever (and the loop with it)."""
        tasks = [t.pending for t in self._ticks.values() if t.pending is not None]
        if self._worker is not None:
            tasks.append(self._worker)
            self._worker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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
            countdown = self.presenter.countdown(view, seconds)
            if countdown is not None:
                handles = await self._post_all(countdown)
                self._ticks.setdefault(drop_id, _DropTicks()).before_live.append(handles)
            return
        if isinstance(item, StockChanged):
            await self._tick(item)
            return
        if isinstance(item, WaitlistOffered):
            await self._offer(item)
            return
        if isinstance(item, OrderPaid):
            await self._paid(item)
            return
        if isinstance(item, ClipReady):
            await self._clip_ready(item)
            return
        if isinstance(item, DropOpened):
            await self._opened(item.drop_id)
        elif isinstance(item, DropClosed):
            await self._closed(item.drop_id)
        message = await self.presenter.for_event(item)
        if message is None:
            return
        if message.kind == "closed":
            message = await self._with_chart(message, item.drop_id)
        handles = await self._post_all(message)
        ticks = self._ticks.setdefault(item.drop_id, _DropTicks())
        if message.kind == "live":
            ticks.handles.update(handles)
        elif message.kind == "announcement":
            ticks.before_live.append(handles)
        elif message.kind == "closed":
            self._ticks.pop(item.drop_id, None)

    async def _with_chart(self, recap: Message, drop_id: int) -> Message:
        if self.chart is None:
            return recap
        try:
            return replace(recap, image=await self.chart(drop_id))
        except Exception:  # the recap still goes out, without the picture
            log.exception("the recap chart of drop %s failed", drop_id)
            return recap

    async def _opened(self, drop_id: int) -> None:
        """The announcement and countdowns stop counting down: the drop opened."""
        ticks = self._ticks.get(drop_id)
        if ticks is None or not ticks.before_live:
            return
        view = await self.commerce.drops.view(drop_id)
        await self._edit_all(ticks.before_live, self.presenter.opened_note(view))

    async def _closed(self, drop_id: int) -> None:
        """Every post about the drop that is still up says it has ended."""
        ticks = self._ticks.get(drop_id)
        if ticks is None:
            return
        if ticks.pending is not None:
            ticks.pending.cancel()
        view = await self.commerce.drops.view(drop_id)
        await self._edit_all([*ticks.before_live, ticks.handles], self.presenter.ended_note(view))

    async def _edit_all(self, posts: list[dict[str, str]], message: Message) -> None:
        for handles in posts:
            for outlet in self.outlets:
                handle = handles.get(outlet.platform)
                if handle is None:
                    continue
                try:
                    await outlet.edit(handle, message)
                except Exception:
                    log.exception("%s could not edit a %s post", outlet.platform, message.kind)

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
            if view.drop.state is DropState.LIVE:
                await self._post_all(self.presenter.tick(view, left=event.available))
        ticks.stale = True
        if ticks.handles and (ticks.pending is None or ticks.pending.done()):
            ticks.pending = asyncio.create_task(self._edit_live(event.drop_id, ticks))

    async def _edit_live(self, drop_id: int, ticks: _DropTicks) -> None:
        # Coalesce a burst of sales into one edit showing the latest count; a sale that
        # comes in once the edit has read the stock gets another edit, or the live post
        # would keep a count from before the sell-out.
        while ticks.stale:
            await asyncio.sleep(max(0.0, ticks.last_edit + self.edit_interval - time.monotonic()))
            ticks.stale = False
            ticks.last_edit = time.monotonic()
            view = await self.commerce.drops.view(drop_id)
            await self._edit_all([ticks.handles], self.presenter.tick(view))

    async def _offer(self, event: WaitlistOffered) -> None:
        customer = await self.commerce.customers.get(event.customer_id)
        view = await self.commerce.drops.view(event.drop_id)
        for identity in customer.identities:
            platform = identity.split(":", 1)[0]
            for outlet in self.outlets:
                if outlet.platform != platform:
                    continue
                link = await self.issue_link(event.drop_id, identity)
                message = self.presenter.waitlist_offer(view, event, link)
                if await outlet.send_private(identity, message):
                    self.commerce.tracker.note(
                        event.drop_id, "waitlist_offered", event.customer_id, platform=platform
                    )
                    return
        log.info("waitlist offer for customer %s could not be delivered in chat", event.customer_id)

    async def _clip_ready(self, event: ClipReady) -> None:
        """A clip that is ready once the drop has closed missed its recap: it follows it.
        (While the drop is open the clip waits for the recap, which lists it.)"""
        view = await self.commerce.drops.view(event.drop_id)
        if view.drop.state is DropState.CLOSED:
            await self._post_all(self.presenter.clip_ready(view, event))

    async def _paid(self, event: OrderPaid) -> None:
        """The private messages that carried this hold's pay link now say it is paid."""
        view = await self.commerce.drops.view(event.drop_id)
        message = self.presenter.paid(view, event)
        for outlet in self.outlets:
            try:
                await outlet.edit_private(event.hold_id, message)
            except Exception:
                log.exception("%s could not mark a private message paid", outlet.platform)
