"""The payment gateway contract, checked the same way for every gateway ``build_gateways``
can make: ``begin`` answers with a step checkout knows, a webhook that is not genuine never
confirms a payment, and no gateway reaches into the services (they report; checkout
decides). A new gateway joins ``GATEWAY_SETTINGS`` and passes these as it is."""

from __future__ import annotations

import ast
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from commerce.clock import ManualClock
from commerce.domain.errors import DomainError
from commerce.domain.model import SHIP_POOL, Money, Order, OrderStatus
from commerce.domain.payments import (
    Captured,
    CheckoutRequest,
    Ignored,
    PayLater,
    PaymentGateway,
    Redirect,
    WebhookInvalid,
)
from commerce.payments import build_gateways
from config.settings import PaymentsSettings
from tests.web.fake_stripe import API_KEY, WEBHOOK_SECRET, FakeStripe

PAYMENTS = Path(__file__).resolve().parents[2] / "commerce" / "payments"
GATEWAY_SETTINGS: dict[str, dict[str, Any]] = {
    "test": {"provider": "test"},
    "manual": {"provider": "manual"},
    "stripe": {
        "provider": "stripe",
        "stripe_api_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
    },
}
GARBAGE: list[tuple[bytes, dict[str, str]]] = [
    (b"", {}),
    (b"not json", {}),
    (b"{}", {"Stripe-Signature": "t=1,v1=deadbeef"}),
    (b"[" * 10_000, {}),
    (
        json.dumps(
            {
                "type": "checkout.session.completed",
                "data": {"object": {"payment_status": "paid", "payment_intent": "pi_forged"}},
            }
        ).encode(),
        {"Stripe-Signature": "t=1,v1=forged"},
    ),
]


@pytest.fixture(params=sorted(GATEWAY_SETTINGS))
async def gateway(
    request: pytest.FixtureRequest, clock: ManualClock, stripe_fake: FakeStripe
) -> AsyncIterator[PaymentGateway]:
    name = request.param
    settings = PaymentsSettings(**GATEWAY_SETTINGS[name], stripe_api_base=stripe_fake.base)
    gateways = build_gateways(settings, clock)
    yield gateways.get(name)
    await gateways.close()


def pending_order(gateway: PaymentGateway, clock: ManualClock) -> Order:
    """An order as checkout hands it to ``begin``: pending, made for this gateway."""
    return Order(
        id=7,
        drop_id=3,
        hold_id=5,
        customer_id=11,
        status=OrderStatus.PENDING,
        qty=1,
        amount=Money(1200, "USD"),
        provider=gateway.name,
        provider_ref=None,
        pool=SHIP_POOL,
        created_at=clock.now(),
    )


async def test_begin_answers_with_a_step_checkout_knows(
    gateway: PaymentGateway, clock: ManualClock
) -> None:
    request = CheckoutRequest(
        title="Spicy chips capsule",
        hold_expires_at=clock.now() + timedelta(seconds=60),
        success_url="https://shop.example/c/token",
        cancel_url="https://shop.example/c/token",
    )
    step = await gateway.begin(pending_order(gateway, clock), request)
    assert isinstance(step, Redirect | Captured | PayLater)
    if isinstance(step, Captured):
        assert 0 < len(step.provider_ref) <= 200  # what confirm_payment accepts


@pytest.mark.parametrize(("body", "headers"), GARBAGE)
async def test_a_webhook_that_is_not_genuine_never_confirms_a_payment(
    gateway: PaymentGateway, body: bytes, headers: dict[str, str]
) -> None:
    try:
        notice = await gateway.parse_webhook(body, headers)
    except WebhookInvalid:
        return
    assert isinstance(notice, Ignored)


def test_the_gateways_are_named_as_the_settings_name_them(clock: ManualClock) -> None:
    for name, section in GATEWAY_SETTINGS.items():
        assert name in build_gateways(PaymentsSettings(**section), clock)
        assert build_gateways(PaymentsSettings(**section), clock).get(name).name == name


def test_a_gateway_the_settings_do_not_enable_is_not_accepted(clock: ManualClock) -> None:
    gateways = build_gateways(PaymentsSettings(provider="manual"), clock)
    assert "test" not in gateways and "stripe" not in gateways
    with pytest.raises(DomainError):
        gateways.get("test")


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (relative imports resolved within commerce.payments)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names.add(f"commerce.payments.{module}" if node.level else module)
    return names


def test_no_gateway_imports_the_services() -> None:
    sources = sorted(PAYMENTS.glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "simple.py", "stripe_checkout.py"}
    reaching = {
        path.name: sorted(m for m in imported(path) if m.startswith("commerce.services"))
        for path in sources
    }
    assert reaching == {path.name: [] for path in sources}


def test_the_import_check_sees_service_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import commerce.services.orders\nfrom commerce.services import x\n")
    assert imported(sample) == {"commerce.services.orders", "commerce.services"}
