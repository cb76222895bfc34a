"""Checkout: paying for a hold, top to bottom, and applying what a gateway reports later.

- ``pay`` makes (or finds) the hold's order, asks its gateway to begin, and settles what
  the gateway answered: paid at once (``Captured``), pay later (``PayLater``), or the buyer
  goes to the gateway's page (``Redirect``) and a webhook settles it.
- ``apply_webhook`` lets the gateway verify a notification; a ``Confirmed`` payment that
  names an order of ours paying through that gateway is confirmed, anything else is
  acknowledged and changes nothing.
- Money that must not stand (a payment after the hold lapsed, a second payment for one
  order) is refunded here and only here, on a replay too: an earlier attempt may have
  failed to refund, and the gateway's refund is idempotent by the payment.
- Every payment outcome passes through one hook (``on_outcome``), where metrics count it.

Gateways import nothing from here; they report, this decides. Never called inside a
transaction: the gateway is a network peer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from commerce.domain.errors import DomainError
from commerce.domain.model import Address, Money, Order, OrderStatus
from commerce.domain.payments import (
    Captured,
    CheckoutRequest,
    Confirmed,
    Ignored,
    PayLater,
    PaymentGateway,
    PaymentGateways,
    PaymentOutcome,
    PaymentResult,
    Redirect,
    must_refund,
)
from commerce.services.orders import OrderService

log = logging.getLogger(__name__)

# (gateway name, outcome): called once for every payment outcome.
OutcomeHook = Callable[[str, PaymentOutcome], None]


def _ignore_outcome(gateway: str, outcome: PaymentOutcome) -> None:
    return None


class CheckoutService:
    def __init__(
        self,
        orders: OrderService,
        gateways: PaymentGateways,
        *,
        on_outcome: OutcomeHook = _ignore_outcome,
    ) -> None:
        self.orders = orders
        self.gateways = gateways
        self._on_outcome = on_outcome

    async def pay(
        self,
        hold_id: int,
        customer_id: int,
        method: str,
        *,
        title: str,
        return_url: str,
        email: str | None = None,
        ship_to: Address | None = None,
        shipping: Money | None = None,
        ship_country: str | None = None,
    ) -> Redirect | PaymentResult:
        """Pay for ``customer_id``'s hold through gateway ``method``: where to send the buyer,
        or what happened to the order. ``title`` is the statement line, ``return_url`` where
        the gateway's page sends the buyer back; ``ship_to``/``shipping`` as in
        ``OrderService.checkout``, ``ship_country`` when the gateway collects the address.
        A pay for an order already settled is answered with it (REPLAYED), charging
        nothing."""
        order = await self.orders.checkout(
            hold_id, customer_id, method, ship_to=ship_to, shipping=shipping
        )
        if order.status is not OrderStatus.PENDING:
            return PaymentResult(PaymentOutcome.REPLAYED, order)
        gateway = self.gateways.get(order.provider)
        request = CheckoutRequest(
            title=title,
            hold_expires_at=await self.orders.hold_expires_at(order),
            success_url=return_url,
            cancel_url=return_url,
            email=email,
            ship_country=ship_country,
            shipping=shipping,
        )
        match await gateway.begin(order, request):
            case Redirect() as redirect:
                return redirect
            case Captured(provider_ref):
                return await self._confirm(gateway, order.id, provider_ref)
            case PayLater():
                result = await self.orders.reserve(order.id)
                self._on_outcome(gateway.name, result.outcome)
                return result

    async def apply_webhook(
        self, gateway_name: str, body: bytes, headers: Mapping[str, str]
    ) -> PaymentResult | None:
        """Apply a notification to gateway ``gateway_name``; None when it needed no action.
        Raises WebhookInvalid (from the gateway) when it is not genuine."""
        gateway = self.gateways.get(gateway_name)
        notice = await gateway.parse_webhook(body, headers)
        if isinstance(notice, Ignored):
            return None
        order = await self._order_of(gateway, notice)
        if order is None:
            log.info("%s payment %s acknowledged: not ours", gateway.name, notice.provider_ref)
            return None
        self._check_charged(gateway, order, notice)
        return await self._confirm(gateway, order.id, notice.provider_ref, notice.ship_to)

    async def refund(self, order: Order, reason: str, provider_ref: str | None = None) -> None:
        """Give back the money of ``order`` (or of its payment ``provider_ref``) through the
        gateway it was paid with; the gateway's key is the payment, so however often this
        runs, one refund."""
        if order.provider not in self.gateways:
            raise DomainError(
                f"order {order.id} was paid through {order.provider}, which is not "
                "configured here; refund it there"
            )
        ref = provider_ref or order.provider_ref or f"{order.provider}_{order.id}"
        await self.gateways.get(order.provider).refund(order, ref, reason)

    async def close(self) -> None:
        await self.gateways.close()

    # -- internals ------------------------------------------------------------------------

    async def _confirm(
        self,
        gateway: PaymentGateway,
        order_id: int,
        provider_ref: str,
        ship_to: Address | None = None,
    ) -> PaymentResult:
        """Record payment ``provider_ref``, count it, and give it back when it must not
        stand."""
        result = await self.orders.confirm_payment(order_id, provider_ref, ship_to=ship_to)
        self._on_outcome(gateway.name, result.outcome)
        if must_refund(result):
            await self.refund(result.order, result.outcome.value, provider_ref)
        return result

    async def _order_of(self, gateway: PaymentGateway, payment: Confirmed) -> Order | None:
        """The order a payment is for: its order and hold ids must match an order of ours
        that pays through ``gateway`` (the gateway's account may serve others too)."""
        if payment.order_id is None or payment.hold_id is None:
            return None
        order = await self.orders.for_hold(payment.hold_id)
        if order is None or order.id != payment.order_id or order.provider != gateway.name:
            return None
        return order

    @staticmethod
    def _check_charged(gateway: PaymentGateway, order: Order, payment: Confirmed) -> None:
        """Warn when what the gateway charged is not what the order says: a session begun
        before the buyer went back and chose another country can still be paid. The
        payment stands (settling the difference is the creator's call); the log names no
        person or place."""
        charged = payment.charged
        if charged is None or charged == order.amount:
            return
        log.warning(
            "%s payment %s for order %s charged %s %s; the order is %s %s",
            gateway.name,
            payment.provider_ref,
            order.id,
            charged.amount_minor,
            charged.currency,
            order.amount.amount_minor,
            order.amount.currency,
        )
