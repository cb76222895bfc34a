"""The sell-out moment alone, several rounds: 1000 buyers at once (cold connections) for a
fresh drop of 10 units, then the same 1000 requests against the floor (a bare aiohttp
handler, its own process); each round's p99 and their ratio. ``bench/checkout.py`` runs
this scenario twice among the others; this repeats it, since one surge is a noisy figure.

Prints figures; it is not a test. Loopback only, bounded in count and time.

    .venv/bin/python -m bench.surge [--rounds 4] [--pg URL]

Target (issue 15): p99 within 1.5× of the floor's on SQLite, 2× on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics

from bench.checkout import (
    SECRET,
    create_drop,
    free_port,
    on_each_engine,
    serve_or_measure,
    server_options,
    spawn,
    surge,
)
from commerce.clock import SystemClock
from commerce.links import LinkSigner

BUYERS, UNITS = 1000, 10


async def rounds(name: str, db_url: str, count: int, target: float) -> None:
    app_port, floor_port = free_port(), free_port()
    procs = [spawn("--serve-app", str(app_port), db_url), spawn("--serve-floor", str(floor_port))]
    base, floor = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{floor_port}"
    signer = LinkSigner(SECRET, SystemClock(), 3600)
    ratios: list[float] = []
    try:
        for r in range(count):
            drop_id = await create_drop(base, UNITS)
            urls = [
                f"{base}/c/{signer.issue(drop_id, f'web:surge{r}-{i}@bench.test')[0]}"
                for i in range(BUYERS)
            ]
            ours = await surge(urls)
            theirs = await surge([f"{floor}/c/x{i}" for i in range(BUYERS)])
            ratio = ours.run.p99_ms / theirs.run.p99_ms
            ratios.append(ratio)
            print(
                f"  {name} round {r + 1}: dropcast p99 {ours.run.p99_ms:.0f} ms, "
                f"floor p99 {theirs.run.p99_ms:.0f} ms, {ratio:.2f}×",
                flush=True,
            )
            await asyncio.sleep(2)  # let the server work off what is left before the next
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    verdict = "met" if statistics.median(ratios) <= target else "not met"
    print(
        f"{name}: p99 {min(ratios):.2f}–{max(ratios):.2f}× the floor's, median "
        f"{statistics.median(ratios):.2f}× (target ≤ {target:g}×: {verdict})\n"
    )


async def main(args: argparse.Namespace) -> None:
    print(f"the sell-out moment: {BUYERS} buyers at once for {UNITS} units, {args.rounds} rounds")

    async def measure(name: str, db_url: str) -> None:
        await rounds(name, db_url, args.rounds, 1.5 if name == "SQLite" else 2.0)

    await on_each_engine(args.pg, measure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg", help="also PostgreSQL: a scratch database on this server")
    parser.add_argument("--rounds", type=int, default=4)
    server_options(parser)
    serve_or_measure(parser.parse_args(), main)
