"""Checkout benchmark (issue 15): dropcast against a floor, measured with wrk in one run.

Prints figures; it is not a test. Loopback only, bounded in time and count. Three kinds of
process: the floor (a bare aiohttp handler answering dropcast's paths with a fixed 1.2 KB
body), dropcast (as in production, rate limits off, pool 20), both on the event loop
``--loop`` names (default uvloop, as dropcast runs in production), and the load generator:
Debian's ``wrk`` (one thread, 200 connections, ``--seconds`` each run) for sustained load,
this process (aiohttp) for the one-shot surge of cold connections wrk cannot make.

    .venv/bin/python bench/checkout.py                 # SQLite in a temp dir
    .venv/bin/python bench/checkout.py --pg postgresql+asyncpg://postgres@127.0.0.1/test

With ``--pg`` it runs SQLite, then PostgreSQL in a scratch database on that server (created
and dropped), since PostgreSQL's claim target is relative to SQLite's. Every scenario
alternates floor, dropcast, floor, dropcast; the table shows the better of the two runs of
each (the one with more requests/s, with its own p99), the per-run figures follow it.

Scenarios: ``GET /c/{token}`` with stock left (every request a fresh signed link: a new
buyer, a new hold); ``GET /d/{id}`` and ``GET /api/drops/{id}``; 1000 buyers at once for 10
units (then: no oversell, and no holder told sold out, checked against the database); and
``GET /c/{token}`` on a drop sold out with nothing pending (fresh buyers).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from commerce.links import LinkSigner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SECRET = "bench-secret-key-0123456789abcdef"
ADMIN = "bench-admin-token-0123456789"
FLOOR_BODY = ("<!doctype html><html><body>" + "x" * 1200 + "</body></html>").encode()
LUA = Path(__file__).with_name("checkout.lua")
CONNECTIONS = 200
ROUNDS = 2  # floor, dropcast, floor, dropcast
SURGE_BUYERS, SURGE_UNITS = 1000, 10
SOLD_OUT = frozenset({409, 410})  # a sold-out capsule closes itself: "Sold out · closed" (410)


# -- servers (run in child processes) ------------------------------------------------------


async def serve_floor(port: int) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=FLOOR_BODY, content_type="text/html")

    app = web.Application()
    for path in ("/c/{token}", "/d/{drop_id}", "/api/drops/{drop_id}", "/healthz"):
        app.router.add_get(path, handler)
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
    from dropcast.app import settle_memory

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
    await _run(app, port, settle_memory)


async def _run(app: object, port: int, started: Callable[[], None] | None = None) -> None:
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)  # type: ignore[arg-type]
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    if started is not None:
        started()
    print("ready", flush=True)
    await asyncio.Event().wait()


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


def settle(base: str, deadline_seconds: float = 15.0) -> None:
    """Wait until the server just measured has worked off what wrk left in flight (its
    health check answers within 50 ms), so it does not steal the CPU from the next run."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                response.read()
        except OSError:
            pass
        if time.monotonic() - started < 0.05:
            return
        time.sleep(0.2)


# -- measurements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One measurement: requests/s, latency percentiles, answers by HTTP status."""

    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]
    socket_errors: int = 0
    paths_used: int = 0

    def answers(self) -> str:
        codes = " ".join(f"{k}×{v}" for k, v in sorted(self.statuses.items()))
        return codes + (f" socket-errors×{self.socket_errors}" if self.socket_errors else "")


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(
            "bench/checkout.py needs wrk, the HTTP load generator: `apt-get install wrk`"
            " (Debian's package), then run it again."
        )
    return found


