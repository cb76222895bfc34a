"""Every money path under concurrency, on both engines: restock, refund, pay at pickup."""

from __future__ import annotations

import asyncio

from commerce.domain.events import OrderPaid, OrderRefunded
from commerce.domain.model import ClaimOutcome, OrderStatus
from commerce.domain.payments import PaymentOutcome
from tests.helpers import (
    EventLog,
    assert_consistent,
    capsule_spec,
    collab_spec,
    customers,
    live_drop,
)


async def test_restocks_racing_claims_and_waitlist_joins_never_oversell(commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    buyers = await customers(commerce, 40)
    first = await asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers[:10]))
    assert sum(r.outcome is ClaimOutcome.HELD for r in first) == 2
    await asyncio.gather(*(commerce.claims.join_waitlist(drop_id, c) for c in buyers[10:20]))
    queue = await waiting_in_order(commerce, drop_id)

    await asyncio.gather(
        *(commerce.drops.restock(drop_id, "CHIPS-SPICY", 1) for _ in range(5)),
        *(commerce.claims.claim(drop_id, c) for c in buyers[20:]),
    )

    view = await commerce.drops.view(drop_id)
    assert_consistent(view)
    assert view.stock[0].total == 7
    # The five restocked units went to the first five in the queue, before any newcomer.
    holders = {h.customer_id for h in await active_holds(commerce, drop_id)}
    assert set(queue[:5]) <= holders
    assert not holders & set(queue[5:])
    assert not holders & set(buyers[20:])


async def waiting_in_order(commerce, drop_id):
    from sqlalchemy import select

    from commerce.storage.tables import waitlist

    async with commerce.db.read() as conn:
        rows = await conn.execute(
            select(waitlist.c.customer_id)
            .where(waitlist.c.drop_id == drop_id, waitlist.c.status == "waiting")
            .order_by(waitlist.c.id)
        )
        return list(rows.scalars())


async def active_holds(commerce, drop_id):
    from sqlalchemy import select

    from commerce.services.claims import hold_from_row
    from commerce.storage.tables import holds

    async with commerce.db.read() as conn:
        rows = await conn.execute(
            select(holds).where(holds.c.drop_id == drop_id, holds.c.status == "active")
        )
        return [hold_from_row(r) for r in rows]


async def test_concurrent_refunds_of_one_order_return_the_unit_once(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))  # one left: the drop stays live
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_once")

    results = await asyncio.gather(*(commerce.orders.refund(order.id) for _ in range(8)))

    assert {r.status for r in results} == {OrderStatus.REFUNDED}
    assert len(log.of(OrderRefunded)) == 1
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].available) == (0, 2)
    assert_consistent(view)


async def test_concurrent_pickup_payments_record_one_sale(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, collab_spec(ship=1, pickup=1))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer, pool="pickup:corner-deli")
    order = await commerce.orders.checkout(held.hold.id, buyer, "manual")
    await commerce.orders.reserve(order.id)

    results = await asyncio.gather(
        *(commerce.orders.mark_paid(order.id, f"cash-{i}") for i in range(6))
    )

    outcomes = [r.outcome for r in results]
    assert outcomes.count(PaymentOutcome.PAID) == 1
    assert set(outcomes) == {PaymentOutcome.PAID, PaymentOutcome.REPLAYED}
    assert len(log.of(OrderPaid)) == 1
    view = await commerce.drops.view(drop_id)
    pickup = next(s for s in view.stock if s.pool == "pickup:corner-deli")
    assert (pickup.sold, pickup.held) == (1, 0)
