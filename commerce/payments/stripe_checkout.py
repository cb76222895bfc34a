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
            event = stripe.Webhook.construct_event(
                body, headers.get("Stripe-Signature"), self._webhook_secret
            )
        except stripe.SignatureVerificationError:
            raise WebhookInvalid("the Stripe-Signature does not match this body") from None
        except ValueError:
            raise WebhookInvalid("the body is not a Stripe event") from None
        if event.type not in PAID_EVENTS:
            return None
        session = json.loads(body)["data"]["object"]
        if session.get("payment_status") != "paid":
            return None  # e.g. completed but an async method is still pending
        order_ref = (session.get("metadata") or {}).get("order_id") or session.get(
            "client_reference_id"
        )
        try:
            order_id = int(order_ref)
        except (TypeError, ValueError):
            raise WebhookInvalid("the session names no dropcast order") from None
        provider_ref = str(session.get("payment_intent") or session["id"])
        result = await self.orders.confirm_payment(order_id, provider_ref)
        if must_refund(result):
            # Also on a replay: an earlier delivery may have failed to refund (same key).
            await self.refund(result.order, provider_ref, result.outcome.value)
        return result

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
