"""Viewer-count samples while a drop is live, for the KPIs (peak vs average, units/1k viewers).

Polls the stream (Helix Get Streams) every ``interval`` seconds, and at once when a drop
opens, only while some drop is live; an offline stream records nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable

from commerce.core import Commerce
from commerce.domain.events import DropOpened, Event
from commerce.domain.model import DropState

log = logging.getLogger(__name__)

SAMPLE_INTERVAL = 30.0
ViewerCallback = Callable[[int, int], Awaitable[None] | None]  # (drop_id, viewers)
ViewerSource = Callable[[], Awaitable[int | None]]  # None: the stream is offline


class ViewerSampler:
    def __init__(
        self,
        commerce: Commerce,
        viewers: ViewerSource,
        on_viewers: ViewerCallback,
        *,
        interval: float = SAMPLE_INTERVAL,
    ) -> None:
        self.commerce = commerce
        self.viewers = viewers
        self.on_viewers = on_viewers
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self.commerce.bus.subscribe(self._opened, DropOpened)
        self._task = asyncio.create_task(self._run(), name="twitch-viewers")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop sampling: a sample under way may finish (up to ``grace`` seconds), so no
        query is cut off; then the sampler is cancelled. Returns once it has ended."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.wait({task}, timeout=grace)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def sample(self) -> int | None:
        """One sample for every live drop; returns the count recorded, if any."""
        live = await self.commerce.drops.list((DropState.LIVE,))
        if not live:
            return None
        count = await self.viewers()
        if count is None:
            return None
        for drop in live:
            result = self.on_viewers(drop.id, count)
            if inspect.isawaitable(result):
                await result
        return count

    async def _opened(self, event: Event) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.sample()
            except Exception:  # a Helix hiccup costs one sample, not the sampler
                log.exception("twitch: viewer sample failed")
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancel that
            # lands as the event is set (cpython gh-86296), and stop() would wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._wake.wait()
            self._wake.clear()
