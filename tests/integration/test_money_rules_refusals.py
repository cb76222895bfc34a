"""The facts behind answering claims from memory, on both engines: a drop is answered
without the database only when every claim would be refused, and never for the people
who hold or bought in it; and a customer's open hold is found for their checkout page.

Mutant judged equivalent: refusal_snapshot ``coalesce(merged_into, id)`` ->
``coalesce(None, id)``: customers.link moves holds and orders to the kept customer, so a
holding row never names a merged one.
"""

from __future__ import annotations

from datetime import timedelta

from commerce.domain.events import StockChanged
from commerce.domain.model import ClaimOutcome
from commerce.dropfile import validate_spec
from tests.helpers import EventLog, bundle_spec, capsule_spec, live_drop
from tests.integration.money_rules import people


def identity(name: str) -> str:
    return f"web:{name}0@example.com"  # what ``people`` resolves for ``name``


async def test_a_drop_with_units_to_claim_or_not_yet_open_is_never_refused_from_memory(
    commerce, clock
):
    live = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    draft = await commerce.drops.create(validate_spec(capsule_spec(1)))
    scheduled = await commerce.drops.create(validate_spec(capsule_spec(1, opens_at="+1h")))
    for drop_id in (live, draft, scheduled):
        assert await commerce.claims.refusal_snapshot(drop_id) is None
    (holder,) = await people(commerce, "holder")
    await commerce.claims.claim(live, holder)
    assert await commerce.claims.refusal_snapshot(live) is not None
    clock.advance(60)  # the hold lapsed: its unit can be claimed again, before any sweep
    assert await commerce.claims.refusal_snapshot(live) is None


async def test_a_sold_out_drop_is_refused_from_memory_except_for_holders_and_buyers(
    commerce, clock
):
    drop_id = await live_drop(commerce, capsule_spec(3, hold_seconds=60))
    buyer, quitter, early, late = await people(commerce, "buyer", "quitter", "early", "late")
    let_go = await commerce.claims.claim(drop_id, quitter)
    await commerce.claims.cancel_hold(let_go.hold.id, quitter)
    bought = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(bought.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_buyer")
    clock.advance(10)
    first = await commerce.claims.claim(drop_id, early)
    clock.advance(10)
    await commerce.claims.claim(drop_id, late)

    snapshot = await commerce.claims.refusal_snapshot(drop_id)

    assert snapshot.answer is ClaimOutcome.SOLD_OUT
    assert snapshot.holders == {identity("buyer"), identity("early"), identity("late")}
    assert snapshot.first_lapse == first.hold.expires_at == clock.now() + timedelta(seconds=50)
    # A holder who links another account is recognised under both.
    await commerce.customers.link("twitch:4242", identity("early"))
    snapshot = await commerce.claims.refusal_snapshot(drop_id)
    assert "twitch:4242" in snapshot.holders and identity("early") in snapshot.holders


async def test_a_closed_drop_is_refused_from_memory_as_closed(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    (holder,) = await people(commerce, "holder")
    held = await commerce.claims.claim(drop_id, holder)
    await commerce.drops.close(drop_id)

    snapshot = await commerce.claims.refusal_snapshot(drop_id)

    assert (snapshot.answer, snapshot.holders) == (ClaimOutcome.CLOSED, {identity("holder")})
    assert snapshot.first_lapse == held.hold.expires_at
    await commerce.claims.cancel_hold(held.hold.id, holder)
    snapshot = await commerce.claims.refusal_snapshot(drop_id)
    assert (snapshot.holders, snapshot.first_lapse) == (frozenset(), None)


async def test_holding_finds_the_customers_oldest_open_hold_and_nothing_after_it_ends(
    commerce, clock
):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60, per_customer_limit=2))
    other = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    fan, stranger = await people(commerce, "fan", "stranger")
    assert await commerce.claims.holding(drop_id, fan) is None
    first = await commerce.claims.claim(drop_id, fan, claim_key="a")
    clock.advance(30)
    second = await commerce.claims.claim(drop_id, fan, claim_key="b")
    await commerce.claims.claim(other, stranger)

    assert await commerce.claims.holding(drop_id, fan) == first.hold
    assert await commerce.claims.holding(drop_id, stranger) is None
    await commerce.claims.cancel_hold(first.hold.id, fan)
    assert await commerce.claims.holding(drop_id, fan) == second.hold
    clock.advance(60)
    assert await commerce.claims.holding(drop_id, fan) is None


async def test_a_bundle_short_of_one_part_is_refused_from_memory(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, bundle_spec(chips=2, salsa=1))
    (buyer,) = await people(commerce, "buyer")
    assert await commerce.claims.refusal_snapshot(drop_id) is None
    await commerce.claims.claim(drop_id, buyer)  # a chips bag is left, but no salsa
    snapshot = await commerce.claims.refusal_snapshot(drop_id)
    assert (snapshot.answer, snapshot.holders) == (ClaimOutcome.SOLD_OUT, {identity("buyer")})
    # Its ticks count bundles too: one held, none left, of one.
    assert log.of(StockChanged)[-1] == StockChanged(drop_id, 0, 1, 0, 1)


async def test_holders_and_lapses_of_another_drop_are_not_this_drops(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=600))
    other = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    holder, elsewhere = await people(commerce, "holder", "elsewhere")
    await commerce.claims.claim(other, elsewhere)  # lapses first, in another drop
    held = await commerce.claims.claim(drop_id, holder)

    snapshot = await commerce.claims.refusal_snapshot(drop_id)

    assert (snapshot.holders, snapshot.first_lapse) == (
        {identity("holder")},
        held.hold.expires_at,
    )
