"""The sell-out moment on the web: a holder sees their hold, never a second one; every link
path records the funnel before it answers; the admin API restocks and prices safely."""

from __future__ import annotations

from sqlalchemy import func, select

from commerce.domain.model import ClaimOutcome
from commerce.storage.tables import activity, claims, holds
from tests.analytics.test_bundle_counts import sold_one_bundle
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.web.conftest import HOLD_FIELD, found


async def steps(commerce, drop_id: int, kind: str) -> int:
    async with commerce.db.read() as conn:
        query = select(func.count()).where(activity.c.drop_id == drop_id, activity.c.kind == kind)
        return int((await conn.execute(query.select_from(activity))).scalar())


async def count(commerce, table) -> int:
    async with commerce.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar())


async def test_a_collab_holder_from_chat_sees_that_hold_on_their_link(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=4, pickup=4, per_customer_limit=2))
    buyer = await site.commerce.customers.resolve("discord:1")
    chat = await site.commerce.claims.claim(drop_id, buyer, pool="ship", claim_key="chat:1")
    assert chat.outcome is ClaimOutcome.HELD
    response = await site.client.get(f"/c/{site.token(drop_id, 'discord:1')}")
    page = await response.text()
    assert response.status == 200 and "Pick up at" not in page  # no pool question
    assert int(found(HOLD_FIELD, page)) == chat.hold.id
    assert await count(site.commerce, holds) == 1


async def test_a_collab_link_still_asks_for_the_pool_when_nothing_is_held(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=4, pickup=4))
    response = await site.client.get(f"/c/{site.token(drop_id, 'discord:1')}")
    assert response.status == 200 and "Pick up at Corner Deli" in await response.text()
    assert await count(site.commerce, holds) == 0


async def test_links_from_the_admin_api_are_recorded_as_issued_before_the_answer(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    for i in range(3):
        response = await site.client.post(
            f"/api/drops/{drop_id}/links", json={"customer": f"discord:{i}"}, headers=site.admin
        )
        assert response.status == 201
    assert await steps(site.commerce, drop_id, "link_issued") == 3


async def test_a_drop_page_claim_is_issued_and_opened_in_the_funnel(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    await site.sign_in("twitch:31")
    token = await (await site.client.get("/api/csrf")).json()
    form = {"csrf": token["token"]}
    response = await site.client.post(f"/d/{drop_id}/claim", data=form)
    assert response.status == 200
    assert await steps(site.commerce, drop_id, "link_issued") == 1
    assert await steps(site.commerce, drop_id, "link_opened") == 1


async def test_the_funnel_adds_up_when_some_buyers_are_told_sold_out(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    urls = []
    for i in range(4):
        response = await site.client.post(
            f"/api/drops/{drop_id}/links", json={"customer": f"discord:{i}"}, headers=site.admin
        )
        urls.append((await response.json())["url"].split("/c/", 1)[1])
    pages = [await site.client.get(f"/c/{token}") for token in urls]
    assert sorted(p.status for p in pages) == [200, 200, 409, 409]
    for token, response in zip(urls, pages, strict=True):
        if response.status == 200:
            await site.pay(token, await response.text())
    await site.commerce.tracker.flush()
    kpis = await site.commerce.analytics.kpis(drop_id)
    assert [(s.step, s.people) for s in kpis.funnel] == [
        ("link_issued", 4),
        ("link_opened", 4),
        ("held", 2),
        ("paid", 2),
    ]
    assert await count(site.commerce, claims) == 4


async def test_the_admin_api_restocks_only_existing_pools_unless_asked(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    url = f"/api/drops/{drop_id}/restock"
    typo = {"sku": "CHIPS-SPICY", "units": 2, "pool": "pickup:nowhere"}
    refused = await site.client.post(url, json=typo, headers=site.admin)
    assert refused.status == 422 and "no pool" in (await refused.json())["message"]
    added = await site.client.post(url, json={**typo, "new_pool": True}, headers=site.admin)
    assert added.status == 200
    view = await site.commerce.drops.view(drop_id)
    assert view.pools == ["ship", "pickup:nowhere"]


async def test_the_admin_api_changes_a_price_only_with_no_hold_open(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    url = f"/api/drops/{drop_id}/price"
    token, page = await site.held_page(drop_id)
    refused = await site.client.post(url, json={"price": "0.01"}, headers=site.admin)
    assert refused.status == 409
    await site.pay(token, page)
    changed = await site.client.post(url, json={"price": "13.00"}, headers=site.admin)
    assert changed.status == 200 and (await changed.json())["price_minor"] == 1300
    state = await (await site.client.get(f"/api/drops/{drop_id}")).json()
    assert state["items"][0]["price_minor"] == 1300
    unauthorised = await site.client.post(url, json={"price": "1.00"})
    assert unauthorised.status == 401


async def test_the_dashboard_tiles_say_bundles(site):
    drop_id = await sold_one_bundle(site.commerce)
    response = await site.client.get(f"/dashboard?drop={drop_id}", headers=site.admin)
    html = await response.text()
    assert response.status == 200 and "Bundles sold" in html and "Units sold" not in html


async def test_prices_read_in_the_visitors_locale_and_the_drops_currency(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    token = site.token(drop_id)
    english = await (await site.client.get(f"/c/{token}")).text()
    assert "$12.00" in english and "12.00 USD" not in english
    german = await site.client.get(f"/d/{drop_id}", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "12,00\xa0$" in await german.text()
    assert german.headers["Vary"] == "Accept-Language"
