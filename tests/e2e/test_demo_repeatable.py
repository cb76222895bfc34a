"""The README's demo as a newcomer meets it, in real processes: `dropcast run --demo` prints
the demo drop's real id and a dashboard link that signs in; closing the drop does not strand
anyone (a restart seeds a fresh drop and prints its id, `rehearse --fresh` runs on a copy);
a restart while the drop is open keeps it."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.processes import free_port, kill, start_dropcast
from tests.e2e.test_demo import cli, wait_healthy

pytestmark = pytest.mark.timeout(120)

DEMO_LINE = re.compile(r"^demo drop (\d+) ", re.M)
DASHBOARD = re.compile(r"dashboard\s+(http://\S+/dashboard\?token=\S+)")


async def demo_run(url: str, port: int, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    """Start `dropcast run --demo` and wait for what it prints (the log is appended to)."""
    start = log.stat().st_size if log.exists() else 0
    server = await start_dropcast(url, port, log, "--demo", DROPCAST_CHAT__STUDIO="true")
    deadline = asyncio.get_running_loop().time() + 60
    while asyncio.get_running_loop().time() < deadline:
        printed = log.read_bytes()[start:].decode(errors="replace")
        if "Ctrl-C stops." in printed:
            return server, printed
        if server.returncode is not None:
            break
        await asyncio.sleep(0.1)
    kill(server)
    raise AssertionError(f"the demo did not start:\n{log.read_text()[-3000:]}")


async def stop(server: asyncio.subprocess.Process) -> None:
    kill(server)
    await server.wait()


def demo_id(printed: str) -> int:
    match = DEMO_LINE.search(printed)
    assert match, printed
    return int(match[1])


async def test_the_demo_can_be_closed_restarted_and_rehearsed_without_dead_ends(tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'dropcast.db'}"
    env = {"DROPCAST_DATABASE__URL": url, "DROPCAST_WEB__PUBLIC_URL": base}
    log = tmp_path / "server.log"

    server, printed = await demo_run(url, port, log)
    try:
        await wait_healthy(base)
        first = demo_id(printed)
        for path in (f"/d/{first}", f"/overlay/{first}"):
            assert f"{base}{path}" in printed
        dashboard = DASHBOARD.search(printed)
        assert dashboard, printed
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(dashboard[1]) as response:  # signs in, then shows the KPIs
                assert response.status == 200 and "/dashboard" in str(response.url)
            async with http.get(f"{base}/dashboard") as response:  # the cookie carries on
                assert response.status == 200

        # The README's creator closes the drop; it never reopens (tests/cli checks what
        # `drop open` says then), but a rehearsal runs on a fresh copy.
        assert (await cli(env, tmp_path, "drop", "close", str(first)))[0] == 0
        code, out, err = await cli(
            env, tmp_path, "rehearse", str(first), "--fresh", "--viewers", "30", "--json"
        )
        assert code == 0, err
        result = json.loads(out)
        assert result["drop_id"] != first
        assert (result["holds"], result["paid"], result["oversold"], result["errors"]) == (
            8,
            8,
            0,
            0,
        )
    finally:
        await stop(server)

    # A restart after the close seeds a fresh demo drop and says which.
    server, printed = await demo_run(url, port, log)
    try:
        fresh = demo_id(printed)
        assert fresh not in (first, result["drop_id"])
        assert f"{base}/d/{fresh}" in printed
        await wait_healthy(base)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/drops/{fresh}") as response:
                assert (await response.json())["state"] == "scheduled"
    finally:
        await stop(server)

    # A restart while it is open keeps it: the printed id and links stay valid.
    server, printed = await demo_run(url, port, log)
    try:
        assert demo_id(printed) == fresh
    finally:
        await stop(server)
