"""Twitch's limits: the Helix token bucket, sliding windows for chat and whispers, forced errors.

Helix (https://dev.twitch.tv/docs/api/guide/#twitch-rate-limits): a token bucket per client id
(app tokens) or per client id + user (user tokens), 800 points refilled per minute; each request
costs a point. Every answer carries ``Ratelimit-Limit`` (bucket size), ``Ratelimit-Remaining``
and ``Ratelimit-Reset`` (epoch seconds at which the bucket is full again); an empty bucket
answers 429.

Chat (https://dev.twitch.tv/docs/chat/#rate-limits): 20 messages per 30 s per channel for a
regular sender, 100 if the sender is the broadcaster or a moderator. Over the limit, Helix does
*not* 429: ``POST /chat/messages`` answers 200 with ``is_sent: false`` and a ``drop_reason``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]


class TokenBucket:
    """Continuously refilled bucket: ``capacity`` points per ``window`` seconds."""

    def __init__(self, capacity: int, window: float, clock: Clock = time.monotonic) -> None:
        self.capacity = capacity
        self.window = window
        self._clock = clock
        self._tokens = float(capacity)
        self._last = clock()

    @property
    def _rate(self) -> float:
        return self.capacity / self.window

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.capacity), self._tokens + (now - self._last) * self._rate)
        self._last = now

    def take(self, cost: int = 1) -> bool:
        self._refill()
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    def drain(self) -> None:
        self._refill()
        self._tokens = 0.0

    @property
    def remaining(self) -> int:
        self._refill()
        return int(self._tokens)

    def reset_epoch(self) -> int:
        """Epoch second at which the bucket is full again (what ``Ratelimit-Reset`` says)."""
        self._refill()
        missing = self.capacity - self._tokens
        return math.ceil(time.time() + missing / self._rate)

    def headers(self) -> dict[str, str]:
        return {
            "Ratelimit-Limit": str(self.capacity),
            "Ratelimit-Remaining": str(self.remaining),
            "Ratelimit-Reset": str(self.reset_epoch()),
        }


class SlidingWindows:
    """Event timestamps per key, to answer "how many in the last N seconds"."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._events: dict[Hashable, deque[float]] = {}

    def count(self, key: Hashable, window: float) -> int:
        events = self._events.get(key)
        if not events:
            return 0
        cutoff = self._clock() - window
        return sum(1 for t in events if t > cutoff)

    def allows(self, key: Hashable, limit: int, window: float) -> bool:
        return self.count(key, window) < limit

    def record(self, key: Hashable, *, keep: float = 86_400.0) -> None:
        now = self._clock()
        events = self._events.setdefault(key, deque())
        events.append(now)
        while events and events[0] <= now - keep:
            events.popleft()

    def clear(self) -> None:
        self._events.clear()


@dataclass
class ForcedFailure:
    """A canned error for the next ``times`` Helix requests matching ``method`` + ``route``."""

    method: str | None  # None matches any method
    route: str  # e.g. "chat/messages"
    status: int
    message: str
    times: int | None  # None: until cleared

    def matches(self, method: str, route: str) -> bool:
        return (self.method is None or self.method == method) and self.route == route


@dataclass
class ForcedDrop:
    """Drop the next ``times`` chat messages (None: until stopped) with this reason."""

    code: str
    message: str
    times: int | None
