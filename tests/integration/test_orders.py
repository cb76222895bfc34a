"""Payments: idempotent by provider id, never oversold, refunds return units."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from commerce.domain.errors import HoldNotActive, HoldNotFound
from commerce.domain.model import ClaimOutcome, OrderStatus
from commerce.domain.payments import PaymentOutcome
from commerce.storage.tables import orders
from tests.helpers import (
    EventLog,
    assert_consistent,
    capsule_spec,
    collab_spec,
    customers,
    live_drop,
)


async def held_order(commerce, drop_id, customer, provider="test"):
    result = await commerce.claims.claim(drop_id, customer)
    assert result.outcome is ClaimOutcome.HELD
    return await commerce.orders.checkout(result.hold.id, customer, provider)


async def test_checkout_twice_returns_the_same_order(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    first, second = await asyncio.gather(
        commerce.orders.checkout(held.hold.id, buyer, "test"),
        commerce.orders.checkout(held.hold.id, buyer, "test"),
    )
    assert first.id == second.id
    assert first.amount.amount_minor == 1200 and first.amount.currency == "USD"


async def test_checkout_of_someone_elses_hold_is_refused(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    owner, other = await customers(commerce, 2)
    held = await commerce.claims.claim(drop_id, owner)
    with pytest.raises(HoldNotFound):
        await commerce.orders.checkout(held.hold.id, other, "test")


async def test_a_retried_webhook_never_makes_a_second_sale(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await held_order(commerce, drop_id, buyer)
    results = await asyncio.gather(
        *(commerce.orders.confirm_payment(order.id, "pi_same") for _ in range(10))
    )
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count(PaymentOutcome.PAID) == 1
    assert set(outcomes) == {PaymentOutcome.PAID, PaymentOutcome.REPLAYED}
    view = await commerce.drops.view(drop_id)
    assert view.stock[0].sold == 1
    assert_consistent(view)


async def test_a_second_different_payment_for_a_paid_order_is_flagged(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await held_order(commerce, drop_id, buyer)
    await commerce.orders.confirm_payment(order.id, "pi_a")
    again = await commerce.orders.confirm_payment(order.id, "pi_b")
    assert again.outcome is PaymentOutcome.DUPLICATE
    assert (await commerce.drops.view(drop_id)).stock[0].sold == 1


async def test_payment_after_the_hold_expired_is_refunded_not_oversold(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    late, quick = await customers(commerce, 2)
    order = await held_order(commerce, drop_id, late)
    clock.advance(61)
    assert (await commerce.claims.claim(drop_id, quick)).outcome is ClaimOutcome.HELD
    result = await commerce.orders.confirm_payment(order.id, "pi_late")
    assert result.outcome is PaymentOutcome.REFUND_DUE
    assert result.order.status is OrderStatus.REFUNDED
    assert "OrderRefunded" in log.names()
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (0, 1)
    again = await commerce.orders.confirm_payment(order.id, "pi_late")
    assert again.outcome is PaymentOutcome.REPLAYED  # same provider id: same answer


async def test_checkout_after_expiry_is_refused(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    clock.advance(60)
    with pytest.raises(HoldNotActive):
        await commerce.orders.checkout(held.hold.id, buyer, "test")


async def test_selling_the_last_unit_closes_the_drop_as_sold_out(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    buyers = await customers(commerce, 2)
    for c in buyers:
        order = await held_order(commerce, drop_id, c)
        await commerce.orders.confirm_payment(order.id, f"pi_{c}")
    drop = await commerce.drops.get(drop_id)
    assert drop.state == "closed" and drop.close_reason == "sold_out"
    assert log.names().count("DropClosed") == 1
    # A restock reopens a drop that closed because it sold out.
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 3)
    assert (await commerce.drops.get(drop_id)).state == "live"


async def test_manual_payment_reserves_units_and_is_paid_at_pickup(commerce):
    drop_id = await live_drop(commerce, collab_spec(ship=1, pickup=1))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer, pool="pickup:corner-deli")
    order = await commerce.orders.checkout(held.hold.id, buyer, "manual")
    reserved = await commerce.orders.reserve(order.id)
    assert reserved.outcome is PaymentOutcome.RESERVED
    view = await commerce.drops.view(drop_id)
    pickup = next(s for s in view.stock if s.pool == "pickup:corner-deli")
    assert (pickup.sold, pickup.held) == (1, 0)
    paid = await commerce.orders.mark_paid(order.id, "cash-001")
    assert paid.outcome is PaymentOutcome.PAID
    assert (await commerce.orders.get(order.id)).status is OrderStatus.PAID


async def test_refund_returns_the_unit_to_the_waitlist(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    buyer, waiter = await customers(commerce, 2)
    order = await held_order(commerce, drop_id, buyer)
    await commerce.orders.confirm_payment(order.id, "pi_r")
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 1)
    await commerce.claims.claim(drop_id, waiter)  # takes the restocked unit
    (late,) = await customers(commerce, 1, prefix="web:late")
    await commerce.claims.join_waitlist(drop_id, late)
    refunded = await commerce.orders.refund(order.id)
    assert refunded.status is OrderStatus.REFUNDED
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].held) == (0, 2)
    assert_consistent(view)
    async with commerce.db.read() as conn:
        count = (await conn.execute(select(func.count()).select_from(orders))).scalar()
    assert count == 1
