"""Scale-out benchmark: claims/s through HTTP with 1, 2 and 4 web processes sharing one
PostgreSQL, and each figure's ratio to one process.

Not a test. ``.venv/bin/python -m bench.scale [--claims 3000] [--processes 1 2 4]``; uses a
scratch database on DROPCAST_BENCH_PG_URL (default postgres@127.0.0.1:5432) and sends
traffic to 127.0.0.1 only. Every claim is a distinct buyer on a drop with ample stock, so
each one is a real hold (the write path), not a sold-out answer from memory. On a 2-core
machine the client and the servers share the cores: expect the curve to flatten early.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from bench.claims import PG_URL
from commerce.clock import SystemClock
from commerce.core import Commerce
from commerce.dropfile import validate_spec
from commerce.links import LinkSigner
from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from tests.e2e.processes import free_port, kill, start_dropcast
from tests.e2e.test_demo import wait_healthy

ENV = {
    "DROPCAST_WEB__CLAIM_RATE_PER_IP": "0",
    "DROPCAST_WEB__CLAIM_RATE_PER_CUSTOMER": "0",
    "DROPCAST_LOG__LEVEL": "WARNING",
}


async def one_setting(url: str, processes: int, claims: int, workdir: Path) -> tuple[float, float]:
    db = Database(url)
    commerce = Commerce.build(db)
    signer = LinkSigner(await commerce.secret_key(), SystemClock())
    spec = {
        "drop": {"title": f"scale x{processes}", "format": "capsule"},
        "products": [{"sku": "SCALE", "title": "Scale unit", "price": "1.00"}],
        "items": [{"sku": "SCALE", "pools": {"ship": claims * 2}}],
    }
    drop_id = await commerce.drops.create(validate_spec(spec))
    await commerce.drops.open(drop_id)
    ports = [free_port() for _ in range(processes)]
    servers = [
        await start_dropcast(url, port, workdir / f"x{processes}-{i}.log", "--role", "web", **ENV)
        for i, port in enumerate(ports)
    ]
    try:
        for port in ports:
            await wait_healthy(f"http://127.0.0.1:{port}")
        run = uuid.uuid4().hex[:6]
        tokens = [signer.issue(drop_id, f"web:s{run}-{i}@bench.test")[0] for i in range(claims)]
        latencies: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:

            async def claim(i: int, token: str) -> None:
                started = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{ports[i % processes]}/c/{token}") as r:
                    await r.read()
                    assert r.status == 200, r.status
                latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(claim(i, t) for i, t in enumerate(tokens)))
            elapsed = time.perf_counter() - started
        return claims / elapsed, statistics.quantiles(latencies, n=100)[98] * 1000
    finally:
        for server in servers:
            kill(server)
            await server.wait()
        await db.dispose()


async def main(claims: int, settings: list[int]) -> None:
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"dropcast_scale_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin, timeout=5)
    await conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        db = Database(url)
        await upgrade(db)
        await db.dispose()
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for processes in settings:
                rate, p99 = await one_setting(url, processes, claims, Path(tmp))
                rows.append((processes, rate, p99))
        base = rows[0][1]
        print(f"{claims} distinct claims per setting, PostgreSQL, HTTP GET /c/{{token}}")
        print(f"{'web processes':>14} {'claims/s':>10} {'p99 ms':>9} {'x one':>7}")
        for processes, rate, p99 in rows:
            print(f"{processes:>14} {rate:>10.0f} {p99:>9.1f} {rate / base:>6.2f}x")
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=3000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    asyncio.run(main(args.claims, args.processes))
