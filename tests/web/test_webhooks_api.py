"""The webhooks' admin API and dashboard, on both engines: bearer only, 4xx JSON naming the
field, the secret shown once; a sale paid over HTTP reaches a local receiver signed; the
dashboard lists webhooks and says why one was disabled."""

from __future__ import annotations

import json

import pytest

from commerce.services.webhooks import WebhookPolicy
from tests.helpers import capsule_spec, live_drop, signature_ok
from tests.web.test_dashboard import login, sell


async def test_the_webhook_routes_need_the_admin_bearer(site):
    for method, path in [
        ("GET", "/api/webhooks"),
        ("POST", "/api/webhooks"),
        ("DELETE", "/api/webhooks/1"),
        ("POST", "/api/webhooks/1/test"),
        ("POST", "/api/webhooks/1/enable"),
    ]:
        response = await site.client.request(method, path, json={})
        assert response.status == 401, (method, path)
    assert await site.commerce.webhooks.endpoints() == []


async def test_add_shows_the_secret_once_list_never_and_delete_removes(site, inbox):
    body = {"url": inbox.url("zap"), "events": ["order.paid", "stock.low"]}
    response = await site.client.post("/api/webhooks", json=body, headers=site.admin)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["secret"].startswith("whsec_")
    assert (created["url"], created["events"], created["status"]) == (
        body["url"],
        body["events"],
        "active",
    )
    listed = await (await site.client.get("/api/webhooks", headers=site.admin)).json()
    assert [w["id"] for w in listed["webhooks"]] == [created["id"]]
    assert created["secret"] not in json.dumps(listed)
    gone = await site.client.delete(f"/api/webhooks/{created['id']}", headers=site.admin)
    assert (gone.status, await gone.json()) == (200, {"id": created["id"], "removed": True})
    again = await site.client.delete(f"/api/webhooks/{created['id']}", headers=site.admin)
    assert again.status == 404 and (await again.json())["error"] == "WEBHOOK_NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"events": ["order.paid"]}, "url", "is required"),
        ({"url": "https://h.example/x"}, "events", "is required"),
        ({"url": "mailto:me@example.com", "events": ["order.paid"]}, "url", "http:// or https://"),
        ({"url": "https://h.example/x", "events": "order.paid"}, "events", "valid list"),
        ({"url": "https://h.example/x", "events": ["sale"]}, "events", "unknown event sale"),
        ({"url": "https://h.example/x", "events": []}, "events", "name at least one"),
        ({"url": 5, "events": ["order.paid"]}, "url", "valid string"),
        ({"url": "https://h.example/x", "events": ["order.paid"], "secret": "x"}, "secret", ""),
    ],
)
async def test_bad_input_is_422_naming_the_field_and_adds_nothing(site, body, field, words):
    response = await site.client.post("/api/webhooks", json=body, headers=site.admin)
    assert response.status == 422, await response.text()
    error = await response.json()
    assert error["field"] == field and words in error["message"], error
    assert await site.commerce.webhooks.endpoints() == []


async def test_a_body_that_is_not_a_json_object_is_400(site):
    response = await site.client.post("/api/webhooks", data=b"[1]", headers=site.admin)
    assert response.status == 400 and (await response.json())["error"] == "BAD_JSON"


async def test_a_sale_paid_over_http_reaches_the_receiver_signed(site, inbox, webhook_worker):
    response = await site.client.post(
        "/api/webhooks",
        json={"url": inbox.url("obs"), "events": ["order.paid"]},
        headers=site.admin,
    )
    secret = (await response.json())["secret"]
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    await sell(site, drop_id, "discord:42")
    assert await webhook_worker.run_once() == 1
    ((headers, raw),) = inbox.arrived
    assert signature_ok(secret, headers["Dropcast-Signature"], raw)
    event = json.loads(raw)
    assert event["type"] == "order.paid" and event["data"]["drop"]["id"] == drop_id
    assert "discord:42" not in raw.decode()  # no personal data


async def test_test_queues_a_sample_through_the_same_path(site, inbox, webhook_worker):
    created = await site.commerce.webhooks.add(inbox.url("n8n"), ["drop.closed"])
    response = await site.client.post(
        f"/api/webhooks/{created.endpoint.id}/test", headers=site.admin
    )
    assert response.status == 202
    queued = await response.json()
    assert queued["status"] == "pending" and queued["event_id"].startswith("webhook.test:")
    assert await webhook_worker.run_once() == 1
    ((headers, raw),) = inbox.arrived
    assert signature_ok(created.secret, headers["Dropcast-Signature"], raw)
    assert headers["Idempotency-Key"] == f"{queued['event_id']}/{created.endpoint.id}"
    missing = await site.client.post("/api/webhooks/999/test", headers=site.admin)
    assert missing.status == 404


async def test_the_dashboard_lists_webhooks_and_why_one_was_disabled(site, inbox, webhook_worker):
    site.commerce.webhooks.policy = WebhookPolicy(disable_after=1)
    ok = await site.commerce.webhooks.add(inbox.url("fine"), ["order.paid"])
    broken = await site.commerce.webhooks.add(inbox.url("broken"), ["order.paid"])
    inbox.answers = [404]
    await site.commerce.webhooks.queue_test(broken.endpoint.id)
    assert await webhook_worker.run_once() == 1
    await login(site)
    page = await (await site.client.get("/dashboard")).text()
    rows = {int(m.split('"')[1]): m for m in page.split("<tr data-webhook=")[1:]}
    assert "active" in rows[ok.endpoint.id] and inbox.url("fine") in rows[ok.endpoint.id]
    assert (
        "disabled</span>: 1 deliveries in a row failed (last: HTTP 404)" in rows[broken.endpoint.id]
    )
    assert "failed 1" in rows[broken.endpoint.id]
    enabled = await site.client.post(
        f"/api/webhooks/{broken.endpoint.id}/enable", headers=site.admin
    )
    assert (await enabled.json())["status"] == "active"
