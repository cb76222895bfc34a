"""Stripe Checkout for ship orders: Stripe collects the address, kept to the country the
buyer chose with its rate, and the webhook stores it on the order (issue 13).

Most tests drive ``StripeGateway`` directly against the fake, with the order the core makes
and the request checkout builds, and apply its webhooks through ``CheckoutService``; the
last section goes through the web app.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import stripe

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.errors import InvalidInput
from commerce.domain.model import SHIP_POOL, Address, Order, OrderStatus
from commerce.domain.payments import (
    CheckoutRequest,
    PaymentGateways,
    PaymentOutcome,
    Redirect,
)
from commerce.payments.stripe_checkout import UNSHIPPABLE, StripeGateway, collected_address
from commerce.services.checkout import CheckoutService
from commerce.shipping import ShippingRates, countries
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.web.conftest import HOLD_FIELD
from tests.web.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, stripe_countries

RATES = {"US": "5.00", "DE": "14.00"}  # the drop file's shipping table, in USD
BERLIN = {"line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117", "country": "DE"}
AUSTIN = {
    "line1": "1 Congress Ave",
    "line2": "Suite 5",
    "city": "Austin",
    "state": "TX",
    "postal_code": "78701",
    "country": "US",
}
LOGGER = "commerce.services.checkout"  # where a charged amount is checked against the order


@pytest.fixture
async def gateway(clock: ManualClock, stripe_fake: FakeStripe) -> AsyncIterator[StripeGateway]:
    made = StripeGateway(
        clock,
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
        api_base=stripe_fake.base,
        http_client=stripe.AIOHTTPClient(),
    )
    yield made
    await made.close()


@pytest.fixture
def checkout(commerce: Commerce, gateway: StripeGateway) -> CheckoutService:
    return CheckoutService(commerce.orders, PaymentGateways("stripe", {"stripe": gateway}))


@dataclass(frozen=True)
class Held:
    """Units held by one buyer in a new live drop."""

    commerce: Commerce
    drop_id: int
    hold_id: int
    buyer: int

    async def order(self, country: str | None = None) -> Order:
        """The order as the pay handler makes it: a ship order priced for ``country``."""
        if country is None:
            return await self.commerce.orders.checkout(self.hold_id, self.buyer, "stripe")
        view = await self.commerce.drops.view(self.drop_id)
        rate = ShippingRates(view.currency, view.drop.shipping).quote(country)
        return await self.commerce.orders.checkout(
            self.hold_id, self.buyer, "stripe", shipping=rate
        )


async def hold(
    commerce: Commerce, spec: dict[str, Any], pool: str = SHIP_POOL, qty: int = 1
) -> Held:
    drop_id = await live_drop(commerce, spec)
    buyer = await commerce.customers.resolve("discord:1")
    result = await commerce.claims.claim(drop_id, buyer, pool=pool, qty=qty)
    assert result.hold is not None, result
    return Held(commerce, drop_id, result.hold.id, buyer)


async def begin(gateway: StripeGateway, order: Order, country: str | None) -> str:
    """Start paying ``order`` as the pay handler does; the Checkout Session's id."""
    step = await gateway.begin(
        order,
        CheckoutRequest(
            title="Spicy chips capsule",
            hold_expires_at=gateway.clock.now() + timedelta(seconds=60),
            success_url="https://shop.example/c/token",
            cancel_url="https://shop.example/c/token",
            ship_country=country,
            shipping=order.shipping if country else None,
        ),
    )
    assert isinstance(step, Redirect)
    return step.url.rsplit("/", 1)[1]


def address_logged(caplog: Any, address: dict[str, str], name: str) -> list[str]:
    """The parts of an address that ``commerce`` logged (the database driver's own debug
    log of statement parameters is not ours)."""
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("commerce"))
    parts = [name, *(v for k, v in address.items() if k not in ("country", "state"))]
    return [part for part in parts if part in logged]


# -- the session -------------------------------------------------------------------------


async def test_a_ship_session_collects_an_address_in_the_chosen_country_at_its_rate(
    commerce: Commerce, gateway: StripeGateway, stripe_fake: FakeStripe
) -> None:
    order = await (await hold(commerce, capsule_spec(3, shipping=RATES))).order("DE")
    session_id = await begin(gateway, order, "DE")
    sent = stripe_fake.requests[session_id]
    assert sent["shipping_address_collection"] == {"allowed_countries": ["DE"]}
    assert sent["shipping_options"] == [
        {
            "shipping_rate_data": {
                "type": "fixed_amount",
                "display_name": "Shipping to Germany",
                "fixed_amount": {"amount": "1400", "currency": "usd"},
            }
        }
    ]
    session = stripe_fake.sessions[session_id]
    (option,) = session["shipping_options"]
    assert stripe_fake.shipping_rates[option["shipping_rate"]]["fixed_amount"] == {
        "amount": 1400,
        "currency": "usd",
    }


