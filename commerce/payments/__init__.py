"""Payment gateways behind one port (``commerce.domain.payments.PaymentGateway``): ``test``
(instant), ``manual`` (pay at pickup) and ``stripe`` (hosted Checkout + signed webhooks).
They report what happened and import nothing from the services; ``build_gateways`` is
where the settings choose them (a new gateway: its module here, one line below)."""

from __future__ import annotations

import stripe

from commerce.clock import Clock
from commerce.domain.errors import InvalidInput
from commerce.domain.payments import PaymentGateway, PaymentGateways
from commerce.payments.simple import ManualGateway, TestGateway
from commerce.payments.stripe_checkout import StripeGateway
from config.settings import PaymentsSettings


def build_gateways(settings: PaymentsSettings, clock: Clock) -> PaymentGateways:
    """The gateways the settings enable. ``manual`` is always there for pickup orders;
    ``test`` only when it is the configured provider (it gives goods away)."""
    gateways: dict[str, PaymentGateway] = {"manual": ManualGateway()}
    if settings.provider == "test":
        gateways["test"] = TestGateway()
    if settings.provider == "stripe":
        if settings.stripe_api_key is None:
            raise InvalidInput("payments.stripe_api_key", "is required when provider = 'stripe'")
        secret = settings.stripe_webhook_secret
        gateways["stripe"] = StripeGateway(
            clock,
            api_key=settings.stripe_api_key.get_secret_value(),
            webhook_secret=secret.get_secret_value() if secret else None,
            api_base=str(settings.stripe_api_base),
            http_client=stripe.AIOHTTPClient(),  # stripe's async client (it brings aiohttp)
        )
    return PaymentGateways(settings.provider, gateways)


__all__ = ["build_gateways"]
