"""The JSON API's bodies as pydantic models: what the admin handlers validate requests with
and what the JSON routes answer. ``commerce/web/openapi.py`` builds ``/api/openapi.json``
from these same classes, so the description cannot drift from the checks.

Request models are strict (a string is not a number, ``true`` is not ``1``) and refuse
unknown fields: a typo in a field name is an error, not an ignored key. Response models
refuse extra fields in the description (``additionalProperties: false``), so a field a
handler adds without documenting it fails the fuzz test's response-schema check.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from commerce.domain.model import (
    CloseReason,
    DeskStatus,
    DropFormat,
    DropState,
    Fulfilment,
    OrderStatus,
)
from commerce.dropfile import input_error, reject_unstorable_text
from commerce.views import Action, Phase

M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: dict[str, Any], whole: str = "body") -> M:
    """``data`` checked by ``model``, or InvalidInput (422) naming the first field at fault
    (``whole`` when the fault is the whole document)."""
    reject_unstorable_text(data, "")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise input_error(exc, data, whole) from None


# -- requests ---------------------------------------------------------------------------------


class Body(BaseModel):
    """A request body: strict types, no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


def example(*bodies: dict[str, Any]) -> ConfigDict:
    """A body model's config with ``examples`` for the description (and the fuzz test)."""
    return ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": list(bodies)})


class RestockBody(Body):
    """POST /api/drops/{drop_id}/restock."""

    model_config = example({"sku": "CHIPS-SPICY", "units": 3})

    sku: str = Field(description="an SKU the drop sells (case does not matter)")
    units: int = Field(description="units to add, 1 to 1000000")
    pool: str | None = Field(
        default=None, description="'ship' (the default) or 'pickup:<location>'"
    )
    new_pool: bool | None = Field(
        default=None, description="true to open a pool the item does not have yet"
    )


class PriceBody(Body):
    """POST /api/drops/{drop_id}/price."""

    model_config = example({"price": "9.50"})

    price: str = Field(description="the new price as a decimal string, e.g. '12.00'")
    sku: str | None = Field(
        default=None, description="which item (needed when the drop sells several)"
    )


class LinkBody(Body):
    """POST /api/drops/{drop_id}/links."""

    model_config = example({"customer": "discord:42", "tag": "newsletter"})

    customer: str = Field(description="who the link is for: '<scheme>:<id>', e.g. 'discord:42'")
    tag: str | None = Field(default=None, description="where the link was handed out")


class RefundBody(Body):
    """POST /api/orders/{order_id}/refund."""

    model_config = example({"reason": "arrived damaged"})

    reason: str | None = Field(default=None, description="why (default 'requested')")


class ShipBody(Body):
    """POST /api/orders/{order_id}/ship."""

    model_config = example({"carrier": "DHL", "tracking": "JD014600003828"})

    carrier: str
    tracking: str


class PickedUpBody(Body):
    """POST /api/orders/{order_id}/picked-up."""

    code: str | None = Field(
        default=None, description="the pickup code the buyer shows (checked when given)"
    )


class NewWebhookBody(Body):
    """POST /api/webhooks."""

    model_config = example(
        {"url": "https://example.com/hooks/dropcast", "events": ["order.paid", "drop.sold_out"]}
    )

    url: str = Field(description="where to POST: an absolute http:// or https:// URL")
    events: list[str] = Field(
        description="drop.opened, stock.low, drop.sold_out, order.paid, drop.closed, recap.ready"
    )


class OrdersQuery(Body):
    """GET /api/orders: the query string (all optional; empty means not given)."""

    model_config = ConfigDict(extra="ignore", strict=False)  # a query has only strings

    drop: str | None = Field(
        default=None, pattern=r"^[0-9]{0,18}$", description="only this drop's orders"
    )
    status: DeskStatus | Literal[""] | None = Field(default=None, description="only these")
    format: Literal["json", "csv"] | None = Field(
        default=None, description="csv: the packing list as a download"
    )


class MeQuery(Body):
    """GET /api/me: the query string."""

    model_config = ConfigDict(extra="ignore", strict=False)  # a query has only strings

    drop: str | None = Field(
        default=None, description="a drop id: also list this browser's hold and orders there"
    )


# -- responses --------------------------------------------------------------------------------


