"""Claim-path benchmark: 1000 concurrent distinct claimers on 10 units.

Prints claims/s and p50/p99 latency for the real claim path (ClaimService.claim) on SQLite
and PostgreSQL, and for an in-memory floor of the same HTTP-free call, with the ratio.
Not a test: run ``.venv/bin/python -m bench.claims`` (PostgreSQL from DROPCAST_BENCH_PG_URL,
default postgres@127.0.0.1:5432; a scratch database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bench.checkout import postgres_scratch
from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome, ClaimResult
from commerce.dropfile import validate_spec
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade

PG_URL = os.environ.get(
    "DROPCAST_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

SPEC = {
    "drop": {"title": "bench", "format": "capsule", "hold_seconds": 60},
    "products": [{"sku": "BENCH", "title": "Bench unit", "price": "1.00"}],
    "items": [{"sku": "BENCH", "pools": {"ship": 10}}],
}


@dataclass
class Figures:
    name: str
    seconds: float
    latencies: list[float]
    held: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, p: float) -> float:
        return statistics.quantiles(self.latencies, n=100)[int(p) - 1] * 1000


class InMemoryClaims:
    """The floor: the same decision (live, per-customer limit, stock) with no database."""

    def __init__(self, units: int, limit: int = 1) -> None:
        self.available = units
        self.limit = limit
        self.taken: dict[int, int] = {}
        self.lock = asyncio.Lock()

    async def claim(self, drop_id: int, customer_id: int) -> ClaimOutcome:
        async with self.lock:
            if self.taken.get(customer_id, 0) >= self.limit:
                return ClaimOutcome.ALREADY_HELD
            if self.available < 1:
                return ClaimOutcome.SOLD_OUT
            self.available -= 1
            self.taken[customer_id] = self.taken.get(customer_id, 0) + 1
            return ClaimOutcome.HELD


async def burst(
    name: str, claim: Callable[[int, int], Awaitable[object]], drop_id: int, buyers: list[int]
) -> Figures:
    latencies: list[float] = []
    held = 0

    async def one(customer: int) -> None:
        nonlocal held
        start = time.perf_counter()
        result = await claim(drop_id, customer)
        latencies.append(time.perf_counter() - start)
        outcome = result.outcome if isinstance(result, ClaimResult) else result
        held += outcome is ClaimOutcome.HELD

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in buyers))
    return Figures(name, time.perf_counter() - start, latencies, held)


async def real_path(name: str, url: str, claimers: int) -> Figures:
    db = Database(url, pool_size=20)
    try:
        await upgrade(db)
        commerce = Commerce.build(db)
        drop_id = await commerce.drops.create(validate_spec(SPEC))
        await commerce.drops.open(drop_id)
        buyers = [await commerce.customers.resolve(f"web:b{i}@bench.test") for i in range(claimers)]
        return await burst(name, commerce.claims.claim, drop_id, buyers)
    finally:
        await db.dispose()


async def postgres_figures(claimers: int) -> Figures | None:
    scratch = await postgres_scratch(PG_URL)
    if scratch is None:
        return None
    url, drop = scratch
    try:
        return await real_path("postgresql", url, claimers)
    finally:
        await drop()


async def main(claimers: int) -> None:
    floor_engine = InMemoryClaims(10)
    floor = await burst("in-memory floor", floor_engine.claim, 1, list(range(claimers)))
    results = [floor]
    with tempfile.TemporaryDirectory() as tmp:
        results.append(
            await real_path("sqlite", f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}", claimers)
        )
    pg = await postgres_figures(claimers)
    if pg is not None:
        results.append(pg)
    print(f"{claimers} concurrent distinct claimers, 10 units")
    print(f"{'path':<18} {'claims/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'held':>5} {'x floor':>9}")
    for r in results:
        print(
            f"{r.name:<18} {r.rate:>10.0f} {r.pct(50):>9.2f} {r.pct(99):>9.2f} {r.held:>5} "
            f"{floor.rate / r.rate:>8.1f}x"
        )
    assert all(r.held == 10 for r in results), "oversell or undersell!"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claimers", type=int, default=1000)
    asyncio.run(main(parser.parse_args().claimers))
