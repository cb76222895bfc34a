"""The partner shop's pickup list, both engines: its own signed link (no admin rights, one
location, valid until the secret changes), a "picked up" form per order that checks the
code the buyer shows (never printed on the list), CSRF-protected; and `dropcast
pickup-link` printing that link."""

from __future__ import annotations

from commerce.domain.model import ClaimOutcome, Fulfilment, OrderStatus
from commerce.web.context import PickupKeys
from commerce.web.security import AuthThrottle
from tests.helpers import live_drop
from tests.web.conftest import ADMIN, CSRF_FIELD, SECRET, found

DELI = "corner-deli"


def two_shops_spec() -> dict:
    return {
        "drop": {"title": "Corner deli collab", "format": "collab"},
        "products": [{"sku": "TOTE", "title": "Tote bag", "price": "20.00"}],
        "items": [{"sku": "TOTE", "pools": {"pickup:corner-deli": 3, "pickup:bakery": 2}}],
    }


async def pickup_order(commerce, drop_id: int, identity: str, location: str = DELI):
    """A pay-at-pickup order (``manual``): reserved, with its pickup code."""
    customer = await commerce.customers.resolve(identity)
    held = await commerce.claims.claim(drop_id, customer, pool=f"pickup:{location}")
    assert held.outcome is ClaimOutcome.HELD, held
    order = await commerce.orders.checkout(held.hold.id, customer, "manual")
    return (await commerce.orders.reserve(order.id)).order


def key_of(site, location: str = DELI) -> str:
    return site.ctx.require_pickup_keys().key(location)


async def open_list(site, location: str = DELI, key: str | None = None) -> str:
    key = key_of(site, location) if key is None else key
    response = await site.client.get(f"/pickup/{location}", params={"key": key})
    assert response.status == 200, await response.text()
    return await response.text()


async def hand_over(site, order_id: int, code: str, *, location: str = DELI, **form: str):
    page = await open_list(site, location)
    data = {"csrf": found(CSRF_FIELD, page), "key": key_of(site, location), "code": code}
    data.update(form)
    return await site.client.post(
        f"/pickup/{location}/orders/{order_id}/picked-up", data=data, allow_redirects=False
    )


async def test_the_shop_opens_its_list_with_its_key_and_never_sees_the_codes(site):
    drop_id = await live_drop(site.commerce, two_shops_spec())
    order = await pickup_order(site.commerce, drop_id, "web:ana@example.com")
    html = await open_list(site)
    assert "web:ana@example.com" in html and "to pay" in html and "20.00 USD" in html
    assert 'name="code"' in html and f"/orders/{order.id}/picked-up" in html
    assert order.pickup_code and order.pickup_code not in html
    csv = await site.client.get(f"/pickup/{DELI}", params={"key": key_of(site), "format": "csv"})
    assert csv.status == 200 and order.pickup_code not in await csv.text()
    assert f"/pickup/{DELI}?key=" in html  # the CSV link keeps the key


async def test_a_missing_or_wrong_key_is_refused_and_a_key_opens_one_location_only(site):
    await live_drop(site.commerce, two_shops_spec())
    assert (await site.client.get(f"/pickup/{DELI}")).status == 401
    wrong = await site.client.get(f"/pickup/{DELI}", params={"key": "bm90LXRoZS1rZXk"})
    assert wrong.status == 403
    other = await site.client.get(f"/pickup/{DELI}", params={"key": key_of(site, "bakery")})
    assert other.status == 403
    assert (await site.client.get("/pickup/bakery", params={"key": key_of(site)})).status == 403
    # the admin still opens every list without a key
    assert (await site.client.get(f"/pickup/{DELI}", headers=site.admin)).status == 200


async def test_the_key_is_valid_until_the_secret_changes(make_web):
    one = await make_web()
    key = one.ctx.require_pickup_keys().key(DELI)
    same = await make_web()
    assert (await same.client.get(f"/pickup/{DELI}", params={"key": key})).status == 200
    rotated = await make_web(security={"secret_key": "another-secret-key-0123456789abcdef"})
    assert (await rotated.client.get(f"/pickup/{DELI}", params={"key": key})).status == 403
    assert key == PickupKeys(SECRET).key(DELI)


