"""The creator's order desk on the web, both engines: the admin API (list, filter, packing
CSV, refund, ship one or a carrier's file, picked up) and the dashboard's Orders page with
its CSRF-protected refund and mark-shipped forms. Admin only, everywhere."""

from __future__ import annotations

import csv
import io
import re

import pytest

from commerce.domain.model import Address, ClaimOutcome, DeskStatus, Money, OrderStatus
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.web.conftest import ADMIN, CSRF_FIELD, found

ANN = Address("Ann Lee", "1 Main St", "Springfield", "12345", "US", region="IL")
BOB = Address("Bob Roe", "Hauptstr. 5", "Berlin", "10115", "DE")
FIVE = Money(500, "USD")


async def paid_order(commerce, drop_id: int, identity: str, ship_to: Address = ANN):
    customer = await commerce.customers.resolve(identity)
    held = await commerce.claims.claim(drop_id, customer)
    assert held.outcome is ClaimOutcome.HELD, held
    order = await commerce.orders.checkout(
        held.hold.id, customer, "test", ship_to=ship_to, shipping=FIVE
    )
    return (await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")).order


async def listed(site, **query: str) -> list[dict]:
    response = await site.client.get("/api/orders", params=query, headers=site.admin)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    data = await response.json()
    assert data["count"] == len(data["orders"])
    return data["orders"]


async def login(site) -> None:
    response = await site.client.get(f"/dashboard?token={ADMIN}", allow_redirects=False)
    assert response.status == 303


# -- access ----------------------------------------------------------------------------------

ENDPOINTS = [
    ("GET", "/api/orders"),
    ("GET", "/api/orders?format=csv"),
    ("GET", "/api/orders/1"),
    ("POST", "/api/orders/1/refund"),
    ("POST", "/api/orders/1/ship"),
    ("POST", "/api/orders/ship"),
    ("POST", "/api/orders/1/picked-up"),
]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_every_order_endpoint_is_401_without_the_admin(site, headers):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    order = await paid_order(site.commerce, drop_id, "discord:1")
    for method, path in ENDPOINTS:
        path = path.replace("/1", f"/{order.id}")
        response = await site.client.request(method, path, headers=headers, json={})
        assert response.status == 401, (method, path)
        assert (await response.json())["error"] == "UNAUTHORIZED"
    page = await site.client.get(f"/dashboard/drops/{drop_id}/orders", headers=headers)
    assert page.status == 401 and "Sign-in required" in await page.text()
    for action in ("refund", "ship"):
        response = await site.client.post(
            f"/dashboard/orders/{order.id}/{action}", data={"reason": "x"}, headers=headers
        )
        assert response.status == 401
    assert (await site.commerce.orders.get(order.id)).status is OrderStatus.PAID


async def test_the_desk_says_so_when_no_admin_token_is_configured(make_web):
    web = await make_web(security={"admin_token": None})
    response = await web.client.get("/api/orders", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status == 403 and (await response.json())["error"] == "ADMIN_DISABLED"
    page = await web.client.get("/dashboard/drops/1/orders")
    assert page.status == 403 and "security.admin_token" in await page.text()


# -- reading ---------------------------------------------------------------------------------


async def test_the_list_filters_by_drop_and_status_and_carries_the_address(site):
    chips = await live_drop(site.commerce, capsule_spec(5))
    totes = await live_drop(site.commerce, collab_spec(ship=3, pickup=2))
    first = await paid_order(site.commerce, chips, "discord:1")
    second = await paid_order(site.commerce, chips, "discord:2", ship_to=BOB)
    tote = await paid_order(site.commerce, totes, "discord:3")
    await site.commerce.orders.ship(second.id, "DHL", "JD0001")

    everything = await listed(site)
    assert [o["id"] for o in everything] == [first.id, second.id, tote.id]
    assert [o["id"] for o in await listed(site, drop=str(chips))] == [first.id, second.id]
    assert [o["id"] for o in await listed(site, drop=str(chips), status="paid")] == [first.id]
    (shipped,) = await listed(site, status="shipped")
    assert (shipped["id"], shipped["carrier"], shipped["tracking"]) == (second.id, "DHL", "JD0001")
    assert shipped["ship_to"] == BOB.as_dict() and shipped["status"] == "shipped"
    assert shipped["payment_status"] == "paid" and shipped["items"] == [
        {"sku": "CHIPS-SPICY", "qty": 1}
    ]
    assert (shipped["amount_minor"], shipped["shipping_minor"]) == (1700, 500)
    assert await listed(site, status="refunded") == []

    one = await site.client.get(f"/api/orders/{first.id}", headers=site.admin)
    assert one.status == 200
    data = await one.json()
    assert data["ship_to"] == ANN.as_dict() and data["customer"] == "discord:1"

    bad_status = await site.client.get("/api/orders?status=lost", headers=site.admin)
    assert bad_status.status == 422 and (await bad_status.json())["field"] == "status"
    bad_drop = await site.client.get("/api/orders?drop=x1", headers=site.admin)
    assert bad_drop.status == 422 and (await bad_drop.json())["field"] == "drop"
    assert (await site.client.get("/api/orders?drop=999", headers=site.admin)).status == 404
    missing = await site.client.get("/api/orders/999", headers=site.admin)
    assert missing.status == 404 and (await missing.json())["error"] == "ORDER_NOT_FOUND"


async def test_the_csv_is_the_packing_list_with_every_address(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    ann = await paid_order(site.commerce, drop_id, "discord:1")
    bob = await paid_order(site.commerce, drop_id, "discord:2", ship_to=BOB)

    response = await site.client.get(
        "/api/orders", params={"drop": str(drop_id), "format": "csv"}, headers=site.admin
    )
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Cache-Control"] == "no-store"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(r["order"], r["name"], r["city"], r["country"], r["sku"]) for r in rows] == [
        (str(ann.id), "Ann Lee", "Springfield", "US", "CHIPS-SPICY"),
        (str(bob.id), "Bob Roe", "Berlin", "DE", "CHIPS-SPICY"),
    ]
    # the dashboard's download link: the admin's browser sends its cookie, not a bearer
    assert (await site.client.get(f"/api/orders?drop={drop_id}&format=csv")).status == 401
    await login(site)
    assert (await site.client.get(f"/api/orders?drop={drop_id}&format=csv")).status == 200


# -- acting ----------------------------------------------------------------------------------


async def test_a_refund_is_idempotent_and_a_live_drops_unit_goes_to_the_first_waitlisted(site):
    commerce = site.commerce
    drop_id = await live_drop(commerce, capsule_spec(2))
    order = await paid_order(commerce, drop_id, "discord:1")
    holder = await commerce.customers.resolve("discord:2")
    assert (await commerce.claims.claim(drop_id, holder)).outcome is ClaimOutcome.HELD
    first = await commerce.customers.resolve("discord:3")
    second = await commerce.customers.resolve("discord:4")
    for waiting in (first, second):
        joined = await commerce.claims.join_waitlist(drop_id, waiting)
        assert joined.waitlist_position is not None

    path = f"/api/orders/{order.id}/refund"
    response = await site.client.post(path, json={"reason": "damaged box"}, headers=site.admin)
    assert response.status == 200, await response.text()
    data = await response.json()
    assert data["changed"] is True
    assert (data["order"]["status"], data["order"]["refund_reason"]) == ("refunded", "damaged box")
    offered = await commerce.claims.holding(drop_id, first)
    assert offered is not None and offered.is_active(site.clock.now())
    assert await commerce.claims.holding(drop_id, second) is None

    again = await site.client.post(path, json={"reason": "damaged box"}, headers=site.admin)
    assert again.status == 200 and (await again.json())["changed"] is False
    provider = site.ctx.payments.get("test")
    assert provider.refunds == [(order.id, f"pi_{order.id}", "damaged box")]

    long = await site.client.post(path, json={"reason": "x" * 65}, headers=site.admin)
    assert long.status == 422 and (await long.json())["field"] == "reason"


async def test_ship_one_then_a_carriers_file_twice_changes_nothing_the_second_time(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    a, b, c = [await paid_order(site.commerce, drop_id, f"discord:{i}") for i in (1, 2, 3)]

    one = await site.client.post(
        f"/api/orders/{a.id}/ship", json={"carrier": "UPS", "tracking": "1Z999"}, headers=site.admin
    )
    assert one.status == 200
    data = await one.json()
    assert data["changed"] is True and data["order"]["status"] == "shipped"
    same = await site.client.post(
        f"/api/orders/{a.id}/ship", json={"carrier": "UPS", "tracking": "1Z999"}, headers=site.admin
    )
    assert (await same.json())["changed"] is False
    missing = await site.client.post(
        f"/api/orders/{a.id}/ship", json={"carrier": "UPS"}, headers=site.admin
    )
    assert missing.status == 422 and (await missing.json())["field"] == "tracking"

    export = f"Order ID,Carrier,Tracking\n{b.id},DHL,JD1\n#{c.id},DHL,JD2\n999999,DHL,JD3\n"
    headers = {**site.admin, "Content-Type": "text/csv"}
    first = await site.client.post("/api/orders/ship", data=export, headers=headers)
    assert first.status == 200, await first.text()
    report = await first.json()
    assert report["shipped"] == [b.id, c.id] and report["unchanged"] == []
    assert [(r["line"], r["order"]) for r in report["refused"]] == [(4, 999999)]

    second = await site.client.post("/api/orders/ship", data=export, headers=headers)
    report = await second.json()
    assert report["shipped"] == [] and report["unchanged"] == [b.id, c.id]
    assert [o["id"] for o in await listed(site, status="shipped")] == [a.id, b.id, c.id]


@pytest.mark.parametrize(
    ("export", "line"),
    [
        ("order,carrier,tracking\n{a},UPS,1Z1\n{b},UPS,\n", "line 3"),
        ("order,carrier,tracking\n{a},UPS,1Z1\nabc,UPS,1Z2\n", "line 3"),
        ("order,carrier\n{a},UPS\n", "line 1"),
    ],
)
async def test_a_bad_carriers_file_is_400_naming_the_line_and_ships_nothing(site, export, line):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    a, b = [await paid_order(site.commerce, drop_id, f"discord:{i}") for i in (1, 2)]
    response = await site.client.post(
        "/api/orders/ship",
        data=export.format(a=a.id, b=b.id),
        headers={**site.admin, "Content-Type": "text/csv"},
    )
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "BAD_CSV" and body["field"] == "csv" and line in body["message"]
    assert await listed(site, status="shipped") == []
    not_utf8 = await site.client.post(
        "/api/orders/ship", data=b"order\xff", headers={**site.admin, "Content-Type": "text/csv"}
    )
    assert not_utf8.status == 400


async def test_the_api_marks_a_pickup_order_picked_up_with_its_code(site):
    commerce = site.commerce
    drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=2))
    customer = await commerce.customers.resolve("discord:1")
    held = await commerce.claims.claim(drop_id, customer, pool="pickup:corner-deli")
    order = await commerce.orders.checkout(held.hold.id, customer, "manual")
    order = (await commerce.orders.reserve(order.id)).order
    path = f"/api/orders/{order.id}/picked-up"

    wrong = await site.client.post(path, json={"code": "AAAAAA"}, headers=site.admin)
    assert wrong.status == 422 and (await wrong.json())["field"] == "code"
    right = await site.client.post(path, json={"code": order.pickup_code}, headers=site.admin)
    assert right.status == 200
    data = (await right.json())["order"]
    assert (data["status"], data["payment_status"]) == ("picked_up", "paid")


# -- the dashboard's Orders page -------------------------------------------------------------


async def test_the_orders_page_lists_filters_and_links_the_csv(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    ann = await paid_order(site.commerce, drop_id, "discord:1")
    bob = await paid_order(site.commerce, drop_id, "discord:2", ship_to=BOB)
    await site.commerce.orders.ship(bob.id, "DHL", "JD0001")
    await login(site)

    dashboard = await (await site.client.get(f"/dashboard?drop={drop_id}")).text()
    assert f'href="/dashboard/drops/{drop_id}/orders"' in dashboard
    response = await site.client.get(f"/dashboard/drops/{drop_id}/orders")
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    assert f'data-order="{ann.id}"' in html and f'data-order="{bob.id}"' in html
    assert "Ann Lee, 1 Main St, 12345 Springfield, IL, US" in html and "DHL JD0001" in html
    assert "CHIPS-SPICY × 1" in html and "$17.00" in html
    assert f'href="/api/orders?drop={drop_id}&amp;format=csv"' in html
    assert "All (2)" in html and "paid (1)" in html and "shipped (1)" in html
    assert "refunded (0)" in html and "cancelled" not in html
    assert "<script" not in html

    shipped = await (
        await site.client.get(f"/dashboard/drops/{drop_id}/orders?status=shipped")
    ).text()
    assert f'data-order="{bob.id}"' in shipped and f'data-order="{ann.id}"' not in shipped
    assert "status=shipped&amp;format=csv" in shipped
    bad = await site.client.get(f"/dashboard/drops/{drop_id}/orders?status=lost")
    assert bad.status == 422
    assert (await site.client.get("/dashboard/drops/999/orders")).status == 404


async def test_dashboard_refund_and_ship_redirect_back_with_a_notice(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    ann = await paid_order(site.commerce, drop_id, "discord:1")
    bob = await paid_order(site.commerce, drop_id, "discord:2")
    await login(site)
    html = await (await site.client.get(f"/dashboard/drops/{drop_id}/orders?status=paid")).text()
    token = found(CSRF_FIELD, html)

    refund = await site.client.post(
        f"/dashboard/orders/{ann.id}/refund",
        data={"csrf": token, "reason": "customer asked", "back": "paid"},
        allow_redirects=False,
    )
    assert refund.status == 303
    location = refund.headers["Location"]
    assert location == f"/dashboard/drops/{drop_id}/orders?status=paid&done=refunded&order={ann.id}"
    assert f"Order #{ann.id} refunded" in await (await site.client.get(location)).text()
    assert (await site.commerce.orders.get(ann.id)).status is OrderStatus.REFUNDED

    ship = await site.client.post(
        f"/dashboard/orders/{bob.id}/ship",
        data={"csrf": token, "carrier": "UPS", "tracking": "1Z42"},
        allow_redirects=False,
    )
    assert ship.status == 303 and "done=shipped" in ship.headers["Location"]
    assert (await site.commerce.orders.get(bob.id)).desk_status is DeskStatus.SHIPPED

    bad = await site.client.post(
        f"/dashboard/orders/{bob.id}/ship", data={"csrf": token, "carrier": "UPS", "tracking": ""}
    )
    assert bad.status == 422 and "was not marked shipped: tracking" in await bad.text()


@pytest.mark.parametrize("action", ["refund", "ship"])
async def test_dashboard_posts_without_our_csrf_token_are_refused(site, action):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    order = await paid_order(site.commerce, drop_id, "discord:1")
    await login(site)
    form = {"reason": "x", "carrier": "UPS", "tracking": "1Z1"}
    path = f"/dashboard/orders/{order.id}/{action}"
    for token in (None, "", "forged-token-value"):
        data = form if token is None else {**form, "csrf": token}
        response = await site.client.post(path, data=data, allow_redirects=False)
        assert response.status == 403, token
    # a token made for another dashboard session is no good either
    html = await (await site.client.get(f"/dashboard/drops/{drop_id}/orders")).text()
    token = found(CSRF_FIELD, html)
    site.clock.advance(60)
    await login(site)  # a new session cookie
    stale = await site.client.post(path, data={**form, "csrf": token}, allow_redirects=False)
    assert stale.status == 403
    assert (await site.commerce.orders.get(order.id)).desk_status is DeskStatus.PAID
    assert re.search(r"Please reload the page", await stale.text())
