"""Coalescing reads: many callers, few database round trips. ``FreshRead`` for a read that
must not be stale; ``SingleFlightCache`` for values that may be a little old;
``BatchedLookup`` for one value per key, many keys to a round trip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from commerce.clock import Clock

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class FreshRead(Generic[T]):
    """Runs ``read`` for concurrent callers at most once at a time, and gives every caller
    the result of a read that *began after it asked*: a caller arriving while a read runs
    waits for the next one, which all such callers share. So a surge of a thousand callers
    costs two or three reads, and nobody gets an answer older than their question (a cache
    or plain single-flight could hand out a read that began before a change they caused).
    """

    def __init__(self, read: Callable[[], Coroutine[Any, Any, T]]) -> None:
        self._read = read
        self._running: asyncio.Task[T] | None = None
        self._next: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        if self._running is None:
            self._running = self._start()
            return await asyncio.shield(self._running)
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        return await asyncio.shield(self._next)

    def _start(self) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.get_running_loop().create_task(self._read())
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[T]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: the callers re-raise it
        waiting, self._next = self._next, None
        self._running = None
        if waiting is None:
            return
        self._running = self._start()
        self._running.add_done_callback(lambda done: _settle(waiting, done))


def _settle(future: asyncio.Future[T], task: asyncio.Task[T]) -> None:
    if future.done():
        return
    if task.cancelled():
        future.cancel()
    elif (error := task.exception()) is not None:
        future.set_exception(error)
        future.exception()  # retrieved: the callers re-raise it
    else:
        future.set_result(task.result())


@dataclass(frozen=True, slots=True)
class _Cached(Generic[T]):
    version: Hashable
    # When the value lapses, worked out once as it lands rather than on every read (a
    # hot page reads it thousands of times a second): by time.monotonic(), and by the
    # injected clock when there is one.
    lapses: float
    lapses_as_of: datetime | None
    value: T


class SingleFlightCache(Generic[K, T]):
    """Values per key, loaded once however many callers ask at the same time (single
    flight), kept for ``ttl`` seconds. A caller may pass a ``version`` (e.g. the drop's
    event sequence): a value loaded for another version is not served. Failures are not
    cached. ``forget`` drops a value and disowns a load already under way: it may have read
    the database before the change, so nobody who asks after ``forget`` gets its result.

    With a ``clock``, values also lapse when the injected clock moves past the TTL (tests
    and holds that expire by filter move that clock, not the monotonic one). The load runs
    as its own task, so a caller that goes away does not fail the others waiting on it.
    """

    def __init__(
        self, load: Callable[[K], Awaitable[T]], *, ttl: float, clock: Clock | None = None
    ) -> None:
        self._load = load
        self._ttl = ttl
        self._clock = clock
        self._values: dict[K, _Cached[T]] = {}
        self._flights: dict[tuple[K, Hashable, int], asyncio.Future[T]] = {}
        self._generation: dict[K, int] = {}

    async def get(self, key: K, version: Hashable = None) -> T:
        cached = self._values.get(key)
        if cached is not None and cached.version == version and self._fresh(cached):
            return cached.value
        flight = (key, version, self._generation.get(key, 0))
        future = self._flights.get(flight)
        if future is None:
            future = self._flights[flight] = asyncio.ensure_future(self._load(key))
            future.add_done_callback(lambda done: self._landed(flight, done))
        return await asyncio.shield(future)

    def peek(self, key: K, version: Hashable = None) -> T | None:
        """What ``get`` would return without waiting, or None when it would load (a
        synchronous fast path for hot routes: no coroutine when the value is cached)."""
        cached = self._values.get(key)
        if cached is not None and cached.version == version and self._fresh(cached):
            return cached.value
        return None

    def forget(self, key: K) -> None:
        self._values.pop(key, None)
        self._generation[key] = self._generation.get(key, 0) + 1

    async def close(self) -> None:
        """Stop loads under way (at shutdown: none may hold a connection past it)."""
        flights = list(self._flights.values())
        for future in flights:
            future.cancel()
        await asyncio.gather(*flights, return_exceptions=True)
        self._values.clear()

    def _fresh(self, cached: _Cached[T]) -> bool:
        if time.monotonic() >= cached.lapses:
            return False
        return cached.lapses_as_of is None or (
            self._clock is not None and self._clock.now() < cached.lapses_as_of
        )

    def _landed(self, flight: tuple[K, Hashable, int], future: asyncio.Future[T]) -> None:
        self._flights.pop(flight, None)
        if future.cancelled() or future.exception() is not None:
            return  # retrieved: the callers re-raise it; nothing is cached
        key, version, generation = flight
        if generation == self._generation.get(key, 0):
            ttl, clock = self._ttl, self._clock
            lapses_as_of = clock.now() + timedelta(seconds=ttl) if clock is not None else None
            lapses = time.monotonic() + ttl
            self._values[key] = _Cached(version, lapses, lapses_as_of, future.result())


class BatchedLookup(Generic[K, V]):
    """One value per key, looked up for many keys at a time: keys asked for while a lookup
    runs wait for the next one, which takes them all, so a surge of a thousand first-time
    callers costs a few round trips instead of a thousand. Callers asking for a key already
    being looked up share that lookup. ``load`` returns a value for every key it is given.
    Nothing is cached here; a failed lookup fails the callers of that lookup only."""

    def __init__(self, load: Callable[[list[K]], Awaitable[Mapping[K, V]]]) -> None:
        self._load = load
        self._pending: dict[K, asyncio.Future[V]] = {}  # queued or being looked up
        self._queued: list[K] = []
        self._worker: asyncio.Task[None] | None = None

    async def get(self, key: K) -> V:
        future = self._pending.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._pending[key] = loop.create_future()
            self._queued.append(key)
            if self._worker is None or self._worker.done():
                self._worker = loop.create_task(self._drain())
        # A caller that goes away must not cancel the answer others wait for.
        return await asyncio.shield(future)

    async def _drain(self) -> None:
        while self._queued:
            keys, self._queued = self._queued, []
            try:
                found = await self._load(keys)
            except Exception as exc:
                for key in keys:
                    _answer(self._pending.pop(key), error=exc)
                continue
            for key in keys:
                future = self._pending.pop(key)
                if key in found:
                    _answer(future, value=found[key])
                else:
                    _answer(future, error=LookupError(f"the lookup returned nothing for {key!r}"))


def _answer(
    future: asyncio.Future[V], *, value: V | None = None, error: BaseException | None = None
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
        future.exception()  # retrieved: every caller re-raises it, even if none is left
    else:
        future.set_result(value)  # type: ignore[arg-type]
