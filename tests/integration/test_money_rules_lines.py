"""Money rules across stock lines, drops and time windows, on both engines: a hold takes
only from its own line (flavour, pool, drop), keeps its SKU and price, and a drop takes
claims only while it is live and before ``closes_at``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from commerce.core import Commerce
from commerce.domain.errors import DropNotFound, InvalidInput, UnknownItem
from commerce.domain.model import ClaimOutcome, DropState, Money
from commerce.dropfile import validate_spec
from commerce.storage.tables import drop_stock, holds
from tests.helpers import assert_consistent, bundle_spec, capsule_spec, collab_spec, live_drop
from tests.integration.money_rules import (
    HELD,
    MILD,
    PICKUP,
    SPICY,
    counts,
    double_chips_bundle_spec,
    flavours_spec,
    line,
    people,
    pickup_only_spec,
    row,
    rows,
)


async def pay(commerce: Commerce, hold_id: int, customer: int, ref: str):
    order = await commerce.orders.checkout(hold_id, customer, "test")
    return await commerce.orders.confirm_payment(order.id, ref)


async def test_a_lapsed_hold_on_one_flavour_never_frees_the_other_full_flavour(commerce, clock):
    drop_id = await live_drop(commerce, flavours_spec(spicy=1, mild=1, hold_seconds=60))
    early, late, stranger = await people(commerce, "early", "late", "stranger")
    spicy = await commerce.claims.claim(drop_id, early, sku=SPICY)
    clock.advance(30)
    mild = await commerce.claims.claim(drop_id, late, sku=MILD)
    assert (spicy.outcome, mild.outcome) == (HELD, HELD)
    clock.advance(30)  # the spicy hold lapsed (not swept); the mild one has 30 s left

    view = await commerce.drops.view(drop_id)
    assert counts(line(view, SPICY)) == (0, 0, 1)
    assert counts(line(view, MILD)) == (0, 1, 0)
    refused = await commerce.claims.claim(drop_id, stranger, sku=MILD)
    assert refused.outcome is ClaimOutcome.SOLD_OUT and refused.hold is None

    taken = await commerce.claims.claim(drop_id, stranger, sku=SPICY)
    assert taken.outcome is HELD and taken.hold.sku == SPICY
    assert (await row(commerce, holds, taken.hold.id)).sku == SPICY
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, SPICY)) == (0, 1, 0)
    assert counts(line(view, MILD)) == (0, 1, 0)
    assert_consistent(view)
    # The sweep tidies the spicy line's counter alone.
    assert await commerce.claims.expire_due() == 1
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, SPICY)) == (0, 1, 0)
    assert counts(line(view, MILD)) == (0, 1, 0)
    assert_consistent(view)


async def test_each_flavour_hold_charges_its_own_price_and_sells_only_its_line(commerce, clock):
    drop_id = await live_drop(commerce, flavours_spec(spicy=2, mild=2))
    spicy_fan, mild_fan = await people(commerce, "spicy", "mild")
    spicy = await commerce.claims.claim(drop_id, spicy_fan, sku=SPICY)
    mild = await commerce.claims.claim(drop_id, mild_fan, sku=MILD)
    spicy_order = await commerce.orders.checkout(spicy.hold.id, spicy_fan, "test")
    mild_order = await commerce.orders.checkout(mild.hold.id, mild_fan, "test")
    assert (spicy_order.amount, mild_order.amount) == (Money(1200, "USD"), Money(950, "USD"))

    await commerce.orders.confirm_payment(spicy_order.id, "pi_spicy")
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, SPICY)) == (1, 0, 1)
    assert counts(line(view, MILD)) == (0, 1, 1)

    await commerce.orders.confirm_payment(mild_order.id, "pi_mild")
    await commerce.orders.refund(spicy_order.id)
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, SPICY)) == (0, 0, 2)
    assert counts(line(view, MILD)) == (1, 0, 1)
    assert_consistent(view)


async def test_a_lapsed_hold_in_the_ship_pool_never_frees_the_full_pickup_pool(commerce, clock):
    drop_id = await live_drop(commerce, collab_spec(ship=1, pickup=1, hold_seconds=60))
    shipper, collector, stranger = await people(commerce, "shipper", "collector", "stranger")
    assert (await commerce.claims.claim(drop_id, shipper, pool="ship")).outcome is HELD
    clock.advance(30)
    assert (await commerce.claims.claim(drop_id, collector, pool=PICKUP)).outcome is HELD
    clock.advance(30)

    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "TOTE", "ship")) == (0, 0, 1)
    assert counts(line(view, "TOTE", PICKUP)) == (0, 1, 0)
    refused = await commerce.claims.claim(drop_id, stranger, pool=PICKUP)
    assert refused.outcome is ClaimOutcome.SOLD_OUT

    taken = await commerce.claims.claim(drop_id, stranger, pool="ship")
    assert (taken.outcome, taken.hold.pool) == (HELD, "ship")
    paid = await pay(commerce, taken.hold.id, stranger, "pi_ship")
    assert paid.order.pool == "ship"
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "TOTE", "ship")) == (1, 0, 0)
    assert counts(line(view, "TOTE", PICKUP)) == (0, 1, 0)
    assert_consistent(view)


async def test_refunding_a_pickup_order_returns_only_the_pickup_unit(commerce):
    drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=1))  # stays live
    shipper, collector = await people(commerce, "shipper", "collector")
    ship = await commerce.claims.claim(drop_id, shipper, pool="ship")
    pickup = await commerce.claims.claim(drop_id, collector, pool=PICKUP)
    await pay(commerce, ship.hold.id, shipper, "pi_ship")
    paid = await pay(commerce, pickup.hold.id, collector, "pi_pickup")

    await commerce.orders.refund(paid.order.id)

    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "TOTE", "ship")) == (1, 0, 1)
    assert counts(line(view, "TOTE", PICKUP)) == (0, 0, 1)


async def test_a_lapsed_bundle_hold_frees_every_part_before_the_sweep(commerce, clock):
    drop_id = await live_drop(commerce, bundle_spec(chips=1, salsa=1, hold_seconds=60))
    first, second = await people(commerce, "first", "second")
    assert (await commerce.claims.claim(drop_id, first)).outcome is HELD
    assert (await commerce.claims.claim(drop_id, second)).outcome is ClaimOutcome.SOLD_OUT
    clock.advance(60)

    view = await commerce.drops.view(drop_id)
    assert [counts(s) for s in view.stock] == [(0, 0, 1), (0, 0, 1)]
    taken = await commerce.claims.claim(drop_id, second)
    assert (taken.outcome, taken.hold.sku) == (HELD, None)


async def test_a_bundle_with_two_of_a_part_holds_sells_and_refunds_both(commerce, clock):
    drop_id = await live_drop(commerce, double_chips_bundle_spec(chips=3, salsa=2))
    buyer, late, later = await people(commerce, "buyer", "late", "later")
    held = await commerce.claims.claim(drop_id, buyer)
    assert held.outcome is HELD
    # Three bags of chips make one bundle of two: the second claim is sold out.
    assert (await commerce.claims.claim(drop_id, late)).outcome is ClaimOutcome.SOLD_OUT
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "CHIPS")) == (0, 2, 1)
    assert counts(line(view, "SALSA")) == (0, 1, 1)

    paid = await pay(commerce, held.hold.id, buyer, "pi_bundle")
    assert paid.order.amount == Money(1450, "USD")
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "CHIPS")) == (2, 0, 1)
    assert counts(line(view, "SALSA")) == (1, 0, 1)

    await commerce.orders.refund(paid.order.id)
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "CHIPS")) == (0, 0, 3)
    assert counts(line(view, "SALSA")) == (0, 0, 2)

    # A lapsed two-bag hold frees both bags at once, before any sweep.
    assert (await commerce.claims.claim(drop_id, late)).outcome is HELD
    clock.advance(60)
    assert counts(line(await commerce.drops.view(drop_id), "CHIPS")) == (0, 0, 3)
    assert (await commerce.claims.claim(drop_id, later)).outcome is HELD


async def test_a_closed_drop_refuses_claims_while_another_drop_is_live(commerce):
    live = await live_drop(commerce, capsule_spec(2))
    closed = await live_drop(commerce, capsule_spec(2))
    await commerce.drops.close(closed)
    (buyer,) = await people(commerce, "buyer")

    refused = await commerce.claims.claim(closed, buyer)

    assert (refused.outcome, refused.hold) == (ClaimOutcome.CLOSED, None)
    assert await rows(commerce, holds, holds.c.drop_id == closed) == []
    assert counts((await commerce.drops.view(closed)).stock[0]) == (0, 0, 2)
    assert (await commerce.claims.claim(live, buyer)).outcome is HELD
    assert counts((await commerce.drops.view(live)).stock[0]) == (0, 1, 1)
    assert counts((await commerce.drops.view(closed)).stock[0]) == (0, 0, 2)


async def test_a_lapsed_hold_in_one_drop_never_frees_the_same_sku_in_another(commerce, clock):
    first = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    second = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    early, late, stranger = await people(commerce, "early", "late", "stranger")
    assert (await commerce.claims.claim(first, early)).outcome is HELD
    clock.advance(30)
    assert (await commerce.claims.claim(second, late)).outcome is HELD
    clock.advance(30)  # the first drop's hold lapsed; the second drop's has 30 s left

    assert counts((await commerce.drops.view(second)).stock[0]) == (0, 1, 0)
    assert (await commerce.claims.claim(second, stranger)).outcome is ClaimOutcome.SOLD_OUT
    assert (await commerce.claims.claim(first, stranger)).outcome is HELD

    assert await commerce.claims.expire_due() == 1
    assert counts((await commerce.drops.view(first)).stock[0]) == (0, 1, 0)
    assert counts((await commerce.drops.view(second)).stock[0]) == (0, 1, 0)
    clock.advance(30)
    assert await commerce.claims.expire_due() == 1
    assert counts((await commerce.drops.view(second)).stock[0]) == (0, 0, 1)
    assert counts((await commerce.drops.view(first)).stock[0]) == (0, 1, 0)


async def test_a_hold_in_one_drop_never_counts_toward_the_limit_in_another(commerce):
    first = await live_drop(commerce, capsule_spec(3))
    second = await live_drop(commerce, capsule_spec(3))
    (fan,) = await people(commerce, "fan")
    assert (await commerce.claims.claim(first, fan)).outcome is HELD
    paid = await commerce.claims.claim(second, fan)
    assert paid.outcome is HELD
    await pay(commerce, paid.hold.id, fan, "pi_second")
    third = await live_drop(commerce, capsule_spec(3))
    assert (await commerce.claims.claim(third, fan)).outcome is HELD


async def test_a_claim_just_before_closes_at_holds_and_one_at_closes_at_is_closed(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, closes_at="+10m", hold_seconds=600))
    early, late = await people(commerce, "early", "late")
    clock.advance(599)
    held = await commerce.claims.claim(drop_id, early, claim_key="msg-1")
    assert held.outcome is HELD
    clock.advance(1)  # exactly closes_at; no sweeper has closed the drop yet

    assert (await commerce.drops.get(drop_id)).state is DropState.LIVE
    refused = await commerce.claims.claim(drop_id, late)
    assert (refused.outcome, refused.hold) == (ClaimOutcome.CLOSED, None)
    assert await rows(commerce, holds, holds.c.customer_id == late) == []
    # The early buyer's retried message still finds the hold, and it can be paid.
    again = await commerce.claims.claim(drop_id, early, claim_key="msg-1")
    assert (again.outcome, again.hold) == (ClaimOutcome.ALREADY_HELD, held.hold)
    assert (await pay(commerce, held.hold.id, early, "pi_early")).outcome == "paid"


async def test_after_the_drop_closes_a_holder_asking_again_is_told_it_is_closed(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    (holder,) = await people(commerce, "holder")
    held = await commerce.claims.claim(drop_id, holder, claim_key="msg-1")
    await commerce.drops.close(drop_id)
    assert (await commerce.claims.claim(drop_id, holder)).outcome is ClaimOutcome.CLOSED
    replay = await commerce.claims.claim(drop_id, holder, claim_key="msg-1")
    assert (replay.outcome, replay.hold) == (ClaimOutcome.ALREADY_HELD, held.hold)


async def test_a_claim_before_the_drop_opens_says_when_it_opens(commerce, clock):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+10m")))
    (early,) = await people(commerce, "early")
    result = await commerce.claims.claim(drop_id, early)
    assert result.outcome is ClaimOutcome.NOT_OPEN
    assert result.opens_at == clock.now() + timedelta(minutes=10)


async def test_a_claim_without_a_pool_goes_to_ship_or_else_the_only_pool(commerce):
    pickup_first = collab_spec(ship=1, pickup=1)
    pickup_first["items"][0]["pools"] = {PICKUP: 1, "ship": 1}  # ship is not listed first
    collab = await live_drop(commerce, pickup_first)
    pickup_only = await live_drop(commerce, pickup_only_spec(1))
    (buyer,) = await people(commerce, "buyer")
    assert [s.pool for s in (await commerce.drops.view(collab)).stock] == [PICKUP, "ship"]
    assert (await commerce.claims.claim(collab, buyer)).hold.pool == "ship"
    assert (await commerce.claims.claim(pickup_only, buyer)).hold.pool == PICKUP


async def test_a_flavour_must_be_named_and_is_matched_ignoring_case(commerce):
    drop_id = await live_drop(commerce, flavours_spec(spicy=1, mild=1))
    (buyer,) = await people(commerce, "buyer")
    with pytest.raises(InvalidInput) as unnamed:
        await commerce.claims.claim(drop_id, buyer)
    assert (unnamed.value.field, unnamed.value.problem) == ("sku", f"choose one of {SPICY}, {MILD}")
    with pytest.raises(UnknownItem, match="'NOPE' is not sold") as unknown:
        await commerce.claims.claim(drop_id, buyer, sku="NOPE")
    assert unknown.value.details == {"sku": "NOPE"}
    with pytest.raises(UnknownItem, match=f"{MILD} has no pool") as no_pool:
        await commerce.claims.claim(drop_id, buyer, sku=MILD, pool=PICKUP)
    assert no_pool.value.details == {"pool": PICKUP}
    await commerce.claims.validate(drop_id, sku="chips-mild")
    with pytest.raises(InvalidInput):
        await commerce.claims.validate(drop_id)
    with pytest.raises(UnknownItem):
        await commerce.claims.validate(drop_id, sku=MILD, pool=PICKUP)
    assert await rows(commerce, holds) == []
    held = await commerce.claims.claim(drop_id, buyer, sku="chips-mild")
    assert (held.outcome, held.hold.sku) == (HELD, MILD)


async def test_a_bundle_claim_holds_the_whole_bundle_in_a_pool_it_has(commerce):
    drop_id = await live_drop(commerce, bundle_spec(chips=2, salsa=2))
    (buyer,) = await people(commerce, "buyer")
    with pytest.raises(UnknownItem, match="no pool") as no_pool:
        await commerce.claims.claim(drop_id, buyer, pool=PICKUP)
    assert no_pool.value.details == {"pool": PICKUP}
    held = await commerce.claims.claim(drop_id, buyer, sku="CHIPS")
    assert (held.hold.sku, held.hold.pool) == (None, "ship")
    view = await commerce.drops.view(drop_id)
    assert [counts(s) for s in view.stock] == [(0, 1, 1), (0, 1, 1)]


async def test_a_claim_on_an_unknown_drop_is_refused(commerce):
    (buyer,) = await people(commerce, "buyer")
    with pytest.raises(DropNotFound) as missing:
        await commerce.claims.claim(424242, buyer)
    assert (str(missing.value), missing.value.details) == (
        "drop 424242 does not exist",
        {"drop_id": 424242},
    )


async def test_a_pool_another_process_added_by_restocking_is_claimable_here(commerce, clock):
    drop_id = await live_drop(commerce, collab_spec(ship=1, pickup=1))
    elsewhere = Commerce.build(commerce.db, clock=clock)  # a second process, its own cache
    first, second, third = await people(commerce, "first", "second", "third")
    assert (await elsewhere.claims.claim(drop_id, first, pool="ship")).outcome is HELD

    await commerce.drops.restock(drop_id, "TOTE", 2, pool="pickup:market", new_pool=True)

    held = await elsewhere.claims.claim(drop_id, second, pool="pickup:market")
    assert held.hold is not None, held
    assert (held.outcome, held.hold.pool) == (HELD, "pickup:market")
    checker, joiner = (Commerce.build(commerce.db, clock=clock) for _ in range(2))
    for process in (checker, joiner):
        await process.claims.validate(drop_id, pool="ship")  # cached before the restock
    await commerce.drops.restock(drop_id, "TOTE", 1, pool="pickup:depot", new_pool=True)
    await checker.claims.validate(drop_id, pool="pickup:depot")
    joined = await joiner.claims.join_waitlist(drop_id, third, pool="pickup:depot")
    assert joined.hold is not None, joined
    assert (joined.outcome, joined.hold.pool) == (HELD, "pickup:depot")
    view = await elsewhere.drops.view(drop_id)
    assert counts(line(view, "TOTE", "pickup:market")) == (0, 1, 1)


async def test_a_hold_or_claim_key_in_one_drop_is_never_an_answer_in_another(commerce):
    first = await live_drop(commerce, capsule_spec(2))
    second = await live_drop(commerce, capsule_spec(1))
    fan, other = await people(commerce, "fan", "other")
    assert (await commerce.claims.claim(first, fan, claim_key="msg-7")).outcome is HELD
    await commerce.claims.claim(second, other)  # the second drop is sold out

    by_key = await commerce.claims.claim(second, fan, claim_key="msg-7")
    anew = await commerce.claims.claim(second, fan)

    assert (by_key.outcome, by_key.hold) == (ClaimOutcome.SOLD_OUT, None)
    assert (anew.outcome, anew.hold) == (ClaimOutcome.SOLD_OUT, None)


async def test_a_sold_out_flavour_never_refuses_the_other_in_the_same_batch(commerce):
    drop_id = await live_drop(commerce, flavours_spec(spicy=1, mild=2))
    holder, spicy_fan, mild_fan = await people(commerce, "holder", "spicy", "mild")
    await commerce.claims.claim(drop_id, holder, sku=SPICY)

    refused, taken = await asyncio.gather(  # decided together, in this order
        commerce.claims.claim(drop_id, spicy_fan, sku=SPICY),
        commerce.claims.claim(drop_id, mild_fan, sku=MILD),
    )

    assert (refused.outcome, taken.outcome) == (ClaimOutcome.SOLD_OUT, HELD)
    assert taken.hold.sku == MILD


async def test_stock_is_listed_item_by_item_with_a_new_pool_under_its_item(commerce):
    spec = flavours_spec(spicy=1, mild=1)
    spec["drop"]["format"] = "collab"
    for item in spec["items"]:
        item["pools"][PICKUP] = 1
    drop_id = await live_drop(commerce, spec)
    await commerce.drops.restock(drop_id, SPICY, 2, pool="pickup:market", new_pool=True)

    view = await commerce.drops.view(drop_id)

    assert [(s.sku, s.pool) for s in view.stock] == [
        (SPICY, "ship"),
        (SPICY, PICKUP),
        (SPICY, "pickup:market"),
        (MILD, "ship"),
        (MILD, PICKUP),
    ]
    ids = {(r.sku, r.pool): r.id for r in await rows(commerce, drop_stock)}
    assert [s.stock_id for s in view.stock] == [ids[(s.sku, s.pool)] for s in view.stock]


async def test_a_claim_is_priced_from_its_own_drops_catalogue(commerce):
    first = await live_drop(commerce, capsule_spec(5))
    dearer = capsule_spec(5)
    dearer["products"][0]["price"] = "15.00"
    second = await live_drop(commerce, dearer)
    (buyer,) = await people(commerce, "buyer")
    assert (await commerce.claims.claim(second, buyer)).hold.price_minor == 1500
    assert (await commerce.claims.claim(first, buyer)).hold.price_minor == 1200
