"""The payment port: what the checkout needs from any provider, and the provider registry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from commerce.domain.errors import DomainError, InvalidInput
from commerce.domain.model import Money, Order, OrderStatus
from commerce.services.orders import PaymentOutcome, PaymentResult


class PaymentError(DomainError):
    """The provider could not be reached or refused the request; nothing was charged."""

    code = "PAYMENT_FAILED"


class WebhookInvalid(DomainError):
    """A webhook whose signature or body does not check out; it changed nothing."""

    code = "WEBHOOK_INVALID"


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """What a provider may show the buyer and where to send them afterwards."""

    title: str
    hold_expires_at: datetime
    success_url: str
    cancel_url: str
    email: str | None = None
    # A ship order: the country the buyer chose and its rate (already in order.amount).
    # A provider that collects the address itself (Stripe) must keep to this country.
    ship_country: str | None = None
    shipping: Money | None = None


@dataclass(frozen=True, slots=True)
class Settled:
    """The provider decided at once (test: paid; manual: reserved)."""

    result: PaymentResult


@dataclass(frozen=True, slots=True)
class Redirect:
    """The buyer pays on the provider's page; a webhook settles the order later."""

    url: str


PaymentStep = Settled | Redirect


def must_refund(result: PaymentResult) -> bool:
    """Money arrived that must go back: a lapsed hold, or a second payment for one order."""
    if result.outcome in (PaymentOutcome.REFUND_DUE, PaymentOutcome.DUPLICATE):
        return True
    return result.outcome is PaymentOutcome.REPLAYED and result.order.status in (
        OrderStatus.REFUNDED,
        OrderStatus.CANCELLED,
    )


class PaymentProvider(Protocol):
    name: str

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        """Start paying for a pending order (never inside a database transaction)."""
        ...

    async def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> PaymentResult | None:
        """Verify and apply a provider notification; None when it needs no action."""
        ...

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        """Give money back for a payment that must not stand (late or duplicate)."""
        ...

    async def close(self) -> None:
        """Release network resources."""
        ...


class PaymentProviders:
    """The providers this deployment accepts, and the one buyers use by default."""

    def __init__(self, default: str, providers: Mapping[str, PaymentProvider]) -> None:
        if default not in providers:
            raise InvalidInput("payments.provider", f"{default!r} is not configured")
        self.default = default
        self._providers = dict(providers)

    def get(self, name: str) -> PaymentProvider:
        provider = self._providers.get(name)
        if provider is None:
            raise InvalidInput("provider", f"{name!r} is not an accepted payment method here")
        return provider

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    @property
    def names(self) -> list[str]:
        return list(self._providers)

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()
