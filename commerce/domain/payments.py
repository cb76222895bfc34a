"""Payments in the domain's words: the gateway port (what checkout asks of Stripe, of the
test and manual gateways), what a gateway answers, and what a payment did to an order.

Gateways (``commerce/payments``) and the checkout service (``commerce/services/checkout``)
both speak these types and neither imports the other: a gateway reports what happened at
the payment network, the service decides what that means for our orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from commerce.domain.errors import DomainError, InvalidInput
from commerce.domain.model import Address, Money, Order, OrderStatus


class PaymentError(DomainError):
    """The gateway could not be reached or refused the request; nothing was charged."""

    code = "PAYMENT_FAILED"


class WebhookInvalid(DomainError):
    """A webhook whose signature or body does not check out; it changed nothing."""

    code = "WEBHOOK_INVALID"


# -- what a payment did to an order --------------------------------------------------------


class PaymentOutcome(StrEnum):
    PAID = "paid"
    REPLAYED = "replayed"  # the same payment (or pay) again: no change
    RESERVED = "reserved"  # manual payment: units committed, pay at pickup
    REFUND_DUE = "refund_due"  # money arrived for a hold that had lapsed: give it back
    DUPLICATE = "duplicate"  # a second, different payment for an order already paid


@dataclass(frozen=True, slots=True)
class PaymentResult:
    outcome: PaymentOutcome
    order: Order


def must_refund(result: PaymentResult) -> bool:
    """Money arrived that must go back: a lapsed hold, or a second payment for one order
    (also on a replay of it: an earlier attempt may have failed to refund)."""
    if result.outcome in (PaymentOutcome.REFUND_DUE, PaymentOutcome.DUPLICATE):
        return True
    return result.outcome is PaymentOutcome.REPLAYED and result.order.status in (
        OrderStatus.REFUNDED,
        OrderStatus.CANCELLED,
    )


# -- the gateway port ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """What a gateway may show the buyer and where to send them afterwards."""

    title: str
    hold_expires_at: datetime  # read from the hold on the server, never from a form
    success_url: str
    cancel_url: str
    email: str | None = None
    # A ship order: the country the buyer chose and its rate (already in order.amount).
    # A gateway that collects the address itself (Stripe) must keep to this country.
    ship_country: str | None = None
    shipping: Money | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    """``begin``: the buyer pays on the gateway's page; a webhook reports the payment."""

    url: str


@dataclass(frozen=True, slots=True)
class Captured:
    """``begin``: paid at once, under the gateway's payment id."""

    provider_ref: str


@dataclass(frozen=True, slots=True)
class PayLater:
    """``begin``: nothing is charged now; the buyer pays at pickup or by invoice."""


PaymentStep = Redirect | Captured | PayLater


@dataclass(frozen=True, slots=True)
class Confirmed:
    """``parse_webhook``: a payment went through. The ids are what the payment says it is
    for (None: it names none); whether that is an order of ours is checkout's call."""

    order_id: int | None
    hold_id: int | None
    provider_ref: str
    ship_to: Address | None = None  # the address the gateway collected
    charged: Money | None = None  # what the gateway says it charged, when it says


@dataclass(frozen=True, slots=True)
class Ignored:
    """``parse_webhook``: a genuine notification that needs no action."""


WebhookNotice = Confirmed | Ignored


class PaymentGateway(Protocol):
    """A payment network. It reports what happened and changes none of our state."""

    name: str

    async def begin(self, order: Order, request: CheckoutRequest) -> PaymentStep:
        """Start paying for a pending order (never inside a database transaction)."""
        ...

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookNotice:
        """Verify a notification and say what it reports; WebhookInvalid when it is not
        genuine or not readable."""
        ...

    async def refund(self, order: Order, provider_ref: str, reason: str) -> None:
        """Give back the payment ``provider_ref`` (idempotent by it)."""
        ...

    async def close(self) -> None:
        """Release network resources."""
        ...


class PaymentGateways:
    """The gateways this deployment accepts, and the one buyers use by default."""

    def __init__(self, default: str, gateways: Mapping[str, PaymentGateway]) -> None:
        if default not in gateways:
            raise InvalidInput("payments.provider", f"{default!r} is not configured")
        self.default = default
        self._gateways = dict(gateways)

    def get(self, name: str) -> PaymentGateway:
        gateway = self._gateways.get(name)
        if gateway is None:
            raise InvalidInput("provider", f"{name!r} is not an accepted payment method here")
        return gateway

    def __contains__(self, name: object) -> bool:
        return name in self._gateways

    async def close(self) -> None:
        for gateway in self._gateways.values():
            await gateway.close()
