"""The creator's dashboard: ``/dashboard`` leads with the current drop's one objective and
whether it is (on track to be) met, then its live KPIs, then past drops; and the KPI JSON
(``/api/drops/{id}/kpis``) the page re-fetches after stock ticks from the SSE stream. The
tiles, the verdict and every number's wording come from the metric registry
(``commerce.analytics.metrics``); the page's script only places the text. And
each drop's Orders page (``/dashboard/drops/{id}/orders``: filter, packing list, refund,
mark shipped), whose forms carry a token bound to the dashboard session.

Admin only. A browser cannot send a bearer header, so ``/dashboard?token=…`` logs in once:
it sets the session cookie (``commerce.web.admin_session``) and redirects to a URL without
the token.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy

from commerce.analytics.metrics import (
    EMPTY,
    METRICS,
    Format,
    Metric,
    Pace,
    format_value,
    goal_text,
    kpi_json,
)
from commerce.analytics.results import DropKpis, DropSummary, ObjectiveResult
from commerce.desk import DeskLine, OrderDesk, parse_status
from commerce.domain.errors import DomainError, InvalidInput
from commerce.domain.model import SHIP_POOL, Clip, ClipReason, DeskStatus, DropState
from commerce.fresh import SingleFlightCache
from commerce.money_format import format_money
from commerce.web.admin_session import COOKIE, require_dashboard, start_session
from commerce.web.api import json_ok, state_json
from commerce.web.context import CONTEXT, WebContext
from commerce.web.errors import CsrfFailed, Unauthorized, kind_of
from commerce.web.openapi import Access, operation
from commerce.web.pages import NO_STORE, drop_id_of, page, pool_label, see_other
from commerce.web.render import READER_LOCALE
from commerce.web.schemas import Kpis
from commerce.web.security import same_secret

PAST = timedelta(days=90)
KPI_MAX_AGE = 5.0  # seconds a KPI result is reused while no stock tick has happened
CLIP_LABELS = {
    ClipReason.OPENED: "Went live",
    ClipReason.SOLD_OUT: "Sold out",
    ClipReason.COMMAND: "Clipped on command",
}
FUNNEL_LABELS = {
    "link_issued": "Link issued",
    "link_opened": "Link opened",
    "held": "Held",
    "paid": "Paid",
}


# -- the objective, first ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the objective is met (or, while live, on track): what the page leads with."""

    tone: str  # met | on-track | behind | missed | pending | none (a CSS class)
    label: str
    goal: str  # "Sell-through ≥ 80.0 %"
    detail: str


def verdict(kpis: DropKpis, closes_at: datetime | None) -> Verdict:
    objective = kpis.objective
    if objective is None:
        return Verdict(
            "none",
            "No objective set",
            "",
            "Name one in the drop file: drop.objective = {metric, target}.",
        )
    metric = METRICS[objective.metric]  # evaluate_objective names registered metrics only
    goal = goal_text(objective)
    actual = f"Now {format_value(objective.actual, metric.format)}"
    opened = kpis.drop.opened_at
    if opened is None or kpis.drop.state in (DropState.DRAFT, DropState.SCHEDULED):
        return Verdict("pending", "Not started", goal, "The drop has not opened yet.")
    elapsed = max((kpis.as_of - opened).total_seconds(), 1.0)
    final = kpis.drop.state != DropState.LIVE
    if metric.window_s is not None and elapsed >= metric.window_s:
        final = True  # the window is over: the number cannot change any more
    if final:
        tone, text = {
            True: ("met", "Met"),
            False: ("missed", "Not met"),
            None: ("pending", "Not measurable"),
        }[objective.met]
        return Verdict(tone, text, goal, actual.replace("Now", "Final"))
    if objective.met is None:
        return Verdict("pending", "Not measurable yet", goal, "No data for this metric yet.")
    if objective.met:
        if metric.final_once_met:
            return Verdict("met", "Met", goal, actual)
        return Verdict("on-track", "On track", goal, actual)
    projected = projection(metric, objective, opened, closes_at, elapsed)
    if projected is None:
        return Verdict("behind", "Not met yet", goal, actual)
    detail = f"{actual}, projected {format_value(projected, metric.format)} at this pace"
    if projected >= objective.target:
        return Verdict("on-track", "On track", goal, detail)
    return Verdict("behind", "Behind pace", goal, detail)


