"""JSON endpoints: public drop state and its event stream, the admin API, payment webhooks,
health, metrics and the partner's pickup list."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from typing import Any

from aiohttp import web

from commerce.domain.errors import InvalidInput
from commerce.domain.model import PICKUP_PREFIX, DropView, validate_pool
from commerce.dropfile import validate_spec
from commerce.views import drop_state, iso
from commerce.web.context import CONTEXT, WebContext
from commerce.web.errors import BadJson, RouteNotFound
from commerce.web.live import sse_event
from commerce.web.pages import NO_STORE, drop_id_of, page
from commerce.web.queries import pickup_orders
from commerce.web.security import client_ip, require_admin, require_bearer

log = logging.getLogger(__name__)
MAX_JSON_BYTES = 256 * 1024


def json_ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": NO_STORE})


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or BadJson (400) saying what is wrong."""
    if request.content_length and request.content_length > MAX_JSON_BYTES:
        raise BadJson(f"the body is larger than {MAX_JSON_BYTES} bytes")
    raw = await request.read()
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadJson(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[…": the parser gives up before the size limit does
        raise BadJson("the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadJson("the body must be a JSON object")
    return data


def admin(request: web.Request) -> WebContext:
    ctx = request.app[CONTEXT]
    require_admin(request, ctx.admin_token, ctx.auth_throttle)
    return ctx


def state_json(ctx: WebContext, view: DropView) -> dict[str, Any]:
    data = drop_state(view)
    data["server_time"] = iso(ctx.commerce.clock.now())
    return data


# -- public -------------------------------------------------------------------------------


async def drop_json(request: web.Request) -> web.Response:
    """GET /api/drops/{id}: state, times, stock per item and pool, server time."""
    ctx = request.app[CONTEXT]
    return json_ok(state_json(ctx, await ctx.states.get(drop_id_of(request))))


async def drop_stream(request: web.Request) -> web.StreamResponse:
    """GET /api/drops/{id}/stream: server-sent events with ids and Last-Event-ID resume."""
    ctx = request.app[CONTEXT]
    drop_id = drop_id_of(request)
    view = await ctx.states.get(drop_id)  # unknown drop: 404 before the stream starts
    hub = ctx.hub
    # A signed-in viewer's page also hears what is for them alone (a pay link from chat).
    session = ctx.require_sessions().peek(request)
    viewer_identity = session.identity if session is not None else None
    viewer = await ctx.commerce.customers.resolve(viewer_identity) if viewer_identity else None
    # A stream whose client vanished ends at its next heartbeat: then a slot is free.
    address = client_ip(request, ctx.trusted_proxies)
    ctx.streams.take(address, retry_after=ctx.heartbeat_seconds)
    queue = hub.subscribe(drop_id)
    if viewer is not None and viewer_identity is not None:
        ctx.inbox.attach(viewer, viewer_identity, queue)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": NO_STORE,
            "X-Accel-Buffering": "no",
        }
    )
    try:
        await response.prepare(request)
        last_id = request.headers.get("Last-Event-ID") or request.query.get("lastEventId")
        backlog = hub.replay(drop_id, last_id)
        sent = hub.last_seq(drop_id)
        out = [b"retry: 2000\n\n"]
        if backlog is None:  # fresh client, or the gap cannot be replayed: a snapshot
            data = state_json(ctx, view)
            snap_id = hub.event_id(sent)
            out.append(sse_event("countdown", _countdown(data), snap_id))
            out.append(sse_event("stock", _stock(data), snap_id))
            out.append(sse_event("status", data["status"], snap_id))
        else:
            out.extend(hub.encode(m) for m in backlog)
            sent = backlog[-1].seq if backlog else sent
        await response.write(b"".join(out))
        while not hub.closed:
            try:
                async with asyncio.timeout(ctx.heartbeat_seconds):
                    message = await queue.get()
            except TimeoutError:  # heartbeat; also re-syncs the client's clock
                tick = {"server_time": iso(ctx.commerce.clock.now())}
                await response.write(sse_event("countdown", tick))
                continue
            if message is None:
                break
            if isinstance(message, bytes):  # private, for this page only: never replayed
                await response.write(message)
            elif message.seq > sent:
                await response.write(hub.encode(message))
                sent = message.seq
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        ctx.streams.release(address)
        hub.unsubscribe(drop_id, queue)
        if viewer is not None:
            ctx.inbox.detach(viewer, queue)
    return response


def _countdown(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("drop_id", "state", "opens_at", "closes_at", "server_time")
    return {k: data.get(k if k != "drop_id" else "id") for k in keys}


def _stock(data: dict[str, Any]) -> dict[str, Any]:
    keys = ("available", "held", "sold", "total", "server_time")
    return {"drop_id": data["id"], **{k: data[k] for k in keys}}


# -- admin ----------------------------------------------------------------------------------


async def create_drop(request: web.Request) -> web.Response:
    """POST /api/drops: the drop-file schema as JSON → 201 {"id"}."""
    ctx = admin(request)
    spec = validate_spec(await json_object(request))
    drop_id = await ctx.commerce.drops.create(spec)
    return json_ok({"id": drop_id, "url": f"{ctx.base_url}/d/{drop_id}"}, status=201)


async def open_drop(request: web.Request) -> web.Response:
    ctx = admin(request)
    drop = await ctx.commerce.drops.open(drop_id_of(request))
    return json_ok({"id": drop.id, "state": drop.state.value})


async def close_drop(request: web.Request) -> web.Response:
    ctx = admin(request)
    drop = await ctx.commerce.drops.close(drop_id_of(request))
    return json_ok({"id": drop.id, "state": drop.state.value})


def _field(data: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = data.get(name)
    if value is None and not required:
        return None
    if value is None:
        raise InvalidInput(name, "is required")
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise InvalidInput(name, f"must be a {kind.__name__}")
    return value


async def restock(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/restock {"sku", "units", "pool"?}."""
    ctx = admin(request)
    data = await json_object(request)
    drop_id = drop_id_of(request)
    offers = await ctx.commerce.drops.restock(
        drop_id,
        _field(data, "sku", str),
        _field(data, "units", int),
        _field(data, "pool", str, required=False),
        new_pool=bool(_field(data, "new_pool", bool, required=False)),
    )
    ctx.states.forget(drop_id)
    view = await ctx.states.get(drop_id)
    return json_ok({"id": drop_id, "waitlist_offers": offers, "available": view.available_units()})


async def set_price(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/price {"price": "12.00", "sku"?}: refused (409) while any hold
    is open; recorded in the drop's activity."""
    ctx = admin(request)
    data = await json_object(request)
    drop_id = drop_id_of(request)
    money = await ctx.commerce.drops.set_price(
        drop_id, _field(data, "price", str), _field(data, "sku", str, required=False)
    )
    ctx.catalog.forget(drop_id)
    ctx.states.forget(drop_id)
    return json_ok({"id": drop_id, "price_minor": money.amount_minor, "currency": money.currency})


async def issue_link(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/links {"customer": "discord:123"} → 201 {"url", "expires_at"}."""
    ctx = admin(request)
    data = await json_object(request)
    identity = _field(data, "customer", str)
    tag = _field(data, "tag", str, required=False)
    drop_id = drop_id_of(request)
    await ctx.catalog.get(drop_id)  # unknown drop: 404
    issued = await ctx.links.issue(drop_id, identity, tag)
    return json_ok({"url": issued.url, "expires_at": iso(issued.link.expires_at)}, status=201)


async def pickup_list(request: web.Request) -> web.StreamResponse:
    """GET /pickup/{location}[?format=csv]: who picks up what at a partner shop. A browser
    signed in at /dashboard?token=… may open it too (a shop cannot send bearer headers)."""
    from commerce.web.dashboard import require_dashboard  # dashboard imports this module

    ctx = require_dashboard(request)
    location = request.match_info["location"]
    pool = validate_pool(PICKUP_PREFIX + location, "location")
    rows = await pickup_orders(ctx.commerce.db, pool)
    if request.query.get("format") == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            ["order", "drop", "customer", "item", "qty", "amount", "status", "ordered_at"]
        )
        for r in rows:
            writer.writerow(
                [
                    r.order_id,
                    r.drop_title,
                    r.customer,
                    r.item,
                    r.qty,
                    r.amount,
                    r.status_label,
                    iso(r.created_at),
                ]
            )
        return web.Response(
            text=buffer.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Cache-Control": NO_STORE,
                "Content-Disposition": f'attachment; filename="pickup-{location}.csv"',
            },
        )
    return page(ctx, "pickup.html", location=location, rows=rows)


# -- providers and operations ---------------------------------------------------------------


async def webhook(request: web.Request) -> web.Response:
    """POST /webhooks/{provider}: verified by the provider, applied idempotently."""
    ctx = request.app[CONTEXT]
    name = request.match_info["provider"]
    if name not in ctx.payments:
        raise RouteNotFound(f"no payment provider {name!r} is configured here")
    provider = ctx.payments.get(name)
    result = await provider.handle_webhook(await request.read(), request.headers)
    if result is None:
        return json_ok({"received": True, "outcome": None})
    ctx.metrics.payments.labels(name, result.outcome.value).inc()  # refunds: the provider
    return json_ok({"received": True, "outcome": result.outcome.value, "order": result.order.id})


async def healthz(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        await ctx.commerce.db.ping()
    except Exception as exc:  # the point of a health check: say no, do not crash
        log.warning("health check failed: %s", type(exc).__name__)
        return web.json_response(
            {"ok": False, "database": "unreachable"},
            status=503,
            headers={"Cache-Control": NO_STORE},
        )
    return json_ok({"ok": True, "database": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics (Prometheus); with ``web.metrics_token`` set, for its bearer only."""
    ctx = request.app[CONTEXT]
    token = ctx.settings.web.metrics_token
    if token is not None:
        require_bearer(request, token.get_secret_value(), ctx.auth_throttle, "metrics token")
    return web.Response(
        body=ctx.metrics.render(),
        headers={"Content-Type": ctx.metrics.content_type, "Cache-Control": NO_STORE},
    )