def wrk(url: str, seconds: int, paths: Path | None = None, offset: int = 0) -> Run:
    """``wrk`` against ``url`` for ``seconds``; with ``paths``, one path of the file per
    request from ``offset`` (see checkout.lua). Figures from the script's JSON line."""
    args = [wrk_binary(), "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    args += ["--timeout", "30s", "-s", str(LUA), url]
    if paths is not None:
        args += ["--", str(paths), str(offset)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(line.removeprefix("WRK_JSON "))
    return Run(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses={int(k): v for k, v in data["statuses"].items()},
        socket_errors=sum(data["errors"].values()),
        paths_used=data["paths_used"],
    )


@dataclass
class Surge:
    """1000 requests sent at once on cold connections; each answer by URL."""

    run: Run
    answers: dict[str, str]  # url -> "held" | "sold out" | "other <status>" | "error <type>"


async def surge(urls: list[str]) -> Surge:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    answers: dict[str, str] = {}
    connector = aiohttp.TCPConnector(limit=len(urls))
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(url: str) -> None:
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    body = await response.text()
                    statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                answers[url] = f"error {type(exc).__name__}"
                return
            latencies.append(time.perf_counter() - started)
            if response.status == 200 and 'name="hold_id"' in body:
                answers[url] = "held"
            elif response.status in SOLD_OUT:
                answers[url] = "sold out"
            else:
                answers[url] = f"other {response.status}"

        started = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    run = Run(
        len(latencies) / elapsed, pct(0.5), pct(0.99), dict(statuses), len(urls) - len(latencies)
    )
    return Surge(run, answers)


@dataclass
class SurgeCheck:
    """After a surge on a drop of ``units``: holds in the database against the answers."""

    units: int
    held_answers: int
    holds: int  # units in active or converted holds, from the database
    api_in_use: int  # sold + held, from GET /api/drops/{id}
    api_total: int
    holders_told_sold_out: int
    holders_told_other: int
    held_without_hold: int
    others: Counter[str] = field(default_factory=Counter)

    @property
    def oversold(self) -> int:
        return max(0, self.holds - self.units, self.api_in_use - self.api_total)

    @property
    def ok(self) -> bool:
        return not (self.oversold or self.holders_told_sold_out or self.holders_told_other)

    def line(self) -> str:
        others = ", ".join(f"{k}×{v}" for k, v in sorted(self.others.items()))
        return (
            f"{self.held_answers} told held, {self.holds} units held in the database (of"
            f" {self.units}), oversold {self.oversold}, holders told sold out"
            f" {self.holders_told_sold_out}, holders told something else"
            f" {self.holders_told_other}, told held without a hold {self.held_without_hold}"
            + (f"; other answers: {others}" if others else "")
        )


async def check_surge(
    db_url: str, base: str, drop_id: int, units: int, buyers: dict[str, str], surged: Surge
) -> SurgeCheck:
    """``buyers``: url -> identity. Reads the drop's holds straight from the database."""
    from sqlalchemy import func, select
    from sqlalchemy.ext.asyncio import create_async_engine

    from commerce.domain.model import HoldStatus
    from commerce.storage.tables import holds, identities

    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(identities.c.identity, func.sum(holds.c.qty))
                .join(identities, identities.c.customer_id == holds.c.customer_id)
                .where(
                    holds.c.drop_id == drop_id,
                    holds.c.status.in_([HoldStatus.ACTIVE, HoldStatus.CONVERTED]),
                )
                .group_by(identities.c.identity)
            )
            held = {str(identity): int(qty) for identity, qty in rows}
    finally:
        await engine.dispose()
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/api/drops/{drop_id}") as response,
    ):
        state = await response.json()
    answer_of = {buyers[url]: answer for url, answer in surged.answers.items()}
    told_held = {who for who, answer in answer_of.items() if answer == "held"}
    return SurgeCheck(
        units=units,
        held_answers=len(told_held),
        holds=sum(held.values()),
        api_in_use=int(state["sold"]) + int(state["held"]),
        api_total=int(state["total"]),
        holders_told_sold_out=sum(answer_of.get(who) == "sold out" for who in held),
        holders_told_other=sum(answer_of.get(who) not in ("held", "sold out") for who in held),
        held_without_hold=len(told_held - held.keys()),
        others=Counter(a for a in answer_of.values() if a not in ("held", "sold out")),
    )


# -- dropcast setup -------------------------------------------------------------------------


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


async def sell_out(base: str, drop_id: int, signer: LinkSigner, units: int) -> None:
    """Claim and pay every unit so the drop is sold out with no hold pending."""
    from dropcast.rehearse import pay_form

    async with aiohttp.ClientSession() as session:
        for i in range(units):
            token, _ = signer.issue(drop_id, f"web:sold{i}@bench.test")
            async with session.get(f"{base}/c/{token}") as response:
                page = await response.text()
            form = pay_form(page, i)
            async with session.post(f"{base}/c/{token}/pay", data=form) as response:
                assert response.status == 200, await response.text()


