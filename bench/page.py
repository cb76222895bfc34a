"""Drop page benchmark: wrk against a bare aiohttp handler returning a fixed 1.2 KB page (the
floor), then against dropcast's GET /d/{id} and GET /api/drops/{id}, in the same run.

Prints figures; it is not a test. Loopback only and bounded in time. Each server runs in its
own process, as in production; wrk (``apt-get install wrk``) generates the load.

    .venv/bin/python -m bench.page [--seconds 10] [--connections 200] [--pg URL]

Rows: the page and the JSON (200s), the same with the ETag sent back (304s), each after a
run of the floor.
Target (issue 15): the drop page at least 80% of the floor's requests per second.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from bench.checkout import create_drop, free_port, serve_or_measure, server_options

ROOT = Path(__file__).resolve().parent.parent
RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
LATENCY = re.compile(r"Latency\s+([\d.]+\w+)")


def spawn(*args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.page", *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit(f"server {args} did not start")
    return proc


def etag_of(url: str) -> str:
    with urllib.request.urlopen(url) as response:
        return str(response.headers["ETag"])


def wrk(name: str, url: str, seconds: float, connections: int, *headers: str) -> float:
    """Requests per second of ``url`` under wrk, printed with its mean latency."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", url]
    for header in headers:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(RATE.search(out)[1])  # type: ignore[index]
    latency = LATENCY.search(out)
    errors = NON_2XX.search(out)
    note = f"  non-2xx/3xx {errors[1]}" if errors else ""
    print(f"{name:<38} {rate:9.0f} req/s  mean {latency[1] if latency else '?':>8}{note}")
    return rate


async def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.pg or f"sqlite+aiosqlite:///{tmp}/bench.db"
        floor_port, app_port = free_port(), free_port()
        procs = [
            spawn("--serve-floor", str(floor_port)),
            spawn("--serve-app", str(app_port), db_url),
        ]
        try:
            floor, app = f"http://127.0.0.1:{floor_port}", f"http://127.0.0.1:{app_port}"
            drop_id = await create_drop(app, 1_000)
            engine = "PostgreSQL" if args.pg else "SQLite"
            print(
                f"dropcast drop page bench · {engine} · {os.cpu_count()} CPUs · loopback · "
                f"wrk {args.connections} connections, {args.seconds:.0f} s each\n"
            )
            seconds, conns = args.seconds, args.connections
            page_url, json_url = f"{app}/d/{drop_id}", f"{app}/api/drops/{drop_id}"
            rows = [
                ("GET /d/{id}", page_url, ()),
                ("GET /api/drops/{id}", json_url, ()),
                ("GET /d/{id}, If-None-Match (304)", page_url, (etag_of(page_url),)),
                ("GET /api/drops/{id}, If-None-Match (304)", json_url, (etag_of(json_url),)),
            ]
            # The floor again before each row: other load on the machine drifts, the ratio
            # of two neighbouring runs much less.
            for name, url, etags in rows:
                base = wrk("floor: fixed 1.2 KB page", f"{floor}/d/1", seconds, conns)
                headers = [f"If-None-Match: {etag}" for etag in etags]
                rate = wrk(name, url, seconds, conns, *headers)
                print(f"{'':<38} {rate / base:9.0%} of floor\n")
            print("\nTarget (issue 15): GET /d/{id} >= 80% of the floor.")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pg", help="PostgreSQL URL (postgresql+asyncpg://…); default SQLite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=200)
    server_options(parser)
    serve_or_measure(parser.parse_args(), main)
