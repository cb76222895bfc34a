"""Signed outbound webhooks on both engines, delivered by the real worker to a local aiohttp
receiver: the signature, retries with the same key, at-least-once leasing, deleted and
disabled endpoints, and every payload against its documented JSON Schema."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sqlalchemy import select

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.errors import InvalidInput, InvalidState
from commerce.domain.events import DropOpened
from commerce.domain.model import ClaimOutcome
from commerce.domain.payments import PaymentGateways, PaymentOutcome, PaymentResult
from commerce.dropfile import validate_spec
from commerce.payments.simple import ManualGateway, TestGateway
from commerce.services.checkout import CheckoutService
from commerce.services.webhooks import EVENTS, EndpointNotFound, WebhookPolicy
from commerce.storage.tables import webhook_deliveries
from scheduler.webhooks import WebhookWorker
from tests.e2e.processes import Inbox
from tests.helpers import capsule_spec, customers, eventually, live_drop, signature_ok

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "webhooks"


def bodies(inbox: Inbox) -> list[dict[str, Any]]:
    return [json.loads(raw) for _, raw in inbox.arrived]


def validate(envelope: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / f"{envelope['type']}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(envelope, schema, cls=jsonschema.Draft202012Validator)


async def statuses(commerce: Commerce) -> list[str]:
    async with commerce.db.read() as conn:
        rows = await conn.execute(select(webhook_deliveries.c.status).order_by("id"))
        return [r.status for r in rows]


async def pay_one(commerce: Commerce, drop_id: int, who: str = "web:buyer") -> PaymentResult:
    """A sale through the real checkout service and the test gateway."""
    (buyer,) = await customers(commerce, 1, prefix=who)
    claim = await commerce.claims.claim(drop_id, buyer)
    assert claim.outcome is ClaimOutcome.HELD and claim.hold is not None
    gateways = PaymentGateways("test", {"test": TestGateway(), "manual": ManualGateway()})
    checkout = CheckoutService(commerce.orders, gateways)
    paid = await checkout.pay(
        claim.hold.id, buyer, "test", title="Spicy chips", return_url="https://x.example/c"
    )
    assert isinstance(paid, PaymentResult) and paid.outcome is PaymentOutcome.PAID
    return paid


async def test_a_delivery_is_signed_with_the_endpoints_secret_and_carries_its_keys(
    commerce, inbox, webhook_worker
):
    created = await commerce.webhooks.add(inbox.url("obs"), ["drop.opened"])
    drop_id = await live_drop(commerce, capsule_spec(5))
    assert await webhook_worker.run_once() == 1
    ((headers, raw),) = inbox.arrived
    assert signature_ok(created.secret, headers["Dropcast-Signature"], raw)
    assert not signature_ok(created.secret + "x", headers["Dropcast-Signature"], raw)
    assert not signature_ok(created.secret, headers["Dropcast-Signature"], raw + b" ")
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("dropcast-webhooks/")
    assert headers["Idempotency-Key"] == f"drop.opened:{drop_id}/{created.endpoint.id}"
    body = json.loads(raw)
    assert (body["id"], body["type"]) == (f"drop.opened:{drop_id}", "drop.opened")
    assert body["data"]["drop"]["stock"] == {"available": 5, "held": 0, "sold": 0, "total": 5}
    validate(body)
    assert await statuses(commerce) == ["sent"]


async def test_a_500_then_a_200_is_retried_once_with_the_same_key_and_body(
    commerce, clock: ManualClock, inbox, webhook_worker
):
    commerce.webhooks.policy = WebhookPolicy(first_retry=timedelta(seconds=30))
    await commerce.webhooks.add(inbox.url("zap"), ["drop.opened"])
    inbox.answers = [500]
    await live_drop(commerce, capsule_spec(5))
    assert await webhook_worker.run_once() == 1
    assert await statuses(commerce) == ["pending"]
    assert await webhook_worker.run_once() == 0  # not due before its backoff
    clock.advance(29)
    assert await webhook_worker.run_once() == 0
    clock.advance(1)
    assert await webhook_worker.run_once() == 1
    assert len(inbox.arrived) == 2
    (first_headers, first), (second_headers, second) = inbox.arrived
    assert first_headers["Idempotency-Key"] == second_headers["Idempotency-Key"]
    assert first == second
    assert await statuses(commerce) == ["sent"]
    assert len(inbox.deliveries) == 1


async def test_a_sale_through_checkout_sends_a_signed_order_paid_without_personal_data(
    commerce, inbox
):
    created = await commerce.webhooks.add(inbox.url("alert"), ["order.paid"])
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    worker = WebhookWorker(commerce, timeout=5)
    stop = asyncio.Event()
    # Idle for a minute: only the commit's wake-up can deliver within the test's patience.
    running = asyncio.create_task(worker.run(stop, idle_seconds=60))
    try:
        await asyncio.sleep(0)
        paid = await pay_one(commerce, drop_id)
        await eventually(lambda: inbox.arrived, what="the order.paid delivery")
    finally:
        stop.set()
        await running
        await worker.close()
    ((headers, raw),) = inbox.arrived
    assert signature_ok(created.secret, headers["Dropcast-Signature"], raw)
    body = json.loads(raw)
    validate(body)
    assert body["type"] == "order.paid"
    assert body["data"]["order"] == {
        "id": paid.order.id,
        "amount_minor": 1200,
        "amount": "12.00",
        "currency": "USD",
        "quantity": 1,
        "sku": "CHIPS-SPICY",
    }
    assert body["data"]["drop"]["stock"]["sold"] == 1
    assert "buyer" not in raw.decode() and "customer" not in raw.decode()


async def test_nothing_is_sent_to_a_deleted_endpoint(commerce, inbox, webhook_worker):
    gone = await commerce.webhooks.add(inbox.url("gone"), ["drop.opened"])
    kept = await commerce.webhooks.add(inbox.url("kept"), ["drop.opened"])
    await live_drop(commerce, capsule_spec(5))
    assert await statuses(commerce) == ["pending", "pending"]
    await commerce.webhooks.remove(gone.endpoint.id)
    assert await webhook_worker.run_once() == 1
    assert [who for who, _, _ in inbox.deliveries] == ["kept"]
    assert [e.endpoint.id for e in await commerce.webhooks.endpoints()] == [kept.endpoint.id]
    with pytest.raises(EndpointNotFound):
        await commerce.webhooks.remove(gone.endpoint.id)


async def test_an_endpoint_is_disabled_after_repeated_permanent_failures(
    commerce, inbox, webhook_worker
):
    commerce.webhooks.policy = WebhookPolicy(disable_after=3)
    created = await commerce.webhooks.add(inbox.url("broken"), ["drop.opened", "order.paid"])
    endpoint_id = created.endpoint.id
    inbox.answers = [404, 404, 200, 404, 404]  # a success in between resets the count
    for _ in range(5):
        await commerce.webhooks.queue_test(endpoint_id)
        assert await webhook_worker.run_once() == 1
    assert (await commerce.webhooks.get(endpoint_id)).status == "active"
    inbox.answers = [410]
    await commerce.webhooks.queue_test(endpoint_id)
    assert await webhook_worker.run_once() == 1
    endpoint = await commerce.webhooks.get(endpoint_id)
    assert endpoint.status == "disabled"
    assert endpoint.disabled_reason is not None and "HTTP 410" in endpoint.disabled_reason
    assert "3 deliveries in a row failed" in endpoint.disabled_reason
    # Disabled: a new event queues nothing for it, and a test is refused.
    await live_drop(commerce, capsule_spec(5))
    with pytest.raises(InvalidState, match=r"is disabled .*HTTP 410"):
        await commerce.webhooks.queue_test(endpoint_id)
    assert await webhook_worker.run_once() == 0
    assert len(inbox.arrived) == 6
    enabled = await commerce.webhooks.enable(endpoint_id)
    assert (enabled.status, enabled.consecutive_failures) == ("active", 0)
    await commerce.webhooks.queue_test(endpoint_id)
    assert await webhook_worker.run_once() == 1


async def test_a_delivery_is_retried_for_24_hours_then_given_up(
    commerce, clock: ManualClock, inbox, webhook_worker
):
    commerce.webhooks.policy = WebhookPolicy(
        first_retry=timedelta(minutes=30), max_retry=timedelta(hours=4), disable_after=1
    )
    created = await commerce.webhooks.add(inbox.url("down"), ["drop.opened"])
    inbox.answers = [503] * 100
    await live_drop(commerce, capsule_spec(5))
    start = clock.now()
    tried_at = []
    while await statuses(commerce) != ["dead"]:
        tried_at.append(clock.now() - start)
        assert await webhook_worker.run_once() == 1
        async with commerce.db.read() as conn:
            due = (await conn.execute(select(webhook_deliveries.c.next_attempt_at))).scalar_one()
        clock.set(due)
    # Waits of 30 min, 1 h, 2 h, then 4 h (the cap); the next after 23.5 h would be late.
    hours = [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5]
    assert tried_at == [timedelta(hours=h) for h in hours]
    assert len(inbox.arrived) == len(hours)
    endpoint = await commerce.webhooks.get(created.endpoint.id)
    assert endpoint.status == "disabled" and "HTTP 503" in (endpoint.disabled_reason or "")


async def test_two_workers_never_lease_the_same_delivery(commerce, inbox):
    created = await commerce.webhooks.add(inbox.url("a"), list(EVENTS))
    for _ in range(20):
        await commerce.webhooks.queue_test(created.endpoint.id)
    first, second = await asyncio.gather(commerce.webhooks.lease(12), commerce.webhooks.lease(12))
    ids = [d.id for d in first] + [d.id for d in second]
    assert len(ids) == len(set(ids)) == 20


async def test_a_lapsed_lease_is_sent_again_with_the_same_key(
    commerce, clock: ManualClock, inbox, webhook_worker
):
    await commerce.webhooks.add(inbox.url("obs"), ["drop.opened"])
    await live_drop(commerce, capsule_spec(5))
    (lost,) = await commerce.webhooks.lease(10)  # a worker that died before answering
    assert await webhook_worker.run_once() == 0
    clock.advance(commerce.webhooks.policy.lease.total_seconds() + 1)
    assert await webhook_worker.run_once() == 1
    ((headers, raw),) = inbox.arrived
    assert headers["Idempotency-Key"] == lost.idempotency_key
    assert raw.decode() == lost.body
    assert await statuses(commerce) == ["sent"]


async def test_every_event_of_a_drop_matches_its_documented_schema(
    commerce, clock: ManualClock, inbox, webhook_worker
):
    commerce.webhooks.drop_url = lambda drop_id: f"https://drops.example/d/{drop_id}"
    created = await commerce.webhooks.add(inbox.url("all"), list(EVENTS))
    other = await commerce.webhooks.add(inbox.url("paid-only"), ["order.paid"])
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    for i in range(5):  # 5 → 0: stock.low at 3 once, though 2 and 1 are below it too
        await pay_one(commerce, drop_id, who=f"web:fan{i}-")
    await commerce.drops.close(drop_id)
    await commerce.webhooks.queue_test(created.endpoint.id)
    while await webhook_worker.run_once():
        pass
    sent = bodies(inbox)
    types = sorted(b["type"] for b in sent)
    assert types == sorted(
        ["drop.opened", "stock.low", "drop.sold_out", "drop.closed", "webhook.test"]
        + ["order.paid"] * 10
    )
    low = next(b for b in sent if b["type"] == "stock.low")
    assert low["data"]["drop"]["stock"]["available"] == 3 and low["data"]["threshold"] == 3
    assert low["data"]["drop"]["url"] == f"https://drops.example/d/{drop_id}"
    # recap.ready waits until every hold placed before the close has been paid or lapsed.
    clock.advance(60 + 5)
    assert await webhook_worker.run_once() == 1
    recap = bodies(inbox)[-1]
    assert recap["type"] == "recap.ready"
    assert recap["data"]["kpis"]["units_sold"] == 5
    assert recap["data"]["kpis"]["revenue"] == "60.00"
    for body in bodies(inbox):
        validate(body)
    paid_only = [b for who, _, b in inbox.deliveries if who == "paid-only"]
    assert {b["type"] for b in paid_only} == {"order.paid"} and len(paid_only) == 5
    assert other.endpoint.events == ("order.paid",)


async def test_bad_input_names_the_field_and_adds_nothing(commerce):
    for url, events, field in [
        ("ftp://example.com/x", ["order.paid"], "url"),
        ("https:///no-host", ["order.paid"], "url"),
        ("not a url", ["order.paid"], "url"),
        ("https://example.com/hook", [], "events"),
        ("https://example.com/hook", ["order.paid", "order.shipped"], "events"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            await commerce.webhooks.add(url, events)
        assert caught.value.field == field
    with pytest.raises(InvalidInput, match=re.escape("order.shipped; known: drop.opened")):
        await commerce.webhooks.add("https://example.com/h", ["order.shipped"])
    assert await commerce.webhooks.endpoints() == []


async def test_deliveries_are_queued_in_the_changes_own_transaction(commerce, inbox):
    await commerce.webhooks.add(inbox.url("x"), ["drop.opened"])
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5)))

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with commerce.uow.write() as tx:
            tx.emit(DropOpened(drop_id, tx.now))
            await commerce.webhooks.stage(tx.conn, tx.events)  # queued inside …
            assert (await tx.conn.execute(select(webhook_deliveries.c.id))).all()
            raise Boom  # … and rolled back with the change
    assert await statuses(commerce) == []
    await commerce.drops.open(drop_id)
    assert await statuses(commerce) == ["pending"]


def readme_verifier() -> Any:
    """The README's verifier, exactly as printed (the first Python block under Webhooks)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Webhooks\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) <= 10, "the README promises a 10-line verifier"
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    return namespace["verify"]