def projection(
    metric: Metric,
    objective: ObjectiveResult,
    opened: datetime,
    closes_at: datetime | None,
    elapsed: float,
) -> float | None:
    """Where a higher-is-better metric ends at the current pace, when the metric knows."""
    if objective.actual is None or not objective.higher_is_better or metric.projection is None:
        return None
    planned = (closes_at - opened).total_seconds() if closes_at is not None else None
    return metric.projection(Pace(objective.actual, elapsed, planned))


# -- signing in ---------------------------------------------------------------------------------


def _gate(ctx: WebContext, status: int, reason: str) -> web.Response:
    response = page(ctx, "dashboard.html", status=status, kind="gate", reason=reason)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="dropcast"'
    return response


def _login(request: web.Request, ctx: WebContext, given: str) -> web.Response:
    """``?token=`` once: the cookie, then the same URL without the token."""
    admin = ctx.admin_token
    assert admin
    ip = ctx.auth_throttle.admit(request)
    if not same_secret(given, admin):
        ctx.auth_throttle.failed(ip)
        return _gate(ctx, 401, "wrong")
    rest = [(k, v) for k, v in request.query.items() if k != "token"]
    location = "/dashboard" + (f"?{urlencode(rest)}" if rest else "")
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        # A SameSite=Strict cookie is not sent on a redirect that a cross-site link started:
        # continue from our own page instead (a same-site navigation).
        response = page(ctx, "dashboard.html", kind="continue", location=location)
    else:
        response = see_other(location)
    start_session(response, request, ctx)
    return response


# -- KPIs, computed once per stock tick however many dashboards watch --------------------------


# KPI results per drop, keyed by the drop's SSE sequence: a stock tick makes the next
# request recompute; between ticks (and for KPI_MAX_AGE s) concurrent dashboards share one
# computation, so watching a surge does not add load per viewer.
_caches: weakref.WeakKeyDictionary[web.Application, SingleFlightCache[int, DropKpis]] = (
    weakref.WeakKeyDictionary()
)


async def close_kpi_cache(app: web.Application) -> None:
    """At shutdown: stop KPI computations under way."""
    cache = _caches.pop(app, None)
    if cache is not None:
        await cache.close()


async def kpis_of(request: web.Request, ctx: WebContext, drop_id: int) -> DropKpis:
    cache = _caches.get(request.app)
    if cache is None:
        cache = _caches[request.app] = SingleFlightCache(
            ctx.commerce.analytics.kpis, ttl=KPI_MAX_AGE
        )
    return await cache.get(drop_id, ctx.hub.last_seq(drop_id))


async def kpi_data(request: web.Request, ctx: WebContext, drop_id: int) -> dict[str, Any]:
    """The KPI JSON (``kpi_json``: every KPI, and each registered metric with its format and
    text) plus what the page shows beside it (``dashboard``): the verdict, the revenue, and
    ``shown``, the text of every ``data-kpi`` on the page, so the script never formats."""
    kpis = await kpis_of(request, ctx, drop_id)
    view = await ctx.catalog.get(drop_id)
    data = kpi_json(kpis)
    revenue = format_money(kpis.revenue, READER_LOCALE.get()) if kpis.revenue else None
    data["dashboard"] = {
        "verdict": asdict(verdict(kpis, view.drop.closes_at)),
        "revenue": revenue,
        "shown": page_text(data, revenue),
    }
    return data


