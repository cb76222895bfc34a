"""Clips of the Twitch stream for the shoppable replay: made when a drop goes live, when it
sells out and on the creator's ``!clip``, and kept with the drop in the core.

Helix Create Clip (``POST /helix/clips``, a user token with ``clips:edit``) answers 202 with
the clip's id; the clip exists once Get Clips (``GET /helix/clips?id=``) returns it, and
Twitch says to assume it failed when that has not happened within 15 s
(https://dev.twitch.tv/docs/api/clips/). Both go through twitchio's own client, so they
reach ``twitchio.http.Route.BASE``.

- The channel is offline: Twitch answers 404. Nothing is kept; this is logged once until
  a clip is made again.
- The token lacks ``clips:edit``: 401. This is logged once, naming the scope, and no
  clip is asked for again in this run (every request would fail the same way).
- Helix's bucket is empty: 429. The request waits until ``Ratelimit-Reset`` (a unix time)
  and is tried again. twitchio raises ``HTTPException`` without the response's headers,
  so ``HelixResets`` reads the header off twitchio's HTTP session.

All of it runs in background tasks: a bus handler or a chat command only starts one, and
``close`` cancels whatever is still running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import twitchio

from commerce.core import Commerce
from commerce.domain.events import DropOpened, Event, SoldOut
from commerce.domain.model import ClipReason

log = logging.getLogger(__name__)

PLATFORM = "twitch"
SCOPE = "clips:edit"
POLL_BUDGET = 15.0  # Twitch: not returned by Get Clips after 15 s, assume it failed
FIRST_POLL = 0.5  # the first look, then each wait 1.5 times longer, at most MAX_POLL
MAX_POLL = 3.0
RATE_RETRIES = 3  # 429s in a row on one request before giving it up
MAX_RATE_WAIT = 60.0  # Helix's bucket refills within a minute
RATE_FALLBACK = 1.0  # a 429 whose Ratelimit-Reset we could not read

Sleep = Callable[[float], Awaitable[None]]
Wall = Callable[[], float]  # unix time, as Ratelimit-Reset is


@dataclass(frozen=True)
class ClipTiming:
    """How long the clip maker waits. Tests inject a sleep that returns at once."""

    sleep: Sleep = asyncio.sleep
    wall: Wall = time.time
    budget: float = POLL_BUDGET


def poll_delays(budget: float = POLL_BUDGET) -> list[float]:
    """The waits before each Get Clips poll: growing, bounded, summing to ``budget``."""
    delays: list[float] = []
    delay, left = FIRST_POLL, budget
    while left > 1e-9:
        step = min(delay, left)
        delays.append(step)
        left -= step
        delay = min(delay * 1.5, MAX_POLL)
    return delays


class HelixResets:
    """``Ratelimit-Reset`` of the latest 429 per Helix route, read off the responses that
    twitchio's HTTP session receives (an aiohttp trace)."""

    def __init__(self) -> None:
        self._reset: dict[str, float] = {}

    def trace_config(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        response = params.response
        if response.status != 429:
            return
        try:
            reset = float(response.headers.get("Ratelimit-Reset", ""))
        except ValueError:
            return
        self._reset[params.url.path.rstrip("/").rsplit("/", 1)[-1]] = reset

    def take(self, route: str) -> float | None:
        """The reset of the latest 429 on ``route`` ("clips"), once."""
        return self._reset.pop(route, None)


class HelixClips:
    """Create Clip and Get Clips through twitchio, as the bot user."""

    def __init__(
        self, client: twitchio.Client, broadcaster: twitchio.PartialUser, bot_id: str
    ) -> None:
        self.client = client
        self.broadcaster = broadcaster
        self.bot_id = bot_id

    async def create(self) -> str:
        created = await self.broadcaster.create_clip(token_for=self.bot_id)
        return str(created.id)

    async def fetch(self, clip_id: str) -> twitchio.Clip | None:
        async for clip in self.client.fetch_clips(clip_ids=[clip_id], first=1, max_results=1):
            return clip
        return None


class ClipMaker:
    """Makes clips in the background and keeps them with the drop (``commerce.clips``)."""

    def __init__(
        self,
        commerce: Commerce,
        helix: HelixClips,
        resets: HelixResets,
        timing: ClipTiming | None = None,
    ) -> None:
        self.commerce = commerce
        self.helix = helix
        self.resets = resets
        self.timing = timing or ClipTiming()
        self.off = False  # the token cannot clip (401): not asked again in this run
        self._offline_said = False
        self._create_lock = asyncio.Lock()  # one Create Clip at a time: one 401 to log
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> None:
        """Clip each drop as it goes live and as it sells out."""
        self.commerce.bus.subscribe(self._on_event, DropOpened, SoldOut)

    async def _on_event(self, event: Event) -> None:
        reason = ClipReason.OPENED if isinstance(event, DropOpened) else ClipReason.SOLD_OUT
        self.clip(event.drop_id, reason)

    def clip(self, drop_id: int, reason: ClipReason) -> bool:
        """Start making a clip for the drop, in the background. False when none can be
        made (the token lacks ``clips:edit``, or the bot is closing)."""
        if self.off or self._closing:
            return False
        task = asyncio.create_task(self._make(drop_id, reason), name=f"twitch-clip-{drop_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def drain(self) -> None:
        """Wait until every clip under way is kept, given up, or refused (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Stop: no new clips; those under way are cancelled, and have ended on return."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- one clip -------------------------------------------------------------------------

    async def _make(self, drop_id: int, reason: ClipReason) -> None:
        try:
            async with self._create_lock:
                clip_id = None if self.off else await self._create()
            if clip_id is None:
                return
            await self.commerce.clips.started(drop_id, PLATFORM, clip_id, reason)
            clip = await self._poll(clip_id)
            if clip is None:
                log.warning(
                    "twitch: clip %s of drop %s was not ready within %.0f s; assumed lost",
                    clip_id,
                    drop_id,
                    self.timing.budget,
                )
                await self.commerce.clips.failed(PLATFORM, clip_id)
                return
            await self.commerce.clips.ready(PLATFORM, clip_id, clip.url, clip.thumbnail.url)
            log.info("twitch: clip of drop %s (%s) is ready: %s", drop_id, reason, clip.url)
        except asyncio.CancelledError:
            raise
        except Exception:  # a clip is a nicety: it never takes the bot down
            log.exception("twitch: the %s clip of drop %s failed", reason, drop_id)

    async def _create(self) -> str | None:
        """Create Clip: the new clip's id, or None when Twitch will not make one."""
        for attempt in range(RATE_RETRIES + 1):
            try:
                clip_id = await self.helix.create()
            except twitchio.HTTPException as exc:
                if exc.status == 429 and attempt < RATE_RETRIES:
                    await self._wait_for_reset()
                    continue
                self._refused(exc)
                return None
            self._offline_said = False
            return clip_id
        return None  # pragma: no cover (the loop returns)

    def _refused(self, exc: twitchio.HTTPException) -> None:
        said = _message(exc)
        if exc.status == 404:
            if not self._offline_said:
                self._offline_said = True
                log.info("twitch: no clip: the channel is not live (%s)", said)
        elif exc.status == 401:
            self.off = True
            log.error(
                "twitch: clips are off for this run: Twitch refused to make one (%s). The "
                "bot token needs the %s scope: authorise the bot again with it and restart.",
                said,
                SCOPE,
            )
        else:
            log.warning("twitch: Twitch refused to make a clip (%s): %s", exc.status, said)

    async def _poll(self, clip_id: str) -> twitchio.Clip | None:
        """Get Clips until it returns the clip, within the budget; None if it never does."""
        for delay in poll_delays(self.timing.budget):
            await self.timing.sleep(delay)
            for attempt in range(RATE_RETRIES + 1):
                try:
                    clip = await self.helix.fetch(clip_id)
                except twitchio.HTTPException as exc:
                    if exc.status == 429 and attempt < RATE_RETRIES:
                        await self._wait_for_reset()
                        continue
                    log.warning("twitch: Get Clips failed (%s): %s", exc.status, _message(exc))
                    break
                if clip is not None:
                    return clip
                break
        return None

    async def _wait_for_reset(self) -> None:
        """Helix's bucket is empty: wait until ``Ratelimit-Reset``, as Twitch asks."""
        reset = self.resets.take("clips")
        wait = RATE_FALLBACK if reset is None else reset - self.timing.wall()
        wait = min(max(wait, 0.0), MAX_RATE_WAIT)
        log.info("twitch: Helix rate limit reached; clipping again in %.1f s", wait)
        await self.timing.sleep(wait)


def _message(exc: twitchio.HTTPException) -> str:
    extra: Any = exc.extra
    return str(extra.get("message") or "") if isinstance(extra, dict) else str(extra)