async def test_the_readmes_verifier_accepts_a_real_delivery_and_nothing_else(commerce, inbox):
    verify = readme_verifier()
    created = await commerce.webhooks.add(inbox.url("readme"), ["drop.opened"])
    await live_drop(commerce, capsule_spec(5))
    fresh = WebhookWorker(commerce, timeout=5)
    stale = WebhookWorker(commerce, timeout=5, wall=lambda: time.time() - 3600)
    try:
        assert await fresh.run_once() == 1
        await commerce.webhooks.queue_test(created.endpoint.id)
        assert await stale.run_once() == 1
    finally:
        await fresh.close()
        await stale.close()
    (headers, raw), (old_headers, old_raw) = inbox.arrived
    header = headers["Dropcast-Signature"]
    assert verify(created.secret, header, raw)
    assert not verify(created.secret, header, raw.replace(b'"live"', b'"LIVE"'))
    assert not verify("whsec_someone-else", header, raw)
    assert verify(created.secret, old_headers["Dropcast-Signature"], old_raw, tolerance=7200)
    assert not verify(created.secret, old_headers["Dropcast-Signature"], old_raw)  # a replay


async def test_a_drop_closed_before_it_opened_has_no_recap(commerce, clock, inbox, webhook_worker):
    await commerce.webhooks.add(inbox.url("x"), ["drop.closed", "recap.ready"])
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5)))
    await commerce.drops.close(drop_id)
    clock.advance(3600)
    assert await webhook_worker.run_once() == 1
    assert [b["type"] for b in bodies(inbox)] == ["drop.closed"]