class Reply(BaseModel):
    """A response body: every field documented, no other."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(Reply):
    """Every error of the API: a stable code, a sentence, and the field when one is at fault
    (``items[0].pools``, ``sku``, ``body`` for a body that is not a JSON object)."""

    error: str = Field(description="a stable code, e.g. INVALID_INPUT, DROP_NOT_FOUND")
    message: str
    field: str | None = Field(default=None, description="the field at fault, when one is")


class PoolStock(Reply):
    pool: str
    total: int
    available: int
    held: int
    sold: int


class ItemState(Reply):
    sku: str
    title: str
    price: str | None
    price_minor: int | None
    currency: str | None
    per_bundle: int
    pools: list[PoolStock]


class DropStatusReply(Reply):
    phase: Phase
    headline: str
    detail: str
    action: Action
    available: int
    total: int
    unit: str


class DropStateReply(Reply):
    """GET /api/drops/{drop_id}: state, times and stock per item and pool."""

    id: int
    title: str
    format: DropFormat
    state: DropState
    opens_at: str | None
    closes_at: str | None
    opened_at: str | None
    closed_at: str | None
    close_reason: CloseReason | None
    hold_seconds: int
    per_customer_limit: int
    demo_seconds: int | None
    price: str | None
    price_minor: int | None = Field(description="the price in minor units, for a reader's locale")
    currency: str | None
    available: int
    total: int
    held: int
    sold: int
    unit: str
    status: DropStatusReply
    waiting: int
    objective: dict[str, Any] | None
    replay_url: str | None
    items: list[ItemState]
    server_time: str | None = Field(description="when this state was read (ISO 8601, UTC)")


class Created(Reply):
    id: int
    url: str = Field(description="the public drop page")


class DropStateChanged(Reply):
    id: int
    state: DropState


class Restocked(Reply):
    id: int
    waitlist_offers: int
    available: int


class PriceSet(Reply):
    id: int
    price_minor: int
    currency: str


class IssuedLink(Reply):
    url: str = Field(description="the personal one-click link; hand it over privately")
    expires_at: str | None


class OrderItem(Reply):
    sku: str
    qty: int


class ShipTo(Reply):
    name: str
    line1: str
    line2: str
    postal_code: str
    city: str
    region: str
    country: str


class OrderReply(Reply):
    """One order on the creator's desk (it carries the address: admin only)."""

    id: int
    drop_id: int
    drop_title: str
    customer_id: int
    customer: str
    status: DeskStatus
    payment_status: OrderStatus
    provider: str
    provider_ref: str | None
    pool: str
    qty: int
    items: list[OrderItem]
    currency: str
    amount_minor: int
    items_minor: int
    shipping_minor: int | None
    amount: str
    ship_to: ShipTo | None
    pickup_code: str | None
    fulfilment: Fulfilment | None
    carrier: str | None
    tracking: str | None
    refund_reason: str | None
    created_at: str | None
    paid_at: str | None
    fulfilled_at: str | None
    ended_at: str | None


class OrderList(Reply):
    """The orders, oldest first (``format=csv``: the packing list)."""

    count: int
    orders: list[OrderReply]


class OrderChanged(Reply):
    order: OrderReply
    changed: bool = Field(description="false when the order already was in that state")


class RefusedRow(Reply):
    line: int
    order: int
    problem: str


class ShipReport(Reply):
    shipped: list[int]
    unchanged: list[int]
    refused: list[RefusedRow]


class Kpis(BaseModel):
    """Every KPI of one drop (the fields of the KPI report) and each registered metric with
    its format and text, plus what the dashboard shows beside them."""

    model_config = ConfigDict(extra="allow")

    drop: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    funnel: list[dict[str, Any]]
    as_of: str | None
    dashboard: dict[str, Any]


class SignedName(Reply):
    platform: str
    name: str


class HeldHere(Reply):
    hold_id: int
    drop_id: int
    expires_at: str
    link: str


class Receipt(Reply):
    order_id: int
    status: DeskStatus
    total: str
    pickup_code: str | None
    text: str


class Me(Reply):
    signed_in: bool
    names: list[SignedName]
    holds: list[HeldHere]
    orders: list[Receipt]
    signout_csrf: str | None = Field(default=None, description="only when signed in")


class CsrfToken(Reply):
    token: str


class WebhookReceived(Reply):
    received: bool
    outcome: str | None
    order: int | None = Field(default=None, description="the order it applied to, if any")


class Health(Reply):
    ok: bool
    database: Literal["ok", "unreachable"]


class Webhook(Reply):
    """A creator's webhook (never its secret, which is shown once, on creation)."""

    id: int
    url: str
    events: list[str]
    status: Literal["active", "disabled"]
    created_at: str | None
    consecutive_failures: int
    disabled_at: str | None
    disabled_reason: str | None = Field(description="why it was disabled, when it is")


class WebhookInfo(Webhook):
    deliveries: dict[str, int] = Field(description="its deliveries per status")


class NewWebhook(Webhook):
    secret: str = Field(description="the HMAC key of Dropcast-Signature: shown this once")


class WebhookList(Reply):
    webhooks: list[WebhookInfo]


class WebhookRemoved(Reply):
    id: int
    removed: bool


class WebhookTestQueued(Reply):
    delivery: int
    event_id: str
    status: str
    queued_at: str | None
