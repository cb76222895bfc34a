"""Payment providers behind one interface: ``test`` (instant), ``manual`` (pay at pickup)
and ``stripe`` (hosted Checkout + signed webhooks)."""

from commerce.payments.base import (
    CheckoutRequest,
    PaymentError,
    PaymentProvider,
    PaymentProviders,
    PaymentStep,
    Redirect,
    Settled,
    WebhookInvalid,
    must_refund,
)

__all__ = [
    "CheckoutRequest",
    "PaymentError",
    "PaymentProvider",
    "PaymentProviders",
    "PaymentStep",
    "Redirect",
    "Settled",
    "WebhookInvalid",
    "must_refund",
]
