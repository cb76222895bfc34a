"""Stripe: a hosted Checkout Session per order, settled by a signed webhook.

Uses the official ``stripe`` package. The API base is a setting so tests run against a local
fake. Stripe requires a session to live at least 30 minutes, so a short hold cannot bound
the session; instead the checkout service refunds a payment that lands after the hold
lapsed, so nothing is ever oversold. This gateway only reports: a verified webhook becomes
``Confirmed`` with the order and hold ``begin`` wrote into the session's metadata.

A ship order lets Stripe collect the address, kept to the one country the buyer chose on
our page, with that country's rate as the only shipping option; the webhook reports the
collected address. Addresses are personal data: never logged here.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import stripe

from commerce.clock import Clock
from commerce.domain.errors import InvalidInput
from commerce.domain.model import Address, Money, Order
from commerce.domain.payments import (
    CheckoutRequest,
    Confirmed,
    Ignored,
    PaymentError,
    PaymentStep,
    Redirect,
    WebhookInvalid,
    WebhookNotice,
)
from commerce.shipping import countries

log = logging.getLogger(__name__)

# Stripe refuses expires_at less than 30 minutes ahead (docs: Checkout Session expires_at).
STRIPE_MIN_SESSION = timedelta(minutes=30, seconds=30)
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
# ISO 3166-1 countries Checkout cannot collect an address in (Stripe API reference, Checkout
# Session shipping_address_collection.allowed_countries: "Unsupported country codes"); the
# same set is what the stripe package's allowed_countries Literal leaves out of ISO 3166.
UNSHIPPABLE = frozenset(
    {"AS", "CX", "CC", "CU", "HM", "IR", "KP", "MH", "FM", "NF", "MP", "PW", "SY", "UM", "VI"}
)


def _row_id(value: object) -> int | None:
    """A row id as ``begin`` writes it into metadata (decimal digits, within BIGINT)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _charged(session: Mapping[str, Any]) -> Money | None:
    """What the session says it charged (checkout compares it with the order)."""
    total, currency = session.get("amount_total"), session.get("currency")
    if isinstance(total, int) and isinstance(currency, str):
        return Money(total, currency.upper())
    return None


def ships_to(country: str) -> bool:
    """Whether Stripe Checkout can collect an address in ``country`` (ISO 3166-1 alpha-2)."""
    return country not in UNSHIPPABLE


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def collected_address(session: Mapping[str, Any]) -> Address | None:
    """The address the buyer gave on Stripe's page: ``collected_information.shipping_details``
    since API version 2025-03-31.basil, top-level ``shipping_details`` before it."""
    info = session.get("collected_information")
    details = info.get("shipping_details") if isinstance(info, dict) else None
    if not isinstance(details, dict):
        details = session.get("shipping_details")
    if not isinstance(details, dict) or not isinstance(details.get("address"), dict):
        return None
    address = details["address"]
    return Address(
        name=_text(details.get("name")),
        line1=_text(address.get("line1")),
        line2=_text(address.get("line2")),
        city=_text(address.get("city")),
        postal_code=_text(address.get("postal_code")),
        region=_text(address.get("state")),
        country=_text(address.get("country")).upper(),
    )


def idempotency_key(order_id: int, params: Mapping[str, Any]) -> str:
    """One key per order *and* request: Stripe answers 400 idempotency_error when a key comes
    back with other parameters, and a pending order's request changes (the buyer chose
    another country, so another rate and amount; a later ``expires_at``). A retry of the same
    request still gets the same session."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return f"dropcast-order-{order_id}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def line_items(order: Order, title: str) -> list[dict[str, Any]]:
    """The goods without shipping (Stripe adds the shipping option to the total)."""
    items = order.items_amount
    qty, unit = order.qty, items.amount_minor // order.qty
    if unit * qty != items.amount_minor:  # never split a total Stripe would not sum back
        qty, unit, title = 1, items.amount_minor, f"{order.qty} × {title}"
    return [
        {
            "quantity": qty,
            "price_data": {
                "currency": items.currency.lower(),
                "unit_amount": unit,
                "product_data": {"name": title[:250]},
            },
        }
    ]


def shipping_params(order: Order, country: str) -> dict[str, Any]:
    """Address collection kept to ``country`` and its rate as the one shipping option. The
    rate is the order's own, so Stripe's amount_total is the order's amount."""
    code = country.upper()
    name = countries().get(code, code)
    if not ships_to(code):
        raise InvalidInput("country", f"card payment cannot ship to {name}; choose another")
    cost = order.shipping or Money(0, order.amount.currency)
    label = f"Shipping to {name}" if cost.amount_minor else f"Free shipping to {name}"
    return {
        "shipping_address_collection": {"allowed_countries": [code]},
        "shipping_options": [
            {
                "shipping_rate_data": {
                    "type": "fixed_amount",
                    "display_name": label[:100],
                    "fixed_amount": {
                        "amount": cost.amount_minor,
                        "currency": cost.currency.lower(),
                    },
                }
            }
        ],
    }


