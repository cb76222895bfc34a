"""FreshRead: concurrent callers share reads, and nobody gets a read older than their ask.
SingleFlightCache: one load per key however many ask, kept for a TTL or a version.
BatchedLookup: many keys to a lookup, one lookup per key in flight."""

from __future__ import annotations

import asyncio

import pytest

from commerce.clock import ManualClock
from commerce.fresh import BatchedLookup, FreshRead, SingleFlightCache
from tests.helpers import eventually


class Source:
    """A value that changes; each read sees it as of the moment the read began."""

    def __init__(self) -> None:
        self.value = 0
        self.reads = 0
        self.release = asyncio.Event()

    async def read(self) -> int:
        self.reads += 1
        seen = self.value
        await self.release.wait()
        return seen


async def test_a_surge_of_callers_shares_a_read_or_two() -> None:
    source = Source()
    fresh = FreshRead(source.read)
    calls = [asyncio.ensure_future(fresh()) for _ in range(500)]
    await asyncio.sleep(0)
    source.release.set()
    assert await asyncio.gather(*calls) == [0] * 500
    assert source.reads <= 2


async def test_a_caller_arriving_during_a_read_gets_a_read_begun_after_it_asked() -> None:
    source = Source()
    fresh = FreshRead(source.read)
    early = asyncio.ensure_future(fresh())
    while not source.reads:  # the first read has begun and seen 0
        await asyncio.sleep(0)
    source.value = 1  # a change commits; whoever asks now must see it
    late = [asyncio.ensure_future(fresh()) for _ in range(3)]
    await asyncio.sleep(0)
    source.release.set()
    assert await early == 0
    assert await asyncio.gather(*late) == [1, 1, 1]
    assert source.reads == 2
    assert await fresh() == 1 and source.reads == 3  # idle again: a new read


async def test_a_failed_read_fails_its_callers_only() -> None:
    failures = iter([RuntimeError("database away"), None])

    async def read() -> str:
        await asyncio.sleep(0)
        error = next(failures)
        if error is not None:
            raise error
        return "ok"

    fresh = FreshRead(read)
    first = asyncio.ensure_future(fresh())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(fresh())
    with pytest.raises(RuntimeError, match="database away"):
        await first
    assert await second == "ok"


async def test_a_cancelled_caller_does_not_cancel_the_read_for_the_others() -> None:
    source = Source()
    fresh = FreshRead(source.read)
    quitter = asyncio.ensure_future(fresh())
    stayer = asyncio.ensure_future(fresh())
    await asyncio.sleep(0)
    quitter.cancel()
    source.release.set()
    assert await stayer == 0
    assert quitter.cancelled()


# -- SingleFlightCache: values that may be a little old, loaded once per surge -------------


