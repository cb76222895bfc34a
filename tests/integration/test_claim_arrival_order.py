"""Claims are decided in the order they arrived, not the order they reached their drop's
queue: finding the customer or the drop takes longer for some claimants than for others,
and a later claimant must not overtake an earlier one while it does (the design's
fairness rule: "claims are ordered by server arrival time")."""

from __future__ import annotations

import asyncio

import pytest

from commerce.domain.errors import DomainError
from commerce.domain.model import ClaimOutcome, ClaimResult
from tests.helpers import capsule_spec, customers, eventually, live_drop


async def test_an_earlier_arrival_slower_to_reach_the_queue_still_goes_first(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    ann, bo = await customers(commerce, 2)
    commerce.claims.line.patience = 3600  # only the earlier claim may let the later one go
    with commerce.claims.arrival() as ann_arrived:
        later = asyncio.create_task(commerce.claims.claim(drop_id, bo))
        await eventually(lambda: commerce.claims.queued(drop_id) == 1, what="bo's claim queued")
        assert not later.done()  # bo waits for ann, who arrived first
        first = await commerce.claims.claim(drop_id, ann, arrival=ann_arrived)
    assert first.outcome is ClaimOutcome.HELD
    assert (await later).outcome is ClaimOutcome.SOLD_OUT


async def test_many_claims_reaching_the_queue_in_reverse_are_decided_as_they_arrived(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    buyers = await customers(commerce, 12)
    commerce.claims.line.patience = 3600
    arrivals = [commerce.claims.arrival() for _ in buyers]
    claims: list[asyncio.Task[ClaimResult]] = []
    for buyer, arrival in reversed(list(zip(buyers, arrivals, strict=True))):
        claims.append(asyncio.create_task(commerce.claims.claim(drop_id, buyer, arrival=arrival)))
        if arrival is not arrivals[0]:  # the first to arrive lets them all be decided
            await eventually(
                lambda: commerce.claims.queued(drop_id) == len(claims), what="the claim queued"
            )
    results = [await claim for claim in reversed(claims)]  # back in arrival order
    assert [r.outcome for r in results] == [ClaimOutcome.HELD] * 3 + [ClaimOutcome.SOLD_OUT] * 9
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].held, view.stock[0].available) == (3, 0)


async def test_a_place_given_up_without_a_claim_frees_the_line_at_once(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    (bo,) = await customers(commerce, 1)
    commerce.claims.line.patience = 3600
    with commerce.claims.arrival():  # e.g. a !buy that was refused before claiming
        later = asyncio.create_task(commerce.claims.claim(drop_id, bo))
        await eventually(lambda: commerce.claims.queued(drop_id) == 1, what="bo's claim queued")
        assert not later.done()
    assert (await later).outcome is ClaimOutcome.HELD
    assert commerce.claims.line.on_the_way == 0


async def test_a_place_that_never_comes_forward_holds_the_line_up_only_so_long(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    bo, cy = await customers(commerce, 2)
    commerce.claims.line.patience = 0.05
    stuck = commerce.claims.arrival()  # its claimant never claims nor gives its place up
    assert (await commerce.claims.claim(drop_id, bo)).outcome is ClaimOutcome.HELD
    assert commerce.claims.line.on_the_way == 0  # passed over, not waited on again
    assert commerce.claims.line.passed_over == 1
    assert (await commerce.claims.claim(drop_id, cy)).outcome is ClaimOutcome.SOLD_OUT
    stuck.leave()


async def test_a_refused_claim_gives_its_place_up(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    (bo,) = await customers(commerce, 1)
    commerce.claims.line.patience = 3600
    with pytest.raises(DomainError, match="NOPE"):
        await commerce.claims.claim(drop_id, bo, sku="NOPE")
    assert commerce.claims.line.on_the_way == 0
    assert (await commerce.claims.claim(drop_id, bo)).outcome is ClaimOutcome.HELD


async def test_waitlist_places_go_by_arrival_not_by_who_was_quicker_to_look_up(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    holder, ann, bo = await customers(commerce, 3)
    assert (await commerce.claims.claim(drop_id, holder)).outcome is ClaimOutcome.HELD
    commerce.claims.line.patience = 3600
    with commerce.claims.arrival() as ann_arrived:
        later = asyncio.create_task(commerce.claims.join_waitlist(drop_id, bo))
        await eventually(lambda: commerce.claims.line.on_the_way == 2, what="bo's join on its way")
        first = await commerce.claims.join_waitlist(drop_id, ann, arrival=ann_arrived)
    assert first.waitlist_position == 1
    assert (await later).waitlist_position == 2


async def test_a_free_unit_goes_to_an_earlier_waitlist_join_before_a_later_claim(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    ann, bo = await customers(commerce, 2)
    commerce.claims.line.patience = 3600
    with commerce.claims.arrival() as ann_arrived:
        later = asyncio.create_task(commerce.claims.claim(drop_id, bo))
        await eventually(lambda: commerce.claims.queued(drop_id) == 1, what="bo's claim queued")
        joined = await commerce.claims.join_waitlist(drop_id, ann, arrival=ann_arrived)
    assert joined.outcome is ClaimOutcome.HELD  # held at once: she was first
    assert (await later).outcome is ClaimOutcome.SOLD_OUT


async def test_a_waitlist_join_waits_for_the_earlier_claims_in_the_queue(commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    buyers = await customers(commerce, 3)
    joiner = buyers.pop()
    commerce.claims.line.patience = 3600
    arrivals = [commerce.claims.arrival() for _ in buyers]
    join = asyncio.create_task(commerce.claims.join_waitlist(drop_id, joiner))
    claims = [
        asyncio.create_task(commerce.claims.claim(drop_id, buyer, arrival=arrival))
        for buyer, arrival in zip(buyers, arrivals, strict=True)
    ]
    assert [(await claim).outcome for claim in claims] == [ClaimOutcome.HELD] * 2
    joined = await join
    assert (joined.outcome, joined.waitlist_position) == (ClaimOutcome.SOLD_OUT, 1)
