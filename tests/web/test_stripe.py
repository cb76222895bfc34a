"""Stripe Checkout against a local fake: session per order, signed webhooks, refunds."""

from __future__ import annotations

import json
import logging

import pytest

from commerce.domain.model import OrderStatus
from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import HOLD_FIELD, found
from tests.web.fake_stripe import sign


async def start_checkout(stripe_shop, stripe_fake, units=3, hold_seconds=60):
    drop_id = await live_drop(stripe_shop.commerce, capsule_spec(units, hold_seconds=hold_seconds))
    token, page = await stripe_shop.held_page(drop_id)
    response = await stripe_shop.pay(token, page)
    assert response.status == 303, await response.text()
    session_id = response.headers["Location"].rsplit("/", 1)[1]
    order = await stripe_shop.commerce.orders.for_hold(int(found(HOLD_FIELD, page)))
    return drop_id, token, page, session_id, order


async def webhook(stripe_shop, body, signature):
    return await stripe_shop.client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": signature}
    )


async def test_pay_redirects_to_a_checkout_session_for_the_order(stripe_shop, stripe_fake):
    _, token, _, session_id, order = await start_checkout(stripe_shop, stripe_fake)
    session = stripe_fake.sessions[session_id]
    assert session["client_reference_id"] == str(order.id)
    assert session["metadata"]["order_id"] == str(order.id)
    item = session["line_items"][0]
    assert item["price_data"]["unit_amount"] == "1200" and item["price_data"]["currency"] == "usd"
    assert session["success_url"].endswith(f"/c/{token}")
    # Stripe's minimum session life is 30 minutes; the hold itself still bounds the sale.
    now = stripe_shop.clock.now().timestamp()
    assert now + 30 * 60 <= session["expires_at"] <= now + 32 * 60
    assert order.status is OrderStatus.PENDING


async def test_a_correctly_signed_webhook_marks_the_order_paid(stripe_shop, stripe_fake):
    drop_id, token, _, session_id, order = await start_checkout(stripe_shop, stripe_fake)
    body = stripe_fake.completed_event(session_id)
    response = await webhook(stripe_shop, body, sign(body))
    assert response.status == 200
    assert (await response.json())["outcome"] == "paid"
    assert (await stripe_shop.commerce.orders.get(order.id)).status is OrderStatus.PAID
    assert (await stripe_shop.commerce.drops.view(drop_id)).stock[0].sold == 1
    page = await stripe_shop.client.get(f"/c/{token}")
    assert "It&#39;s yours!" in await page.text()


async def test_a_wrongly_signed_webhook_is_rejected_and_changes_nothing(stripe_shop, stripe_fake):
    _, _, _, session_id, order = await start_checkout(stripe_shop, stripe_fake)
    body = stripe_fake.completed_event(session_id)
    for signature in (sign(body, "whsec_wrong"), "t=1,v1=deadbeef", ""):
        response = await webhook(stripe_shop, body, signature)
        assert response.status == 400
        assert (await response.json())["error"] == "WEBHOOK_INVALID"
    tampered = body.replace(b'"paid"', b'"paid" ')
    assert (await webhook(stripe_shop, tampered, sign(body))).status == 400
    assert (await stripe_shop.commerce.orders.get(order.id)).status is OrderStatus.PENDING


async def test_a_replayed_webhook_is_applied_once(stripe_shop, stripe_fake):
    drop_id, _, _, session_id, _ = await start_checkout(stripe_shop, stripe_fake)
    body = stripe_fake.completed_event(session_id)
    outcomes = []
    for _ in range(3):
        response = await webhook(stripe_shop, body, sign(body))
        assert response.status == 200
        outcomes.append((await response.json())["outcome"])
    assert outcomes == ["paid", "replayed", "replayed"]
    assert (await stripe_shop.commerce.drops.view(drop_id)).stock[0].sold == 1
    assert stripe_fake.refunds == []


async def test_a_payment_after_the_hold_expired_is_refunded_not_oversold(stripe_shop, stripe_fake):
    drop_id, _, _, session_id, order = await start_checkout(stripe_shop, stripe_fake, units=1)
    stripe_shop.clock.advance(61)
    _, _ = await stripe_shop.held_page(drop_id, "discord:2")  # the unit is sold on to someone else
    body = stripe_fake.completed_event(session_id)
    response = await webhook(stripe_shop, body, sign(body))
    assert response.status == 200
    assert (await response.json())["outcome"] == "refund_due"
    assert [r["payment_intent"] for r in stripe_fake.refunds] == ["pi_test_1"]
    assert (await stripe_shop.commerce.orders.get(order.id)).status is OrderStatus.REFUNDED
    view = await stripe_shop.commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (0, 1)
    again = await webhook(stripe_shop, body, sign(body))  # a retry refunds idempotently
    assert again.status == 200 and len(stripe_fake.refunds) == 1