def page_text(data: dict[str, Any], revenue: str | None) -> dict[str, str]:
    """Each ``data-kpi`` of the page and its text: the metrics, the funnel, state and time."""
    text = {name: str(metric["text"]) for name, metric in data["metrics"].items()}
    for i, step in enumerate(data["funnel"]):
        text[f"funnel.{i}.people"] = format_value(step["people"], Format.COUNT)
        text[f"funnel.{i}.drop_off_pct"] = format_value(step["drop_off_pct"], Format.PERCENT)
    text["drop.state"] = str(data["drop"]["state"])
    text["as_of"] = str(data["as_of"])
    text["dashboard.revenue"] = revenue or EMPTY
    return text


@operation("Every KPI of a drop", tag="drops", access=Access.ADMIN_READER, reply=Kpis)
async def kpis_json(request: web.Request) -> web.Response:
    """GET /api/drops/{id}/kpis (bearer or dashboard cookie): every KPI of one drop."""
    ctx = require_dashboard(request)
    return json_ok(await kpi_data(request, ctx, drop_id_of(request)))


# -- the page ----------------------------------------------------------------------------------


def clip_row(clip: Clip) -> dict[str, Any]:
    """One clip of a drop as the dashboard lists it: the moment, its state, its link."""
    return {
        "moment": CLIP_LABELS[clip.reason],
        "status": clip.status.value,
        "url": clip.url,
        "thumbnail": clip.thumbnail_url,
        "platform": clip.platform,
        "at": clip.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def past_row(
    summary: DropSummary, current: int | None, clips: list[Clip] | None = None
) -> dict[str, Any]:
    objective, opened = summary.objective, summary.opened_at
    met = {True: "yes", False: "no", None: "n/a"}[objective.met] if objective else EMPTY
    return {
        "id": summary.drop_id,
        "title": summary.title,
        "opened_at": opened.strftime("%Y-%m-%d %H:%M UTC") if opened else EMPTY,
        "current": summary.drop_id == current,
        "goal": goal_text(objective) if objective else EMPTY,
        "met": met,
        "sold": f"{summary.units_sold:,} / {summary.capacity:,}",
        "sell_through": format_value(summary.sell_through_pct, Format.PERCENT),
        "sold_out_after": format_value(summary.sold_out_after_s, Format.SECONDS),
        "checkout_p50": format_value(summary.checkout_p50_s, Format.SECONDS),
        "viewer_peak": format_value(summary.viewer_peak, Format.COUNT),
        "per_1k": format_value(summary.units_per_1k_avg, Format.NUMBER),
        "expired": format_value(summary.expired_holds, Format.COUNT),
        "repeat_30d": format_value(summary.repeat_30d_pct, Format.PERCENT),
        "clips": [clip_row(c) for c in clips or () if c.url],
    }


async def dashboard(request: web.Request) -> web.Response:
    """GET /dashboard[?drop=ID]: objective, live KPIs, past drops. ``?token=`` logs in."""
    ctx = request.app[CONTEXT]
    if not ctx.admin_token:
        return _gate(ctx, 403, "disabled")
    given = request.query.get("token")
    if given is not None:
        return _login(request, ctx, given)
    try:
        require_dashboard(request)
    except Unauthorized:
        return _gate(ctx, 401, "login")
    chosen = request.query.get("drop")
    if chosen is not None and (not chosen.isdigit() or len(chosen) > 18):
        raise InvalidInput("drop", "must be a drop id")
    drop_id = int(chosen) if chosen else None
    if drop_id is None:
        drop = await ctx.commerce.drops.current()
        drop_id = drop.id if drop else None
    context: dict[str, Any] = {"kind": "dashboard", "drop_id": drop_id, "chosen": bool(chosen)}
    if drop_id is not None:
        view = await ctx.states.get(drop_id)  # unknown id: 404
        data = await kpi_data(request, ctx, drop_id)
        shown_text = data["dashboard"]["shown"]
        context.update(
            drop=view.drop,
            live=view.drop.state is not DropState.CLOSED,
            stock=state_json(ctx, view),
            kpis=data,
            verdict=data["dashboard"]["verdict"],
            revenue=data["dashboard"]["revenue"],
            tiles=[
                {"key": name, "label": m["label"], "format": m["format"], "text": m["text"]}
                for name, m in data["metrics"].items()
            ],
            funnel=[
                {
                    "index": i,
                    "label": FUNNEL_LABELS.get(step["step"], step["step"]),
                    "people": shown_text[f"funnel.{i}.people"],
                    "drop_off": shown_text[f"funnel.{i}.drop_off_pct"],
                }
                for i, step in enumerate(data["funnel"])
            ],
        )
    summaries = await ctx.commerce.analytics.compare(PAST)
    shown_live = drop_id if context.get("live") else None  # live above, not "past"
    clips = await ctx.commerce.clips.for_drops(
        [*([drop_id] if drop_id is not None else []), *(s.drop_id for s in summaries)]
    )
    if drop_id is not None:
        context["clips"] = [clip_row(c) for c in clips.get(drop_id, [])]
    context["past"] = [
        past_row(s, drop_id, clips.get(s.drop_id))
        for s in reversed(summaries)
        if s.drop_id != shown_live
    ]
    context["past_days"] = PAST.days
    context["webhooks"] = await ctx.commerce.webhooks.endpoints()
    return page(ctx, "dashboard.html", cache=NO_STORE, **context)


# -- the order desk: one drop's orders, refund and mark shipped ---------------------------------

# ?done= after a POST (a fixed set: the page never echoes text from its address).
NOTICES = {
    "refunded": "Order #{order} refunded. While the drop is live its unit is back on sale, "
    "the waitlist first.",
    "already-refunded": "Order #{order} was already refunded; nothing changed.",
    "shipped": "Order #{order} marked shipped; the buyer was sent the tracking.",
    "unchanged": "Order #{order} already had that carrier and tracking; nothing changed.",
}
REFUNDABLE = (DeskStatus.PAID, DeskStatus.RESERVED, DeskStatus.SHIPPED, DeskStatus.PICKED_UP)
SHIPPABLE = (DeskStatus.PAID, DeskStatus.RESERVED, DeskStatus.SHIPPED)
RARE = (DeskStatus.PENDING, DeskStatus.CANCELLED)  # filters shown only when they match any


def desk_csrf(ctx: WebContext, request: web.Request) -> str:
    """The order forms' token, bound to this browser's dashboard session (a synchronizer
    token: another site can neither read the HttpOnly cookie nor this page)."""
    return ctx.require_csrf().token("orders", request.cookies.get(COOKIE, ""))


def orders_url(drop_id: int, status: DeskStatus | None = None, **extra: object) -> str:
    query = {**({"status": status.value} if status else {}), **extra}
    return f"/dashboard/drops/{drop_id}/orders" + (f"?{urlencode(query)}" if query else "")


def desk_row(line: DeskLine) -> dict[str, Any]:
    order = line.order
    if order.ship_to is not None:
        where = ", ".join(order.ship_to.lines())
    elif order.pool == SHIP_POOL:
        where = "—"
    else:
        where = pool_label(order.pool)
    return {
        "id": order.id,
        "customer": line.customer,
        "goods": ", ".join(f"{sku} × {qty}" for sku, qty in line.items),
        "total": format_money(order.amount, READER_LOCALE.get()),
        "status": line.status.value,
        "where": where,
        "tracking": f"{order.carrier} {order.tracking}" if order.tracking else "",
        "carrier": order.carrier or "",
        "tracking_code": order.tracking or "",
        "refundable": line.status in REFUNDABLE,
        "shippable": order.pool == SHIP_POOL and line.status in SHIPPABLE,
    }


async def render_orders(
    request: web.Request,
    ctx: WebContext,
    drop_id: int,
    status: DeskStatus | None,
    *,
    http_status: int = 200,
    notice: str | None = None,
    problem: str | None = None,
) -> web.Response:
    view = await ctx.catalog.get(drop_id)  # unknown drop: 404
    lines = await ctx.desk.lines(drop_id)
    counts = Counter(line.status for line in lines)
    shown = [line for line in lines if status is None or line.status is status]
    filters = [{"label": "All", "status": "", "count": len(lines), "current": status is None}]
    filters += [
        {
            "label": s.value.replace("_", " "),
            "status": s.value,
            "count": counts[s],
            "current": s is status,
        }
        for s in DeskStatus
        if counts[s] or s is status or s not in RARE
    ]
    csv_query = {"drop": drop_id, **({"status": status.value} if status else {}), "format": "csv"}
    return page(
        ctx,
        "orders.html",
        status=http_status,
        cache=NO_STORE,
        drop=view.drop,
        status_filter=status.value if status else "",
        filters=filters,
        rows=[desk_row(line) for line in shown],
        csv_url=f"/api/orders?{urlencode(csv_query)}",
        csrf=desk_csrf(ctx, request),
        notice=notice,
        problem=problem,
    )


async def orders_page(request: web.Request) -> web.Response:
    """GET /dashboard/drops/{id}/orders[?status=S]: the drop's orders with refund and
    mark-shipped forms (admin session only; without one, the dashboard's sign-in)."""
    ctx = request.app[CONTEXT]
    if not ctx.admin_token:
        return _gate(ctx, 403, "disabled")
    try:
        require_dashboard(request)
    except Unauthorized:
        return _gate(ctx, 401, "login")
    status = parse_status(request.query.get("status"))
    done, order = request.query.get("done", ""), request.query.get("order", "")
    notice = None
    if done in NOTICES and order.isdigit() and len(order) <= 18:
        notice = NOTICES[done].format(order=order)
    return await render_orders(request, ctx, drop_id_of(request), status, notice=notice)


async def desk_form(request: web.Request) -> tuple[WebContext, MultiDictProxy[Any], DeskLine]:
    """An order form's POST: the admin (401 otherwise), our token (403 otherwise), and the
    order it is about (404 when unknown)."""
    ctx = require_dashboard(request)
    form = await request.post()
    if not ctx.require_csrf().check(form.get("csrf"), "orders", request.cookies.get(COOKIE, "")):
        raise CsrfFailed("this form is stale or was not made by us; reload the orders page")
    line = await ctx.desk.line(int(request.match_info["order_id"]))
    return ctx, form, line


def back_status(form: MultiDictProxy[Any]) -> DeskStatus | None:
    try:
        return parse_status(str(form.get("back", "")))
    except InvalidInput:
        return None


async def refund_order(request: web.Request) -> web.Response:
    """POST /dashboard/orders/{id}/refund (csrf, reason): through the provider, once."""

    async def refund(desk: OrderDesk, order_id: int, form: MultiDictProxy[Any]) -> bool:
        return (await desk.refund(order_id, str(form.get("reason", ""))))[1]

    return await desk_action(request, refund, "refunded", ("refunded", "already-refunded"))


async def ship_order(request: web.Request) -> web.Response:
    """POST /dashboard/orders/{id}/ship (csrf, carrier, tracking): the buyer hears it."""

    async def ship(desk: OrderDesk, order_id: int, form: MultiDictProxy[Any]) -> bool:
        carrier, tracking = str(form.get("carrier", "")), str(form.get("tracking", ""))
        return (await desk.ship(order_id, carrier, tracking))[1]

    return await desk_action(request, ship, "marked shipped", ("shipped", "unchanged"))


async def desk_action(
    request: web.Request,
    act: Callable[[OrderDesk, int, MultiDictProxy[Any]], Awaitable[bool]],
    what: str,
    outcomes: tuple[str, str],
) -> web.Response:
    """One order-desk button: act, then back to the Orders page saying what happened (the
    page again with the problem when it was refused)."""
    ctx, form, line = await desk_form(request)
    back, order = back_status(form), line.order
    try:
        changed = await act(ctx.desk, order.id, form)
    except DomainError as exc:
        return await render_orders(
            request,
            ctx,
            order.drop_id,
            back,
            http_status=kind_of(exc).status,
            problem=f"Order #{order.id} was not {what}: {exc}",
        )
    done = outcomes[0] if changed else outcomes[1]
    return see_other(orders_url(order.drop_id, back, done=done, order=order.id))


__all__ = ["dashboard", "kpis_json", "orders_page", "refund_order", "ship_order"]
