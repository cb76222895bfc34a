"""Rehearsal against the floor: ``dropcast rehearse``'s surge (N viewers open their personal
links at once) against a bare aiohttp handler that answers every link with a fixed 1.2 KB
page, then the full rehearsal (claim, reopen, pay) against dropcast on a fresh drop of 10
units, alternated; the claim p50 of each, their ratio, and dropcast's seconds-to-checkout.

Prints figures; it is not a test. Loopback only, bounded in count and time; each server
runs in its own process, as in production. The client is the rehearsal's own (aiohttp),
the same for both, so the ratio says what dropcast adds to the client's own cost.

    .venv/bin/python -m bench.rehearse [--viewers 1000] [--rounds 2] [--pg URL]

Target (issue 15): the claim p50 within 2× of the same rehearsal against the floor.
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench.checkout import (
    ADMIN,
    SECRET,
    create_drop,
    free_port,
    on_each_engine,
    serve_or_measure,
    server_options,
    spawn,
)
from dropcast.app import App
from dropcast.rehearse import Rehearsal, run_rehearsal

UNITS = 10  # the demo drop's


async def rounds(db_url: str, viewers: int, count: int) -> list[tuple[Rehearsal, Rehearsal]]:
    """``count`` pairs of (the floor's claims, dropcast's full rehearsal)."""
    from config.settings import Settings

    floor_port, app_port = free_port(), free_port()
    floor, base = f"http://127.0.0.1:{floor_port}", f"http://127.0.0.1:{app_port}"
    procs = [spawn("--serve-floor", str(floor_port)), spawn("--serve-app", str(app_port), db_url)]
    settings = Settings(
        database={"url": db_url},
        web={"public_url": base},
        security={"secret_key": SECRET, "admin_token": ADMIN, "link_ttl_seconds": 3600},
    )
    app = await App.open(settings, hand_off=True)  # beside the server, as the CLI runs
    pairs: list[tuple[Rehearsal, Rehearsal]] = []
    try:
        for _ in range(count):
            # Links are issued (and recorded) on a drop of their own for the floor's run.
            floor_drop = await create_drop(base, UNITS, hold_seconds=60)
            floor_run = await run_rehearsal(
                app,
                floor_drop,
                viewers=viewers,
                arrival="burst",
                url=floor,
                ramp_seconds=1,
                claims_only=True,
            )
            drop_id = await create_drop(base, UNITS, hold_seconds=60)
            ours = await run_rehearsal(
                app, drop_id, viewers=viewers, arrival="burst", url=base, ramp_seconds=1
            )
            pairs.append((floor_run, ours))
            show(floor_run, ours)
    finally:
        await app.close()
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
    return pairs


def show(floor: Rehearsal, ours: Rehearsal) -> None:
    f, o = floor.summary(), ours.summary()
    print(
        f"  floor    claim p50 {f['claim_p50_ms']:>8} ms  p99 {f['claim_p99_ms']:>8} ms  "
        f"errors {f['errors']}"
    )
    print(
        f"  dropcast claim p50 {o['claim_p50_ms']:>8} ms  p99 {o['claim_p99_ms']:>8} ms  "
        f"holds {o['holds']} paid {o['paid']} sold out {o['sold_out']} closed {o['closed']} "
        f"errors {o['errors']} "
        f"oversold {o['oversold']} holders refused {o['holders_refused']}  "
        f"seconds-to-checkout p50 {o['checkout_p50_s']} s"
    )
    print(f"  ratio    {o['claim_p50_ms'] / f['claim_p50_ms']:.2f}× the floor's p50\n", flush=True)


async def engine(name: str, db_url: str, viewers: int, count: int) -> None:
    print(f"{name}:")
    pairs = await rounds(db_url, viewers, count)
    ratios = [o.summary()["claim_p50_ms"] / f.summary()["claim_p50_ms"] for f, o in pairs]
    best = min(ratios)
    verdict = "met" if best <= 2 else "not met"
    median = statistics.median(ratios)
    print(
        f"{name}: claim p50 {best:.2f}× the floor's at best, median {median:.2f}×"
        f" (target ≤ 2×: {verdict})\n"
    )


async def main(args: argparse.Namespace) -> None:
    print(
        f"dropcast rehearse vs floor · {os.cpu_count()} CPUs · loopback · {args.viewers} viewers "
        f"at once, {UNITS} units · {args.rounds} rounds\n",
        flush=True,
    )

    async def measure(name: str, db_url: str) -> None:
        await engine(name, db_url, args.viewers, args.rounds)

    await on_each_engine(args.pg, measure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg", help="also PostgreSQL: a scratch database on this server")
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    server_options(parser)
    serve_or_measure(parser.parse_args(), main)