async def test_the_right_code_hands_over_and_a_pay_at_pickup_order_becomes_paid(site):
    drop_id = await live_drop(site.commerce, two_shops_spec())
    order = await pickup_order(site.commerce, drop_id, "web:ana@example.com")
    assert order.status is OrderStatus.RESERVED

    response = await hand_over(site, order.id, order.pickup_code.lower())
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith(f"/pickup/{DELI}?key=") and f"done={order.id}" in location
    after = await site.commerce.orders.get(order.id)
    assert (after.status, after.fulfilment) == (OrderStatus.PAID, Fulfilment.PICKED_UP)
    html = await (await site.client.get(location)).text()
    assert f"Order #{order.id} handed over." in html
    waiting, handed = html.split("<h2>Handed over</h2>")
    assert f'data-order="{order.id}"' in handed and f'data-order="{order.id}"' not in waiting

    other = await pickup_order(site.commerce, drop_id, "web:bo@example.com")
    page = await open_list(site)  # a form is still there for the other order
    again = await site.client.post(
        f"/pickup/{DELI}/orders/{order.id}/picked-up",
        data={"csrf": found(CSRF_FIELD, page), "key": key_of(site), "code": order.pickup_code},
        allow_redirects=False,
    )
    assert again.status == 303  # already handed over: nothing more happens
    assert (await site.commerce.orders.get(other.id)).fulfilment is None


async def test_a_wrong_or_missing_code_says_so_and_changes_nothing(site):
    drop_id = await live_drop(site.commerce, two_shops_spec())
    order = await pickup_order(site.commerce, drop_id, "web:ana@example.com")
    wrong = "AAAAAA" if order.pickup_code != "AAAAAA" else "CCCCCC"
    for code, message in ((wrong, "not the code of order"), ("", "Enter the code")):
        response = await hand_over(site, order.id, code)
        assert response.status == 422
        assert message in await response.text()
    after = await site.commerce.orders.get(order.id)
    assert (after.status, after.fulfilment) == (OrderStatus.RESERVED, None)


async def test_wrong_codes_from_one_address_are_throttled_before_a_code_is_guessed(site):
    clock = [0.0]
    site.ctx.code_throttle = AuthThrottle((), limit=3, window=600, now=lambda: clock[0])
    drop_id = await live_drop(site.commerce, two_shops_spec())
    order = await pickup_order(site.commerce, drop_id, "web:ana@example.com")
    wrong = "AAAAAA" if order.pickup_code != "AAAAAA" else "CCCCCC"
    for _ in range(3):
        assert (await hand_over(site, order.id, wrong)).status == 422
    stopped = await hand_over(site, order.id, order.pickup_code)  # even the right one
    assert stopped.status == 429 and int(stopped.headers["Retry-After"]) > 0
    assert (await site.commerce.orders.get(order.id)).fulfilment is None
    clock[0] += 601  # the failures age out
    assert (await hand_over(site, order.id, order.pickup_code)).status == 303
    assert (await site.commerce.orders.get(order.id)).fulfilment is Fulfilment.PICKED_UP


async def test_another_locations_order_cannot_be_handed_over_with_this_key(site):
    drop_id = await live_drop(site.commerce, two_shops_spec())
    bakery = await pickup_order(site.commerce, drop_id, "web:bo@example.com", "bakery")
    await pickup_order(site.commerce, drop_id, "web:ana@example.com")
    page = await open_list(site)
    assert f'data-order="{bakery.id}"' not in page
    response = await site.client.post(
        f"/pickup/{DELI}/orders/{bakery.id}/picked-up",
        data={"csrf": found(CSRF_FIELD, page), "key": key_of(site), "code": bakery.pickup_code},
        allow_redirects=False,
    )
    assert response.status == 403
    # nor through the bakery's URL with the deli's key
    response = await site.client.post(
        f"/pickup/bakery/orders/{bakery.id}/picked-up",
        data={"csrf": found(CSRF_FIELD, page), "key": key_of(site), "code": bakery.pickup_code},
        allow_redirects=False,
    )
    assert response.status == 403
    assert (await site.commerce.orders.get(bakery.id)).fulfilment is None


async def test_the_picked_up_form_needs_our_csrf_token_and_the_key_or_the_admin(site):
    drop_id = await live_drop(site.commerce, two_shops_spec())
    order = await pickup_order(site.commerce, drop_id, "web:ana@example.com")
    path = f"/pickup/{DELI}/orders/{order.id}/picked-up"
    for token in (None, "forged"):
        data = {"key": key_of(site), "code": order.pickup_code}
        if token is not None:
            data["csrf"] = token
        response = await site.client.post(path, data=data, allow_redirects=False)
        assert response.status == 403
    no_key = await site.client.post(path, data={"code": order.pickup_code})
    assert no_key.status == 401
    assert (await site.commerce.orders.get(order.id)).fulfilment is None

    # the admin, signed in at the dashboard, uses the same form without a key
    await site.client.get(f"/dashboard?token={ADMIN}")
    page = await (await site.client.get(f"/pickup/{DELI}")).text()
    assert 'name="key"' not in page
    response = await site.client.post(
        path,
        data={"csrf": found(CSRF_FIELD, page), "code": order.pickup_code},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == (
        f"/pickup/{DELI}?done={order.id}"
    )
