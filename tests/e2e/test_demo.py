"""The README's main job as a real process: `dropcast run --demo`, then the CLI beside it —
a rehearsal surge with no oversell, the same surge through the studio chat, and a CLI
restock the running server announces."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.processes import free_port, kill, start_dropcast
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(120)
DASHBOARD = re.compile(r"http://\S+/dashboard\?token=\S+")


async def cli(env: dict[str, str], cwd, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dropcast",
        *args,
        cwd=str(cwd),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return int(process.returncode or 0), out.decode(), err.decode()


async def wait_healthy(base: str, seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("dropcast did not come up")


@asynccontextmanager
async def running_demo(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """`dropcast run --demo` (studio on) on a fresh SQLite file, up and answering: yields
    its base URL and the environment a CLI beside it needs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'dropcast.db'}"
    env = {"DROPCAST_DATABASE__URL": url, "DROPCAST_WEB__PUBLIC_URL": base}
    server = await start_dropcast(
        url, port, tmp_path / "server.log", "--demo", DROPCAST_CHAT__STUDIO="true"
    )
    try:
        await wait_healthy(base)
        yield base, env
    finally:
        kill(server)
        await server.wait()


def complaints(log: Path) -> str:
    """The server log's warnings and errors (with their tracebacks), for a failure message."""
    lines = log.read_text(errors="replace").splitlines()
    start = next(
        (i for i, line in enumerate(lines) if " WARNING " in line or " ERROR " in line), None
    )
    return "\n".join(lines[start:][-80:]) if start is not None else "(no warnings in the log)"


async def test_demo_rehearsal_and_cli_restock_reach_the_running_server(tmp_path):
    async with running_demo(tmp_path) as (base, env):
        # The demo prints where to go; the drop page and studio answer.
        async with aiohttp.ClientSession() as http:
            for path in ("/studio", "/d/1", "/overlay/1"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path
        # The creator signs in with the dashboard link the demo printed; the studio then
        # knows them (a tab of any other browser is a viewer).
        printed = await eventually(
            lambda: DASHBOARD.search((tmp_path / "server.log").read_text()),
            what="the demo's dashboard link",
        )
        for link, creator in ((printed[0], True), (f"{base}/dashboard", False)):
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                for path in (link, f"{base}/studio"):
                    async with http.get(path) as response:
                        assert response.status == (200 if creator or "studio" in path else 401)
                async with http.ws_connect(f"{base}/studio/ws", origin=base) as ws:
                    assert (await ws.receive_json())["creator"] is creator
        # Demo drops open in a minute; the creator opens it now from the CLI.
        assert (await cli(env, tmp_path, "drop", "open", "1"))[0] == 0
        code, out, err = await cli(env, tmp_path, "rehearse", "1", "--viewers", "300", "--json")
        assert code == 0, err
        result = json.loads(out)
        # On failure, the whole report and what the server complained of say why.
        why = f"{result}\n{complaints(tmp_path / 'server.log')}"
        # A claim that comes after the eighth payment finds the drop closed: refused too.
        refused = result["sold_out"] + result["closed"]
        assert (result["holds"], refused, result["oversold"]) == (8, 292, 0), why
        assert result["errors"] == 0 and result["paid"] == 8, why

        # The same surge typed in the studio chat (on a fresh copy of the drop): everyone
        # is answered and named in a few outcome lines, and no pay link shows in public.
        code, out, err = await cli(
            env, tmp_path, "rehearse", "1", "--chat", "--fresh", "--viewers", "1000", "--json"
        )
        assert code == 0, err
        chat = json.loads(out)
        assert (chat["answered"], chat["named_in_chat"]) == (1000, 1000)
        assert (chat["holds"], chat["sold_out"], chat["other_answers"]) == (8, 992, 0)
        assert chat["links_in_public"] == 0 and chat["outcome_lines"] <= 40

        # A restock made by the CLI reaches the server's live stream (via the outbox).
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/drops/1/stream") as stream:
                assert (await cli(env, tmp_path, "drop", "restock", "1", "CHIPS-SPICY", "2"))[
                    0
                ] == 0

                async def restocked() -> None:
                    async for line in stream.content:
                        if line.startswith(b"event: restocked"):
                            return

                await asyncio.wait_for(restocked(), 15)
