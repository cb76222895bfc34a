"""Admin JSON API, public JSON state, health, metrics, pages' cache and security headers."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from commerce.domain.errors import NotFound
from commerce.links import LinkSigner
from commerce.web.app import create_app
from tests.helpers import capsule_spec, collab_spec, live_drop
from tests.web.conftest import SECRET, make_settings, web_app


async def test_create_a_drop_from_the_drop_file_schema(site):
    response = await site.client.post("/api/drops", json=capsule_spec(5), headers=site.admin)
    assert response.status == 201
    drop_id = (await response.json())["id"]
    view = await site.commerce.drops.view(drop_id)
    assert view.stock[0].total == 5


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"Authorization": "Basic x"}, 401)],
)
async def test_the_admin_api_needs_the_bearer_token(site, headers, status):
    response = await site.client.post("/api/drops", json=capsule_spec(5), headers=headers)
    assert response.status == status
    assert (await response.json())["error"] == "UNAUTHORIZED"


async def test_without_an_admin_token_configured_the_admin_api_says_so(make_web):
    web = await make_web(security={"admin_token": None})
    response = await web.client.post("/api/drops", json={}, headers={"Authorization": "Bearer "})
    assert response.status == 403
    assert "admin_token" in (await response.json())["message"]


async def test_malformed_json_is_400(site):
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        response = await site.client.post(
            "/api/drops", data=body, headers={**site.admin, "Content-Type": "application/json"}
        )
        assert response.status == 400
        assert (await response.json())["error"] == "BAD_JSON"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda s: s["items"][0]["pools"].update(ship=-1), "items[0].pools"),
        (lambda s: s["drop"].pop("title"), "drop.title"),
        (lambda s: s["products"][0].update(price="1.234"), "products[0].price"),
        (lambda s: s["drop"].update(colour="red"), "drop.colour"),
    ],
)
async def test_bad_fields_are_422_naming_the_field(site, mutate, field):
    spec = capsule_spec(5)
    mutate(spec)
    response = await site.client.post("/api/drops", json=spec, headers=site.admin)
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "INVALID_INPUT" and body["field"] == field


async def test_open_close_and_restock(site):
    created = await site.client.post("/api/drops", json=capsule_spec(1), headers=site.admin)
    drop_id = (await created.json())["id"]
    opened = await site.client.post(f"/api/drops/{drop_id}/open", headers=site.admin)
    assert opened.status == 200 and (await opened.json())["state"] == "live"
    restocked = await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 4}, headers=site.admin
    )
    assert restocked.status == 200 and (await restocked.json())["available"] == 5
    for bad, field in (({"sku": "CHIPS-SPICY", "units": "4"}, "units"), ({"units": 1}, "sku")):
        response = await site.client.post(
            f"/api/drops/{drop_id}/restock", json=bad, headers=site.admin
        )
        assert response.status == 422 and (await response.json())["field"] == field
    unknown = await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "NOPE", "units": 1}, headers=site.admin
    )
    assert unknown.status == 422 and (await unknown.json())["error"] == "UNKNOWN_ITEM"
    closed = await site.client.post(f"/api/drops/{drop_id}/close", headers=site.admin)
    assert (await closed.json())["state"] == "closed"
    reopen = await site.client.post(f"/api/drops/{drop_id}/open", headers=site.admin)
    assert reopen.status == 409 and (await reopen.json())["error"] == "INVALID_STATE"


async def test_unknown_drops_are_404_everywhere(site):
    for method, path in [
        ("POST", "/api/drops/999/open"),
        ("POST", "/api/drops/999/close"),
        ("GET", "/api/drops/999"),
        ("GET", "/api/drops/999/stream"),
        ("GET", "/d/999"),
        ("GET", "/overlay/999"),
    ]:
        response = await site.client.request(method, path, headers=site.admin)
        assert response.status == 404, path
    links = await site.client.post(
        "/api/drops/999/links", json={"customer": "discord:1"}, headers=site.admin
    )
    assert links.status == 404 and (await links.json())["error"] == "DROP_NOT_FOUND"


async def test_issuing_a_link_returns_a_url_that_claims(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    response = await site.client.post(
        f"/api/drops/{drop_id}/links", json={"customer": "discord:123"}, headers=site.admin
    )
    assert response.status == 201
    body = await response.json()
    assert body["url"].startswith(site.settings.web.base_url + "/c/")
    assert body["expires_at"] == "2026-01-01T12:15:00Z"
    path = body["url"].removeprefix(site.settings.web.base_url)
    assert (await site.client.get(path)).status == 200
    bad = await site.client.post(
        f"/api/drops/{drop_id}/links", json={"customer": "myspace:1"}, headers=site.admin
    )
    assert bad.status == 422 and (await bad.json())["field"] == "customer"


async def test_drop_json_has_state_times_stock_per_item_and_pool(site):
    drop_id = await live_drop(site.commerce, collab_spec(ship=3, pickup=2))
    await site.held_page(drop_id)  # chooser: no claim
    await site.client.get(f"/c/{site.token(drop_id, 'discord:9')}?pool=ship")
    response = await site.client.get(f"/api/drops/{drop_id}")
    assert response.status == 200 or response.status == 200
    data = await response.json()
    assert data["state"] == "live" and data["server_time"] == "2026-01-01T12:00:00Z"
    assert {"opens_at", "closes_at"} <= data.keys()
    pools = {p["pool"]: p for p in data["items"][0]["pools"]}
    assert pools["ship"] == {"pool": "ship", "total": 3, "available": 2, "held": 1, "sold": 0}
    assert pools["pickup:corner-deli"]["available"] == 2
    assert data["available"] == 4


async def test_healthz_pings_the_database(site):
    response = await site.client.get("/healthz")
    assert response.status == 200 and (await response.json())["ok"] is True


async def test_metrics_count_claims_holds_sold_outs_payments_and_latency(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    token, page = await site.held_page(drop_id)
    await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    await site.pay(token, page)
    text = await (await site.client.get("/metrics")).text()
    assert 'dropcast_claims_total{outcome="held"} 1.0' in text
    assert 'dropcast_claims_total{outcome="sold_out"} 1.0' in text
    assert "dropcast_holds_total 1.0" in text
    assert "dropcast_sold_outs_total 1.0" in text
    assert 'dropcast_payments_total{outcome="paid",provider="test"} 1.0' in text
    assert 'dropcast_http_request_duration_seconds_count{method="GET",route="/c/{token}"' in text


async def test_metrics_count_requests_no_route_takes_as_unmatched(site):
    await site.client.get("/nope/deeper")
    await site.client.patch("/healthz")
    text = await (await site.client.get("/metrics")).text()
    for method, status in (("GET", 404), ("PATCH", 405)):
        series = f'method="{method}",route="unmatched",status="{status}"'
        assert f"dropcast_http_request_duration_seconds_count{{{series}}} 1.0" in text


async def test_metrics_show_claims_whose_place_in_line_was_passed_over(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2))
    line = site.commerce.claims.line
    line.patience = 0.0
    stuck = site.commerce.claims.arrival()  # never comes forward
    await site.held_page(drop_id)  # passes it over
    text = await (await site.client.get("/metrics")).text()
    assert "dropcast_claim_places_passed_over_total 1.0" in text
    assert "dropcast_claim_places_on_the_way 0.0" in text
    stuck.leave()


async def test_every_response_carries_the_security_headers(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    page = await site.client.get(f"/d/{drop_id}")
    unchanged = {"If-None-Match": page.headers["ETag"]}
    answers = [
        page,
        await site.client.get(f"/d/{drop_id}", headers=unchanged),  # 304
        await site.client.get("/nope"),  # no route: 404
        await site.client.delete(f"/d/{drop_id}"),  # no such method: 405
        await site.client.get("/api/drops/999999"),  # a domain error: 404
        await site.client.get(f"/c/{site.token(drop_id)}"),
    ]
    assert [a.status for a in answers] == [200, 304, 404, 405, 404, 200]
    async with site.client.get(f"/api/drops/{drop_id}/stream") as stream:  # sent by itself
        answers.append(stream)
    for answer in answers:
        headers = answer.headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], answer.url
        assert headers.getall("Referrer-Policy") == ["no-referrer"], answer.url
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers.getall("Server") == ["dropcast"], answer.url  # no versions to match
    for answer in answers:  # errors and the stream too carry the id that finds them in the logs
        assert len(answer.headers["X-Request-Id"]) == 16, answer.url


async def test_a_route_added_without_the_edge_is_refused_at_start(make_web, monkeypatch):
    """A bare handler would answer without the security headers, its errors unlike ours:
    the app does not start, and says which route and what to do."""

    async def bare(request: web.Request) -> web.Response:
        return web.Response(text="bare")

    made = create_app

    def with_a_bare_route(*args, **kwargs):
        app = made(*args, **kwargs)
        app.router.add_get("/bare", bare)
        return app

    monkeypatch.setattr("tests.web.conftest.create_app", with_a_bare_route)
    with pytest.raises(
        RuntimeError, match=r"without the edge: .*GET /bare; pass them to create_app\(routes="
    ):
        await make_web()


async def test_a_route_passed_to_create_app_runs_at_the_edge(commerce, clock):
    async def missing(request: web.Request) -> web.Response:
        raise NotFound("no such thing")

    app, gateways = web_app(
        commerce, make_settings(), LinkSigner(SECRET, clock, 60), [web.get("/extra", missing)]
    )
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/extra", headers={"Accept": "application/json"})
        assert answer.status == 404 and (await answer.json())["message"] == "no such thing"
        assert answer.headers["X-Frame-Options"] == "DENY"
        text = await (await client.get("/metrics")).text()
    await gateways.close()
    assert 'route="/extra",status="404"' in text


async def test_unknown_routes_and_methods_get_plain_errors(site):
    missing = await site.client.get("/nope")
    assert missing.status == 404 and "<h1>Not Found</h1>" in await missing.text()
    wrong = await site.client.get("/api/drops")
    assert wrong.status == 405 and "POST" in wrong.headers["Allow"]
    newline = await site.client.get("/api/drops/1%0A2")  # any character, a newline too
    assert newline.status == 404 and (await newline.json())["error"] == "NOT_FOUND"


async def test_the_drop_page_is_cacheable_with_an_etag_and_light(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    first = await site.client.get(f"/d/{drop_id}")
    body = await first.text()
    assert first.status == 200 and len(body.encode()) < 30_000
    assert first.headers["Cache-Control"] == "public, max-age=5, stale-while-revalidate=30"
    assert 'rel="manifest"' in body
    assert 'Live now</strong> · <span data-live="detail">4 of 4 left' in body
    etag = first.headers["ETag"]
    again = await site.client.get(f"/d/{drop_id}", headers={"If-None-Match": etag})
    assert again.status == 304
    await site.held_page(drop_id)  # stock changed: a new validator
    changed = await site.client.get(f"/d/{drop_id}", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_static_assets_have_hashed_names_and_immutable_caching(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    body = await (await site.client.get(f"/d/{drop_id}")).text()
    css = body.split('rel="stylesheet" href="')[1].split('"')[0]
    assert css.startswith("/static/app.") and css.count(".") == 2
    response = await site.client.get(css)
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Type"].startswith("text/css")
    assert (await site.client.get("/static/app.css")).status == 404


async def test_the_pwa_manifest_and_service_worker(site):
    drop_id = await live_drop(site.commerce, capsule_spec(4))
    manifest = await site.client.get(f"/d/{drop_id}/manifest.webmanifest")
    data = json.loads(await manifest.text())
    assert data["start_url"] == f"/d/{drop_id}" and data["display"] == "standalone"
    worker = await site.client.get("/sw.js")
    script = await worker.text()
    assert worker.headers["Content-Type"].startswith("application/javascript")
    assert "/static/app." in script and "caches.match" in script
    assert '"/api/' not in script  # stock is never cached


async def test_the_overlay_has_countdown_stock_and_a_qr_code(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    response = await site.client.get(f"/overlay/{drop_id}?theme=light&parts=stock,qr")
    page = await response.text()
    assert response.status == 200 and "theme-light" in page
    assert "Live now" in page and "3 of 3 left" in page
    assert "<svg" in page and f"/d/{drop_id}" in page
    assert 'data-live="countdown"' not in page
    bad = await site.client.get(f"/overlay/{drop_id}?parts=stock,confetti")
    assert bad.status == 422
