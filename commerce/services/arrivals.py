"""The order claims reached this process in.

A claim's place in line is taken the moment it arrives (a chat command starts, a link is
opened), before anything is awaited: finding the customer, the drop or its shape takes a
different time for each claimant (a first-time buyer needs a write, a cache miss a read),
so the order claims would reach their drop's queue is not the order they arrived in.
A drop's queue is decided in place order, and a batch waits for every claim that arrived
before it and is still on its way, so "first in line" means first to arrive.

A place that never comes forward (its claimant is stuck on something slow) holds the line
up for ``patience`` seconds at most; after that the claims behind it go first, and it is
decided whenever it reaches the queue.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import count
from types import TracebackType

log = logging.getLogger(__name__)

DEFAULT_PATIENCE = 0.5  # seconds a late arrival may hold up the claims behind it


@dataclass(eq=False, slots=True)
class Arrival:
    """One claim's place in line: ``seq`` orders it, ``at`` is when it arrived (the claims
    log's ``arrived_at``). Leave the line when done, queued or not (``with`` does it)."""

    seq: int
    at: datetime
    line: ArrivalLine = field(repr=False)

    def leave(self) -> None:
        self.line.leave(self.seq)

    def __enter__(self) -> Arrival:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave()


class ArrivalLine:
    """Places taken and not yet queued (or given up), oldest first."""

    def __init__(self, patience: float = DEFAULT_PATIENCE) -> None:
        if patience < 0:
            raise ValueError("patience must not be negative")
        self.patience = patience
        self._numbers = count()
        self._on_the_way: dict[int, float] = {}  # place -> monotonic time it was taken
        self._oldest: list[int] = []  # heap of places, some no longer on the way
        self._watchers: list[asyncio.Future[None]] = []
        self.passed_over = 0  # places whose patience ran out before they were queued

    def arrive(self, at: datetime) -> Arrival:
        """Take the next place in line (no await: the place is the moment of the call)."""
        seq = next(self._numbers)
        self._on_the_way[seq] = time.monotonic()
        heapq.heappush(self._oldest, seq)
        return Arrival(seq, at, self)

    def leave(self, seq: int) -> None:
        """The place is queued or given up: it holds no one up any more. Idempotent."""
        if self._on_the_way.pop(seq, None) is None:
            return
        # Places mostly leave oldest first: drop them from the heap here too, so a flood
        # that never reaches a queue (sold out, answered from memory) leaves nothing behind.
        oldest = self._oldest
        while oldest and oldest[0] not in self._on_the_way:
            heapq.heappop(oldest)
        if len(oldest) > 2 * len(self._on_the_way) + 64:  # left out of order, many
            self._oldest = list(self._on_the_way)  # ascending already: a valid heap
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            wake(watcher)

    @property
    def on_the_way(self) -> int:
        """How many places are taken and not yet queued."""
        return len(self._on_the_way)

    def first_on_the_way(self) -> tuple[int, float] | None:
        """(place, monotonic time its patience runs out) of the oldest place still on its
        way, or None. Places whose patience ran out stop holding anyone up here."""
        now = time.monotonic()
        while self._oldest:
            seq = self._oldest[0]
            taken = self._on_the_way.get(seq)
            if taken is None:
                heapq.heappop(self._oldest)
                continue
            if taken + self.patience > now:
                return seq, taken + self.patience
            heapq.heappop(self._oldest)
            del self._on_the_way[seq]
            self.passed_over += 1  # debug, not warning: a surge could log hundreds at once
            log.debug("claim place %s took over %.2fs to come forward", seq, self.patience)
        return None

    async def changed(self, until: float) -> None:
        """Wait until a place leaves the line, or until the monotonic time ``until``."""
        loop = asyncio.get_running_loop()
        watcher: asyncio.Future[None] = loop.create_future()
        self._watchers.append(watcher)
        timer = loop.call_at(loop.time() + max(0.0, until - time.monotonic()), wake, watcher)
        try:
            await watcher
        finally:
            timer.cancel()
            if watcher in self._watchers:
                self._watchers.remove(watcher)


def wake(watcher: asyncio.Future[None]) -> None:
    """Resolve a waiter's future unless it is done already (cancelled, or timed out)."""
    if not watcher.done():
        watcher.set_result(None)
