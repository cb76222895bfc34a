"""Waitlist rules, on both engines: who is ahead of whom, who gets a freed unit, and
what happens to an entry when its customer claims, lapses or is skipped.

Mutants judged equivalent (they cannot change who gets a unit, on SQLite):
- claim_sql.waiting_ahead ``waitlist.id < my entry`` -> ``<=``, or without
  ``customer_id != claimant``: either condition alone leaves the claimant's own entry out.
- claims._claim_in_tx ``source != "waitlist" and queue_in_use`` -> ``or``, its default
  ``queue_in_use=True`` -> ``False``, or without the entry's status filter: an offer
  marks the entry 'claimed' and is then marked 'offered' by offer_waitlist in the same
  transaction; a served entry (lapsed, claimed, offered) reads the same as 'claimed'.
- offer_waitlist ``limit=500`` -> ``501``, ``.limit(None)``, ``order_by(None)``: only a
  queue of more than 500 would notice; SQLite returns the queue in id order.
- offer_waitlist ``exhausted.add(None)``: a later entry for a sold-out target tries its
  INSERT and is refused again.
- join_waitlist / validate ``_shape(drop_id, None, pool)``: ``_shape`` returns the drop's
  shape either way; the SKU only decides whether to reload it.
- join_waitlist ``on_conflict_do_nothing(index_elements=None | ["DROP_ID", …] | […,
  "CUSTOMER_ID"])``: the same statement on SQLite (column names are case-insensitive and
  (drop, customer) is the only key a new entry can collide on).
- _waitlist_position ``if position`` -> ``if position or True``: the caller has just
  queued the customer (or returned earlier), so the position is never empty there.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from commerce.domain.events import SoldOut, WaitlistJoined, WaitlistOffered
from commerce.domain.model import ClaimOutcome
from commerce.dropfile import validate_spec
from commerce.storage.tables import holds, waitlist
from tests.helpers import EventLog, bundle_spec, capsule_spec, collab_spec, live_drop
from tests.integration.money_rules import (
    HELD,
    MILD,
    PICKUP,
    SPICY,
    count,
    flavours_spec,
    people,
    rows,
    statuses,
)


async def test_a_queued_customer_who_claims_directly_is_no_longer_waiting(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60, per_customer_limit=2))
    holder, queued, stranger = await people(commerce, "holder", "queued", "stranger")
    await commerce.claims.claim(drop_id, holder)
    joined = await commerce.claims.join_waitlist(drop_id, queued)
    assert (joined.outcome, joined.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)
    clock.advance(60)  # the holder's hold lapsed; first in the queue may take it directly

    direct = await commerce.claims.claim(drop_id, queued)

    assert direct.outcome is HELD
    (entry,) = await rows(commerce, waitlist, waitlist.c.drop_id == drop_id)
    assert (entry.status, entry.hold_id) == ("claimed", direct.hold.id)
    assert (await commerce.drops.view(drop_id)).waiting == 0
    # A later unit is not handed to them a second time: it is anyone's.
    assert await commerce.drops.restock(drop_id, "CHIPS-SPICY", 1) == 0
    assert log.of(WaitlistOffered) == []
    assert (await commerce.claims.claim(drop_id, stranger)).outcome is HELD
    assert await count(commerce, holds, holds.c.customer_id == queued) == 1


async def test_skipping_a_waiter_at_their_limit_lapses_only_their_entry(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    elsewhere = await live_drop(commerce, capsule_spec(1, hold_seconds=3600))
    paid, holder, fan, w1, w2, other = await people(
        commerce, "paid", "holder", "fan", "w1", "w2", "other"
    )
    bought = await commerce.claims.claim(drop_id, paid)
    order = await commerce.orders.checkout(bought.hold.id, paid, "test")
    await commerce.orders.confirm_payment(order.id, "pi_paid")
    await commerce.claims.claim(drop_id, holder)
    for customer in (fan, w1, w2):
        await commerce.claims.join_waitlist(drop_id, customer)
    # The first waiter turns out to be the buyer (accounts linked): waiting, at their limit.
    await commerce.customers.link("web:paid0@example.com", "web:fan0@example.com")
    await commerce.claims.claim(elsewhere, holder)
    await commerce.claims.join_waitlist(elsewhere, other)
    clock.advance(60)

    assert await commerce.claims.expire_due() == 1

    assert [o.customer_id for o in log.of(WaitlistOffered)] == [w1]
    assert await statuses(commerce, waitlist, drop_id) == {
        paid: "lapsed",
        w1: "offered",
        w2: "waiting",
    }
    assert await statuses(commerce, waitlist, elsewhere) == {other: "waiting"}


async def test_bundle_waiters_are_ahead_of_a_stranger(commerce, clock):
    drop_id = await live_drop(commerce, bundle_spec(chips=1, salsa=1, hold_seconds=60))
    holder, queued, stranger = await people(commerce, "holder", "queued", "stranger")
    await commerce.claims.claim(drop_id, holder)
    assert (await commerce.claims.join_waitlist(drop_id, queued)).waitlist_position == 1
    clock.advance(60)  # lapsed, not yet swept

    refused = await commerce.claims.claim(drop_id, stranger)
    assert (refused.outcome, refused.waitlist_position) == (ClaimOutcome.SOLD_OUT, None)
    taken = await commerce.claims.claim(drop_id, queued)
    assert (taken.outcome, taken.hold.sku) == (HELD, None)


async def test_waiters_are_ahead_only_on_the_flavour_and_pool_they_wait_for(commerce, clock):
    flavours = await live_drop(commerce, flavours_spec(spicy=1, mild=1, hold_seconds=60))
    collab = await live_drop(commerce, collab_spec(ship=1, pickup=1, hold_seconds=60))
    hs, hm, hp, ws, wp, s1, s2, s3 = await people(
        commerce, "hs", "hm", "hp", "ws", "wp", "s1", "s2", "s3"
    )
    await commerce.claims.claim(flavours, hs, sku=SPICY)
    await commerce.claims.claim(flavours, hm, sku=MILD)
    await commerce.claims.claim(collab, hp, pool=PICKUP)
    await commerce.claims.join_waitlist(flavours, ws, sku=SPICY)
    await commerce.claims.join_waitlist(collab, wp, pool=PICKUP)
    clock.advance(60)  # every hold lapsed, none swept

    assert (await commerce.claims.claim(flavours, s1, sku=SPICY)).outcome is ClaimOutcome.SOLD_OUT
    assert (await commerce.claims.claim(flavours, s1, sku=MILD)).outcome is HELD
    assert (await commerce.claims.claim(collab, s2, pool="ship")).outcome is HELD
    assert (await commerce.claims.claim(collab, s3, pool=PICKUP)).outcome is ClaimOutcome.SOLD_OUT
    assert (await commerce.claims.claim(flavours, ws, sku=SPICY)).outcome is HELD
    assert (await commerce.claims.claim(collab, wp, pool=PICKUP)).outcome is HELD


async def test_a_freed_flavour_goes_to_its_waiter_past_those_waiting_for_another(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, flavours_spec(spicy=1, mild=1))
    hs, hm, s1, s2, m1 = await people(commerce, "hs", "hm", "s1", "s2", "m1")
    await commerce.claims.claim(drop_id, hs, sku=SPICY)
    mild = await commerce.claims.claim(drop_id, hm, sku=MILD)
    for customer, sku in ((s1, SPICY), (s2, SPICY), (m1, MILD)):
        await commerce.claims.join_waitlist(drop_id, customer, sku=sku)

    await commerce.claims.cancel_hold(mild.hold.id, hm)

    (offer,) = log.of(WaitlistOffered)
    assert offer.customer_id == m1
    offered = (await rows(commerce, holds, holds.c.id == offer.hold_id))[0]
    assert (offered.sku, offered.qty) == (MILD, 1)
    assert await statuses(commerce, waitlist, drop_id) == {
        s1: "waiting",
        s2: "waiting",
        m1: "offered",
    }


async def test_a_lapsed_offer_loses_its_place_and_only_that_entry_lapses(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    h1, h2, w1, w2, w3, w4 = await people(commerce, "h1", "h2", "w1", "w2", "w3", "w4")
    await commerce.claims.claim(drop_id, h1)
    clock.advance(30)
    await commerce.claims.claim(drop_id, h2)
    for waiter in (w1, w2, w3):
        await commerce.claims.join_waitlist(drop_id, waiter)
    clock.advance(30)
    assert await commerce.claims.expire_due() == 1  # h1's unit: offered to w1
    clock.advance(30)
    assert await commerce.claims.expire_due() == 1  # h2's unit: offered to w2
    clock.advance(30)

    assert await commerce.claims.expire_due() == 1  # w1's offer lapsed: w3 is next

    assert [o.customer_id for o in log.of(WaitlistOffered)] == [w1, w2, w3]
    assert await statuses(commerce, waitlist, drop_id) == {
        w1: "lapsed",
        w2: "offered",
        w3: "offered",
    }
    joined = await commerce.claims.join_waitlist(drop_id, w4)
    assert (joined.outcome, joined.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)
    assert log.of(WaitlistJoined)[-1] == WaitlistJoined(drop_id, w4, 1)
    refused = await commerce.claims.claim(drop_id, w1)
    assert (refused.outcome, refused.waitlist_position) == (ClaimOutcome.SOLD_OUT, None)
    assert len(log.of(SoldOut)) == 1  # units moving along the queue are not a new sell-out
    clock.advance(30)  # w2's offer lapsed, not yet swept: the unit is w4's, first in line
    assert (await commerce.claims.claim(drop_id, w1)).outcome is ClaimOutcome.SOLD_OUT
    assert (await commerce.claims.claim(drop_id, w4)).outcome is HELD


async def test_a_waiter_whose_offer_lapsed_may_join_the_queue_again(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    holder, w1, w2 = await people(commerce, "holder", "w1", "w2")
    await commerce.claims.claim(drop_id, holder)
    for waiter in (w1, w2):
        await commerce.claims.join_waitlist(drop_id, waiter)
    clock.advance(60)
    await commerce.claims.expire_due()  # offered to w1
    clock.advance(60)
    await commerce.claims.expire_due()  # w1 let it lapse; offered to w2
    assert await statuses(commerce, waitlist, drop_id) == {w1: "lapsed", w2: "offered"}

    rejoined = await commerce.claims.join_waitlist(drop_id, w1)

    assert (rejoined.outcome, rejoined.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)
    assert await statuses(commerce, waitlist, drop_id) == {w1: "waiting", w2: "offered"}


async def test_joining_twice_keeps_one_place_and_announces_it_once(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, flavours_spec(spicy=1, mild=1))
    holder, fan = await people(commerce, "holder", "fan")
    await commerce.claims.claim(drop_id, holder, sku=SPICY)
    first = await commerce.claims.join_waitlist(drop_id, fan, sku=SPICY)
    second = await commerce.claims.join_waitlist(drop_id, fan, sku=SPICY)
    assert [first.waitlist_position, second.waitlist_position] == [1, 1]
    assert log.of(WaitlistJoined) == [WaitlistJoined(drop_id, fan, 1)]
    (entry,) = await rows(commerce, waitlist, waitlist.c.drop_id == drop_id)
    assert (entry.customer_id, entry.sku, entry.pool, entry.status) == (
        fan,
        SPICY,
        "ship",
        "waiting",
    )


async def test_an_offered_waiter_who_lets_go_passes_the_unit_to_the_next(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    holder, w1, w2 = await people(commerce, "holder", "w1", "w2")
    held = await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, w1)
    await commerce.claims.join_waitlist(drop_id, w2)
    await commerce.claims.cancel_hold(held.hold.id, holder)
    (offer,) = log.of(WaitlistOffered)

    await commerce.claims.cancel_hold(offer.hold_id, w1)

    assert [o.customer_id for o in log.of(WaitlistOffered)] == [w1, w2]
    assert await statuses(commerce, waitlist, drop_id) == {w1: "lapsed", w2: "offered"}


async def test_offers_are_one_unit_each_held_for_the_hold_window(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=90, per_customer_limit=3))
    holder, w1, w2 = await people(commerce, "holder", "w1", "w2")
    await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, w1)
    await commerce.claims.join_waitlist(drop_id, w2)
    clock.advance(5)

    assert await commerce.drops.restock(drop_id, "CHIPS-SPICY", 5) == 2

    offers = log.of(WaitlistOffered)
    expected = clock.now() + timedelta(seconds=90)
    assert offers == [
        WaitlistOffered(drop_id, w1, offers[0].hold_id, expected),
        WaitlistOffered(drop_id, w2, offers[1].hold_id, expected),
    ]
    for offer in offers:
        (hold,) = await rows(commerce, holds, holds.c.id == offer.hold_id)
        assert (hold.qty, hold.source, hold.status) == (1, "waitlist", "active")
    entries = await rows(commerce, waitlist, waitlist.c.drop_id == drop_id)
    assert [(e.status, e.hold_id, e.offered_at) for e in entries] == [
        ("offered", offers[0].hold_id, clock.now()),
        ("offered", offers[1].hold_id, clock.now()),
    ]
    assert (await commerce.drops.view(drop_id)).stock[0].available == 3


async def test_a_holder_cannot_join_the_queue(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    (holder,) = await people(commerce, "holder")
    held = await commerce.claims.claim(drop_id, holder)
    result = await commerce.claims.join_waitlist(drop_id, holder)
    assert (result.outcome, result.hold) == (ClaimOutcome.ALREADY_HELD, held.hold)
    assert await count(commerce, waitlist) == 0


async def test_a_customer_whose_hold_ended_is_never_told_it_is_still_held(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    lapsed, cancelled, taker = await people(commerce, "lapsed", "cancelled", "taker")
    first = await commerce.claims.claim(drop_id, cancelled)
    await commerce.claims.cancel_hold(first.hold.id, cancelled)
    await commerce.claims.claim(drop_id, lapsed)
    clock.advance(60)
    await commerce.claims.claim(drop_id, taker)  # takes the lapsed unit: sold out

    for customer in (cancelled, lapsed):
        claimed = await commerce.claims.claim(drop_id, customer)
        assert (claimed.outcome, claimed.hold) == (ClaimOutcome.SOLD_OUT, None)
    joined = [await commerce.claims.join_waitlist(drop_id, c) for c in (cancelled, lapsed)]
    assert [(j.outcome, j.waitlist_position) for j in joined] == [
        (ClaimOutcome.SOLD_OUT, 1),
        (ClaimOutcome.SOLD_OUT, 2),
    ]
    queued = await commerce.claims.claim(drop_id, lapsed)
    assert (queued.outcome, queued.waitlist_position) == (ClaimOutcome.SOLD_OUT, 2)


async def test_the_queue_of_one_drop_is_not_the_queue_of_another(commerce):
    first = await live_drop(commerce, capsule_spec(1))
    second = await live_drop(commerce, capsule_spec(1))
    h1, h2, x, fan = await people(commerce, "h1", "h2", "x", "fan")
    await commerce.claims.claim(first, h1)
    await commerce.claims.join_waitlist(first, x)
    await commerce.claims.join_waitlist(first, fan)
    (stranger,) = await people(commerce, "stranger")
    assert (await commerce.claims.claim(second, stranger)).outcome is HELD  # nobody waits here
    await commerce.claims.claim(second, h2)

    joined = await commerce.claims.join_waitlist(second, fan)

    assert joined.waitlist_position == 1
    assert (await commerce.claims.claim(second, fan)).waitlist_position == 1
    assert (await commerce.claims.claim(first, fan)).waitlist_position == 2


async def test_joining_a_closed_drop_is_refused_and_a_scheduled_one_queues(commerce):
    closed = await live_drop(commerce, capsule_spec(1))
    await commerce.drops.close(closed)
    later = await commerce.drops.create(validate_spec(capsule_spec(1, opens_at="+10m")))
    (fan,) = await people(commerce, "fan")
    assert (await commerce.claims.join_waitlist(closed, fan)).outcome is ClaimOutcome.CLOSED
    queued = await commerce.claims.join_waitlist(later, fan)
    assert (queued.outcome, queued.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)
    assert await statuses(commerce, waitlist, closed) == {}
    assert await statuses(commerce, waitlist, later) == {fan: "waiting"}
    assert await count(commerce, holds) == 0


async def test_a_customer_whose_direct_claim_lapsed_can_queue_again(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    holder, queued, other = await people(commerce, "holder", "queued", "other")
    await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, queued)
    clock.advance(60)
    assert (await commerce.claims.claim(drop_id, queued)).outcome is HELD
    await commerce.claims.join_waitlist(drop_id, other)
    clock.advance(60)
    await commerce.claims.expire_due()  # queued's hold lapsed; the unit is offered to other

    again = await commerce.claims.join_waitlist(drop_id, queued)

    assert again.waitlist_position is not None
    assert (await statuses(commerce, waitlist, drop_id))[queued] == "waiting"


async def test_a_waiter_whose_offer_lapsed_rejoins_behind_those_who_queued_meanwhile(
    commerce, clock
):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    holder, w1, w2, w3 = await people(commerce, "holder", "w1", "w2", "w3")
    await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, w1)
    await commerce.claims.join_waitlist(drop_id, w2)
    clock.advance(60)
    await commerce.claims.expire_due()  # offered to w1
    clock.advance(60)
    await commerce.claims.expire_due()  # w1 let it lapse; offered to w2
    assert (await commerce.claims.join_waitlist(drop_id, w3)).waitlist_position == 1

    rejoined = await commerce.claims.join_waitlist(drop_id, w1)

    assert rejoined.waitlist_position == 2
    assert (await commerce.claims.claim(drop_id, w3)).waitlist_position == 1


async def test_the_first_in_the_queue_gets_the_free_unit_even_right_after_a_stranger(
    commerce, clock
):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    holder, queued, stranger = await people(commerce, "holder", "queued", "stranger")
    await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, queued)
    clock.advance(60)  # the unit is free again, for the queue first

    refused, taken = await asyncio.gather(  # one batch: the stranger arrived first
        commerce.claims.claim(drop_id, stranger), commerce.claims.claim(drop_id, queued)
    )

    assert refused.outcome is ClaimOutcome.SOLD_OUT
    assert taken.outcome is HELD


async def test_a_queued_customer_refused_in_a_batch_still_learns_their_place(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    holder, queued, stranger = await people(commerce, "holder", "queued", "stranger")
    await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, queued)
    alone = await commerce.claims.claim(drop_id, queued)
    assert (alone.outcome, alone.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)

    _, batched = await asyncio.gather(
        commerce.claims.claim(drop_id, stranger), commerce.claims.claim(drop_id, queued)
    )

    assert (batched.outcome, batched.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)


async def test_a_buyer_at_their_limit_is_told_so_instead_of_queueing(commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    buyer, holder = await people(commerce, "buyer", "holder")
    await commerce.claims.claim(drop_id, holder)  # sold out, and still live
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_1")

    joined = await commerce.claims.join_waitlist(drop_id, buyer)

    assert joined.outcome is ClaimOutcome.LIMIT_REACHED
    assert await statuses(commerce, waitlist, drop_id) == {}


async def test_joining_when_a_unit_is_free_holds_it_at_once(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    (fan,) = await people(commerce, "fan")
    result = await commerce.claims.join_waitlist(drop_id, fan)
    assert result.outcome is HELD
    assert result.hold == await commerce.claims.holding(drop_id, fan)
    assert (result.hold.customer_id, result.hold.source) == (fan, "waitlist")
    assert log.of(WaitlistOffered) == []  # the answer is the hold: no offer to announce


async def test_a_queued_buyer_who_claims_again_directly_is_marked_claimed(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60, per_customer_limit=2))
    holder, fan = await people(commerce, "holder", "fan")
    held = await commerce.claims.claim(drop_id, holder)
    await commerce.claims.join_waitlist(drop_id, fan)
    await commerce.claims.cancel_hold(held.hold.id, holder)  # offered to the fan
    (offer,) = await rows(commerce, holds, holds.c.customer_id == fan)
    order = await commerce.orders.checkout(offer.id, fan, "test")
    await commerce.orders.confirm_payment(order.id, "pi_fan")
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 1)  # nobody is waiting now

    again = await commerce.claims.claim(drop_id, fan)

    assert again.outcome is HELD
    (entry,) = await rows(commerce, waitlist, waitlist.c.drop_id == drop_id)
    assert (entry.status, entry.hold_id) == ("claimed", again.hold.id)


async def test_no_offers_are_made_on_a_drop_not_yet_open_or_past_its_window(commerce, clock):
    log = EventLog(commerce)
    later = await commerce.drops.create(validate_spec(capsule_spec(1, opens_at="+1h")))
    ending = await live_drop(commerce, capsule_spec(1, closes_at="+10m", hold_seconds=600))
    fan, holder, waiter = await people(commerce, "fan", "holder", "waiter")
    await commerce.claims.join_waitlist(later, fan)
    assert await commerce.drops.restock(later, "CHIPS-SPICY", 1) == 0
    await commerce.claims.claim(ending, holder)
    await commerce.claims.join_waitlist(ending, waiter)
    clock.advance(600)  # the window ended; no sweeper has closed the drop yet

    assert await commerce.drops.restock(ending, "CHIPS-SPICY", 1) == 0

    assert log.of(WaitlistOffered) == []
    assert await statuses(commerce, waitlist, later) == {fan: "waiting"}
    assert await statuses(commerce, waitlist, ending) == {waiter: "waiting"}


async def test_rejoining_one_drop_leaves_a_served_entry_in_another_alone(commerce, clock):
    first = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    second = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    h1, h2, fan, other = await people(commerce, "h1", "h2", "fan", "other")
    for drop_id, holder in ((first, h1), (second, h2)):
        await commerce.claims.claim(drop_id, holder)
        await commerce.claims.join_waitlist(drop_id, fan)
        await commerce.claims.join_waitlist(drop_id, other)
    clock.advance(60)
    await commerce.claims.expire_due()  # both units offered to the fan
    clock.advance(60)
    await commerce.claims.expire_due()  # the fan let both lapse; offered to the other

    assert (await commerce.claims.join_waitlist(second, fan)).waitlist_position == 1

    assert await statuses(commerce, waitlist, first) == {fan: "lapsed", other: "offered"}
    assert await statuses(commerce, waitlist, second) == {fan: "waiting", other: "offered"}


async def test_a_waiter_who_bought_their_offer_may_queue_for_another(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2, per_customer_limit=2))
    holder, keeper, fan = await people(commerce, "holder", "keeper", "fan")
    held = await commerce.claims.claim(drop_id, holder)
    await commerce.claims.claim(drop_id, keeper)
    await commerce.claims.join_waitlist(drop_id, fan)
    await commerce.claims.cancel_hold(held.hold.id, holder)  # offered to the fan
    offer = await commerce.claims.holding(drop_id, fan)
    order = await commerce.orders.checkout(offer.id, fan, "test")
    await commerce.orders.confirm_payment(order.id, "pi_fan")
    clock.advance(1)

    again = await commerce.claims.join_waitlist(drop_id, fan)

    assert (again.outcome, again.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)
    assert await statuses(commerce, waitlist, drop_id) == {fan: "waiting"}


async def test_a_waiter_who_already_holds_through_a_linked_account_gets_no_offer(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    holder, leaver, waiter = await people(commerce, "holder", "leaver", "waiter")
    await commerce.claims.claim(drop_id, holder)
    let_go = await commerce.claims.claim(drop_id, leaver)
    await commerce.customers.resolve("twitch:77")
    await commerce.claims.join_waitlist(drop_id, await commerce.customers.resolve("twitch:77"))
    await commerce.claims.join_waitlist(drop_id, waiter)
    # The queued Twitch viewer turns out to be the holder: now one customer, holding.
    await commerce.customers.link("web:holder0@example.com", "twitch:77")

    await commerce.claims.cancel_hold(let_go.hold.id, leaver)

    assert [o.customer_id for o in log.of(WaitlistOffered)] == [waiter]
    assert await statuses(commerce, waitlist, drop_id) == {holder: "lapsed", waiter: "offered"}


async def test_claiming_in_one_drop_leaves_the_queue_of_another_alone(commerce):
    first = await live_drop(commerce, capsule_spec(1))
    second = await live_drop(commerce, capsule_spec(3))
    holder, fan, queued = await people(commerce, "holder", "fan", "queued")
    await commerce.claims.claim(first, holder)
    await commerce.claims.join_waitlist(first, fan)
    await commerce.claims.join_waitlist(second, queued)  # someone queues here too (held)

    assert (await commerce.claims.claim(second, fan)).outcome is HELD

    assert await statuses(commerce, waitlist, first) == {fan: "waiting"}