async def test_other_event_types_are_acknowledged_and_ignored(stripe_shop, stripe_fake):
    _, _, _, session_id, order = await start_checkout(stripe_shop, stripe_fake)
    body = stripe_fake.completed_event(session_id).replace(
        b"checkout.session.completed", b"checkout.session.expired"
    )
    response = await webhook(stripe_shop, body, sign(body))
    assert response.status == 200 and (await response.json())["outcome"] is None
    assert (await stripe_shop.commerce.orders.get(order.id)).status is OrderStatus.PENDING


async def test_stripe_being_down_gives_a_502_and_the_hold_stays(stripe_shop, stripe_fake):
    drop_id = await live_drop(stripe_shop.commerce, capsule_spec(3))
    token, page = await stripe_shop.held_page(drop_id)
    stripe_fake.failures = 2  # the client retries once by itself
    response = await stripe_shop.pay(token, page)
    assert response.status == 502
    assert "try again" in await response.text()
    assert (await stripe_shop.commerce.drops.view(drop_id)).stock[0].held == 1
    retry = await stripe_shop.pay(token, page)  # the same order, a session this time
    assert retry.status == 303


async def test_a_webhook_for_an_unconfigured_provider_is_404(site):
    response = await site.client.post("/webhooks/stripe", data=b"{}")
    assert response.status == 404


def signed_event(event_type: str, data: object = None, **extra: object) -> bytes:
    event = {"id": "evt_other", "object": "event", "type": event_type, **extra}
    if data is not None:
        event["data"] = data
    return json.dumps(event).encode()


async def test_signed_events_that_are_not_ours_are_acknowledged_and_change_nothing(
    stripe_shop, stripe_fake, caplog
):
    drop_id, _, _, session_id, order = await start_checkout(stripe_shop, stripe_fake)
    ours = stripe_fake.sessions[session_id]
    paid = {**ours, "payment_status": "paid", "status": "complete"}
    other_shop = {**paid, "metadata": {"order_id": str(order.id), "hold_id": "999"}}
    unknown_order = {**paid, "metadata": {"order_id": "424242", "hold_id": str(order.hold_id)}}
    no_metadata = {key: value for key, value in paid.items() if key != "metadata"}
    bodies = [
        signed_event("payment_intent.created", {"object": {"id": "pi_x"}}),
        signed_event("checkout.session.completed", {"object": other_shop}),
        signed_event("checkout.session.completed", {"object": unknown_order}),
        signed_event("checkout.session.completed", {"object": no_metadata}),
    ]
    # The gateway acknowledges what it does not act on; checkout, what is not our order.
    acknowledging = ("commerce.payments.stripe_checkout", "commerce.services.checkout")
    with caplog.at_level(logging.INFO, logger="commerce"):
        for body in bodies:
            response = await webhook(stripe_shop, body, sign(body))
            assert response.status == 200, await response.text()
            assert (await response.json())["outcome"] is None
    said = [r for r in caplog.records if r.name in acknowledging]
    assert [r.levelno for r in said] == [logging.INFO] * len(bodies)
    assert (await stripe_shop.commerce.orders.get(order.id)).status is OrderStatus.PENDING
    view = await stripe_shop.commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (0, 1)
    assert stripe_fake.refunds == []


@pytest.mark.parametrize(
    "body",
    [
        signed_event("checkout.session.completed"),  # no data at all
        signed_event("checkout.session.completed", {"object": "cs_1"}),
        signed_event("checkout.session.completed", ["not", "an", "object"]),
        b"[" * 100_000,  # nested too deeply for the parser
    ],
)
async def test_a_signed_event_without_data_is_a_400(stripe_shop, body):
    response = await webhook(stripe_shop, body, sign(body))
    assert response.status == 400
    assert (await response.json())["error"] == "WEBHOOK_INVALID"


async def test_the_creators_refund_of_a_stripe_order_goes_through_stripe_once(
    stripe_shop, stripe_fake
):
    drop_id, _, _, session_id, order = await start_checkout(stripe_shop, stripe_fake, units=5)
    body = stripe_fake.completed_event(session_id)
    assert (await webhook(stripe_shop, body, sign(body))).status == 200
    desk = stripe_shop.ctx.desk
    provider = stripe_shop.ctx.payments.get("stripe")
    paid = await stripe_shop.commerce.orders.get(order.id)

    # Callers differ in their reason; Stripe must see one request under the payment's key
    # (it answers 400 idempotency_error to a key reused with other parameters).
    await provider.refund(paid, paid.provider_ref, "damaged in transit")
    refunded, changed = await desk.refund(order.id, "customer changed their mind")

    assert (refunded.status, changed) == (OrderStatus.REFUNDED, True)
    assert [r["payment_intent"] for r in stripe_fake.refunds] == [paid.provider_ref]
    view = await stripe_shop.commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].available) == (0, 5)
