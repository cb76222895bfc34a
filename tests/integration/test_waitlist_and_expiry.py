"""Holds expire by the clock; freed units go to the waitlist in order, before anyone else."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from commerce.domain.events import HoldExpired, WaitlistOffered
from commerce.domain.model import ClaimOutcome, HoldStatus
from commerce.storage.tables import holds, waitlist
from tests.helpers import EventLog, assert_consistent, capsule_spec, customers, live_drop


async def test_an_expired_hold_stops_counting_before_any_sweep(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    first, second = await customers(commerce, 2)
    assert (await commerce.claims.claim(drop_id, first)).outcome is ClaimOutcome.HELD
    assert (await commerce.claims.claim(drop_id, second)).outcome is ClaimOutcome.SOLD_OUT
    clock.advance(60)  # expires_at is exclusive: at exactly +60 s the hold is over
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].held, view.stock[0].available) == (0, 1)
    assert (await commerce.claims.claim(drop_id, second)).outcome is ClaimOutcome.HELD


async def test_expired_units_go_to_the_waitlist_in_order(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    holders = await customers(commerce, 2, prefix="web:holder")
    waiting = await customers(commerce, 4, prefix="web:waiter")
    for c in holders:
        assert (await commerce.claims.claim(drop_id, c)).outcome is ClaimOutcome.HELD
    positions = [await commerce.claims.join_waitlist(drop_id, c) for c in waiting]
    assert [p.waitlist_position for p in positions] == [1, 2, 3, 4]

    clock.advance(61)
    # A stranger arriving between expiry and the sweep must not jump the queue.
    (stranger,) = await customers(commerce, 1, prefix="web:stranger")
    assert (await commerce.claims.claim(drop_id, stranger)).outcome is ClaimOutcome.SOLD_OUT
    # The third waiter cannot jump ahead of the first two either.
    assert (await commerce.claims.claim(drop_id, waiting[2])).outcome is ClaimOutcome.SOLD_OUT

    assert await commerce.claims.expire_due() == 2
    offers = log.of(WaitlistOffered)
    assert [o.customer_id for o in offers] == waiting[:2]
    assert len(log.of(HoldExpired)) == 2
    async with commerce.db.read() as conn:
        statuses = dict(
            (await conn.execute(select(waitlist.c.customer_id, waitlist.c.status))).all()
        )
    assert [statuses[c] for c in waiting] == ["offered", "offered", "waiting", "waiting"]
    # The offers are real holds: the first waiter can pay.
    hold = offers[0].hold_id
    order = await commerce.orders.checkout(hold, waiting[0], "test")
    assert (await commerce.orders.confirm_payment(order.id, "pi_w1")).outcome == "paid"

    # An offer that lapses passes to the next in line.
    clock.advance(61)
    await commerce.claims.expire_due()
    assert [o.customer_id for o in log.of(WaitlistOffered)][2:] == [waiting[2]]
    assert_consistent(await commerce.drops.view(drop_id))


async def test_restock_serves_the_waitlist_first_then_the_public(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1))
    holder, *queue = await customers(commerce, 4)
    await commerce.claims.claim(drop_id, holder)
    for c in queue:
        await commerce.claims.join_waitlist(drop_id, c)

    offers = await commerce.drops.restock(drop_id, "CHIPS-SPICY", 5)

    assert offers == 3
    assert [o.customer_id for o in log.of(WaitlistOffered)] == queue
    (public,) = await customers(commerce, 1, prefix="web:public")
    assert (await commerce.claims.claim(drop_id, public)).outcome is ClaimOutcome.HELD
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].total, view.stock[0].held, view.stock[0].available) == (6, 5, 1)
    assert "Restocked" in log.names()


async def test_a_cancelled_hold_is_offered_to_the_waitlist(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    holder, waiter = await customers(commerce, 2)
    held = await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, waiter)
    await commerce.claims.cancel_hold(held.hold.id, holder)
    async with commerce.db.read() as conn:
        rows = (await conn.execute(select(holds.c.customer_id, holds.c.status))).all()
    assert sorted(rows) == sorted([(holder, HoldStatus.CANCELLED), (waiter, HoldStatus.ACTIVE)])


async def test_joining_the_waitlist_when_units_are_free_holds_at_once(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    result = await commerce.claims.join_waitlist(drop_id, buyer)
    assert result.outcome is ClaimOutcome.HELD


async def test_concurrent_expiry_sweeps_and_claims_never_oversell(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=30))
    buyers = await customers(commerce, 60)
    await asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers[:20]))
    await asyncio.gather(*(commerce.claims.join_waitlist(drop_id, c) for c in buyers[20:30]))
    clock.advance(31)
    await asyncio.gather(
        commerce.claims.expire_due(),
        commerce.claims.expire_due(),
        *(commerce.claims.claim(drop_id, c) for c in buyers[30:]),
    )
    view = await commerce.drops.view(drop_id)
    assert_consistent(view)
    assert view.stock[0].held == 5
