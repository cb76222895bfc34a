"""The admin API of the creator's signed webhooks (bearer token, like every admin route):

- ``POST /api/webhooks`` ``{"url", "events": [...]}`` → 201, the webhook and its secret (once);
- ``GET /api/webhooks`` → every webhook, its status and deliveries per status (no secret);
- ``DELETE /api/webhooks/{id}`` → removed, queued deliveries included;
- ``POST /api/webhooks/{id}/test`` → 202, a ``webhook.test`` event queued to it;
- ``POST /api/webhooks/{id}/enable`` → back on after it was disabled.

Bad input: 422 JSON naming the field (``url`` or ``events``); an unknown id: 404.
"""

from __future__ import annotations

from aiohttp import web

from commerce.views import iso
from commerce.web.api import admin, json_ok, read_body
from commerce.web.openapi import Access, operation
from commerce.web.schemas import (
    NewWebhook,
    NewWebhookBody,
    Webhook,
    WebhookList,
    WebhookRemoved,
    WebhookTestQueued,
)

ENDPOINT = r"{endpoint_id:\d{1,18}}"


def _endpoint_id(request: web.Request) -> int:
    return int(request.match_info["endpoint_id"])


@operation(
    "Add a signed webhook",
    tag="webhooks",
    access=Access.ADMIN,
    body=NewWebhookBody,
    reply=NewWebhook,
    status=201,
)
async def add_webhook(request: web.Request) -> web.Response:
    """POST /api/webhooks: the events are POSTed to ``url`` signed with the secret in the
    answer (``Dropcast-Signature``), which is shown this once."""
    ctx = admin(request)
    body = await read_body(request, NewWebhookBody)
    created = await ctx.commerce.webhooks.add(body.url, body.events)
    return json_ok({**created.endpoint.as_json(), "secret": created.secret}, status=201)


@operation("Every webhook", tag="webhooks", access=Access.ADMIN, reply=WebhookList)
async def list_webhooks(request: web.Request) -> web.Response:
    """GET /api/webhooks: each webhook's status and deliveries per status (no secret)."""
    ctx = admin(request)
    infos = await ctx.commerce.webhooks.endpoints()
    return json_ok({"webhooks": [info.as_json() for info in infos]})


@operation("Remove a webhook", tag="webhooks", access=Access.ADMIN, reply=WebhookRemoved)
async def remove_webhook(request: web.Request) -> web.Response:
    """DELETE /api/webhooks/{id}: nothing more is sent to it, queued deliveries included."""
    ctx = admin(request)
    endpoint_id = _endpoint_id(request)
    await ctx.commerce.webhooks.remove(endpoint_id)
    return json_ok({"id": endpoint_id, "removed": True})


@operation(
    "Send a webhook a sample event",
    tag="webhooks",
    access=Access.ADMIN,
    reply=WebhookTestQueued,
    status=202,
    errors=(409,),
)
async def test_webhook(request: web.Request) -> web.Response:
    """POST /api/webhooks/{id}/test: a ``webhook.test`` event queued through the same
    delivery path as every event (409 while the webhook is disabled)."""
    ctx = admin(request)
    delivery = await ctx.commerce.webhooks.queue_test(_endpoint_id(request))
    return json_ok(
        {
            "delivery": delivery.id,
            "event_id": delivery.event_id,
            "status": delivery.status.value,
            "queued_at": iso(delivery.created_at),
        },
        status=202,
    )


@operation("Turn a disabled webhook back on", tag="webhooks", access=Access.ADMIN, reply=Webhook)
async def enable_webhook(request: web.Request) -> web.Response:
    """POST /api/webhooks/{id}/enable: its count of failures in a row starts again at 0."""
    ctx = admin(request)
    endpoint = await ctx.commerce.webhooks.enable(_endpoint_id(request))
    return json_ok(endpoint.as_json())


ROUTES: list[web.RouteDef] = [
    web.post("/api/webhooks", add_webhook),
    web.get("/api/webhooks", list_webhooks),
    web.delete(f"/api/webhooks/{ENDPOINT}", remove_webhook),
    web.post(f"/api/webhooks/{ENDPOINT}/test", test_webhook),
    web.post(f"/api/webhooks/{ENDPOINT}/enable", enable_webhook),
]
