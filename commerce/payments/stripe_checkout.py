"""Stripe: a hosted Checkout Session per order, settled by a signed webhook.

Uses the official ``stripe`` package. The API base is a setting so tests run against a local
fake. Stripe requires a session to live at least 30 minutes, so a short hold cannot bound
the session; instead a payment that lands after the hold lapsed comes back from
``confirm_payment`` as REFUND_DUE and is refunded here, so nothing is ever oversold.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import stripe

from commerce.clock import Clock
from commerce.domain.model import Order
from commerce.payments.base import (
    CheckoutRequest,
    PaymentError,
    PaymentStep,
    Redirect,
    WebhookInvalid,
    must_refund,
)
from commerce.services.orders import OrderService, PaymentResult

log = logging.getLogger(__name__)

# Stripe refuses expires_at less than 30 minutes ahead (docs: Checkout Session expires_at).
STRIPE_MIN_SESSION = timedelta(minutes=30, seconds=30)
PAID_EVENTS = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})


def _row_id(value: object) -> int | None:
    """A row id as ``begin`` writes it into metadata (decimal digits, within BIGINT)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        orders: OrderService,
        clock: Clock,
        *,
        api_key: str,
        webhook_secret: str | None,
        api_base: str,
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self.orders = orders
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
            "line_items": [
                {
                    "quantity": order.qty,
                    "price_data": {
                        "currency": order.amount.currency.lower(),
                        "unit_amount": order.amount.amount_minor // order.qty,
                        "product_data": {"name": request.title[:250]},
                    },
                }
            ],
        }
        if request.email:
            params["customer_email"] = request.email
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": f"dropcast-order-{order.id}"},
            )
        except stripe.StripeError as exc:
            log.warning("stripe checkout for order %s failed: %s", order.id, type(exc).__name__)
            raise PaymentError("the card processor is not answering; please try again") from exc
        if not session.url:
            raise PaymentError("the card processor gave no checkout page")
        return Redirect(session.url)

    async def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentResult | None:
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
            return None
        if session.get("payment_status") != "paid":
            return None  # e.g. completed but an async method is still pending
        order = await self._order_of(session)
        if order is None:
            # Every event of the account comes here (another shop, a test session): a
            # session we did not make is acknowledged and changes nothing.
            log.info("stripe session %s acknowledged: not ours", session.get("id"))
            return None
        provider_ref = session.get("payment_intent") or session.get("id")
        if not isinstance(provider_ref, str):
            raise WebhookInvalid("the session names no payment")
        result = await self.orders.confirm_payment(order.id, provider_ref)
        if must_refund(result):
            # Also on a replay: an earlier delivery may have failed to refund (same key).
            await self.refund(result.order, provider_ref, result.outcome.value)
        return result

    async def _order_of(self, session: dict[str, Any]) -> Order | None:
        """The order a session was made for by ``begin``: its metadata names the order and
        the hold, and both must match a Stripe order of ours."""
        meta = session.get("metadata")
        if not isinstance(meta, dict):
            return None
        order_id, hold_id = _row_id(meta.get("order_id")), _row_id(meta.get("hold_id"))
        if order_id is None or hold_id is None:
            return None
        order = await self.orders.for_hold(hold_id)
        if order is None or order.id != order_id or order.provider != self.name:
            return None
        return order

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        params: dict[str, Any] = {"metadata": {"order_id": str(order.id), "reason": reason}}
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
