"""Server-rendered pages: the one-click checkout (/c/…), the public drop page (/d/…), the
OBS overlay, and the PWA plumbing. Handlers translate; the core decides."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import segno
from aiohttp import hdrs, web
from markupsafe import Markup
from multidict import MultiDictProxy

from commerce.domain.errors import HoldNotActive, HoldNotFound, InvalidInput
from commerce.domain.model import (
    PICKUP_PREFIX,
    SHIP_POOL,
    Address,
    ClaimOutcome,
    ClaimResult,
    DropFormat,
    DropView,
    Hold,
    HoldStatus,
    Money,
    Order,
    OrderStatus,
    normalize_identity,
    validate_pool,
)
from commerce.domain.payments import Redirect
from commerce.links import ClaimLink, LinkExpired, drop_page_url
from commerce.money_format import format_money, locale_key
from commerce.payments.stripe_checkout import UNSHIPPABLE
from commerce.shipping import (
    ADDRESS_FIELDS,
    ANYWHERE,
    ShippingRates,
    allowed_countries,
    countries,
    country_code,
    parse_address,
    pickup_point,
)
from commerce.views import Action, Phase, drop_status
from commerce.web.context import CONTEXT, Visit, WebContext
from commerce.web.errors import CsrfFailed, MailNotSent
from commerce.web.openapi import operation
from commerce.web.render import READER_LOCALE
from commerce.web.rendered import Rendered, none_match
from commerce.web.schemas import CsrfToken
from commerce.web.security import is_link_preview
from commerce.web.sessions import Signed
from commerce.web.signin import remember

log = logging.getLogger(__name__)
NO_STORE = "no-store"
DROP_PAGE_CACHE = "public, max-age=5, stale-while-revalidate=30"
HTML = "text/html; charset=utf-8"
CSRF_COOKIE = "dc_csrf"
METHOD_LABELS = {"test": "Pay now (test mode)", "stripe": "Pay by card", "manual": "Pay later"}


# -- helpers ---------------------------------------------------------------------------


def page(
    ctx: WebContext, template: str, *, status: int = 200, cache: str = NO_STORE, **context: Any
) -> web.Response:
    """Render a template into an HTML response with the given cache policy."""
    return html_response(ctx.templates.render(template, **context), status, cache)


def html_response(text: str, status: int = 200, cache: str = NO_STORE) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": cache},
    )


def skeleton_page(
    ctx: WebContext,
    view: DropView,
    variant: str | None,
    template: str,
    *,
    status: int,
    slots: dict[str, object],
    context: Callable[[], dict[str, Any]],
) -> web.Response:
    """A checkout page that differs per buyer only in ``slots`` (token, form key, times),
    from the skeleton rendered once per catalogue view and ``variant`` (everything else
    the page shows depends on: what is held, at what price, the reader's locale…). A
    ``variant`` of None means the page shows something of this buyer's own: it is
    rendered for them alone."""
    if variant is not None:
        skeleton = ctx.skeletons.get(view, variant)
        if skeleton is None:
            skeleton = ctx.templates.skeleton(template, slots, **context())
            if skeleton is not None:
                ctx.skeletons.put(view, skeleton, variant)
        if skeleton is not None:
            return html_response(skeleton.fill(slots), status)
    personal: dict[str, Any] = {**context(), **slots}
    return page(ctx, template, status=status, **personal)


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": NO_STORE})


def drop_id_of(request: web.Request) -> int:
    return int(request.match_info["drop_id"])


def pool_label(pool: str) -> str:
    if pool == SHIP_POOL:
        return "Shipping"
    return f"Pick up at {pickup_point(pool)}"


def form_int(form: MultiDictProxy[Any], name: str) -> int:
    value = str(form.get(name, ""))
    if not value.isdigit() or len(value) > 18:
        raise InvalidInput(name, "is missing or not a number")
    return int(value)


def optional_pool(value: object) -> str | None:
    return validate_pool(str(value)) if value else None


@dataclass(frozen=True, slots=True)
class Method:
    name: str
    label: str


def payment_methods(ctx: WebContext, pool: str) -> list[Method]:
    """The buttons a buyer gets: the configured provider, plus pay-at-pickup for pickups."""
    names = [ctx.payments.default]
    if pool.startswith(PICKUP_PREFIX) and "manual" in ctx.payments and "manual" not in names:
        names.append("manual")
    labels = dict(METHOD_LABELS)
    if pool.startswith(PICKUP_PREFIX):
        labels["manual"] = "Pay at pickup"
    return [Method(n, labels.get(n, n)) for n in names]


def item_of(view: DropView, hold: Hold) -> tuple[str, Money]:
    """Title and unit price of what a hold covers (a bundle hold covers the whole bundle),
    at the price the hold was placed with."""
    title = view.drop.title if hold.sku is None else view.products[hold.sku].title
    return title, Money(hold.price_minor, view.currency)


# -- shipping on the held page ---------------------------------------------------------

# Providers whose own page takes the address (Stripe Checkout): ours asks for the country
# only, since it sets the rate and the provider keeps to it.
ADDRESS_ON_PROVIDER_PAGE = frozenset({"stripe"})
# What browsers autofill into each address field (WHATWG autofill tokens).
AUTOFILL = {
    "name": "shipping name",
    "line1": "shipping address-line1",
    "line2": "shipping address-line2",
    "postal_code": "shipping postal-code",
    "city": "shipping address-level2",
    "region": "shipping address-level1",
    "country": "shipping country",
}
FIELD_OF_LABEL = {label: key for key, label, _, _ in ADDRESS_FIELDS}


@dataclass(frozen=True, slots=True)
class AddressInput:
    key: str
    label: str
    value: str
    required: bool
    longest: int
    autofill: str
    invalid: bool


@dataclass(frozen=True, slots=True)
class ShipForm:
    """The shipping part of a held page: the address fields (none when the provider's page
    asks), the countries the drop ships to, their rates, and the total to pay."""

    inputs: list[AddressInput]
    choices: dict[str, str]
    options: Markup  # the <option>s of the choices, the selected country marked
    country: str  # the selected one; "" until chosen
    rate_list: list[tuple[str, str]]  # (where, what it costs): the rates without script
    table: str  # JSON, code (or "*", or "" when none is chosen) → [shipping, total]
    shipping: str  # for the selected country
    total: str
    error: str | None = None
    country_invalid: bool = False


def shipping_rates(ctx: WebContext, view: DropView, method: str) -> ShippingRates:
    """What shipping costs for this drop, within the countries this shop delivers to (and,
    paying by card, those Stripe can collect an address in)."""
    allowed = allowed_countries(ctx.settings.payments.ship_to_countries)
    excluded = UNSHIPPABLE if method == "stripe" else frozenset()
    return ShippingRates(view.currency, view.drop.shipping, allowed, excluded)


def money_text(money: Money) -> str:
    """Money as the reader writes it; a zero rate reads "Free"."""
    return "Free" if money.amount_minor == 0 else format_money(money, READER_LOCALE.get())


def reader_country(choices: dict[str, str]) -> str:
    """The country of the reader's language tag (``en-US`` → US) when the drop ships there."""
    tag = (READER_LOCALE.get() or "").replace("_", "-").split("-")
    region = tag[-1].upper() if len(tag) > 1 else ""
    return region if region in choices else ""


@dataclass(frozen=True, slots=True)
class PricedRates:
    """What a ship form shows whoever the buyer is: the countries, their rates and totals
    for one amount of items, in one reader's locale. Built once per (rates, amount,
    locale), since a hold page in a surge would otherwise format ~250 countries each."""

    choices: dict[str, str]
    options: Markup  # every choice as an <option>, none selected
    rate_list: list[tuple[str, str]]
    table: dict[str, list[str]]
    table_json: str


PRICED_CACHE_SIZE = 256
_priced: dict[tuple[object, ...], PricedRates] = {}


def priced_rates(rates: ShippingRates, items: Money) -> PricedRates:
    locale = READER_LOCALE.get()
    table_rates = None if rates.rates is None else tuple(sorted(rates.rates.items()))
    key = (rates.currency, table_rates, rates.allowed, rates.excluded, items, locale)
    priced = _priced.get(key)
    if priced is None:
        if len(_priced) >= PRICED_CACHE_SIZE:
            _priced.pop(next(iter(_priced)))  # the oldest first
        priced = _priced[key] = _price(rates, items)
    return priced


def _price(rates: ShippingRates, items: Money) -> PricedRates:
    choices = rates.choices()
    table: dict[str, list[str]] = {"": ["choose a country", f"{money_text(items)} + shipping"]}
    rate_list: list[tuple[str, str]] = []
    named = [c for c in (rates.rates or {}) if c != ANYWHERE and c in choices]
    for code in sorted(named, key=lambda c: choices[c]):
        rate = rates.quote(code)
        table[code] = [money_text(rate), money_text(items + rate)]
        rate_list.append((choices[code], money_text(rate)))
    rest = [c for c in choices if c not in table]
    if rest:
        rate = rates.quote(rest[0])  # every other allowed country pays the same ("*")
        table[ANYWHERE] = [money_text(rate), money_text(items + rate)]
        where = "Everywhere we ship" if not rate_list else "Everywhere else we ship"
        rate_list.append((where, money_text(rate)))
    options = Markup("").join(
        Markup('<option value="{}">{}</option>\n').format(code, name)
        for code, name in choices.items()
    )
    return PricedRates(
        choices=choices,
        options=options,
        rate_list=rate_list,
        table=table,
        table_json=json.dumps(table, separators=(",", ":"), ensure_ascii=False),
    )


def ship_form(
    rates: ShippingRates,
    items: Money,
    *,
    full: bool,
    values: dict[str, str],
    error: InvalidInput | None = None,
) -> ShipForm:
    """The form for a ship hold, filled with ``values`` (entered, or the buyer's last
    address), and ``error`` (a refused address) next to it."""
    priced = priced_rates(rates, items)
    choices = priced.choices
    country = values.get("country", "").strip().upper()
    if country not in choices:
        only = next(iter(choices)) if len(choices) == 1 else ""
        country = reader_country(choices) or only
    bad = FIELD_OF_LABEL.get(error.field) if error is not None else None
    inputs = [
        AddressInput(key, label, values.get(key, ""), required, longest, AUTOFILL[key], key == bad)
        for key, label, longest, required in ADDRESS_FIELDS
        if full and key != "country"
    ]
    options = priced.options
    if country:  # a country code is two capitals: nothing in it needs escaping
        chosen = f'<option value="{country}">'
        # str's replace: Markup's would escape the replacement.
        selected = str(options).replace(chosen, f'<option value="{country}" selected>', 1)
        options = Markup(selected)
    table = priced.table
    shipping, total = table.get(country) or table[ANYWHERE if country else ""]
    return ShipForm(
        inputs=inputs,
        choices=choices,
        options=options,
        country=country,
        rate_list=priced.rate_list,
        table=priced.table_json,
        shipping=shipping,
        total=total,
        error=str(error) if error is not None else None,
        country_invalid=bad == "country",
    )


def destination(
    form: MultiDictProxy[Any], rates: ShippingRates, method: str
) -> tuple[Address | None, Money, str]:
    """(address, shipping, country) from a submitted form, or InvalidInput naming the
    field. When the provider's page takes the address, only the country comes from ours."""
    if method in ADDRESS_ON_PROVIDER_PAGE:
        country = country_code(form.get("country"))
        return None, rates.quote(country), country
    address = parse_address(form, rates)
    return address, rates.quote(address.country), address.country


def typed(form: MultiDictProxy[Any]) -> dict[str, str]:
    """The address fields as submitted, to show them again (bounded: it is echoed back)."""
    return {key: str(form.get(key, ""))[:200] for key, *_ in ADDRESS_FIELDS}


async def ordered_item(ctx: WebContext, view: DropView, order: Order) -> str:
    """What an order is for: its hold's product, or the drop (a bundle)."""
    sku = await ctx.commerce.orders.ordered_sku(order)
    product = view.products.get(sku) if sku is not None else None
    return view.drop.title if product is None else product.title


# -- one-click checkout -----------------------------------------------------------------


async def claim_page(request: web.Request) -> web.Response:
    """GET /c/{token}: verify, claim at once (idempotent per link), show what happened."""
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    link = ctx.signer.verify(token)
    if is_link_preview(request):
        view = await ctx.catalog.get(link.drop_id)
        return preview(ctx, view, f"{ctx.base_url}/c/{token}")
    pool = optional_pool(request.query.get("pool"))
    # Its place in line is now, as it came in: nothing awaited before the claim (the
    # catalogue, the customer) may let a later visit go first.
    with ctx.commerce.claims.arrival() as arrival:
        view = await ctx.catalog.get(link.drop_id)
        visit = await ctx.visit(request, link, arrival)
        return await claim_at_visit(ctx, token, link, view, pool, visit)


async def claim_at_visit(
    ctx: WebContext, token: str, link: ClaimLink, view: DropView, pool: str | None, visit: Visit
) -> web.Response:
    """The claim of an opened link, or the pool question a collab drop asks first."""
    if pool is None and view.drop.format is DropFormat.COLLAB:
        # A holder (from chat, or another link) sees that hold; the pool question is only
        # for someone who holds nothing, so answering it can never make a second hold.
        holding = await ctx.commerce.claims.holding(link.drop_id, visit.customer_id)
        if holding is not None:
            visit.arrival.leave()  # no claim: hold no one up
            await visit.opened
            result = ClaimResult(ClaimOutcome.ALREADY_HELD, hold=holding)
            return await claim_outcome(ctx, token, link, view, result)
        live = await ctx.states.get(link.drop_id)
        choices = [p for p in live.pools if live.available_units(pool=p) > 0]
        if len(choices) > 1:
            visit.arrival.leave()
            await visit.opened
            return page(
                ctx,
                "checkout.html",
                kind="chooser",
                token=token,
                drop_title=view.drop.title,
                choices=[
                    {"pool": p, "label": pool_label(p), "available": live.available_units(pool=p)}
                    for p in choices
                ],
            )
        pool = choices[0] if choices else None
    source = "web" if link.tag == "web" else "link"
    result = await ctx.claim(visit, pool, source)
    return await claim_outcome(ctx, token, link, view, result)


def preview(ctx: WebContext, view: DropView, url: str) -> web.Response:
    """Open Graph card for chat unfurlers: no claim, nothing written."""
    first = next(iter(view.products.values()), None)
    return page(
        ctx,
        "preview.html",
        title=view.drop.title,
        description=f"Your personal checkout link for {view.drop.title}. "
        "Open it to hold one for you.",
        url=url,
        image=first.image_url if first else None,
    )


async def claim_outcome(
    ctx: WebContext, token: str, link: ClaimLink, view: DropView, result: ClaimResult
) -> web.Response:
    """The page for a claim result: held, already bought, sold out, not open, closed…"""
    now = ctx.commerce.clock.now()
    base: dict[str, Any] = {"token": token, "drop_title": view.drop.title, "now": now}
    hold = result.hold
    if result.ok and hold is not None:
        if hold.is_active(now):
            return await held_page(ctx, token, link, view, hold)
        if hold.status is HoldStatus.CONVERTED:
            order = await ctx.commerce.orders.for_hold(hold.id)
            if order is not None:
                return await order_page(ctx, token, view, order)
        return page(
            ctx,
            "checkout.html",
            status=410,
            kind="ended",
            heading="Your hold has ended",
            message="The time to pay ran out and the unit went back on sale.",
            waitlist=True,
            position=None,
            csrf_wait=wait_key(ctx, link),
            **base,
        )
    match result.outcome:
        case ClaimOutcome.SOLD_OUT:
            position = result.waitlist_position
            return skeleton_page(
                ctx,
                view,
                "sold_out" if position is None else None,
                "checkout.html",
                status=409 if position is None else 200,
                slots={"token": token, "csrf_wait": wait_key(ctx, link)},
                context=lambda: {
                    "kind": "sold_out",
                    "drop_title": view.drop.title,
                    "heading": "Sold out",
                    "message": "Every unit is taken right now. If a hold lapses or the "
                    "creator restocks, the waitlist gets it first, in order.",
                    "waitlist": True,
                    "position": position,
                },
            )
        case ClaimOutcome.LIMIT_REACHED:
            return page(
                ctx,
                "checkout.html",
                status=409,
                kind="limit",
                heading="You already have yours",
                message=f"This drop allows {view.drop.per_customer_limit} per person.",
                waitlist=False,
                **base,
            )
        case ClaimOutcome.NOT_OPEN if result.opens_at is not None:
            return page(
                ctx, "checkout.html", status=425, kind="not_open", opens_at=result.opens_at, **base
            )
        case ClaimOutcome.NOT_OPEN:
            return page(
                ctx,
                "checkout.html",
                status=425,
                kind="closed",
                heading="Not open yet",
                message="The creator has not started this drop yet. Watch the stream or chat.",
                waitlist=False,
                **base,
            )
        case _:
            status = drop_status(await ctx.states.get(view.drop.id))
            message = f"{status.detail} Follow the creator for the next one."
            return skeleton_page(
                ctx,
                view,
                f"closed|{status.headline}|{message}",
                "checkout.html",
                status=410,
                slots={"token": token},
                context=lambda: {
                    "kind": "closed",
                    "drop_title": view.drop.title,
                    "heading": status.headline,
                    "message": message,
                    "waitlist": False,
                },
            )


async def held_page(
    ctx: WebContext,
    token: str,
    link: ClaimLink,
    view: DropView,
    hold: Hold,
    *,
    status: int = 200,
    entered: dict[str, str] | None = None,
    error: InvalidInput | None = None,
) -> web.Response:
    """The hold with its countdown and the Pay button; a ship hold asks where it goes first
    (``entered``: what the buyer typed, shown again with ``error``)."""
    values = entered
    if values is None and hold.pool == SHIP_POOL:
        last = await ctx.commerce.orders.last_address(hold.customer_id)
        values = last.as_dict() if last is not None else {}

    def context() -> dict[str, Any]:
        title, unit = item_of(view, hold)
        items = unit * hold.qty
        methods = payment_methods(ctx, hold.pool)
        ship = None
        if hold.pool == SHIP_POOL:
            full = methods[0].name not in ADDRESS_ON_PROVIDER_PAGE
            rates = shipping_rates(ctx, view, methods[0].name)
            ship = ship_form(rates, items, full=full, values=values or {}, error=error)
        return {
            "kind": "held",
            "drop_title": view.drop.title,
            "item_title": title,
            "unit_price": unit,
            "amount": items,
            "qty": hold.qty,
            "pool": hold.pool,
            "pool_label": pool_label(hold.pool) if len(view.pools) > 1 else "",
            "methods": methods,
            "ship": ship,
        }

    # Shared by every hold of this item, price, quantity and pool read in this locale,
    # unless the form shows an address (the buyer's last, or what they typed) or an error.
    variant = None
    if not values and error is None:
        variant = f"held|{READER_LOCALE.get()}|{hold.sku}|{hold.price_minor}|{hold.qty}|{hold.pool}"
    return skeleton_page(
        ctx,
        view,
        variant,
        "checkout.html",
        status=status,
        slots={
            "token": token,
            "now": ctx.commerce.clock.now(),
            "expires_at": hold.expires_at,
            "hold_id": hold.id,
            # The pool is bound to the form (it decides the methods and the address asked);
            # the hold's expiry is not in it: checkout reads that from the hold.
            "csrf": ctx.require_csrf().token("pay", link.nonce, hold.id, hold.pool),
        },
        context=context,
    )


def wait_key(ctx: WebContext, link: ClaimLink) -> str:
    """The waitlist form's key, bound to the link."""
    return ctx.require_csrf().token("wait", link.nonce)


ORDER_PAGES: dict[OrderStatus, tuple[int, str, str]] = {
    OrderStatus.PAID: (200, "It's yours!", "Payment confirmed. Thank you for buying."),
    OrderStatus.RESERVED: (
        200,
        "Reserved: pay at pickup",
        "Your unit is set aside. Pay when you pick it up; the shop has your name on its list.",
    ),
    OrderStatus.PENDING: (
        202,
        "Waiting for the payment",
        "We have not heard from the card processor yet. Reload in a few seconds.",
    ),
    OrderStatus.REFUNDED: (
        409,
        "Refunded",
        "Your hold ended before the payment arrived, so it was refused and refunded. "
        "Nothing was sold to you and nothing is owed.",
    ),
    OrderStatus.CANCELLED: (409, "Cancelled", "This order was cancelled; nothing was charged."),
}
# A refund the shop gave (not the automatic one of a payment that came too late).
SHOP_REFUND = (
    200,
    "Refunded",
    "The shop refunded this order. The money goes back the way you paid; your bank may "
    "take a few days to show it.",
)


TOTAL_LABELS = {
    OrderStatus.PAID: "Total paid",
    OrderStatus.RESERVED: "To pay at pickup",
    OrderStatus.PENDING: "Total",
    OrderStatus.REFUNDED: "Total (refunded)",
    OrderStatus.CANCELLED: "Total (not charged)",
}


def address_lines(address: Address) -> list[str]:
    """The address as a label prints it, the country by its name."""
    lines = address.lines()
    if lines and lines[-1] == address.country:
        lines[-1] = countries().get(address.country, address.country)
    return lines


async def order_page(ctx: WebContext, token: str, view: DropView, order: Order) -> web.Response:
    """The receipt: what was bought, what it cost, and where it goes or where to collect it
    (with the code the shop checks). Only ever on the buyer's own link."""
    status, title, message = ORDER_PAGES[order.status]
    if order.status is OrderStatus.REFUNDED and order.refund_reason != "hold_expired":
        status, title, message = SHOP_REFUND
    settled = order.status in (OrderStatus.PAID, OrderStatus.RESERVED)
    pickup = order.pool.startswith(PICKUP_PREFIX)
    reserved_to_ship = order.status is OrderStatus.RESERVED and not pickup  # by invoice
    return page(
        ctx,
        "checkout.html",
        status=status,
        kind="order",
        token=token,
        drop_title=view.drop.title,
        order=order,
        order_title=title,
        order_message=message,
        total_label="To pay" if reserved_to_ship else TOTAL_LABELS[order.status],
        item_title=await ordered_item(ctx, view, order),
        shipping=money_text(order.shipping) if order.shipping is not None else None,
        ship_to=address_lines(order.ship_to) if order.ship_to else [],
        pickup=pool_label(order.pool) if pickup else "",
        pickup_code=order.pickup_code if settled else None,
        now=ctx.commerce.clock.now(),
    )


async def pay(request: web.Request) -> web.Response:
    """POST /c/{token}/pay: the CSRF-checked form becomes a checkout; its answer becomes the
    gateway's page (a redirect) or the order's."""
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    link = ctx.signer.verify(token)
    form = await request.post()
    hold_id = form_int(form, "hold_id")
    pool = str(form.get("pool", ""))
    if not ctx.require_csrf().check(form.get("csrf"), "pay", link.nonce, hold_id, pool):
        raise CsrfFailed("this payment form is stale or was not made by us; reload the link")
    methods = {m.name for m in payment_methods(ctx, pool)}
    method = str(form.get("provider") or ctx.payments.default)
    if method not in methods:
        raise InvalidInput("provider", f"{method!r} is not offered for this order")
    customer_id = await ctx.commerce.customers.find(link.identity)
    if customer_id is None:
        raise HoldNotFound(f"hold {hold_id} does not exist", hold_id=hold_id)
    view = await ctx.catalog.get(link.drop_id)
    ship_to, shipping, country = None, None, None
    if pool == SHIP_POOL:
        try:
            ship_to, shipping, country = destination(
                form, shipping_rates(ctx, view, method), method
            )
        except InvalidInput as error:
            return await address_refused(
                ctx, token, link, view, customer_id, hold_id, typed(form), error
            )
    identity = link.identity
    try:
        paid = await ctx.checkout.pay(
            hold_id,
            customer_id,
            method,
            title=line_title(view),
            return_url=f"{ctx.base_url}/c/{token}",
            email=identity.removeprefix("web:") if identity.startswith("web:") else None,
            ship_to=ship_to,
            shipping=shipping,
            ship_country=country,
        )
    except InvalidInput as error:
        if country is None or error.field != "country":
            raise
        # The gateway cannot take this destination (Stripe collects no address in a few
        # countries): ask again; the order stays pending and is re-priced on the next try.
        return await address_refused(
            ctx, token, link, view, customer_id, hold_id, typed(form), error
        )
    if isinstance(paid, Redirect):
        return see_other(paid.url)
    return await order_page(ctx, token, view, paid.order)


async def address_refused(
    ctx: WebContext,
    token: str,
    link: ClaimLink,
    view: DropView,
    customer_id: int,
    hold_id: int,
    entered: dict[str, str],
    error: InvalidInput,
) -> web.Response:
    """A ship form that did not pass: the held page again (400) with the error by the form
    and what was typed (no order made; one the provider refused stays pending). A hold
    already paid shows its order; one that ran out says so, as paying it would."""
    order = await ctx.commerce.orders.for_hold(hold_id)
    mine = order is not None and order.customer_id == customer_id
    if order is not None and mine and order.status is not OrderStatus.PENDING:
        return await order_page(ctx, token, view, order)
    hold = await ctx.commerce.claims.holding(link.drop_id, customer_id)
    if hold is None or hold.id != hold_id:
        raise HoldNotActive(f"hold {hold_id} has expired", hold_id=hold_id)
    return await held_page(ctx, token, link, view, hold, status=400, entered=entered, error=error)


def line_title(view: DropView) -> str:
    """What the card statement line says: the drop, and the product when there is one."""
    if view.drop.format is DropFormat.BUNDLE or len(view.products) != 1:
        return view.drop.title
    return f"{view.drop.title}: {next(iter(view.products.values())).title}"


async def join_waitlist(request: web.Request) -> web.Response:
    """POST /c/{token}/waitlist: queue for freed units (or get one at once if free)."""
    ctx = request.app[CONTEXT]
    token = request.match_info["token"]
    link = ctx.signer.verify(token)
    form = await request.post()
    if not ctx.require_csrf().check(form.get("csrf"), "wait", link.nonce):
        raise CsrfFailed("this form is stale; reload the link")
    ctx.rate_limit(request, link.identity)
    pool = optional_pool(form.get("pool"))
    with ctx.commerce.claims.arrival() as arrival:  # its place in line: see claim_page
        view = await ctx.catalog.get(link.drop_id)
        customer_id = await ctx.commerce.customers.resolve(link.identity)
        result = await ctx.commerce.claims.join_waitlist(
            link.drop_id, customer_id, pool=pool, arrival=arrival
        )
    return await claim_outcome(ctx, token, link, view, result)


# -- the public drop page ----------------------------------------------------------------


def countdown_of(view: DropView) -> tuple[datetime | None, str, str]:
    """(deadline, what it counts down to, text when it passes) for the drop page."""
    drop, status = view.drop, drop_status(view)
    if status.phase is Phase.SCHEDULED and drop.opens_at:
        return drop.opens_at, "until it opens", "Opening…"
    if status.phase in (Phase.LIVE, Phase.SOLD_OUT) and drop.closes_at:
        return drop.closes_at, "left to claim", "Closed"
    return None, "", ""


CLAIM_LABELS = {
    Action.CLAIM: "Claim one",
    Action.WAITLIST: "Join the waitlist",
    Action.REMIND: "Opens soon",
    Action.NONE: "Closed",
}


def per_person(limit: int, unit: str) -> str:
    return f"One {unit} per person." if limit == 1 else f"Up to {limit} {unit}s per person."


async def drop_page(request: web.Request) -> web.Response:
    """GET /d/{id}: shareable and cacheable (a weak ETag, 304, a short public TTL); stock
    then updates live over the stream. The bytes are rendered once per view of the drop
    (``ctx.states`` makes a new one after each of its events and at its TTL) and per locale
    the prices are written in, then served from memory (``ctx.rendered_pages``)."""
    ctx = request.app[CONTEXT]
    drop_id = drop_id_of(request)
    view = ctx.states.peek(drop_id) or await ctx.states.get(drop_id)
    locale = locale_key(READER_LOCALE.get())
    rendered = ctx.rendered_pages.get(view, locale)
    if rendered is None:
        rendered = ctx.rendered_pages.put(view, render_drop_page(ctx, view), locale)
    return rendered.response(request)


def render_drop_page(ctx: WebContext, view: DropView) -> Rendered:
    """The drop page of ``view``, in the reader's locale (the only thing of the request it
    reads: a shared cache keys on the language too, hence ``Vary``)."""
    status = drop_status(view)
    deadline, deadline_label, deadline_done = countdown_of(view)
    bundle = view.drop.format is DropFormat.BUNDLE
    body = ctx.templates.render(
        "drop.html",
        drop=view.drop,
        products=list(view.products.values()),
        bundle_price=view.unit_price if bundle else None,
        drop_status=status,
        claim_label=CLAIM_LABELS[status.action],
        claim_labels={a.value: label for a, label in CLAIM_LABELS.items()},
        per_person=per_person(view.drop.per_customer_limit, status.unit),
        deadline=deadline,
        deadline_label=deadline_label,
        deadline_done=deadline_done,
        pools=[{"pool": p, "label": pool_label(p)} for p in view.pools],
        signin=ctx.signin_platforms,
        email_claims=ctx.mailer is not None,
    ).encode()
    return Rendered.of(body, HTML, DROP_PAGE_CACHE, vary="Accept-Language")


def csrf_cookie(request: web.Request) -> tuple[str, bool]:
    """The visitor's double-submit cookie value, and whether it must be (re)set."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) == 22 and value.replace("-", "").replace("_", "").isalnum():
        return value, False
    return secrets.token_urlsafe(16), True


def with_csrf_cookie(ctx: WebContext, response: web.StreamResponse, value: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        value,
        httponly=True,
        samesite="Strict",
        path="/",
        secure=ctx.base_url.startswith("https://"),
    )


@operation("A CSRF token for the drop page's claim form", tag="viewers", reply=CsrfToken)
async def csrf_token(request: web.Request) -> web.Response:
    """GET /api/csrf: the token the cached drop page's form needs (double-submit cookie)."""
    ctx = request.app[CONTEXT]
    value, fresh = csrf_cookie(request)
    response = web.json_response(
        {"token": ctx.require_csrf().token("d", value)}, headers={"Cache-Control": NO_STORE}
    )
    if fresh:
        with_csrf_cookie(ctx, response, value)
    return response


async def drop_claim(request: web.Request) -> web.Response:
    """POST /d/{id}/claim: a signed-in viewer's platform identity (or, where email claims are
    on, an address proven by a one-time link) becomes a personal link, then the same
    one-click flow (and the same per-customer limit) as links handed out in chat."""
    ctx = request.app[CONTEXT]
    drop_id = drop_id_of(request)
    view = await ctx.catalog.get(drop_id)
    form = await request.post()
    pool = optional_pool(form.get("pool"))
    session = ctx.require_sessions().peek(request)
    signed_in = session.identity if session is not None else None
    email = str(form.get("email", "")).strip()
    if signed_in is None:
        if ctx.mailer is None:
            return sign_in_page(ctx, drop_id, status=401)
        try:
            email = normalize_identity(f"web:{email}").partition(":")[2]
        except InvalidInput:
            raise InvalidInput("email", "enter an email address like you@example.com") from None
    value, fresh = csrf_cookie(request)
    csrf = ctx.require_csrf()
    if fresh or not csrf.check(form.get("csrf"), "d", value):
        # No script ran (or a stale form): ask once more with a fresh token, nothing claimed.
        who = f" for {email}" if signed_in is None else ""
        response = page(
            ctx,
            "checkout.html",
            status=403,
            kind="confirm",
            heading="Confirm your claim",
            message=f"Claim one of {view.drop.title}{who}?",
            waitlist=False,
            token="",
            drop_title=view.drop.title,
            now=ctx.commerce.clock.now(),
            confirm={
                "drop_id": drop_id,
                "email": email if signed_in is None else "",
                "pool": pool or "",
                "csrf": csrf.token("d", value),
            },
        )
        with_csrf_cookie(ctx, response, value)
        return response
    query = f"?pool={pool}" if pool else ""
    if signed_in is not None:
        issued = await ctx.links.issue(drop_id, signed_in, tag="web")
        return see_other(f"/c/{issued.token}{query}")
    return await send_proof(request, ctx, view, email, pool)


def sign_in_page(ctx: WebContext, drop_id: int, *, status: int = 200) -> web.Response:
    """Claims need a proven identity: the sign-in buttons (nothing is held)."""
    choices = ctx.signin_platforms
    message = (
        "Sign in with " + " or ".join(p["label"] for p in choices) + " to claim: one person, "
        "one limit, and your pay link reaches you privately."
        if choices
        else "Claims on this page are not open here: claim from the stream's chat."
    )
    return page(
        ctx,
        "notice.html",
        status=status,
        heading="Sign in to claim",
        message=message,
        signin=choices,
        next=f"/d/{drop_id}",
    )


async def send_proof(
    request: web.Request, ctx: WebContext, view: DropView, email: str, pool: str | None
) -> web.Response:
    """Email claims: nothing is held until the address is proven by the link we mail."""
    assert ctx.mailer is not None
    ctx.rate_limit_mail(request, f"web:{email}")
    drop_id = view.drop.id
    token = ctx.require_proofs().token(drop_id, email, pool)
    url = f"{drop_page_url(ctx.base_url, drop_id)}/verify?t={token}"
    minutes = ctx.settings.email.verify_ttl_seconds // 60
    body = (
        f"Someone (we hope you) asked to claim {view.drop.title} with this address.\n"
        f"Open this link within {minutes} minutes to confirm; your claim is placed then:\n"
        f"{url}\n"
    )
    try:
        await ctx.mailer.send(email, f"Confirm your claim: {view.drop.title}", body)
    except Exception:
        log.exception("email claim: the proof mail to a viewer could not be sent")
        raise MailNotSent("we could not send the email just now; try again") from None
    return page(
        ctx,
        "notice.html",
        heading="Check your inbox",
        message=(
            f"We sent a link to {email}. Open it within {minutes} minutes to place your "
            "claim; nothing is held until then."
        ),
        signin=[],
        next=f"/d/{drop_id}",
    )


async def verify_email(request: web.Request) -> web.Response:
    """GET /d/{id}/verify?t=…: the address is proven; the browser signs in with it and the
    claim goes ahead as a personal link."""
    ctx = request.app[CONTEXT]
    drop_id = drop_id_of(request)
    proof = ctx.require_proofs().check(request.query.get("t", ""))
    if proof is None or proof[0] != drop_id:
        raise LinkExpired("this confirmation link is not valid or has expired; claim again")
    _, email, pool = proof
    if is_link_preview(request):  # a mail scanner's look must not claim
        return sign_in_page(ctx, drop_id)
    sessions = ctx.require_sessions()
    session = sessions.get(request)
    signed = Signed(f"web:{email}", email)
    await remember(ctx, signed, session.identities)
    issued = await ctx.links.issue(drop_id, signed.identity, tag="web")
    response = see_other(f"/c/{issued.token}" + (f"?pool={pool}" if pool else ""))
    sessions.save(response, session.with_signed(signed))
    return response


# -- overlay and PWA ------------------------------------------------------------------------

OVERLAY_PARTS = ("title", "countdown", "stock", "qr")
OVERLAY_THEMES = ("dark", "light", "clear")


@lru_cache(maxsize=256)
def qr_svg(url: str) -> str:
    return str(segno.make(url, error="m").svg_inline(scale=4, dark="#000", light="#fff"))


async def overlay(request: web.Request) -> web.Response:
    """GET /overlay/{id}?theme=dark|light|clear&parts=title,countdown,stock,qr (OBS source)."""
    ctx = request.app[CONTEXT]
    drop_id = drop_id_of(request)
    view = await ctx.states.get(drop_id)
    theme = request.query.get("theme", "dark")
    if theme not in OVERLAY_THEMES:
        raise InvalidInput("theme", f"use one of {', '.join(OVERLAY_THEMES)}")
    parts = [p for p in request.query.get("parts", ",".join(OVERLAY_PARTS)).split(",") if p]
    unknown = sorted(set(parts) - set(OVERLAY_PARTS))
    if unknown:
        raise InvalidInput("parts", f"unknown part {unknown[0]!r}; use {', '.join(OVERLAY_PARTS)}")
    drop_url = drop_page_url(ctx.base_url, drop_id)
    return page(
        ctx,
        "overlay.html",
        cache="no-cache",
        drop=view.drop,
        drop_status=drop_status(view),
        theme=theme,
        parts=parts,
        qr=qr_svg(drop_url) if "qr" in parts else "",
        drop_url=drop_url,
        now=ctx.commerce.clock.now(),
    )


async def manifest(request: web.Request) -> web.Response:
    """GET /d/{id}/manifest.webmanifest: makes the drop page installable."""
    ctx = request.app[CONTEXT]
    view = await ctx.catalog.get(drop_id_of(request))
    data = {
        "name": view.drop.title,
        "short_name": view.drop.title[:12],
        "start_url": f"/d/{view.drop.id}",
        "scope": "/",
        "display": "standalone",
        "background_color": "#fafafa",
        "theme_color": "#111111",
        "icons": [
            {"src": ctx.assets.url("icon.svg"), "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    return web.json_response(
        data,
        content_type="application/manifest+json",
        headers={"Cache-Control": "public, max-age=300"},
    )


async def service_worker(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    urls = ctx.assets.urls()
    version = hashlib.blake2b("|".join(urls).encode(), digest_size=6).hexdigest()
    return web.Response(
        text=ctx.templates.render("sw.js", version=version, assets=urls),
        content_type="application/javascript",
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"},
    )


# The widget's stable address, pasted into other websites: revalidated every few minutes
# (its ETag is the hash of its bytes, so an unchanged script costs a 304), kept a day while
# revalidating; the same bytes are also at their hashed /static/ name, cached for good.
EMBED_CACHE = "public, max-age=300, stale-while-revalidate=86400"


async def embed_script(request: web.Request) -> web.Response:
    """GET /embed.js: the <dropcast-drop> element, a module other websites load (CORS per
    ``web.embed_origins``)."""
    ctx = request.app[CONTEXT]
    asset = ctx.assets.named("embed.js")
    headers = {"Cache-Control": EMBED_CACHE, "ETag": asset.etag, **ctx.embed.headers(request)}
    if none_match(request.headers.getall(hdrs.IF_NONE_MATCH, []), asset.etag.strip('"')):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def static(request: web.Request) -> web.Response:
    """GET /static/{name}: hashed names, so they can be cached forever."""
    ctx = request.app[CONTEXT]
    asset = ctx.assets.by_name.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": asset.etag,
        **ctx.embed.headers(request),  # the widget's script and its hashed copy
    }
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})