async def test_stripe_charges_the_order_amount_goods_plus_shipping(
    commerce: Commerce, gateway: StripeGateway, stripe_fake: FakeStripe
) -> None:
    order = await (await hold(commerce, capsule_spec(3, shipping=RATES))).order("DE")
    assert (order.amount.amount_minor, order.items_amount.amount_minor) == (2600, 1200)
    session = stripe_fake.sessions[await begin(gateway, order, "DE")]
    assert session["line_items"][0]["price_data"]["unit_amount"] == "1200"
    assert session["amount_subtotal"] == 1200
    assert session["shipping_cost"]["amount_total"] == 1400
    assert session["amount_total"] == order.amount.amount_minor
    assert session["currency"] == "usd"


async def test_several_units_are_one_line_at_the_unit_price_and_shipping_once(
    commerce: Commerce, gateway: StripeGateway, stripe_fake: FakeStripe
) -> None:
    spec = capsule_spec(3, shipping=RATES, per_customer_limit=2)
    order = await (await hold(commerce, spec, qty=2)).order("US")
    session_id = await begin(gateway, order, "US")
    (line,) = stripe_fake.requests[session_id]["line_items"]
    assert (line["quantity"], line["price_data"]["unit_amount"]) == ("2", "1200")
    assert stripe_fake.sessions[session_id]["amount_total"] == order.amount.amount_minor == 2900


async def test_free_shipping_is_still_the_one_option_and_keeps_to_the_country(
    commerce: Commerce, gateway: StripeGateway, stripe_fake: FakeStripe
) -> None:
    order = await (await hold(commerce, capsule_spec(3))).order("FR")  # no rates: free
    session_id = await begin(gateway, order, "FR")
    sent = stripe_fake.requests[session_id]
    assert sent["shipping_address_collection"] == {"allowed_countries": ["FR"]}
    (option,) = sent["shipping_options"]
    assert option["shipping_rate_data"]["fixed_amount"]["amount"] == "0"
    assert option["shipping_rate_data"]["display_name"] == "Free shipping to France"
    assert stripe_fake.sessions[session_id]["amount_total"] == order.amount.amount_minor == 1200


async def test_a_pickup_session_collects_no_address(
    commerce: Commerce, gateway: StripeGateway, checkout: CheckoutService, stripe_fake: FakeStripe
) -> None:
    held = await hold(commerce, collab_spec(ship=2, pickup=2), pool="pickup:corner-deli")
    order = await held.order()
    session_id = await begin(gateway, order, None)
    sent = stripe_fake.requests[session_id]
    assert "shipping_address_collection" not in sent and "shipping_options" not in sent
    assert stripe_fake.sessions[session_id]["amount_total"] == order.amount.amount_minor == 2000
    result = await checkout.apply_webhook("stripe", *stripe_fake.complete(session_id))
    assert result is not None and result.outcome is PaymentOutcome.PAID
    assert (await commerce.orders.get(order.id)).ship_to is None


async def test_a_country_stripe_cannot_ship_to_is_refused_before_asking_stripe(
    commerce: Commerce, gateway: StripeGateway, stripe_fake: FakeStripe
) -> None:
    order = await (await hold(commerce, capsule_spec(3, shipping={"*": "20.00"}))).order("CU")
    with pytest.raises(InvalidInput) as refused:
        await begin(gateway, order, "CU")
    assert refused.value.field == "country" and "Cuba" in refused.value.message
    assert stripe_fake.sessions == {} and stripe_fake.rejected == []


def test_the_unshippable_countries_are_those_the_stripe_package_leaves_out() -> None:
    """Pinned against the installed stripe package: an upgrade that changes the list fails
    here rather than at a buyer's checkout."""
    assert frozenset(countries()) - stripe_countries() == UNSHIPPABLE


# -- the webhook -------------------------------------------------------------------------


async def test_the_webhook_stores_the_collected_address_and_never_logs_it(
    commerce: Commerce,
    gateway: StripeGateway,
    checkout: CheckoutService,
    stripe_fake: FakeStripe,
    caplog: Any,
) -> None:
    order = await (await hold(commerce, capsule_spec(3, shipping=RATES))).order("US")
    session_id = await begin(gateway, order, "US")
    delivery = stripe_fake.complete(session_id, name="Grace Hopper", address=AUSTIN)
    assert b'"collected_information"' in delivery.body
    with caplog.at_level(logging.DEBUG, logger="commerce"):
        result = await checkout.apply_webhook("stripe", *delivery)
    assert result is not None and result.outcome is PaymentOutcome.PAID
    stored = await commerce.orders.get(order.id)
    assert stored.status is OrderStatus.PAID
    assert stored.ship_to == Address(
        name="Grace Hopper",
        line1="1 Congress Ave",
        line2="Suite 5",
        city="Austin",
        region="TX",
        postal_code="78701",
        country="US",
    )
    assert address_logged(caplog, AUSTIN, "Grace Hopper") == []


