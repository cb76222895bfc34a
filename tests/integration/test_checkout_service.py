"""The checkout service on both engines, through fake gateways: what it does with each
answer a gateway can give, the one place late money is refunded, the one outcome hook,
and which webhook payments it takes as ours."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome, Hold, Order, OrderStatus
from commerce.domain.payments import (
    CheckoutRequest,
    Confirmed,
    Ignored,
    PaymentGateways,
    PaymentOutcome,
    PaymentResult,
    PaymentStep,
    Redirect,
    WebhookNotice,
)
from commerce.payments.simple import ManualGateway, TestGateway
from commerce.services.checkout import CheckoutService
from tests.helpers import capsule_spec, collab_spec, customers, live_drop

RETURN_URL = "https://shop.example/c/token"


@dataclass
class CardGateway:
    """A gateway with its own payment page: ``begin`` redirects, and its webhook reports
    whatever the test puts in ``notice``."""

    name: str = "card"
    notice: WebhookNotice = field(default_factory=Ignored)
    by_body: dict[bytes, WebhookNotice] = field(default_factory=dict)  # concurrent deliveries
    begun: list[CheckoutRequest] = field(default_factory=list)
    refunds: list[tuple[int, str, str]] = field(default_factory=list)

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        self.begun.append(request)
        return Redirect(f"https://pay.example/{order.id}")

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        return self.by_body.get(body, self.notice)

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        self.refunds.append((order.id, provider_ref, reason))

    async def close(self) -> None:
        return None


@dataclass
class Shop:
    commerce: Commerce
    checkout: CheckoutService
    test: TestGateway
    card: CardGateway
    outcomes: list[tuple[str, PaymentOutcome]]

    async def hold(self, spec: dict[str, object] | None = None, pool: str | None = None) -> Hold:
        drop_id = await live_drop(self.commerce, spec or capsule_spec(3, hold_seconds=60))
        (buyer,) = await customers(self.commerce, 1)
        result = await self.commerce.claims.claim(drop_id, buyer, pool=pool)
        assert result.outcome is ClaimOutcome.HELD and result.hold is not None
        return result.hold

    async def pay(self, hold: Hold, method: str) -> Redirect | PaymentResult:
        return await self.checkout.pay(
            hold.id, hold.customer_id, method, title="Spicy chips", return_url=RETURN_URL
        )

    async def webhook(self, notice: WebhookNotice) -> PaymentResult | None:
        self.card.notice = notice
        return await self.checkout.apply_webhook("card", b"{}", {})


@pytest.fixture
def shop(commerce: Commerce) -> Shop:
    test, card = TestGateway(), CardGateway()
    outcomes: list[tuple[str, PaymentOutcome]] = []
    gateways = PaymentGateways("test", {"test": test, "manual": ManualGateway(), "card": card})
    checkout = CheckoutService(
        commerce.orders, gateways, on_outcome=lambda name, outcome: outcomes.append((name, outcome))
    )
    return Shop(commerce, checkout, test, card, outcomes)


async def test_a_gateway_that_captures_at_once_pays_the_order_and_counts_it_once(shop):
    hold = await shop.hold()
    paid = await shop.pay(hold, "test")
    assert isinstance(paid, PaymentResult) and paid.outcome is PaymentOutcome.PAID
    assert (await shop.commerce.orders.get(paid.order.id)).provider_ref == f"test_{paid.order.id}"
    assert shop.outcomes == [("test", PaymentOutcome.PAID)]
    assert shop.test.refunds == []


async def test_paying_again_answers_with_the_order_and_charges_nothing(shop):
    hold = await shop.hold()
    first = await shop.pay(hold, "test")
    again = await shop.pay(hold, "test")
    assert isinstance(first, PaymentResult) and isinstance(again, PaymentResult)
    assert (again.outcome, again.order) == (PaymentOutcome.REPLAYED, first.order)
    assert shop.outcomes == [("test", PaymentOutcome.PAID)]


async def test_pay_later_reserves_the_units_and_refunds_nothing(shop):
    hold = await shop.hold(collab_spec(ship=2, pickup=2), pool="pickup:corner-deli")
    reserved = await shop.pay(hold, "manual")
    assert isinstance(reserved, PaymentResult)
    assert (reserved.outcome, reserved.order.status) == (
        PaymentOutcome.RESERVED,
        OrderStatus.RESERVED,
    )
    assert shop.outcomes == [("manual", PaymentOutcome.RESERVED)]


async def test_a_redirecting_gateway_hears_the_holds_own_expiry(shop):
    hold = await shop.hold()
    step = await shop.pay(hold, "card")
    assert isinstance(step, Redirect)
    (request,) = shop.card.begun
    assert request.hold_expires_at == hold.expires_at
    assert (request.success_url, request.cancel_url) == (RETURN_URL, RETURN_URL)
    order = await shop.commerce.orders.for_hold(hold.id)
    assert order is not None and order.status is OrderStatus.PENDING
    assert shop.outcomes == []  # nothing happened to the money yet


async def test_a_confirmed_payment_of_our_order_pays_it(shop):
    hold = await shop.hold()
    await shop.pay(hold, "card")
    order = await shop.commerce.orders.for_hold(hold.id)
    result = await shop.webhook(Confirmed(order.id, hold.id, "pi_1"))
    assert result is not None and result.outcome is PaymentOutcome.PAID
    assert result.order.provider_ref == "pi_1"
    assert shop.outcomes == [("card", PaymentOutcome.PAID)] and shop.card.refunds == []


async def test_money_after_the_hold_lapsed_goes_back_through_its_gateway_on_every_delivery(
    shop, clock: ManualClock
):
    hold = await shop.hold()
    await shop.pay(hold, "card")
    order = await shop.commerce.orders.for_hold(hold.id)
    clock.advance(61)
    late = await shop.webhook(Confirmed(order.id, hold.id, "pi_late"))
    assert late is not None and late.outcome is PaymentOutcome.REFUND_DUE
    assert late.order.status is OrderStatus.REFUNDED
    # A retried delivery asks again: the first refund may have failed (the gateway's
    # refund is idempotent by the payment, so the money goes back once).
    again = await shop.webhook(Confirmed(order.id, hold.id, "pi_late"))
    assert again is not None and again.outcome is PaymentOutcome.REPLAYED
    assert shop.card.refunds == [
        (order.id, "pi_late", "refund_due"),
        (order.id, "pi_late", "replayed"),
    ]
    assert shop.outcomes == [("card", PaymentOutcome.REFUND_DUE), ("card", PaymentOutcome.REPLAYED)]


async def test_a_second_payment_for_a_paid_order_goes_back(shop):
    hold = await shop.hold()
    await shop.pay(hold, "card")
    order = await shop.commerce.orders.for_hold(hold.id)
    await shop.webhook(Confirmed(order.id, hold.id, "pi_first"))
    second = await shop.webhook(Confirmed(order.id, hold.id, "pi_second"))
    assert second is not None and second.outcome is PaymentOutcome.DUPLICATE
    assert shop.card.refunds == [(order.id, "pi_second", "duplicate")]


async def test_payments_that_name_no_order_of_ours_through_this_gateway_change_nothing(shop):
    ours = await shop.hold()
    await shop.pay(ours, "card")
    order = await shop.commerce.orders.for_hold(ours.id)
    paid_by_test = await shop.hold()
    other = await shop.pay(paid_by_test, "test")
    assert isinstance(other, PaymentResult)
    shop.outcomes.clear()
    for notice in (
        Ignored(),
        Confirmed(None, None, "pi_x"),  # no ids: another shop's session
        Confirmed(order.id, None, "pi_x"),
        Confirmed(order.id + 1000, ours.id, "pi_x"),  # the hold's order is another
        Confirmed(other.order.id, paid_by_test.id, "pi_x"),  # an order of another gateway
    ):
        assert await shop.webhook(notice) is None
    assert (await shop.commerce.orders.get(order.id)).status is OrderStatus.PENDING
    assert shop.outcomes == [] and shop.card.refunds == []


# -- concurrency: a surge of pays and of webhook deliveries for one order ------------------


async def test_a_surge_of_pays_for_one_hold_pays_it_once(shop):
    hold = await shop.hold()
    results = await asyncio.gather(*(shop.pay(hold, "test") for _ in range(20)))
    outcomes = sorted(r.outcome for r in results if isinstance(r, PaymentResult))
    assert len(outcomes) == 20
    assert outcomes.count(PaymentOutcome.PAID) == 1
    assert set(outcomes) <= {PaymentOutcome.PAID, PaymentOutcome.REPLAYED}
    order = await shop.commerce.orders.for_hold(hold.id)
    assert order is not None and order.status is OrderStatus.PAID
    assert [o for _, o in shop.outcomes].count(PaymentOutcome.PAID) == 1
    assert shop.test.refunds == []
    view = await shop.commerce.drops.view(hold.drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (1, 0)


async def test_two_payments_delivered_at_once_keep_one_and_refund_the_other(shop):
    hold = await shop.hold()
    await shop.pay(hold, "card")
    order = await shop.commerce.orders.for_hold(hold.id)
    assert order is not None
    refs = ("pi_a", "pi_b")
    for ref in refs:
        shop.card.by_body[ref.encode()] = Confirmed(order.id, hold.id, ref)
    deliveries = [ref.encode() for ref in refs for _ in range(5)]  # each retried by Stripe
    results = await asyncio.gather(
        *(shop.checkout.apply_webhook("card", body, {}) for body in deliveries)
    )
    paid = await shop.commerce.orders.get(order.id)
    assert paid.status is OrderStatus.PAID and paid.provider_ref in refs
    assert [r.outcome for r in results if r is not None].count(PaymentOutcome.PAID) == 1
    (loser,) = set(refs) - {paid.provider_ref}
    refunded = {ref for _, ref, _ in shop.card.refunds}
    assert refunded == {loser}  # the kept payment is never refunded
