"""/dashboard and /api/drops/{id}/kpis: admin login by token → cookie, the objective first,
live KPIs, past drops; and one headless-Chromium run watching a sale arrive over SSE."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

from commerce.web.admin_session import COOKIE
from tests.conftest import needs_chromium
from tests.helpers import capsule_spec, live_drop
from tests.web.conftest import ADMIN

SELL_HALF = {"metric": "sell_through_pct", "target": 50}


def set_cookie(response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", ()):
        jar.load(header)
    return jar


async def sell(site, drop_id: int, identity: str) -> None:
    token, held = await site.held_page(drop_id, identity)
    paid = await site.pay(token, held)
    assert paid.status in (200, 303), await paid.text()


async def login(site) -> None:
    response = await site.client.get(f"/dashboard?token={ADMIN}", allow_redirects=False)
    assert response.status == 303


# -- access ----------------------------------------------------------------------------------


async def test_without_a_token_the_dashboard_is_401_and_says_how_to_log_in(site):
    response = await site.client.get("/dashboard")
    assert response.status == 401
    assert response.headers["Cache-Control"] == "no-store"
    text = await response.text()
    assert "/dashboard?token=" in text and "security.admin_token" in text
    wrong = await site.client.get("/dashboard?token=nope", allow_redirects=False)
    assert wrong.status == 401 and "not the admin token" in await wrong.text()
    assert COOKIE not in set_cookie(wrong)
    forged = await site.client.get("/dashboard", headers={"Cookie": f"{COOKIE}=9999999999.abc"})
    assert forged.status == 401


async def test_without_an_admin_token_configured_the_dashboard_is_403(make_web):
    web = await make_web(security={"admin_token": None})
    response = await web.client.get(f"/dashboard?token={ADMIN}", allow_redirects=False)
    assert response.status == 403
    assert "security.admin_token" in await response.text()
    api = await web.client.get("/api/drops/1/kpis", headers={"Authorization": f"Bearer {ADMIN}"})
    assert api.status == 403 and (await api.json())["error"] == "ADMIN_DISABLED"


async def test_token_login_sets_a_strict_cookie_and_drops_the_token_from_the_url(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    response = await site.client.get(
        f"/dashboard?drop={drop_id}&token={ADMIN}", allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/dashboard?drop={drop_id}"
    cookie = set_cookie(response)[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    assert cookie["path"] == "/" and ADMIN not in cookie.value
    page = await site.client.get(response.headers["Location"])  # the jar sends the cookie
    assert page.status == 200 and "Spicy chips capsule" in await page.text()
    assert (await site.client.get("/dashboard")).status == 200


async def test_the_cookie_is_secure_on_https_and_a_cross_site_login_continues_same_site(
    make_web,
):
    web = await make_web(web={"public_url": "https://shop.example"})
    response = await web.client.get(
        f"/dashboard?token={ADMIN}",
        headers={"Sec-Fetch-Site": "cross-site"},
        allow_redirects=False,
    )
    # A redirect started by a cross-site link would not carry a Strict cookie: a page that
    # refreshes to the dashboard (a same-site navigation) instead, without the token.
    assert response.status == 200
    text = await response.text()
    assert 'http-equiv="refresh" content="0;url=/dashboard"' in text and ADMIN not in text
    assert set_cookie(response)[COOKIE]["secure"]


async def test_a_session_expires_after_a_week(site):
    await login(site)
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    assert (await site.client.get(f"/api/drops/{drop_id}/kpis")).status == 200
    site.clock.advance(8 * 24 * 3600)
    assert (await site.client.get(f"/api/drops/{drop_id}/kpis")).status == 401


async def test_an_altered_cookie_or_a_new_admin_token_ends_the_session(site):
    await login(site)
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    path = f"/api/drops/{drop_id}/kpis"
    jar = site.client.session.cookie_jar
    value = jar.filter_cookies(site.client.make_url("/"))[COOKIE].value
    jar.clear()  # from here on, only the cookies each request names
    signed, _, signature = value.rpartition(".")
    altered = f"{signed}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    assert (await site.client.get(path, headers={"Cookie": f"{COOKIE}={altered}"})).status == 401
    assert (await site.client.get(path, headers={"Cookie": f"{COOKIE}={value}"})).status == 200
    site.ctx.admin_token = "a-new-admin-token"
    assert (await site.client.get(path, headers={"Cookie": f"{COOKIE}={value}"})).status == 401


# -- the KPI JSON ------------------------------------------------------------------------------


async def test_the_kpi_json_takes_the_bearer_or_the_cookie(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4, objective=SELL_HALF))
    await sell(site, drop_id, "discord:1")
    path = f"/api/drops/{drop_id}/kpis"

    anonymous = await site.client.get(path)
    assert anonymous.status == 401 and (await anonymous.json())["error"] == "UNAUTHORIZED"
    wrong = await site.client.get(path, headers={"Authorization": "Bearer wrong"})
    assert wrong.status == 401

    bearer = await site.client.get(path, headers=site.admin)
    assert bearer.status == 200 and bearer.headers["Cache-Control"] == "no-store"
    data = await bearer.json()
    assert data["units_sold"] == 1 and data["capacity"] == 4
    assert data["sell_through_pct"] == 25.0
    assert data["objective"]["metric"] == "sell_through_pct" and data["objective"]["met"] is False
    assert [s["step"] for s in data["funnel"]] == ["link_issued", "link_opened", "held", "paid"]
    assert data["dashboard"]["verdict"]["label"] == "Not met yet"

    await login(site)
    cookie = await site.client.get(path)
    assert cookie.status == 200 and (await cookie.json())["units_sold"] == 1
    assert (await site.client.get("/api/drops/999/kpis")).status == 404


async def test_a_stock_tick_makes_the_next_kpi_request_recompute(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4, objective=SELL_HALF))
    path = f"/api/drops/{drop_id}/kpis"
    assert (await (await site.client.get(path, headers=site.admin)).json())["units_sold"] == 0
    await sell(site, drop_id, "discord:1")
    await sell(site, drop_id, "discord:2")
    data = await (await site.client.get(path, headers=site.admin)).json()
    assert data["units_sold"] == 2
    assert data["dashboard"]["verdict"] | {"detail": ""} == {
        "tone": "on-track",
        "label": "On track",
        "goal": "Sell-through ≥ 50.0 %",
        "detail": "",
    }


# -- the page ----------------------------------------------------------------------------------


async def test_the_page_leads_with_the_objective_then_kpis_then_past_drops(site):
    earlier = await live_drop(site.commerce, capsule_spec(2, objective=SELL_HALF))
    await sell(site, earlier, "discord:1")
    await site.commerce.drops.close(earlier)
    site.clock.advance(3600)
    spec = capsule_spec(10, objective={"metric": "units_first_10m", "target": 5})
    spec["drop"]["title"] = "Salsa verde drop"
    current = await live_drop(site.commerce, spec)
    site.clock.advance(60)
    await sell(site, current, "discord:2")

    response = await site.client.get("/dashboard", headers=site.admin)
    assert response.status == 200
    html = await response.text()
    assert re.search(r"Current drop #\d+", html) and "<h1>Salsa verde drop</h1>" in html
    # The objective comes first: 1 unit in the first minute is on pace for 10 in 10 minutes.
    objective = html.index("Units sold in the first 10 minutes ≥ 5")
    assert objective < html.index("<h2>Stock</h2>") < html.index("Past drops")
    assert "tone-on-track" in html and "On track" in html and "projected 10" in html
    assert re.search(r'data-stock="available">9<', html)
    assert re.search(r'data-kpi="units_sold" data-fmt="int">1<', html)
    assert 'data-kpi="funnel.3.people"' in html and "Link opened" in html
    assert f'href="/dashboard?drop={earlier}"' in html and "Spicy chips capsule" in html
    assert "Sell-through ≥ 50.0 %" in html  # the earlier drop's objective, in its row
    assert f'href="/dashboard?drop={current}"' not in html  # live, so above and not "past"
    assert re.search(r"<td>yes</td><td>1 / 2</td><td>50.0 %</td>", html)
    assert "dashboard." in html and "<script>" not in html  # a static script, never inline

    past = await site.client.get(f"/dashboard?drop={earlier}", headers=site.admin)
    past_html = await past.text()
    assert past.status == 200 and "tone-met" in past_html and ">Met<" in past_html
    assert 'data-live="no"' in past_html
    assert (await site.client.get("/dashboard?drop=x1", headers=site.admin)).status == 422
    assert (await site.client.get("/dashboard?drop=999", headers=site.admin)).status == 404


async def test_with_no_drops_the_page_says_so(site):
    response = await site.client.get("/dashboard", headers=site.admin)
    assert response.status == 200 and "No drops yet" in await response.text()


# -- in a browser ------------------------------------------------------------------------------


@needs_chromium
async def test_the_dashboard_shows_a_sale_as_it_happens_without_a_reload(site, browser, tmp_path):
    from playwright.async_api import expect

    drop_id = await live_drop(site.commerce, capsule_spec(3, objective=SELL_HALF))
    base = str(site.client.make_url("")).rstrip("/")
    errors: list[str] = []
    page = await browser.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{base}/dashboard?token={ADMIN}")
    assert page.url == f"{base}/dashboard"
    await expect(page.locator("[data-conn]")).to_have_text("live")
    available = page.locator('[data-stock="available"]')
    await expect(available).to_have_text("3")

    await sell(site, drop_id, "discord:42")
    await expect(available).to_have_text("2")  # pushed over SSE
    await expect(page.locator('[data-stock="sold"]')).to_have_text("1")
    # then the KPIs (re-fetched at most every 2 s) and the verdict follow
    units = page.locator('[data-kpi="units_sold"]')
    await expect(units).to_have_text("1")
    await expect(page.locator('[data-kpi="sell_through_pct"]')).to_have_text("33.3 %")
    await page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
    assert not [e for e in errors if "Content Security Policy" in e], errors


async def test_a_shop_signed_in_at_the_dashboard_can_open_its_pickup_list(site):
    assert (await site.client.get("/pickup/corner-deli")).status == 401
    await site.client.get(f"/dashboard?token={ADMIN}")  # the cookie lands in the jar
    response = await site.client.get("/pickup/corner-deli?format=csv")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
