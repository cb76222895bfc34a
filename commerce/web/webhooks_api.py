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
from pydantic import BaseModel, ConfigDict, ValidationError

from commerce.domain.errors import InvalidInput
from commerce.views import iso
from commerce.web.api import admin, json_object, json_ok

ENDPOINT = r"{endpoint_id:\d{1,18}}"


class NewWebhook(BaseModel):
    """The body of ``POST /api/webhooks``."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str
    events: list[str]


def _endpoint_id(request: web.Request) -> int:
    return int(request.match_info["endpoint_id"])


async def add_webhook(request: web.Request) -> web.Response:
    ctx = admin(request)
    data = await json_object(request)
    try:
        body = NewWebhook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "body"
        problem = {
            "missing": "is required",
            "extra_forbidden": "is not a field of a webhook (url, events)",
        }.get(first["type"], first["msg"])
        raise InvalidInput(field, problem) from None
    created = await ctx.commerce.webhooks.add(body.url, body.events)
    return json_ok({**created.endpoint.as_json(), "secret": created.secret}, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    ctx = admin(request)
    infos = await ctx.commerce.webhooks.endpoints()
    return json_ok({"webhooks": [info.as_json() for info in infos]})


async def remove_webhook(request: web.Request) -> web.Response:
    ctx = admin(request)
    endpoint_id = _endpoint_id(request)
    await ctx.commerce.webhooks.remove(endpoint_id)
    return json_ok({"id": endpoint_id, "removed": True})


async def test_webhook(request: web.Request) -> web.Response:
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


async def enable_webhook(request: web.Request) -> web.Response:
    ctx = admin(request)
    endpoint = await ctx.commerce.webhooks.enable(_endpoint_id(request))
    return json_ok(endpoint.as_json())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post("/api/webhooks", add_webhook)
    router.add_get("/api/webhooks", list_webhooks)
    router.add_delete(f"/api/webhooks/{ENDPOINT}", remove_webhook)
    router.add_post(f"/api/webhooks/{ENDPOINT}/test", test_webhook)
    router.add_post(f"/api/webhooks/{ENDPOINT}/enable", enable_webhook)