class Loads:
    """Counts loads per key; each load waits for ``release`` and returns (key, n-th load)."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.release = asyncio.Event()
        self.fail = False

    async def load(self, key: str) -> tuple[str, int]:
        self.count[key] = self.count.get(key, 0) + 1
        seen = self.count[key]
        await self.release.wait()
        if self.fail:
            raise RuntimeError("database down")
        return key, seen


async def test_a_surge_on_one_key_costs_one_load_and_keys_stay_apart() -> None:
    loads = Loads()
    cache: SingleFlightCache[str, tuple[str, int]] = SingleFlightCache(loads.load, ttl=60)
    calls = [asyncio.ensure_future(cache.get(key)) for key in ["a"] * 300 + ["b"] * 3]
    loads.release.set()
    results = await asyncio.gather(*calls)
    assert set(results) == {("a", 1), ("b", 1)}
    assert loads.count == {"a": 1, "b": 1}
    assert await cache.get("a") == ("a", 1)  # kept for its TTL


async def test_a_new_version_or_a_lapsed_ttl_loads_again() -> None:
    clock = ManualClock()
    loads = Loads()
    loads.release.set()
    cache: SingleFlightCache[str, tuple[str, int]] = SingleFlightCache(
        loads.load, ttl=5, clock=clock
    )
    assert await cache.get("a", version=1) == ("a", 1)
    assert await cache.get("a", version=1) == ("a", 1)
    assert await cache.get("a", version=2) == ("a", 2)  # e.g. a stock tick
    clock.advance(5)
    assert await cache.get("a", version=2) == ("a", 3)


async def test_peek_answers_what_get_would_without_loading() -> None:
    clock = ManualClock()
    loads = Loads()
    loads.release.set()
    cache: SingleFlightCache[str, tuple[str, int]] = SingleFlightCache(
        loads.load, ttl=5, clock=clock
    )
    assert cache.peek("a") is None and loads.count == {}  # nothing cached: no load either
    assert await cache.get("a") == ("a", 1)
    assert cache.peek("a") == ("a", 1) and cache.peek("a", version=2) is None
    cache.forget("a")
    assert cache.peek("a") is None
    assert await cache.get("a") == ("a", 2)
    clock.advance(5)
    assert cache.peek("a") is None and loads.count == {"a": 2}


async def test_a_failed_load_is_not_cached_and_a_gone_caller_fails_nobody() -> None:
    loads = Loads()
    cache: SingleFlightCache[str, tuple[str, int]] = SingleFlightCache(loads.load, ttl=60)
    gone = asyncio.ensure_future(cache.get("a"))
    staying = asyncio.ensure_future(cache.get("a"))
    await asyncio.sleep(0)
    gone.cancel()
    loads.release.set()
    assert await staying == ("a", 1)
    cache.forget("a")
    loads.fail = True
    with pytest.raises(RuntimeError):
        await cache.get("a")
    loads.fail = False
    assert await cache.get("a") == ("a", 3)


async def test_close_stops_the_loads_under_way() -> None:
    loads = Loads()  # never released: a load that would outlive the process
    cache: SingleFlightCache[str, tuple[str, int]] = SingleFlightCache(loads.load, ttl=60)
    waiting = asyncio.ensure_future(cache.get("a"))
    await eventually(lambda: loads.count, what="the load to start")
    await cache.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


# -- BatchedLookup --------------------------------------------------------------------------


class Lookups:
    """A load that records the keys of each call and waits until released."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_with: Exception | None = None

    async def load(self, keys: list[int]) -> dict[int, str]:
        self.calls.append(list(keys))
        await self.release.wait()
        if self.fail_with is not None:
            raise self.fail_with
        return {k: f"v{k}" for k in keys if k != 13}


async def test_a_surge_of_keys_costs_two_lookups_and_shared_keys_one():
    lookups = Lookups()
    batched = BatchedLookup(lookups.load)
    first = asyncio.ensure_future(batched.get(1))
    await eventually(lambda: lookups.calls == [[1]])
    rest = [asyncio.ensure_future(batched.get(k)) for k in (2, 3, 1, 2, 4)]
    lookups.release.set()
    assert await first == "v1"
    assert await asyncio.gather(*rest) == ["v2", "v3", "v1", "v2", "v4"]
    # Key 1 was being looked up: its second caller shared that lookup.
    assert lookups.calls == [[1], [2, 3, 4]]


async def test_a_caller_going_away_does_not_cancel_the_others():
    lookups = Lookups()
    batched = BatchedLookup(lookups.load)
    leaving = asyncio.ensure_future(batched.get(7))
    staying = asyncio.ensure_future(batched.get(7))
    await eventually(lambda: lookups.calls == [[7]])
    leaving.cancel()
    lookups.release.set()
    assert await staying == "v7"
    assert leaving.cancelled()


async def test_a_failed_lookup_fails_its_callers_only_and_a_missing_key_is_named():
    lookups = Lookups()
    batched = BatchedLookup(lookups.load)
    lookups.fail_with = RuntimeError("database gone")
    lookups.release.set()
    with pytest.raises(RuntimeError, match="database gone"):
        await batched.get(1)
    lookups.fail_with = None
    assert await batched.get(1) == "v1"
    with pytest.raises(LookupError, match="13"):
        await batched.get(13)
