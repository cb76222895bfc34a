"""Gateways without a payment network: ``test`` pays at once, ``manual`` leaves the money
for pickup or an invoice."""

from __future__ import annotations

from collections.abc import Mapping

from commerce.domain.model import Order
from commerce.domain.payments import (
    Captured,
    CheckoutRequest,
    Ignored,
    PayLater,
    PaymentStep,
    WebhookNotice,
)


class TestGateway:
    """Pays immediately, under a payment id made from the order's, so a replayed pay is
    idempotent. For demos and rehearsals only: never enable it where real goods change
    hands."""

    __test__ = False  # not a pytest class
    name = "test"

    def __init__(self) -> None:
        self.refunds: list[tuple[int, str, str]] = []  # what a real network would pay back

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        return Captured(f"test_{order.id}")

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        return Ignored()

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        self.refunds.append((order.id, provider_ref, reason))

    async def close(self) -> None:
        return None


class ManualGateway:
    """Pay at pickup / by invoice: the units are committed now, the order stays unpaid."""

    name = "manual"

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        return PayLater()

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        return Ignored()

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        return None  # no money moved through us

    async def close(self) -> None:
        return None
