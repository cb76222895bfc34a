"""One-click checkout over HTTP: claim, pay, and every way it can go wrong."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from commerce.domain.model import OrderStatus
from commerce.dropfile import validate_spec
from commerce.storage.tables import claims, customers, holds, orders
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.web.conftest import CSRF_FIELD, HOLD_FIELD, found


async def count(commerce, table) -> int:
    async with commerce.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar())


async def test_a_link_places_a_hold_and_shows_product_price_and_countdown(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token = site.token(drop_id)
    response = await site.client.get(f"/c/{token}")
    page = await response.text()
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "Spicy chips, 6-pack" in page and "$12.00" in page
    assert 'data-deadline="2026-01-01T12:01:00Z"' in page
    assert found(CSRF_FIELD, page) and HOLD_FIELD.search(page)
    assert len(page.encode()) < 30_000
    view = await site.commerce.drops.view(drop_id)
    assert view.stock[0].held == 1


async def test_reloading_a_link_shows_the_same_hold(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token = site.token(drop_id)
    first = await (await site.client.get(f"/c/{token}")).text()
    second = await (await site.client.get(f"/c/{token}")).text()
    assert found(HOLD_FIELD, first) == found(HOLD_FIELD, second)
    assert await count(site.commerce, holds) == 1


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "xx", lambda t: "A" + t, lambda t: "x"])
async def test_a_forged_or_tampered_link_is_refused_and_writes_nothing(site, mangle):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    response = await site.client.get(f"/c/{mangle(site.token(drop_id))}")
    assert response.status == 403
    assert "not valid" in await response.text()
    assert await count(site.commerce, customers) == 0
    assert await count(site.commerce, claims) == 0


async def test_an_expired_link_is_gone_and_writes_nothing(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token = site.token(drop_id)
    site.clock.advance(site.settings.security.link_ttl_seconds + 1)
    response = await site.client.get(f"/c/{token}")
    assert response.status == 410
    assert "expired" in await response.text()
    assert await count(site.commerce, holds) == 0


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "Twitterbot/1.0",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "facebookexternalhit/1.1",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0",
    ],
)
async def test_link_preview_bots_get_an_open_graph_card_and_never_claim(site, agent):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    response = await site.client.get(f"/c/{site.token(drop_id)}", headers={"User-Agent": agent})
    page = await response.text()
    assert response.status == 200
    assert 'property="og:title" content="Spicy chips capsule"' in page
    assert await count(site.commerce, holds) == 0


async def test_head_never_claims(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    response = await site.client.head(f"/c/{site.token(drop_id)}")
    assert response.status == 200
    assert await count(site.commerce, holds) == 0


async def test_sold_out_is_a_409_page_with_a_waitlist_form_that_works(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    await site.held_page(drop_id, "discord:1")
    token = site.token(drop_id, "discord:2")
    response = await site.client.get(f"/c/{token}")
    page = await response.text()
    assert response.status == 409
    assert "Sold out" in page and "Join the waitlist" in page
    joined = await site.client.post(f"/c/{token}/waitlist", data={"csrf": found(CSRF_FIELD, page)})
    assert joined.status == 200
    assert "number <strong>1</strong>" in await joined.text()


async def test_a_waitlist_join_without_csrf_is_refused(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    response = await site.client.post(f"/c/{site.token(drop_id)}/waitlist", data={"csrf": "x"})
    assert response.status == 403


async def test_a_drop_not_open_yet_answers_425_with_a_countdown(site):
    drop_id = await site.commerce.drops.create(validate_spec(capsule_spec(3, opens_at="+10m")))
    response = await site.client.get(f"/c/{site.token(drop_id)}")
    page = await response.text()
    assert response.status == 425
    assert 'data-deadline="2026-01-01T12:10:00Z"' in page and "Not open yet" in page


async def test_a_closed_drop_answers_410(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    await site.commerce.drops.close(drop_id)
    response = await site.client.get(f"/c/{site.token(drop_id)}")
    assert response.status == 410
    assert "closed" in await response.text()


async def test_a_second_link_for_the_same_customer_hits_the_per_customer_limit(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token, page = await site.held_page(drop_id, "discord:7")
    await site.pay(token, page)
    response = await site.client.get(f"/c/{site.token(drop_id, 'discord:7')}")
    assert response.status == 409
    assert "already have yours" in await response.text()


async def test_an_unknown_drop_is_404(site):
    response = await site.client.get(f"/c/{site.token(999)}")
    assert response.status == 404


async def test_paying_with_the_test_provider_confirms_at_once(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token, page = await site.held_page(drop_id)
    response = await site.pay(token, page)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "It&#39;s yours!" in await response.text()
    view = await site.commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (1, 0)
    # Reloading the link afterwards shows the order, not a new hold.
    again = await site.client.get(f"/c/{token}")
    assert again.status == 200 and "It&#39;s yours!" in await again.text()


async def test_a_replayed_pay_returns_the_same_order_and_sells_once(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token, page = await site.held_page(drop_id)
    first = await site.pay(token, page)
    second = await site.pay(token, page)
    assert first.status == second.status == 200
    assert await count(site.commerce, orders) == 1
    assert (await site.commerce.drops.view(drop_id)).stock[0].sold == 1


async def test_pay_with_a_bad_csrf_token_is_refused(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token, page = await site.held_page(drop_id)
    response = await site.pay(token, page, csrf="forged")
    assert response.status == 403
    assert await count(site.commerce, orders) == 0


async def test_pay_for_someone_elses_hold_is_refused(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    _, page = await site.held_page(drop_id, "discord:1")
    other = site.token(drop_id, "discord:2")
    response = await site.pay(other, page)
    assert response.status == 403  # the CSRF token is bound to the first link
    assert await count(site.commerce, orders) == 0


async def test_pay_with_a_forged_link_is_refused(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token, page = await site.held_page(drop_id)
    response = await site.pay(token[:-3] + "abc", page)
    assert response.status == 403


async def test_pay_after_the_hold_expired_is_refused_and_nothing_is_sold(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1, hold_seconds=60))
    token, page = await site.held_page(drop_id)
    site.clock.advance(61)
    response = await site.pay(token, page)
    assert response.status == 410
    assert "hold has ended" in await response.text()
    view = await site.commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (0, 0)


async def test_manual_payment_is_not_offered_for_shipping_orders(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token, page = await site.held_page(drop_id)
    response = await site.pay(token, page, provider="manual")
    assert response.status == 422
    assert await count(site.commerce, orders) == 0


async def test_a_collab_link_lets_the_buyer_pick_ship_or_pickup(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=2, pickup=1))
    token = site.token(drop_id)
    chooser = await site.client.get(f"/c/{token}")
    page = await chooser.text()
    assert chooser.status == 200 and "Pick up at Corner Deli" in page
    assert await count(site.commerce, holds) == 0
    held = await site.client.get(f"/c/{token}", params={"pool": "pickup:corner-deli"})
    page = await held.text()
    assert held.status == 200 and "Pay at pickup" in page
    paid = await site.pay(token, page, provider="manual")
    assert paid.status == 200 and "pay at pickup" in (await paid.text()).lower()
    order = await site.commerce.orders.for_hold(int(found(HOLD_FIELD, page)))
    assert order.status is OrderStatus.RESERVED and order.pool == "pickup:corner-deli"
    # The pickup pool is now empty: the next buyer goes straight to shipping.
    other = await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    assert other.status == 200 and "Pay now" in await other.text()


async def test_the_pickup_list_shows_pickup_orders_as_html_and_csv(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=2, pickup=2))
    token = site.token(drop_id, "web:ana@example.com")
    page = await (await site.client.get(f"/c/{token}?pool=pickup:corner-deli")).text()
    await site.pay(token, page, provider="manual")
    html = await site.client.get("/pickup/corner-deli", headers=site.admin)
    assert html.status == 200
    assert "web:ana@example.com" in await html.text()
    csv = await site.client.get("/pickup/corner-deli?format=csv", headers=site.admin)
    assert csv.status == 200 and csv.headers["Content-Type"].startswith("text/csv")
    lines = (await csv.text()).strip().splitlines()
    assert lines[0].startswith("order,drop,customer") and "to pay at pickup" in lines[1]
    assert (await site.client.get("/pickup/corner-deli")).status == 401
    bad = await site.client.get("/pickup/Not%20A%20Slug", headers=site.admin)
    assert bad.status == 422


async def test_the_public_drop_page_claims_as_the_signed_in_viewer_with_the_same_limit(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    await site.sign_in("twitch:4242", "Viewer")
    token = await (await site.client.get("/api/csrf")).json()
    form = {"csrf": token["token"]}
    response = await site.client.post(f"/d/{drop_id}/claim", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith("/c/")
    held = await site.client.get(response.headers["Location"])
    assert held.status == 200
    page = await held.text()
    await site.pay(response.headers["Location"].removeprefix("/c/"), page)
    again = await site.client.post(f"/d/{drop_id}/claim", data=form, allow_redirects=True)
    assert again.status == 409  # one per person, whichever way they come in
    async with site.commerce.db.read() as conn:
        sources = (await conn.execute(select(holds.c.source))).scalars().all()
    assert sources == ["web"]


async def test_the_drop_page_claim_without_a_csrf_token_asks_to_confirm(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    await site.sign_in("discord:55")
    response = await site.client.post(f"/d/{drop_id}/claim", data={})
    page = await response.text()
    assert response.status == 403 and "Confirm your claim" in page
    assert await count(site.commerce, holds) == 0
    confirmed = await site.client.post(
        f"/d/{drop_id}/claim",
        data={"csrf": found(CSRF_FIELD, page)},
        allow_redirects=False,
    )
    assert confirmed.status == 303


async def test_the_drop_page_claim_with_a_bad_email_names_the_field(make_web):
    site = await make_web(email={"claims": True, "smtp_host": "127.0.0.1", "smtp_port": 9})
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token = (await (await site.client.get("/api/csrf")).json())["token"]
    response = await site.client.post(
        f"/d/{drop_id}/claim",
        data={"email": "nope", "csrf": token},
        headers={"Accept": "application/json"},
    )
    assert response.status == 422
    assert (await response.json())["field"] == "email"