async def test_missing_address_parts_are_stored_empty(
    commerce: Commerce, gateway: StripeGateway, checkout: CheckoutService, stripe_fake: FakeStripe
) -> None:
    order = await (await hold(commerce, capsule_spec(3, shipping=RATES))).order("DE")
    session_id = await begin(gateway, order, "DE")
    await checkout.apply_webhook("stripe", *stripe_fake.complete(session_id, address=BERLIN))
    stored = (await commerce.orders.get(order.id)).ship_to
    assert stored is not None and (stored.line2, stored.region) == ("", "")
    assert (stored.city, stored.country) == ("Berlin", "DE")


async def test_a_replayed_webhook_changes_nothing(
    commerce: Commerce,
    gateway: StripeGateway,
    checkout: CheckoutService,
    stripe_fake: FakeStripe,
    clock: ManualClock,
) -> None:
    held = await hold(commerce, capsule_spec(3, shipping=RATES))
    order = await held.order("DE")
    delivery = stripe_fake.complete(await begin(gateway, order, "DE"), address=BERLIN)
    first = await checkout.apply_webhook("stripe", *delivery)
    assert first is not None and first.outcome is PaymentOutcome.PAID
    paid = await commerce.orders.get(order.id)
    clock.advance(30)
    for _ in range(2):
        again = await checkout.apply_webhook("stripe", *delivery)
        assert again is not None and again.outcome is PaymentOutcome.REPLAYED
    assert await commerce.orders.get(order.id) == paid
    assert (await commerce.drops.view(held.drop_id)).stock[0].sold == 1
    assert stripe_fake.refunds == []


async def test_an_event_from_an_older_api_version_gives_the_address_too(
    commerce: Commerce, gateway: StripeGateway, checkout: CheckoutService, stripe_fake: FakeStripe
) -> None:
    """Before 2025-03-31.basil the address was the session's top-level shipping_details."""
    order = await (await hold(commerce, capsule_spec(3, shipping=RATES))).order("DE")
    session_id = await begin(gateway, order, "DE")
    delivery = stripe_fake.complete(session_id, address=BERLIN, api_version="2024-06-20")
    assert b'"shipping_details"' in delivery.body
    assert b'"collected_information"' not in delivery.body
    result = await checkout.apply_webhook("stripe", *delivery)
    assert result is not None and result.outcome is PaymentOutcome.PAID
    stored = (await commerce.orders.get(order.id)).ship_to
    assert stored is not None and (stored.line1, stored.country) == (BERLIN["line1"], "DE")


def test_collected_information_is_preferred_to_the_legacy_shipping_details() -> None:
    def details(city: str) -> dict[str, Any]:
        return {"name": "A", "address": {"line1": "1 Main St", "city": city, "country": "us"}}

    both = {
        "shipping_details": details("Legacy"),
        "collected_information": {"shipping_details": details("Current")},
    }
    assert (collected := collected_address(both)) is not None
    assert (collected.city, collected.country) == ("Current", "US")
    legacy = {"shipping_details": details("Legacy"), "collected_information": None}
    assert (collected := collected_address(legacy)) is not None and collected.city == "Legacy"
    assert collected_address({"collected_information": {"shipping_details": None}}) is None
    assert collected_address({"shipping_details": {"name": "A", "address": "x"}}) is None


# -- a pending order re-priced -------------------------------------------------------------


async def test_choosing_another_country_makes_a_new_session_not_an_idempotency_error(
    commerce: Commerce, gateway: StripeGateway, checkout: CheckoutService, stripe_fake: FakeStripe
) -> None:
    held = await hold(commerce, capsule_spec(3, shipping=RATES))
    first = await begin(gateway, await held.order("US"), "US")
    assert await begin(gateway, await held.order("US"), "US") == first  # a retry: same session
    repriced = await held.order("DE")  # the buyer went back and chose Germany
    second = await begin(gateway, repriced, "DE")
    assert second != first and stripe_fake.rejected == []
    session = stripe_fake.sessions[second]
    assert session["shipping_address_collection"] == {"allowed_countries": ["DE"]}
    assert session["amount_total"] == repriced.amount.amount_minor == 2600
    result = await checkout.apply_webhook("stripe", *stripe_fake.complete(second, address=BERLIN))
    assert result is not None and result.outcome is PaymentOutcome.PAID


