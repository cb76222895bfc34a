"""Providers without a payment network: ``test`` pays at once, ``manual`` reserves the
units for payment at pickup or by invoice."""

from __future__ import annotations

from collections.abc import Mapping

from commerce.domain.model import Order
from commerce.payments.base import CheckoutRequest, PaymentStep, Settled
from commerce.services.orders import OrderService, PaymentResult


class TestProvider:
    """Pays immediately, keyed by the order id so a replayed pay is idempotent.

    For demos and rehearsals only: never enable it where real goods change hands.
    """

    __test__ = False  # not a pytest class
    name = "test"

    def __init__(self, orders: OrderService) -> None:
        self.orders = orders
        self.refunds: list[tuple[int, str, str]] = []

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        return Settled(await self.orders.confirm_payment(order.id, f"test_{order.id}"))

    async def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentResult | None:
        return None

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        self.refunds.append((order.id, provider_ref, reason))

    async def close(self) -> None:
        return None


class ManualProvider:
    """Pay at pickup / by invoice: the units are committed now, the order stays unpaid."""

    name = "manual"

    def __init__(self, orders: OrderService) -> None:
        self.orders = orders

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        return Settled(await self.orders.reserve(order.id))

    async def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentResult | None:
        return None

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        return None  # no money moved through us

    async def close(self) -> None:
        return None
