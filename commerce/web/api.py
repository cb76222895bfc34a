"""JSON endpoints: public drop state and its event stream, the admin API (drops and the
order desk), payment webhooks, health, metrics and the partner's pickup list (its own
signed link, a "picked up" form per order)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel

from commerce.desk import PickupLine, packing_csv, parse_status
from commerce.domain.errors import Forbidden, InvalidInput, InvalidState
from commerce.domain.model import PICKUP_PREFIX, DropView, validate_pool
from commerce.dropfile import DropSpec
from commerce.links import LinkInvalid, drop_page_url
from commerce.views import drop_state, iso
from commerce.web.admin_session import require_dashboard
from commerce.web.context import CONTEXT, PickupKeys, WebContext
from commerce.web.errors import BadCsv, BadJson, CsrfFailed, RouteNotFound
from commerce.web.live import sse_event
from commerce.web.openapi import JSON as JSON_MEDIA
from commerce.web.openapi import Access, Media, operation, operation_of, read_query
from commerce.web.pages import (
    CSRF_COOKIE,
    NO_STORE,
    csrf_cookie,
    drop_id_of,
    page,
    see_other,
    with_csrf_cookie,
)
from commerce.web.rendered import Rendered
from commerce.web.schemas import (
    Created,
    DropStateChanged,
    DropStateReply,
    Health,
    IssuedLink,
    LinkBody,
    OrderChanged,
    OrderList,
    OrderReply,
    OrdersQuery,
    PickedUpBody,
    PriceBody,
    PriceSet,
    RefundBody,
    RestockBody,
    Restocked,
    ShipBody,
    ShipReport,
    WebhookReceived,
    validated,
)
from commerce.web.security import client_ip, require_admin, require_bearer

log = logging.getLogger(__name__)
MAX_JSON_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)
CSV = Media("text/csv", "The orders as a CSV file", {"type": "string"})


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


async def read_body(request: web.Request, model: type[M]) -> M:
    """The JSON body validated by ``model``, which must be the body the handler's
    ``@operation`` documents: the description and the check are one schema."""
    documented = operation_of(request.match_info.route.handler)
    assert documented is not None and documented.body is model, "read the documented body"
    return validated(model, await json_object(request))


def admin(request: web.Request) -> WebContext:
    ctx = request.app[CONTEXT]
    require_admin(request, ctx.admin_token, ctx.auth_throttle)
    return ctx


def state_json(ctx: WebContext, view: DropView) -> dict[str, Any]:
    """The state of ``view`` with the server's time now (the stream's snapshot, the
    dashboard): for one reader, now."""
    data = drop_state(view)
    data["server_time"] = iso(ctx.commerce.clock.now())
    return data


# A shared cache may keep the state as long as this process does (``ctx.states``' TTL) and
# serve it a little longer while it asks again; the stream has the live figures.
DROP_JSON_CACHE = "public, max-age=1, stale-while-revalidate=5"
JSON = "application/json; charset=utf-8"
SERVER_TIME = "Server-Time"


def render_state(view: DropView) -> Rendered:
    """The JSON of ``view``, its ``server_time`` the time the state was read. The ETag
    leaves that time out: a state read again unchanged keeps its validator."""
    data = drop_state(view)
    read_at = data.pop("server_time")
    validator = json.dumps(data, separators=(",", ":")).encode()
    data["server_time"] = read_at
    return Rendered.of(
        json.dumps(data, separators=(",", ":")).encode(),
        JSON,
        DROP_JSON_CACHE,
        validator=validator,
    )


# -- public -------------------------------------------------------------------------------


@operation(
    "The state of a drop",
    tag="drops",
    reply=DropStateReply,
    errors=(304,),
)
async def drop_json(request: web.Request) -> web.Response:
    """GET /api/drops/{id}: state, times, stock per item and pool, with a weak ETag (304)
    and a short public TTL. The body is rendered once per view of the drop (``ctx.states``
    makes a new one after each of its events and at its TTL) and served from memory
    (``ctx.rendered_states``), so it cannot carry the time of each request: its
    ``server_time`` is when the state was read, and the server's time at this response is
    the ``Server-Time`` header (ISO 8601, on 200 and 304; behind a shared cache add its
    ``Age``). No script of ours reads this route for the time: the drop page and the
    overlay set their countdowns' clocks from the stream, whose every event (the snapshot,
    each change, the heartbeat) carries the time it was sent."""
    ctx = request.app[CONTEXT]
    drop_id = drop_id_of(request)
    view = ctx.states.peek(drop_id) or await ctx.states.get(drop_id)
    rendered = ctx.rendered_states.get(view)
    if rendered is None:
        rendered = ctx.rendered_states.put(view, render_state(view))
    headers = {SERVER_TIME: iso(ctx.commerce.clock.now()) or "", **ctx.embed.headers(request)}
    return rendered.response(request, headers)


@operation(
    "The live events of a drop (server-sent events)",
    tag="drops",
    reply=Media(
        "text/event-stream",
        "Events countdown, stock and status; a heartbeat every 15 s; Last-Event-ID resumes",
        {"type": "string"},
    ),
    errors=(429,),
    not_fuzzed="a stream never ends on its own; tests/web/test_live.py covers it",
)
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
            **ctx.embed.headers(request),  # the widget listens from other websites
        }
    )
    ctx.secure(response)
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


@operation(
    "Create a drop from the drop-file schema",
    tag="drops",
    access=Access.ADMIN,
    body=DropSpec,
    reply=Created,
    status=201,
)
async def create_drop(request: web.Request) -> web.Response:
    """POST /api/drops: the drop-file schema as JSON → 201 {"id"}."""
    ctx = admin(request)
    spec = await read_body(request, DropSpec)
    drop_id = await ctx.commerce.drops.create(spec)
    return json_ok({"id": drop_id, "url": drop_page_url(ctx.base_url, drop_id)}, status=201)


@operation(
    "Open a drop for claims now",
    tag="drops",
    access=Access.ADMIN,
    reply=DropStateChanged,
    errors=(409,),
)
async def open_drop(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/open: a draft or scheduled drop goes live (idempotent)."""
    ctx = admin(request)
    drop = await ctx.commerce.drops.open(drop_id_of(request))
    return json_ok({"id": drop.id, "state": drop.state.value})