async def test_a_stale_session_paid_after_repricing_stands_and_is_logged_without_the_address(
    commerce: Commerce,
    gateway: StripeGateway,
    checkout: CheckoutService,
    stripe_fake: FakeStripe,
    caplog: Any,
) -> None:
    held = await hold(commerce, capsule_spec(3, shipping=RATES))
    stale = await begin(gateway, await held.order("US"), "US")  # 1700
    repriced = await held.order("DE")  # 2600
    await begin(gateway, repriced, "DE")
    delivery = stripe_fake.complete(stale, name="Grace Hopper", address=AUSTIN)
    with caplog.at_level(logging.DEBUG, logger="commerce"):
        result = await checkout.apply_webhook("stripe", *delivery)
    assert result is not None and result.outcome is PaymentOutcome.PAID
    warned = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warned) == 1
    message = warned[0].getMessage()
    assert str(repriced.id) in message and "1700" in message and "2600" in message
    assert address_logged(caplog, AUSTIN, "Grace Hopper") == []


# -- the fake keeps Stripe's rules ------------------------------------------------------------


def session_params(**extra: Any) -> dict[str, Any]:
    return {
        "mode": "payment",
        "success_url": "https://shop.example/ok",
        "expires_at": 2_000_000_000,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 1200,
                    "product_data": {"name": "Chips"},
                },
            }
        ],
        **extra,
    }


@pytest.fixture
async def client(stripe_fake: FakeStripe) -> AsyncIterator[stripe.StripeClient]:
    http = stripe.AIOHTTPClient()
    yield stripe.StripeClient(API_KEY, base_addresses={"api": stripe_fake.base}, http_client=http)
    await http.close_async()


async def test_the_fake_refuses_a_key_reused_with_other_parameters(
    client: stripe.StripeClient, stripe_fake: FakeStripe
) -> None:
    create = client.v1.checkout.sessions.create_async
    made = await create(params=session_params(), options={"idempotency_key": "k1"})  # type: ignore[arg-type]
    again = await create(params=session_params(), options={"idempotency_key": "k1"})  # type: ignore[arg-type]
    assert again.id == made.id and len(stripe_fake.sessions) == 1
    with pytest.raises(stripe.IdempotencyError) as refused:
        await create(
            params=session_params(customer_email="a@example.com"),  # type: ignore[arg-type]
            options={"idempotency_key": "k1"},
        )
    assert refused.value.http_status == 400
    assert stripe_fake.rejected[-1]["type"] == "idempotency_error"
    assert "Try using a key other than 'k1'" in stripe_fake.rejected[-1]["message"]


@pytest.mark.parametrize(
    ("collection", "param"),
    [
        ({"allowed_countries": ""}, "shipping_address_collection[allowed_countries]"),
        ({"allowed_countries": ["XX"]}, "shipping_address_collection[allowed_countries][0]"),
        ({"allowed_countries": ["US", "CU"]}, "shipping_address_collection[allowed_countries][1]"),
    ],
)
async def test_the_fake_refuses_an_empty_or_unknown_allowed_country(
    client: stripe.StripeClient, stripe_fake: FakeStripe, collection: Any, param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.checkout.sessions.create_async(
            params=session_params(shipping_address_collection=collection),  # type: ignore[arg-type]
            options={"idempotency_key": "k2"},
        )
    assert refused.value.http_status == 400 and refused.value.param == param
    assert stripe_fake.sessions == {} and stripe_fake.idempotency == {}


# -- through the web app ---------------------------------------------------------------------


async def test_web_paying_with_a_country_then_the_webhook_ships_the_order_there(
    stripe_shop: Any, stripe_fake: FakeStripe
) -> None:
    drop_id = await live_drop(stripe_shop.commerce, capsule_spec(3, shipping=RATES))
    token, page = await stripe_shop.held_page(drop_id)
    response = await stripe_shop.pay(token, page, country="DE")
    assert response.status == 303, await response.text()
    session_id = response.headers["Location"].rsplit("/", 1)[1]
    hold_field = HOLD_FIELD.search(page)
    assert hold_field is not None
    order = await stripe_shop.commerce.orders.for_hold(int(hold_field[1]))
    assert order is not None
    session = stripe_fake.sessions[session_id]
    assert session["shipping_address_collection"] == {"allowed_countries": ["DE"]}
    assert session["amount_total"] == order.amount.amount_minor == 2600
    delivery = stripe_fake.complete(session_id, address=BERLIN)
    paid = await stripe_shop.client.post(
        "/webhooks/stripe", data=delivery.body, headers=delivery.headers
    )
    assert paid.status == 200 and (await paid.json())["outcome"] == "paid"
    stored = await stripe_shop.commerce.orders.get(order.id)
    assert stored.status is OrderStatus.PAID
    assert stored.ship_to is not None and stored.ship_to.city == "Berlin"
    replay = await stripe_shop.client.post(
        "/webhooks/stripe", data=delivery.body, headers=delivery.headers
    )
    assert (await replay.json())["outcome"] == "replayed"
    assert await stripe_shop.commerce.orders.get(order.id) == stored
