"""Checkout benchmark: a bare aiohttp handler (the floor) against dropcast's GET /c/{token}.

Prints figures; it is not a test. Loopback only and bounded in time. Each server runs in its
own process (as in production); this process only generates load.

    .venv/bin/python bench/checkout.py                    # SQLite in a temp dir
    .venv/bin/python bench/checkout.py --pg postgresql+asyncpg://postgres@127.0.0.1/bench

Scenarios: (a) 1000 buyers with distinct links arrive at once for 10 units; (b) 200
concurrent connections for 10 s with stock left (every request places a new hold);
(c) 1000 buyers at once for a drop already sold out with nothing pending (the in-memory gate).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-key-0123456789abcdef"
ADMIN = "bench-admin-token-0123456789"
FLOOR_BODY = ("<!doctype html><html><body>" + "x" * 1200 + "</body></html>").encode()


# -- servers (run in child processes) ------------------------------------------------------


async def serve_floor(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=FLOOR_BODY, content_type="text/html")

    app = web.Application()
    app.router.add_get("/c/{token}", handler)
    await _run(app, port)


async def serve_dropcast(port: int, db_url: str) -> None:
    from commerce.clock import SystemClock
    from commerce.core import Commerce
    from commerce.links import LinkSigner
    from commerce.payments import build_gateways
    from commerce.storage.database import Database
    from commerce.storage.migrate import upgrade
    from commerce.web.app import create_app
    from config.settings import Settings

    settings = Settings(
        database={"url": db_url, "pool_size": 20},
        web={"claim_rate_per_ip": 0, "claim_rate_per_customer": 0},
        security={"secret_key": SECRET, "admin_token": ADMIN, "link_ttl_seconds": 3600},
    )
    db = Database(db_url, pool_size=20)
    await upgrade(db)
    commerce = Commerce.build(db, clock=SystemClock())
    signer = LinkSigner(SECRET, commerce.clock, 3600)
    app = create_app(
        commerce, settings, signer, build_gateways(settings.payments, commerce.clock), secret=SECRET
    )
    await _run(app, port)


async def _run(app: object, port: int) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- load -----------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    latencies: list[float]
    statuses: Counter[int]
    elapsed: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.elapsed

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self, floor: Result | None = None) -> str:
        ratio = ""
        if floor is not None:
            ratio = (
                f"  rps {self.rps / floor.rps:5.0%} of floor,"
                f" p99 {self.pct(0.99) / floor.pct(0.99):5.1f}x floor"
            )
        codes = " ".join(f"{k}:{v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.name:<34} {self.rps:8.0f} req/s  p50 {self.pct(0.5):7.1f} ms"
            f"  p99 {self.pct(0.99):7.1f} ms  [{codes}]{ratio}"
        )


async def surge(name: str, urls: list[str]) -> Result:
    connector = aiohttp.TCPConnector(limit=len(urls), force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()

        async def one(url: str) -> None:
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return Result(name, latencies, statuses, time.perf_counter() - started)


async def sustained(name: str, next_url: object, connections: int, seconds: float) -> Result:
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                async with session.get(next_url()) as response:  # type: ignore[operator]
                    await response.read()
                    statuses[response.status] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return Result(name, latencies, statuses, time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"server {args} did not start")
    return proc


async def create_drop(base: str, units: int, hold_seconds: int = 600) -> int:
    spec = {
        "drop": {"title": "Bench capsule", "hold_seconds": hold_seconds},
        "products": [{"sku": "BENCH", "title": "Bench item", "price": "5.00"}],
        "items": [{"sku": "BENCH", "pools": {"ship": units}}],
    }
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(f"{base}/api/drops", json=spec) as response:
            drop_id = int((await response.json())["id"])
        async with session.post(f"{base}/api/drops/{drop_id}/open") as response:
            assert response.status == 200
    return drop_id


async def sell_out(base: str, drop_id: int, signer: object, units: int) -> None:
    """Claim and pay every unit so the drop is sold out with no hold pending."""
    from dropcast.rehearse import pay_form

    async with aiohttp.ClientSession() as session:
        for i in range(units):
            token, _ = signer.issue(drop_id, f"web:sold{i}@bench.test")  # type: ignore[attr-defined]
            async with session.get(f"{base}/c/{token}") as response:
                page = await response.text()
            form = pay_form(page, i)
            async with session.post(f"{base}/c/{token}/pay", data=form) as response:
                assert response.status == 200, await response.text()


async def main(args: argparse.Namespace) -> None:
    from commerce.clock import SystemClock
    from commerce.links import LinkSigner

    signer = LinkSigner(SECRET, SystemClock(), 3600)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.pg or f"sqlite+aiosqlite:///{tmp}/bench.db"
        floor_port, app_port = free_port(), free_port()
        procs = [
            spawn("--serve-floor", str(floor_port)),
            spawn("--serve-app", str(app_port), db_url),
        ]
        try:
            floor, app = f"http://127.0.0.1:{floor_port}", f"http://127.0.0.1:{app_port}"
            engine = "PostgreSQL" if args.pg else "SQLite"
            print(f"dropcast checkout bench · {engine} · {os.cpu_count()} CPUs · loopback\n")
            counter = itertools.count()

            # (a) the surge
            floor_a = await surge(
                "(a) floor: 1000 at once", [f"{floor}/c/x{i}" for i in range(1000)]
            )
            drop_a = await create_drop(app, 10)
            urls = [
                f"{app}/c/{signer.issue(drop_a, f'web:a{i}@bench.test')[0]}" for i in range(1000)
            ]
            app_a = await surge("(a) GET /c/{token}: 1000 for 10", urls)
            print(floor_a.line())
            print(app_a.line(floor_a))
            # The same 1000 buyers on a fresh drop: customers now exist (no insert per buyer).
            drop_a2 = await create_drop(app, 10)
            urls = [
                f"{app}/c/{signer.issue(drop_a2, f'web:a{i}@bench.test')[0]}" for i in range(1000)
            ]
            print((await surge("(a') same, returning customers", urls)).line(floor_a))

            # (b) sustained, stock left: every request is a new buyer and a new hold
            floor_b = await sustained(
                "(b) floor: 200 conns", lambda: f"{floor}/c/x", 200, args.seconds
            )
            drop_b = await create_drop(app, 1_000_000)

            def next_url() -> str:
                token, _ = signer.issue(drop_b, f"web:b{next(counter)}@bench.test")
                return f"{app}/c/{token}"

            app_b = await sustained(
                f"(b) GET /c/{{token}}: 200 conns {args.seconds:.0f}s", next_url, 200, args.seconds
            )
            print(floor_b.line())
            print(app_b.line(floor_b))

            # (c) sold out, nothing pending: answered from memory
            drop_c = await create_drop(app, 5)
            await sell_out(app, drop_c, signer, 5)
            urls = [
                f"{app}/c/{signer.issue(drop_c, f'web:c{i}@bench.test')[0]}" for i in range(1000)
            ]
            app_c = await surge("(c) GET /c/{token}: sold out, gated", urls)
            print(app_c.line(floor_a))
            print(
                "\nTargets (issue 3): (b) >= 60% of floor rps; (a) p99 <= 1.5x floor p99;"
                " (c) no database round trip."
            )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL URL (postgresql+asyncpg://…); default SQLite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-app", nargs=2, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.serve_floor:
        asyncio.run(serve_floor(ns.serve_floor))
    elif ns.serve_app:
        asyncio.run(serve_dropcast(int(ns.serve_app[0]), ns.serve_app[1]))
    else:
        asyncio.run(main(ns))