@operation(
    "Close a drop",
    tag="drops",
    access=Access.ADMIN,
    reply=DropStateChanged,
)
async def close_drop(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/close: stop taking claims (idempotent); holds may still pay."""
    ctx = admin(request)
    drop = await ctx.commerce.drops.close(drop_id_of(request))
    return json_ok({"id": drop.id, "state": drop.state.value})


@operation(
    "Add units to an item",
    tag="drops",
    access=Access.ADMIN,
    body=RestockBody,
    reply=Restocked,
    errors=(409,),
)
async def restock(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/restock {"sku", "units", "pool"?, "new_pool"?}: waitlisted
    customers are offered the new units first."""
    ctx = admin(request)
    body = await read_body(request, RestockBody)
    drop_id = drop_id_of(request)
    offers = await ctx.commerce.drops.restock(
        drop_id, body.sku, body.units, body.pool, new_pool=bool(body.new_pool)
    )
    ctx.states.forget(drop_id)
    view = await ctx.states.get(drop_id)
    return json_ok({"id": drop_id, "waitlist_offers": offers, "available": view.available_units()})


@operation(
    "Change the price of an item or bundle",
    tag="drops",
    access=Access.ADMIN,
    body=PriceBody,
    reply=PriceSet,
    errors=(409,),
)
async def set_price(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/price {"price": "12.00", "sku"?}: refused (409) while any hold
    is open; recorded in the drop's activity."""
    ctx = admin(request)
    body = await read_body(request, PriceBody)
    drop_id = drop_id_of(request)
    money = await ctx.commerce.drops.set_price(drop_id, body.price, body.sku)
    ctx.catalog.forget(drop_id)
    ctx.states.forget(drop_id)
    return json_ok({"id": drop_id, "price_minor": money.amount_minor, "currency": money.currency})


@operation(
    "Issue a personal one-click link",
    tag="drops",
    access=Access.ADMIN,
    body=LinkBody,
    reply=IssuedLink,
    status=201,
)
async def issue_link(request: web.Request) -> web.Response:
    """POST /api/drops/{id}/links {"customer": "<scheme>:<id>"} → 201 {"url", "expires_at"}."""
    ctx = admin(request)
    body = await read_body(request, LinkBody)
    drop_id = drop_id_of(request)
    await ctx.catalog.get(drop_id)  # unknown drop: 404
    issued = await ctx.links.issue(drop_id, body.customer, body.tag)
    return json_ok({"url": issued.url, "expires_at": iso(issued.link.expires_at)}, status=201)


async def pickup_list(request: web.Request) -> web.StreamResponse:
    """GET /pickup/{location}[?key=…][&format=csv]: who picks up what at a partner shop,
    with a "picked up" form per order. The shop opens it with its own signed link (``key``,
    see ``dropcast pickup-link``); the admin with the bearer or the dashboard cookie."""
    location, pool = pickup_location(request)
    ctx, key = pickup_access(request, location, request.query.get("key"))
    rows = await ctx.desk.pickup_list(pool)
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
    done = request.query.get("done", "")
    notice = f"Order #{done} handed over." if done.isdigit() and len(done) <= 18 else None
    return pickup_page(request, ctx, location, key, rows, notice=notice)


def pickup_location(request: web.Request) -> tuple[str, str]:
    """The location slug of the URL and its pool (422 for anything else)."""
    location = request.match_info["location"]
    return location, validate_pool(PICKUP_PREFIX + location, "location")


def pickup_access(
    request: web.Request, location: str, key: object
) -> tuple[WebContext, str | None]:
    """The shop's key for this one location (403 when wrong, failures throttled like admin
    sign-ins), else the admin (bearer or dashboard cookie; 401 without)."""
    if key is None or key == "":
        return require_dashboard(request), None
    ctx = request.app[CONTEXT]
    ip = ctx.auth_throttle.admit(request)
    if not ctx.require_pickup_keys().check(location, key):
        ctx.auth_throttle.failed(ip)
        raise LinkInvalid(f"this is not the pickup link of {location}; ask for a new one")
    assert isinstance(key, str)
    return ctx, key


def pickup_url(base_url: str, keys: PickupKeys, location: str) -> str:
    """The shop's own link to its pickup list (what ``dropcast pickup-link`` prints)."""
    validate_pool(PICKUP_PREFIX + location, "location")
    return f"{base_url}/pickup/{location}?{urlencode({'key': keys.key(location)})}"


def pickup_page(
    request: web.Request,
    ctx: WebContext,
    location: str,
    key: str | None,
    rows: list[PickupLine],
    *,
    status: int = 200,
    notice: str | None = None,
    problem: str | None = None,
    failed: int | None = None,
) -> web.Response:
    """The list: orders to hand over (a code field each), then those handed over. The
    pickup code is never shown here: the shop checks the one the buyer shows."""
    value, fresh = csrf_cookie(request)
    query = urlencode({"key": key}) if key else ""
    response = page(
        ctx,
        "pickup.html",
        status=status,
        location=location,
        waiting=[r for r in rows if not r.handed_over],
        handed=[r for r in rows if r.handed_over],
        key=key or "",
        csv_url=f"/pickup/{location}?{query}&format=csv" if query else "?format=csv",
        csrf=ctx.require_csrf().token("pickup", value, location),
        notice=notice,
        problem=problem,
        failed=failed,
    )
    if fresh:
        with_csrf_cookie(ctx, response, value)
    return response


async def pickup_handed_over(request: web.Request) -> web.Response:
    """POST /pickup/{location}/orders/{id}/picked-up (key, csrf, code): the buyer showed
    their code and took the goods; a pay-at-pickup order is paid now. A wrong code changes
    nothing; ten wrong codes from one address within ten minutes stop its tries for a
    while (429), so a leaked pickup link cannot guess codes; an order of another location
    is refused (403)."""
    location, pool = pickup_location(request)
    form = await request.post()
    ctx, key = pickup_access(request, location, form.get("key"))
    value = request.cookies.get(CSRF_COOKIE, "")
    if not ctx.require_csrf().check(form.get("csrf"), "pickup", value, location):
        raise CsrfFailed("this form is stale or was not made by us; reload the pickup list")
    order_id = int(request.match_info["order_id"])
    line = await ctx.desk.line(order_id)  # unknown: 404
    if line.order.pool != pool:
        raise Forbidden(f"order {order_id} is not on the pickup list of {location}")
    code = " ".join(str(form.get("code", "")).split())
    problem: str | None = None
    status = 200
    if not code:
        problem, status = f"Enter the code the buyer of order #{order_id} shows.", 422
    else:
        ip = ctx.code_throttle.admit(request)
        try:
            await ctx.desk.picked_up(order_id, code[:32])
        except InvalidInput:
            ctx.code_throttle.failed(ip)
            problem = f"That is not the code of order #{order_id}: it was not handed over."
            status = 422
        except InvalidState as exc:
            problem, status = f"Order #{order_id}: {exc}.", 409
    if problem is None:
        query = {"key": key, "done": order_id} if key else {"done": order_id}
        return see_other(f"/pickup/{location}?{urlencode(query)}")
    rows = await ctx.desk.pickup_list(pool)
    return pickup_page(
        request, ctx, location, key, rows, status=status, problem=problem, failed=order_id
    )


# -- the creator's order desk (admin) ---------------------------------------------------------


def admin_reader(request: web.Request) -> WebContext:
    """Reads of the desk: the bearer, or the dashboard cookie (its CSV download link)."""
    return require_dashboard(request)


def order_id_of(request: web.Request) -> int:
    return int(request.match_info["order_id"])


def csv_download(text: str, filename: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Cache-Control": NO_STORE,
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


@operation(
    "List orders, or download the packing list",
    tag="orders",
    access=Access.ADMIN_READER,
    query=OrdersQuery,
    reply=(OrderList, CSV),
    errors=(404,),
)
async def orders_list(request: web.Request) -> web.Response:
    """GET /api/orders[?drop=ID][&status=S][&format=csv]: orders oldest first, or the
    packing list (one row per order and SKU, with the address) as a CSV download."""
    ctx = admin_reader(request)
    query = read_query(request, OrdersQuery)
    drop_id = int(query.drop) if query.drop else None
    status = parse_status(query.status or None)
    if drop_id is not None:
        await ctx.catalog.get(drop_id)  # unknown drop: 404
    lines = await ctx.desk.lines(drop_id, status)
    if query.format == "csv":
        name = "-".join(
            ["packing", *([f"drop{drop_id}"] if drop_id else []), *([status] if status else [])]
        )
        return csv_download(packing_csv(lines), f"{name}.csv")
    return json_ok({"count": len(lines), "orders": [line.as_json() for line in lines]})


@operation("One order", tag="orders", access=Access.ADMIN_READER, reply=OrderReply)
async def order_show(request: web.Request) -> web.Response:
    """GET /api/orders/{id}."""
    ctx = admin_reader(request)
    return json_ok((await ctx.desk.line(order_id_of(request))).as_json())


@operation(
    "Refund an order",
    tag="orders",
    access=Access.ADMIN,
    body=RefundBody,
    reply=OrderChanged,
    errors=(409, 502),
)
async def order_refund(request: web.Request) -> web.Response:
    """POST /api/orders/{id}/refund {"reason"?}: through its gateway, once however often
    asked ("changed": false when it already was refunded)."""
    ctx = admin(request)
    body = await read_body(request, RefundBody)
    order_id = order_id_of(request)
    reason = body.reason or "requested"
    _, changed = await ctx.desk.refund(order_id, reason)
    return json_ok({"order": (await ctx.desk.line(order_id)).as_json(), "changed": changed})


@operation(
    "Mark an order shipped",
    tag="orders",
    access=Access.ADMIN,
    body=ShipBody,
    reply=OrderChanged,
    errors=(409,),
)
async def order_ship(request: web.Request) -> web.Response:
    """POST /api/orders/{id}/ship {"carrier", "tracking"}: the buyer is messaged with the
    tracking; the same carrier and code again change nothing."""
    ctx = admin(request)
    body = await read_body(request, ShipBody)
    order_id = order_id_of(request)
    _, changed = await ctx.desk.ship(order_id, body.carrier, body.tracking)
    return json_ok({"order": (await ctx.desk.line(order_id)).as_json(), "changed": changed})


@operation(
    "Mark an order picked up",
    tag="orders",
    access=Access.ADMIN,
    body=PickedUpBody,
    reply=OrderChanged,
    errors=(409,),
)
async def order_picked_up(request: web.Request) -> web.Response:
    """POST /api/orders/{id}/picked-up {"code"?}: handed over at the shop (the code, when
    given, must be the order's); a pay-at-pickup order is paid now."""
    ctx = admin(request)
    body = await read_body(request, PickedUpBody)
    order_id = order_id_of(request)
    _, changed = await ctx.desk.picked_up(order_id, body.code)
    return json_ok({"order": (await ctx.desk.line(order_id)).as_json(), "changed": changed})


@operation(
    "Ship many orders from a carrier's CSV export",
    tag="orders",
    access=Access.ADMIN,
    body=Media(
        "text/csv",
        "A header naming order, carrier and tracking (other columns ignored); errors name "
        "the field csv and the line",
        {"type": "string", "examples": ["order,carrier,tracking\n1,DHL,JD014600003828\n"]},
    ),
    reply=ShipReport,
)
async def orders_ship_csv(request: web.Request) -> web.Response:
    """POST /api/orders/ship (text/csv: the carrier's export with order, carrier, tracking
    columns): every row is checked first, so a bad file (400, naming the line) ships
    nothing; the same file twice reports every order unchanged."""
    ctx = admin(request)
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadCsv("csv", "is not UTF-8 text; export it as UTF-8 CSV") from None
    try:
        report = await ctx.desk.ship_csv(text)
    except InvalidInput as exc:
        if exc.field != "csv":
            raise
        raise BadCsv(exc.field, exc.problem) from None
    return json_ok(report.as_dict())


# -- payments and operations ----------------------------------------------------------------


@operation(
    "A payment provider's webhook",
    tag="payments",
    access=Access.PROVIDER,
    body=Media(JSON_MEDIA, "What the provider sends, verified by its signature", {}),
    reply=WebhookReceived,
    errors=(404,),
    not_fuzzed="only a body signed by the provider is applied: random bodies test nothing",
)
async def webhook(request: web.Request) -> web.Response:
    """POST /webhooks/{provider}: verified by the gateway, applied idempotently by checkout."""
    ctx = request.app[CONTEXT]
    name = request.match_info["provider"]
    if name not in ctx.payments:
        raise RouteNotFound(f"no payment provider {name!r} is configured here")
    result = await ctx.checkout.apply_webhook(name, await request.read(), request.headers)
    if result is None:
        return json_ok({"received": True, "outcome": None})
    return json_ok({"received": True, "outcome": result.outcome.value, "order": result.order.id})


@operation("Is the database reachable?", tag="operations", reply=Health)
async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 when the database answers, 503 (same body) when it does not."""
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