class StripeGateway:
    name = "stripe"

    def __init__(
        self,
        clock: Clock,
        *,
        api_key: str,
        webhook_secret: str | None,
        api_base: str,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self.clock = clock
        self._webhook_secret = webhook_secret
        self._http = http_client
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            http_client=http_client,
            max_network_retries=1,
        )

    def session_expiry(self, hold_expires_at: datetime) -> datetime:
        """The hold's expiry, pushed out to the minimum Stripe accepts."""
        return max(hold_expires_at, self.clock.now() + STRIPE_MIN_SESSION)

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        expires = self.session_expiry(request.hold_expires_at)
        meta = {"order_id": str(order.id), "hold_id": str(order.hold_id)}
        params: dict[str, Any] = {
            "mode": "payment",
            "client_reference_id": str(order.id),
            "success_url": request.success_url,
            "cancel_url": request.cancel_url,
            "expires_at": int(expires.timestamp()),
            "metadata": meta,
            "payment_intent_data": {"metadata": meta},
            "line_items": line_items(order, request.title),
        }
        if request.ship_country:
            params.update(shipping_params(order, request.ship_country))
        if request.email:
            params["customer_email"] = request.email
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key(order.id, params)},
            )
        except stripe.StripeError as exc:
            log.warning("stripe checkout for order %s failed: %s", order.id, type(exc).__name__)
            raise PaymentError("the card processor is not answering; please try again") from exc
        if not session.url:
            raise PaymentError("the card processor gave no checkout page")
        return Redirect(session.url)

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        if not self._webhook_secret:
            raise WebhookInvalid(
                "stripe webhooks are not configured (payments.stripe_webhook_secret)"
            )
        try:
            stripe.Webhook.construct_event(
                body, headers.get("Stripe-Signature"), self._webhook_secret
            )
            event = json.loads(body)
        except stripe.SignatureVerificationError:
            raise WebhookInvalid("the Stripe-Signature does not match this body") from None
        except (ValueError, RecursionError):
            raise WebhookInvalid("the body is not a Stripe event") from None
        data = event.get("data") if isinstance(event, dict) else None
        session = data.get("object") if isinstance(data, dict) else None
        if not isinstance(session, dict):
            raise WebhookInvalid("the event has no data.object")
        kind = event.get("type")
        if kind not in PAID_EVENTS:
            log.info("stripe event %s (%s) acknowledged: not one we act on", event.get("id"), kind)
            return Ignored()
        if session.get("payment_status") != "paid":
            return Ignored()  # e.g. completed but an async method is still pending
        provider_ref = session.get("payment_intent") or session.get("id")
        if not isinstance(provider_ref, str):
            raise WebhookInvalid("the session names no payment")
        # Every event of the account comes here (another shop, a test session): the ids
        # are reported as the metadata has them, and checkout decides if they are ours.
        meta = session.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return Confirmed(
            order_id=_row_id(meta.get("order_id")),
            hold_id=_row_id(meta.get("hold_id")),
            provider_ref=provider_ref,
            ship_to=collected_address(session),
            charged=_charged(session),
        )

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        # The key is the payment, so the parameters must be the same on every attempt (Stripe
        # refuses a key reused with others): the reason varies by caller (a late payment, a
        # replayed webhook, the creator's words) and is kept in our order, not sent.
        params: dict[str, Any] = {"metadata": {"order_id": str(order.id)}}
        if provider_ref.startswith("cs_"):
            raise PaymentError(f"order {order.id}: a session id cannot be refunded directly")
        params["payment_intent"] = provider_ref
        try:
            await self._client.v1.refunds.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"dropcast-refund-{provider_ref}"},
            )
        except stripe.StripeError as exc:
            # The webhook answers 5xx so Stripe retries; the refund key keeps it single.
            raise PaymentError(f"refund for order {order.id} failed; will retry") from exc

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close_async()  # type: ignore[no-untyped-call]
