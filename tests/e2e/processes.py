"""Helpers for tests that run real ``dropcast`` processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.helpers import eventually

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_dropcast(
    database_url: str, port: int, log_path: Path, *args: str, **env: str
) -> asyncio.subprocess.Process:
    """``dropcast run`` as its own process (stdout/stderr to ``log_path``)."""
    environment = {
        **os.environ,
        "DROPCAST_DATABASE__URL": database_url,
        "DROPCAST_WEB__PORT": str(port),
        "DROPCAST_WEB__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DROPCAST_CHAT__STUDIO": "false",
        **env,
    }
    log = log_path.open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dropcast",
        "run",
        *args,
        cwd=str(log_path.parent),
        env=environment,
        stdout=log,
        stderr=log,
    )


def kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGKILL)


class Inbox:
    """A webhook receiver that remembers every delivery and its Idempotency-Key; ``hold()``
    keeps later deliveries unanswered until ``release()``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.deliveries: list[tuple[str, str, dict[str, Any]]] = []  # (path, key, body)
        # Every request as it arrived, answered or not: its headers and exact body.
        self.arrived: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []  # statuses to answer first, in order; then 200
        self.runner: web.AppRunner | None = None
        self.port = free_port()
        self._open = asyncio.Event()
        self._open.set()

    def hold(self) -> None:
        """Deliveries from now on wait, unanswered and unrecorded, until ``release()``."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook/{who}", self._receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        self.release()  # held requests end, so the server stops at once
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, who: str) -> str:
        return f"http://127.0.0.1:{self.port}/hook/{who}"

    async def _receive(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.arrived.append((dict(request.headers), raw))
        body = json.loads(raw)
        await self._open.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answers:
            return web.json_response({"ok": False}, status=self.answers.pop(0))
        self.deliveries.append(
            (request.match_info["who"], request.headers.get("Idempotency-Key", ""), body)
        )
        return web.json_response({"ok": True})

    def unique_per_recipient(self) -> dict[str, set[str]]:
        keys: dict[str, set[str]] = {}
        for who, key, _ in self.deliveries:
            keys.setdefault(who, set()).add(key)
        return keys

    async def wait_until(self, predicate: Any, seconds: float) -> bool:
        """Whether ``predicate()`` came true within ``seconds``."""
        try:
            await eventually(predicate, timeout=seconds)
        except AssertionError:
            return False
        return True