def claim_paths(tmp: Path, signer: LinkSigner, drop_id: int, who: str, count: int) -> Path:
    """A file of ``count`` claim paths for ``drop_id``, each a fresh signed link for a new
    buyer. Kept for the next engine: its fresh database numbers its drops alike, and the
    buyers are new to it."""
    path = tmp / f"links-{who}-{drop_id}-{count}.txt"
    if not path.exists():
        issue = signer.issue
        with path.open("w") as out:
            for i in range(count):
                out.write(f"/c/{issue(drop_id, f'web:{who}{i}@bench.test')[0]}\n")
    return path


# -- scenarios and the table ----------------------------------------------------------------


@dataclass
class Row:
    path: str
    engine: str
    target: str
    floor: list[Run] = field(default_factory=list)
    app: list[Run] = field(default_factory=list)
    expected: frozenset[int] = frozenset({200})
    problems: list[str] = field(default_factory=list)  # why not met, beyond the figures
    meets: Callable[[Row], bool] = lambda row: True

    @staticmethod
    def best(runs: list[Run]) -> Run:
        return max(runs, key=lambda r: r.rps)

    @property
    def ratio(self) -> float:
        return self.best(self.app).rps / self.best(self.floor).rps

    @property
    def p99_times(self) -> float:
        return self.best(self.app).p99_ms / self.best(self.floor).p99_ms

    def met(self) -> bool:
        return not self.problems and self.meets(self)

    def audit(self, tokens: int = 0) -> None:
        """Unexpected answers, socket errors, or links replayed make a row unmet."""
        for i, run in enumerate(self.app, 1):
            wrong = {k: v for k, v in run.statuses.items() if k not in self.expected}
            if wrong or run.socket_errors:
                self.problems.append(f"dropcast run {i} answered {run.answers()}")
        if tokens and sum(r.paths_used for r in self.app) > tokens:
            used = sum(r.paths_used for r in self.app)
            self.problems.append(f"links exhausted: {used} requests for {tokens} links (replays)")


def show(base: str, label: str, run: Run) -> None:
    print(
        f"  {label:<44} {base:<9} {run.rps:9,.0f} req/s  p50 {run.p50_ms:8.1f} ms"
        f"  p99 {run.p99_ms:8.1f} ms  [{run.answers()}]",
        flush=True,
    )


def ratio_at_least(share: float) -> Callable[[Row], bool]:
    return lambda row: row.ratio >= share


def p99_within(times: float) -> Callable[[Row], bool]:
    return lambda row: row.p99_times <= times


def both(a: Callable[[Row], bool], b: Callable[[Row], bool]) -> Callable[[Row], bool]:
    return lambda row: a(row) and b(row)


def read_path(base: str, path: str, seconds: int) -> Run:
    return wrk(f"{base}{path}", seconds)


def alternate(row: Row, floor: str, app: str, measure: Callable[[str], Run]) -> None:
    """Floor, dropcast, floor, dropcast: ``measure(base)`` against each in turn."""
    for _ in range(ROUNDS):
        for label, base, runs in (("floor", floor, row.floor), ("dropcast", app, row.app)):
            runs.append(measure(base))
            show(label, f"{row.path} · {row.engine}", runs[-1])
            settle(base)


