"""A real ``dropcast run`` with DEBUG logging: the link key it generates and stores, the
admin and metrics tokens and the Stripe keys never appear in what it writes, while it
starts, serves admin, dashboard, metrics and webhook requests, and stops."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest
from sqlalchemy import select

from commerce.storage.database import Database
from commerce.storage.tables import kv
from tests.e2e.processes import free_port, kill, start_dropcast
from tests.e2e.test_demo import wait_healthy
from tests.helpers import PATIENCE, capsule_spec

pytestmark = pytest.mark.timeout(120)

SECRETS = {
    "DROPCAST_SECURITY__ADMIN_TOKEN": "Adm1n-t0ken-NEVER-in-logs-7f3a9c",
    "DROPCAST_WEB__METRICS_TOKEN": "Metr1cs-t0ken-NEVER-in-logs-2b8d4e",
    "DROPCAST_PAYMENTS__STRIPE_API_KEY": "sk_test_NEVER_in_logs_5c1e7a9b3d",
    "DROPCAST_PAYMENTS__STRIPE_WEBHOOK_SECRET": "whsec_NEVER_in_logs_8e2f6a0c4b",
}


async def stored_secret_key(database_url: str) -> str:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            value = (
                await conn.execute(select(kv.c.value).where(kv.c.key == "secret_key"))
            ).scalar()
    finally:
        await db.dispose()
    assert value, "dropcast did not generate a secret key"
    return str(value)


async def test_no_secret_reaches_the_log_even_at_debug(database_url, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    admin = SECRETS["DROPCAST_SECURITY__ADMIN_TOKEN"]
    server = await start_dropcast(
        database_url,
        port,
        log_path,
        DROPCAST_LOG__LEVEL="DEBUG",
        DROPCAST_PAYMENTS__PROVIDER="stripe",
        DROPCAST_PAYMENTS__STRIPE_API_BASE="http://127.0.0.1:9",  # never called here
        **SECRETS,
    )
    try:
        await wait_healthy(base)
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {admin}"}
            async with http.post(f"{base}/api/drops", json=capsule_spec(3), headers=auth) as r:
                assert r.status == 201
            async with http.post(f"{base}/api/drops", json={}, headers=auth) as r:
                assert r.status == 422  # an error path logs too
            wrong = {"Authorization": f"Bearer {admin[:-1]}x"}
            async with http.post(f"{base}/api/drops", json={}, headers=wrong) as r:
                assert r.status == 401
            async with http.get(f"{base}/dashboard?token={admin}", allow_redirects=False) as r:
                assert r.status == 303  # signed in: the cookie, and the URL without the token
            metrics = {"Authorization": f"Bearer {SECRETS['DROPCAST_WEB__METRICS_TOKEN']}"}
            async with http.get(f"{base}/metrics", headers=metrics) as r:
                assert r.status == 200
            async with http.post(f"{base}/webhooks/stripe", data=b"{}") as r:
                assert r.status == 400  # unsigned
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(PATIENCE):
            await server.wait()
    finally:
        kill(server)
    written = log_path.read_text(errors="replace")
    assert " DEBUG " in written  # the level was really DEBUG
    assert "event loop: uvloop" in written  # production's default loop (runtime.event_loop)
    key = await stored_secret_key(database_url)
    for name, value in {**SECRETS, "generated secret_key": key}.items():
        assert value not in written, f"{name} appears in the log"
