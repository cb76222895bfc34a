"""Real processes: a `dropcast run` killed with SIGKILL in the middle of webhook deliveries
(the receiver has the requests and holds its answers) loses none of them: restarted, it
sends each event again with the same Idempotency-Key and signature over the same body."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sys
from collections import defaultdict

import pytest
from sqlalchemy import func, select

from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome
from commerce.domain.payments import PaymentGateways, PaymentResult
from commerce.dropfile import validate_spec
from commerce.payments.simple import ManualGateway, TestGateway
from commerce.services.checkout import CheckoutService
from commerce.storage.database import Database
from commerce.storage.tables import webhook_deliveries
from tests.e2e.processes import ROOT, Inbox, free_port, kill, start_dropcast
from tests.e2e.test_demo import wait_healthy
from tests.helpers import capsule_spec, eventually

FAST = {
    "DROPCAST_SCHEDULER__LEADER_POLL_SECONDS": "0.5",
    "DROPCAST_SCHEDULER__SWEEP_INTERVAL_SECONDS": "0.5",
    "DROPCAST_WEBHOOKS__TIMEOUT_SECONDS": "5",
    "DROPCAST_WEBHOOKS__LEASE_SECONDS": "6",  # how long a killed sender's rows wait
}

pytestmark = pytest.mark.timeout(120)


async def prepare(database_url: str, url: str) -> tuple[int, int, str]:
    """A webhook for every drop and sale event, and a drop not yet open."""
    db = Database(database_url)
    try:
        commerce = Commerce.build(db)
        created = await commerce.webhooks.add(
            url, ["drop.opened", "order.paid", "drop.sold_out", "stock.low"]
        )
        drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, hold_seconds=60)))
        return created.endpoint.id, drop_id, created.secret
    finally:
        await db.dispose()


async def open_and_sell(database_url: str, drop_id: int) -> int:
    """Open the drop and sell one unit through the checkout and the test gateway, from
    outside the server (the creator's CLI and a buyer, as far as the server can tell)."""
    db = Database(database_url)
    try:
        commerce = Commerce.build(db)
        await commerce.drops.open(drop_id)
        buyer = await commerce.customers.resolve("web:buyer@example.com")
        claim = await commerce.claims.claim(drop_id, buyer)
        assert claim.outcome is ClaimOutcome.HELD and claim.hold is not None
        gateways = PaymentGateways("test", {"test": TestGateway(), "manual": ManualGateway()})
        paid = await CheckoutService(commerce.orders, gateways).pay(
            claim.hold.id, buyer, "test", title="chips", return_url="https://x.example/c"
        )
        assert isinstance(paid, PaymentResult)
        return paid.order.id
    finally:
        await db.dispose()


async def settled(database_url: str) -> bool:
    """No delivery is waiting or being sent: none can be (re)sent any more."""
    db = Database(database_url)
    try:
        async with db.read() as conn:
            waiting = await conn.execute(
                select(func.count()).where(webhook_deliveries.c.status.in_(("pending", "sending")))
            )
            return waiting.scalar_one() == 0
    finally:
        await db.dispose()


def keys_per_event(inbox: Inbox) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = defaultdict(list)
    for headers, raw in inbox.arrived:
        keys[json.loads(raw)["id"]].append(headers["Idempotency-Key"])
    return keys


async def test_sigkill_mid_delivery_then_restart_sends_each_event_again_with_its_key(
    database_url, tmp_path
):
    inbox = Inbox()
    await inbox.start()
    processes = []
    try:
        endpoint_id, drop_id, secret = await prepare(database_url, inbox.url("obs"))
        first = await start_dropcast(database_url, free_port(), tmp_path / "first.log", **FAST)
        processes.append(first)
        inbox.hold()  # requests arrive, answers wait: the sender is mid-delivery
        order_id = await open_and_sell(database_url, drop_id)
        expected = {f"drop.opened:{drop_id}", f"order.paid:{order_id}"}
        in_flight = await inbox.wait_until(lambda: set(keys_per_event(inbox)) >= expected, 45)
        assert in_flight, (tmp_path / "first.log").read_text()[-3000:]
        kill(first)
        await first.wait()
        before = len(inbox.arrived)
        inbox.release()

        port = free_port()
        second = await start_dropcast(database_url, port, tmp_path / "second.log", **FAST)
        processes.append(second)
        await wait_healthy(f"http://127.0.0.1:{port}")
        resent = await inbox.wait_until(
            lambda: all(len(keys) >= 2 for keys in keys_per_event(inbox).values()), 60
        )
        assert resent, (tmp_path / "second.log").read_text()[-3000:]
        await eventually(lambda: settled(database_url), timeout=30, interval=0.2)
        assert len(inbox.arrived) > before
        per_event = keys_per_event(inbox)
        assert set(per_event) == expected  # nothing else, nothing missing
        for event_id, keys in per_event.items():
            assert set(keys) == {f"{event_id}/{endpoint_id}"}, keys  # one key per event
        bodies = defaultdict(set)
        for headers, raw in inbox.arrived:
            parts = dict(p.split("=", 1) for p in headers["Dropcast-Signature"].split(","))
            mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256)
            assert hmac.compare_digest(mac.hexdigest(), parts["v1"])
            bodies[headers["Idempotency-Key"]].add(raw)
        assert all(len(raws) == 1 for raws in bodies.values())  # resent byte for byte

        # `dropcast webhook test` queues a sample that the running server sends.
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dropcast",
            "webhook",
            "test",
            str(endpoint_id),
            "--wait",
            "30",
            cwd=str(ROOT),
            env={**os.environ, "DROPCAST_DATABASE__URL": database_url},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await cli.communicate()
        assert cli.returncode == 0, err.decode()
        assert f"delivered to webhook {endpoint_id}: HTTP 200" in out.decode()
    finally:
        for process in processes:
            kill(process)
            await process.wait()
        await inbox.stop()