async def bench_engine(
    engine: str, db_url: str, floor: str, seconds: int, tokens: int, tmp: Path
) -> list[Row]:
    from commerce.clock import SystemClock
    from commerce.links import LinkSigner

    signer = LinkSigner(SECRET, SystemClock(), 3600)
    port = free_port()
    proc = spawn("--serve-app", str(port), db_url)
    app = f"http://127.0.0.1:{port}"
    rows: list[Row] = []
    try:
        stock_drop = await create_drop(app, 1_000_000)
        page_drop = await create_drop(app, 100)
        sold_drop = await create_drop(app, 5)
        await sell_out(app, sold_drop, signer, 5)
        started = time.perf_counter()
        stock_paths = claim_paths(tmp, signer, stock_drop, "s", tokens)
        sold_paths = claim_paths(tmp, signer, sold_drop, "o", tokens)
        print(
            f"{engine}: {tokens:,} signed links for each of 2 scenarios, ready in"
            f" {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        # 1000 buyers at once for 10 units, cold connections, then the oversell check.
        limit = 1.5 if engine == "SQLite" else 2.0
        row = Row(
            f"surge {SURGE_BUYERS} for {SURGE_UNITS}",
            engine,
            f"p99 ≤{limit:g}× · 0 oversell",
            expected=frozenset({200}) | SOLD_OUT,
            meets=p99_within(limit),
        )
        for rnd in range(ROUNDS):
            drop_id = await create_drop(app, SURGE_UNITS)
            buyers = {
                f"{app}/c/{signer.issue(drop_id, who)[0]}": who
                for who in (f"web:surge{rnd}-{i}@bench.test" for i in range(SURGE_BUYERS))
            }
            urls = list(buyers)
            floored = await surge([u.replace(app, floor) for u in urls])
            row.floor.append(floored.run)
            show("floor", f"{row.path} · {engine}", floored.run)
            surged = await surge(urls)
            row.app.append(surged.run)
            show("dropcast", f"{row.path} · {engine}", surged.run)
            checked = await check_surge(db_url, app, drop_id, SURGE_UNITS, buyers, surged)
            print(f"    check: {checked.line()}", flush=True)
            if not checked.ok:
                row.problems.append(f"surge {rnd + 1}: {checked.line()}")
            settle(app)
        row.audit()
        rows.append(row)

        # Claims with stock left: every request a fresh signed link, a new buyer, a new hold.
        # dropcast's runs share the file, each from where the last stopped; the floor takes
        # the same paths (any token will do for it).
        def links(paths: Path) -> Callable[[str], Run]:
            used = 0

            def measure(base: str) -> Run:
                nonlocal used
                if base == floor:
                    return wrk(f"{base}/c/x", seconds, paths)
                run = wrk(f"{base}/c/x", seconds, paths, used)
                used += run.paths_used
                return run

            return measure

        row = Row("GET /c/{token} stock left", engine, "")
        alternate(row, floor, app, links(stock_paths))
        row.audit(tokens)
        rows.append(row)

        # The drop page and the drop's JSON: read paths, cached views.
        for path in (f"/d/{page_drop}", f"/api/drops/{page_drop}"):
            label = f"GET {path.replace(str(page_drop), '{id}')}"
            row = Row(label, engine, "≥80%", meets=ratio_at_least(0.8))
            alternate(row, floor, app, functools.partial(read_path, path=path, seconds=seconds))
            row.audit()
            rows.append(row)

        # Sold out with nothing pending: fresh buyers, answered without a hold.
        row = Row(
            "GET /c/{token} sold out", engine, "≥90%", expected=SOLD_OUT, meets=ratio_at_least(0.9)
        )
        alternate(row, floor, app, links(sold_paths))
        row.audit(tokens)
        rows.append(row)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return rows


def claim_targets(rows: list[Row]) -> None:
    """Stock left: ≥40% of the floor on SQLite, ≥0.8× SQLite's ratio on PostgreSQL; p99
    within 5× the floor's on both."""
    claims = [r for r in rows if r.path == "GET /c/{token} stock left"]
    sqlite = next((r for r in claims if r.engine == "SQLite"), None)
    for row in claims:
        if row.engine == "SQLite":
            row.target, floor_ratio = "≥40% · p99 ≤5×", 0.4
        elif sqlite is not None:
            floor_ratio = 0.8 * sqlite.ratio
            row.target = f"≥{floor_ratio:.1%} (0.8×SQLite) · p99 ≤5×"
        else:
            row.target, floor_ratio = "(no SQLite figure)", float("inf")
        row.meets = both(ratio_at_least(floor_ratio), p99_within(5))


def table(rows: list[Row]) -> None:
    head = (
        f"{'path':<28} {'engine':<10} {'floor req/s':>11} {'dropcast req/s':>14} {'ratio':>6}"
        f" {'p99 floor':>10} {'p99 dropcast':>12}  {'target':<30} met?"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        floor, app = Row.best(r.floor), Row.best(r.app)
        print(
            f"{r.path:<28} {r.engine:<10} {floor.rps:>11,.0f} {app.rps:>14,.0f}"
            f" {r.ratio:>6.1%} {floor.p99_ms:>7.1f} ms {app.p99_ms:>9.1f} ms"
            f"  {r.target:<30} {'yes' if r.met() else 'NO'}"
        )
    print(
        "\nBest of 2 runs per side: the run with more req/s, with that run's p99 (other jobs"
        " on the machine only ever slow a run down). Ratio: dropcast req/s ÷ floor req/s."
    )
    for r in rows:
        runs = " / ".join(f"{x.rps:,.0f} ({x.p99_ms:.0f} ms)" for x in r.floor)
        apps = " / ".join(f"{x.rps:,.0f} ({x.p99_ms:.0f} ms)" for x in r.app)
        print(f"  {r.path} · {r.engine}: floor {runs}; dropcast {apps}")
        for problem in r.problems:
            print(f"    not met: {problem}")


async def postgres_scratch(url: str) -> tuple[str, Callable[[], Awaitable[None]]] | None:
    """A scratch database on the server of ``url``, and how to drop it."""
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"dropcast_bench_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(admin, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL: skipped ({exc})")
        return None
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(admin, timeout=5)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    return make_url(url).set(database=name).render_as_string(hide_password=False), drop


async def on_each_engine(pg: str | None, measure: Callable[[str, str], Awaitable[None]]) -> None:
    """``measure(engine name, database URL)`` on a scratch SQLite file, then, given a
    PostgreSQL server's URL, on a scratch database there (dropped after)."""
    with tempfile.TemporaryDirectory() as tmp:
        await measure("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db")
    scratch = await postgres_scratch(pg) if pg else None
    if scratch is not None:
        url, drop = scratch
        try:
            await measure("PostgreSQL", url)
        finally:
            await drop()


# The servers' event loop: dropcast's own setting, handed to the child processes.
LOOP_ENV = "DROPCAST_RUNTIME__EVENT_LOOP"


def server_options(parser: argparse.ArgumentParser) -> None:
    """The options every bench with a floor takes: ``--loop``, and the hidden ones a child
    process serves by."""
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop of both servers, floor and dropcast (default uvloop, dropcast's"
        " default runtime.event_loop)",
    )
    parser.add_argument("--serve-floor", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-app", nargs=2, help=argparse.SUPPRESS)


def serve_or_measure(
    ns: argparse.Namespace, measure: Callable[[argparse.Namespace], Coroutine[Any, Any, None]]
) -> None:
    """A child process serves the floor or dropcast (``--serve-floor``/``--serve-app``) on
    the event loop the parent was given (``--loop``): the floor is aiohttp on the same loop
    as dropcast. The parent measures."""
    from dropcast.app import event_loop_factory

    if ns.serve_floor or ns.serve_app:
        loop_factory = event_loop_factory(os.environ.get(LOOP_ENV, "uvloop"))
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            if ns.serve_floor:
                runner.run(serve_floor(ns.serve_floor))
            else:
                runner.run(serve_dropcast(int(ns.serve_app[0]), ns.serve_app[1]))
    else:
        os.environ[LOOP_ENV] = ns.loop
        print(f"servers' event loop: {ns.loop} (--loop)", flush=True)
        asyncio.run(measure(ns))


async def main(args: argparse.Namespace) -> None:
    wrk_binary()
    floor_port = free_port()
    floor_proc = spawn("--serve-floor", str(floor_port))
    floor = f"http://127.0.0.1:{floor_port}"
    print(
        f"dropcast checkout bench · {os.cpu_count()} CPUs · loopback · wrk 1 thread,"
        f" {CONNECTIONS} connections, {args.seconds} s a run · floor, dropcast ×{ROUNDS}\n",
        flush=True,
    )
    rows: list[Row] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = f"sqlite+aiosqlite:///{tmp}/bench.db"
            rows += await bench_engine("SQLite", db, floor, args.seconds, args.tokens, Path(tmp))
            scratch = await postgres_scratch(args.pg) if args.pg else None
            if scratch is not None:
                pg_url, drop = scratch
                try:
                    rows += await bench_engine(
                        "PostgreSQL", pg_url, floor, args.seconds, args.tokens, Path(tmp)
                    )
                finally:
                    await drop()
    finally:
        floor_proc.terminate()
        floor_proc.wait(timeout=10)
    claim_targets(rows)
    table(rows)


def positive(text: str) -> int:
    if (value := int(text)) < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg",
        help="also PostgreSQL, after SQLite: a scratch database on this server"
        " (postgresql+asyncpg://…)",
    )
    parser.add_argument("--seconds", type=positive, default=10, help="each wrk run (default 10)")
    parser.add_argument(
        "--tokens",
        type=positive,
        default=300_000,
        help="signed links per scenario, shared by its dropcast runs (default 300000)",
    )
    server_options(parser)
    serve_or_measure(parser.parse_args(), main)
