"""Scale-out on PostgreSQL: two web processes (behind nginx when it is installed) share one
stock count. 1000 distinct buyers across both for 10 units make exactly 10 holds, and an SSE
client on one process sees a sale made on the other."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from commerce.clock import SystemClock
from commerce.core import Commerce
from commerce.links import LinkSigner
from commerce.storage.database import Database
from tests.e2e.processes import ROOT, free_port, kill, start_dropcast
from tests.e2e.test_demo import wait_healthy
from tests.helpers import PATIENCE, capsule_spec, live_drop

pytestmark = [pytest.mark.timeout(180)]
NO_LIMITS = {
    "DROPCAST_WEB__CLAIM_RATE_PER_IP": "0",
    "DROPCAST_WEB__CLAIM_RATE_PER_CUSTOMER": "0",
    "DROPCAST_WEB__TRUSTED_PROXIES": '["127.0.0.1/32"]',
}


async def start_nginx(
    tmp_path: Path, listen: int, upstreams: list[int]
) -> asyncio.subprocess.Process | None:
    """deploy/nginx.conf with its ports swapped for this test's; None without nginx."""
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if binary is None:
        return None
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    conf = conf.replace("server 127.0.0.1:8081;", f"server 127.0.0.1:{upstreams[0]};")
    conf = conf.replace("server 127.0.0.1:8082;", f"server 127.0.0.1:{upstreams[1]};")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    conf = conf.replace("/tmp/dropcast-nginx", str(tmp_path / "nginx"))
    conf = conf.replace("worker_processes auto;", "worker_processes 1;")
    (tmp_path / "nginx.conf").write_text(conf)
    return await asyncio.create_subprocess_exec(
        binary,
        "-c",
        str(tmp_path / "nginx.conf"),
        "-p",
        str(tmp_path),
        "-g",
        "daemon off;",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=(tmp_path / "nginx.log").open("wb"),
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_two_web_processes_share_one_stock_count(database_url, tmp_path):
    db = Database(database_url)
    commerce = Commerce.build(db)
    signer = LinkSigner(await commerce.secret_key(), SystemClock())
    surge = await live_drop(commerce, capsule_spec(10))
    ticks = await live_drop(commerce, capsule_spec(5))
    ports = [free_port(), free_port()]
    processes = []
    try:
        for i, port in enumerate(ports):
            processes.append(
                await start_dropcast(
                    database_url, port, tmp_path / f"web{i}.log", "--role", "web", **NO_LIMITS
                )
            )
        for port in ports:
            await wait_healthy(f"http://127.0.0.1:{port}")
        front = free_port()
        nginx = await start_nginx(tmp_path, front, ports)
        if nginx is not None:
            processes.append(nginx)
            await wait_healthy(f"http://127.0.0.1:{front}")
            bases = [f"http://127.0.0.1:{front}"]
        else:  # no nginx on this machine: spread the buyers over both ports directly
            bases = [f"http://127.0.0.1:{port}" for port in ports]

        tokens = [signer.issue(surge, f"web:b{i}@example.com")[0] for i in range(1000)]
        connector = aiohttp.TCPConnector(limit=400)
        async with aiohttp.ClientSession(connector=connector) as http:

            async def buy(i: int, token: str) -> int:
                async with http.get(f"{bases[i % len(bases)]}/c/{token}") as response:
                    await response.read()
                    return response.status

            statuses = Counter(await asyncio.gather(*(buy(i, t) for i, t in enumerate(tokens))))
        assert statuses == {200: 10, 409: 990}, statuses
        view = await commerce.drops.view(surge)
        assert (view.stock[0].held, view.stock[0].available) == (10, 0)

        # An SSE client on process A; a sale on process B.
        a, b = (f"http://127.0.0.1:{port}" for port in ports)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{a}/api/drops/{ticks}/stream") as stream:
                await stream.content.readuntil(b"\n\n")  # the opening snapshot
                token = signer.issue(ticks, "web:late@example.com")[0]
                async with http.get(f"{b}/c/{token}") as response:
                    assert response.status == 200

                async def sale_seen() -> None:
                    async for line in stream.content:
                        if line.startswith(b"data:") and b'"held":1' in line:
                            return
                    raise AssertionError("stream ended")

                async with asyncio.timeout(PATIENCE):
                    await sale_seen()
    finally:
        for process in processes:
            kill(process)
            await process.wait()
        await db.dispose()
