"""Shipping on the web checkout: the address form of a ship hold, its rates and total, the
order it makes, the returning buyer's address, and the receipt."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from sqlalchemy import func, select

from commerce.domain.errors import InvalidInput
from commerce.domain.model import Address, Money, OrderStatus
from commerce.domain.payments import CheckoutRequest
from commerce.storage.tables import orders
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.web.conftest import DEFAULT_ADDRESS, HOLD_FIELD, found

RATES = {"US": "5.00", "*": "14.00"}
OPTION = re.compile(r'<option value="([A-Z]{2})"')
SHIP_RATES = re.compile(r'data-ship-rates="([^"]*)"')
INVALID = re.compile(r'<(?:input|select) name="(\w+)"[^>]*aria-invalid="true"')


def address(**change: str) -> dict[str, str]:
    return {**DEFAULT_ADDRESS, **change}


async def order_count(site: Any) -> int:
    async with site.commerce.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(orders))).scalar())


async def held(site: Any, spec: dict[str, Any], identity: str = "discord:1") -> tuple[str, str]:
    drop_id = await live_drop(site.commerce, spec)
    return await site.held_page(drop_id, identity)


async def order_of(site: Any, page: str) -> Any:
    return await site.commerce.orders.for_hold(int(found(HOLD_FIELD, page)))


async def test_a_good_address_makes_an_order_shipped_there_for_items_plus_the_rate(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    assert 'name="line1"' in page and 'autocomplete="shipping address-line1"' in page
    response = await site.pay(token, page, **address(line2="Apt 4"))
    assert response.status == 200
    order = await order_of(site, page)
    assert order.status is OrderStatus.PAID
    assert order.ship_to == Address(
        name="Test Buyer",
        line1="1 Main St",
        line2="Apt 4",
        postal_code="12345",
        city="Springfield",
        region="IL",
        country="US",
    )
    assert order.shipping == Money(500, "USD") and order.amount == Money(1700, "USD")
    assert order.items_amount == Money(1200, "USD")


async def test_the_held_page_shows_items_shipping_and_total_and_the_rates_without_script(site):
    _, page = await held(site, capsule_spec(3, shipping=RATES))
    assert "Items</td><td>$12.00" in page
    assert "United States: $5.00" in page and "Everywhere else we ship: $14.00" in page
    table = json.loads(html.unescape(found(SHIP_RATES, page)))
    assert table["US"] == ["$5.00", "$17.00"] and table["*"] == ["$14.00", "$26.00"]
    assert 'data-deadline="2026-01-01T12:01:00Z"' in page  # the countdown, as before
    assert len(page.encode()) < 30_000


async def test_the_readers_country_is_chosen_first_with_its_total(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3, shipping=RATES))
    token = site.token(drop_id)
    response = await site.client.get(f"/c/{token}", headers={"Accept-Language": "en-US,en"})
    page = await response.text()
    assert '<option value="US" selected>' in page
    assert "<th data-ship-total>$17.00</th>" in page


@pytest.mark.parametrize(
    ("field", "label"),
    [("name", "name"), ("line1", "address line 1"), ("city", "city"), ("country", "country")],
)
async def test_a_missing_required_field_is_named_and_nothing_is_created(site, field, label):
    drop_id = await live_drop(site.commerce, capsule_spec(3, shipping=RATES))
    token, page = await site.held_page(drop_id)
    response = await site.pay(token, page, **address(**{field: "  "}, line2="Back door"))
    text = await response.text()
    assert response.status == 400
    assert f'role="alert" id="ship-error">{label}: is required</p>' in text
    assert found(INVALID, text) == field
    assert 'value="Back door"' in text  # what was typed is kept
    assert 'name="csrf"' in text and 'data-deadline="2026-01-01T12:01:00Z"' in text
    assert await order_count(site) == 0
    customer = await site.commerce.customers.find("discord:1")
    assert (await site.commerce.claims.holding(drop_id, customer)) is not None


async def test_an_unknown_country_code_is_refused(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    response = await site.pay(token, page, **address(country="ZZ"))
    assert response.status == 400
    assert "country: &#39;ZZ&#39; is not an ISO 3166-1 country code" in await response.text()
    assert await order_count(site) == 0


async def test_a_country_without_a_rate_is_refused_and_the_hold_stays(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3, shipping={"US": "5.00"}))
    token, page = await site.held_page(drop_id)
    assert OPTION.findall(page) == ["US"]
    response = await site.pay(token, page, **address(country="DE", city="Berlin"))
    text = await response.text()
    assert response.status == 400
    assert "country: this drop does not ship to Germany" in text
    assert 'value="Berlin"' in text
    assert await order_count(site) == 0
    view = await site.commerce.drops.view(drop_id)
    assert (view.stock[0].held, view.stock[0].sold) == (1, 0)
    # The page that came back pays once the buyer picks a country the drop ships to.
    again = await site.pay(token, text, **address())
    assert again.status == 200
    assert (await order_of(site, page)).amount == Money(1700, "USD")


async def test_every_other_country_pays_the_star_rate(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    response = await site.pay(token, page, **address(country="DE", region=""))
    assert response.status == 200
    order = await order_of(site, page)
    assert order.shipping == Money(1400, "USD") and order.amount == Money(2600, "USD")


async def test_a_drop_without_rates_ships_free_anywhere(site):
    token, page = await held(site, capsule_spec(3))
    assert len(OPTION.findall(page)) > 200
    assert "Everywhere we ship: Free" in page
    response = await site.pay(token, page, **address(country="JP", region=""))
    assert response.status == 200
    assert "<td>Shipping</td><td>Free</td>" in await response.text()
    order = await order_of(site, page)
    assert order.shipping == Money(0, "USD") and order.amount == Money(1200, "USD")


async def test_ship_to_countries_narrows_the_choices(make_web):
    site = await make_web(payments={"ship_to_countries": ["us", "CA"]})
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    assert sorted(OPTION.findall(page)) == ["CA", "US"]
    refused = await site.pay(token, page, **address(country="DE"))
    assert refused.status == 400
    assert "this drop does not ship to Germany" in await refused.text()
    assert await order_count(site) == 0


async def test_a_returning_buyer_finds_their_last_address_and_no_one_else_does(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES), "discord:1")
    mine = address(line1="742 Evergreen Terrace", country="CA", region="ON")
    assert (await site.pay(token, page, **mine)).status == 200

    drop_id = await live_drop(site.commerce, capsule_spec(3, shipping=RATES, title="Second"))
    _, again = await site.held_page(drop_id, "discord:1")
    assert 'name="line1" value="742 Evergreen Terrace"' in again
    assert '<option value="CA" selected>' in again
    assert "<th data-ship-total>$26.00</th>" in again

    _, other = await site.held_page(drop_id, "discord:2")
    assert "742 Evergreen Terrace" not in other and "Test Buyer" not in other
    assert 'name="line1" value=""' in other


async def test_the_receipt_shows_number_items_shipping_total_and_address(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    response = await site.pay(token, page, **address())
    order = await order_of(site, page)
    for text in (await response.text(), await (await site.client.get(f"/c/{token}")).text()):
        assert f"Order #{order.id}" in text
        assert "Spicy chips, 6-pack × 1</td><td>$12.00" in text
        assert "<td>Shipping</td><td>$5.00</td>" in text
        assert "Total paid</th><th>$17.00" in text
        assert "Test Buyer<br>1 Main St<br>12345 Springfield, IL<br>United States" in text
        assert 'name="line1"' not in text


async def test_a_replayed_pay_of_a_paid_order_shows_it_whatever_the_form_says(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    assert (await site.pay(token, page)).status == 200
    replay = await site.pay(token, page, **address(name=""))
    assert replay.status == 200 and "It&#39;s yours!" in await replay.text()
    assert await order_count(site) == 1


async def test_the_provider_hears_the_country_and_the_rate(site, monkeypatch):
    provider = site.ctx.payments.get("test")
    seen: list[CheckoutRequest] = []
    begin = provider.begin

    async def spy(order, request):
        seen.append(request)
        return await begin(order, request)

    monkeypatch.setattr(provider, "begin", spy)
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    await site.pay(token, page, **address(country="FR", region=""))
    assert (seen[0].ship_country, seen[0].shipping) == ("FR", Money(1400, "USD"))


async def test_a_pickup_hold_asks_no_address_and_its_receipt_shows_the_pickup_code(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=2, pickup=2))
    token = site.token(drop_id)
    page = await (await site.client.get(f"/c/{token}?pool=pickup:corner-deli")).text()
    assert 'name="line1"' not in page and 'name="country"' not in page
    assert "data-ship-rates" not in page
    response = await site.pay(token, page)
    text = await response.text()
    order = await order_of(site, page)
    assert response.status == 200 and order.status is OrderStatus.PAID
    assert order.ship_to is None and order.shipping is None
    assert re.fullmatch(r"[A-Z0-9]{6}", order.pickup_code)
    assert f"Show this code at the shop: <strong data-pickup-code>{order.pickup_code}" in text
    assert "<h2>Pick up at Corner Deli</h2>" in text and "Ships to" not in text
    assert "Total paid</th><th>$20.00" in text


async def test_a_reserved_pickup_order_shows_its_code_too(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=2, pickup=2))
    token = site.token(drop_id)
    page = await (await site.client.get(f"/c/{token}?pool=pickup:corner-deli")).text()
    text = await (await site.pay(token, page, provider="manual")).text()
    order = await order_of(site, page)
    assert order.status is OrderStatus.RESERVED
    assert f"Show this code at the shop: <strong data-pickup-code>{order.pickup_code}" in text
    assert "To pay at pickup</th><th>$20.00" in text


async def test_the_signed_in_drop_page_lists_the_buyers_order(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3, shipping=RATES))
    await site.sign_in("twitch:77", "Ann")
    token, page = await site.held_page(drop_id, "twitch:77")
    before = await (await site.client.get(f"/api/me?drop={drop_id}")).json()
    assert before["orders"] == [] and len(before["holds"]) == 1
    await site.pay(token, page)
    order = await order_of(site, page)
    me = await (await site.client.get(f"/api/me?drop={drop_id}")).json()
    assert me["holds"] == []
    assert me["orders"] == [
        {
            "order_id": order.id,
            "status": "paid",
            "total": "$17.00",
            "pickup_code": None,
            "text": f"Your order #{order.id}: paid, $17.00.",
        }
    ]
    await site.sign_in("twitch:78", "Bob")  # another person in this browser: none of it
    other = await (await site.client.get(f"/api/me?drop={drop_id}")).json()
    assert other["orders"] == [] and other["holds"] == []


async def test_with_stripe_the_page_asks_only_the_country_and_prices_the_order(stripe_shop):
    token, page = await held(stripe_shop, capsule_spec(3, shipping=RATES))
    assert 'name="country"' in page and 'name="line1"' not in page
    assert "street address on the card page" in page
    refused = await stripe_shop.pay(token, page, country="")
    assert refused.status == 400 and "country: is required" in await refused.text()
    response = await stripe_shop.pay(token, page, country="DE")
    assert response.status == 303, await response.text()
    order = await order_of(stripe_shop, page)
    assert order.status is OrderStatus.PENDING and order.ship_to is None
    assert order.shipping == Money(1400, "USD") and order.amount == Money(2600, "USD")


async def test_paying_by_card_offers_no_country_stripe_cannot_deliver_to(stripe_shop, site):
    card_token, card_page = await held(stripe_shop, capsule_spec(3, shipping=RATES))
    _, test_page = await held(site, capsule_spec(3, shipping=RATES), identity="discord:2")
    assert '<option value="CU"' not in card_page and '<option value="DE"' in card_page
    assert '<option value="CU"' in test_page  # another provider may deliver there
    refused = await stripe_shop.pay(card_token, card_page, country="CU")
    assert refused.status == 400 and "does not ship to Cuba" in await refused.text()
    assert await order_of(stripe_shop, card_page) is None


async def test_a_country_the_provider_cannot_take_is_asked_again(site, monkeypatch):
    provider = site.ctx.payments.get("test")
    begin = provider.begin

    async def picky(order, request):
        if request.ship_country == "CU":
            raise InvalidInput("country", "card payment cannot ship to Cuba; choose another")
        return await begin(order, request)

    monkeypatch.setattr(provider, "begin", picky)
    token, page = await held(site, capsule_spec(3, shipping=RATES))
    refused = await site.pay(token, page, **address(country="CU", region=""))
    text = await refused.text()
    assert refused.status == 400 and "cannot ship to Cuba" in text
    assert (await order_of(site, page)).status is OrderStatus.PENDING
    paid = await site.pay(token, text, **address())
    assert paid.status == 200
    order = await order_of(site, page)
    assert order.status is OrderStatus.PAID and order.amount == Money(1700, "USD")


async def test_a_bad_address_after_the_hold_ran_out_says_the_hold_ended(site):
    token, page = await held(site, capsule_spec(3, shipping=RATES, hold_seconds=60))
    site.clock.advance(61)
    response = await site.pay(token, page, **address(city=""))
    assert response.status == 410
    assert "hold has ended" in await response.text()
    assert await order_count(site) == 0
