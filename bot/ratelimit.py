"""Token buckets shared by every sender, per platform and per channel.

Platforms' limits are law; each platform sizes its buckets in its own package (Discord's
``bot.discord.pacing.discord_limiter``, Twitch's outlet ``SendPolicy``). A sender awaits
``acquire`` for both its platform bucket and its channel bucket; a 429 answer pushes the
bucket back by the server's ``retry_after``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate: float, capacity: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError("a bucket needs rate > 0 and capacity >= 1")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._updated = clock()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()  # FIFO: senders go in the order they asked

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> float:
        """Take a token now and return 0, or return the seconds to wait (taking nothing)."""
        now = self._clock()
        if now < self._blocked_until:
            return self._blocked_until - now
        self._refill(now)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        async with self._lock:
            # Not a busy wait: each sleep is exactly the time until a token exists.
            while (wait := self.try_take()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)

    def penalize(self, retry_after: float) -> None:
        """The server said 429: nobody sends through this bucket for ``retry_after`` s."""
        self._blocked_until = max(self._blocked_until, self._clock() + retry_after)
        self._tokens = 0


class RateLimiter:
    """A platform-wide bucket plus one bucket per channel, created on first use."""

    def __init__(
        self,
        *,
        global_rate: float,
        global_capacity: float,
        channel_rate: float,
        channel_capacity: float,
    ) -> None:
        self.global_bucket = TokenBucket(global_rate, global_capacity)
        self._channel_rate = channel_rate
        self._channel_capacity = channel_capacity
        self._channels: dict[str, TokenBucket] = {}

    def channel(self, key: str) -> TokenBucket:
        bucket = self._channels.get(key)
        if bucket is None:
            bucket = self._channels[key] = TokenBucket(self._channel_rate, self._channel_capacity)
        return bucket

    async def acquire(self, channel: str | None = None) -> None:
        if channel is not None:
            await self.channel(channel).acquire()
        await self.global_bucket.acquire()


class AnswerThrottle:
    """At most one answer per ``per_user`` seconds to each person and per ``per_channel``
    seconds in each channel: for answers nobody asked for in earnest (help for an unknown
    command), so that someone typing ``!foo`` in a loop cannot make the bot flood chat."""

    def __init__(
        self,
        *,
        per_user: float = 120.0,
        per_channel: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.per_user = per_user
        self.per_channel = per_channel
        self._clock = clock
        self._max_keys = max_keys
        self._users: dict[str, float] = {}
        self._channels: dict[str, float] = {}

    def allow(self, user: str, channel: str) -> bool:
        """True (and counted) when both the person and the channel may get an answer now."""
        now = self._clock()
        if now - self._users.get(user, -math.inf) < self.per_user:
            return False
        if now - self._channels.get(channel, -math.inf) < self.per_channel:
            return False
        self._users[user] = self._channels[channel] = now
        if len(self._users) > self._max_keys:  # forget people whose pause is over
            self._users = {k: t for k, t in self._users.items() if now - t < self.per_user}
        if len(self._channels) > self._max_keys:
            self._channels = {k: t for k, t in self._channels.items() if now - t < self.per_channel}
        return True
