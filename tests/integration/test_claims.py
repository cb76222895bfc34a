"""The money path under a flash-sale burst, on both engines."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import func, select

from commerce.domain.errors import InvalidInput, UnknownItem
from commerce.domain.model import ClaimOutcome
from commerce.storage.tables import claims, holds
from tests.helpers import (
    EventLog,
    assert_consistent,
    bundle_spec,
    capsule_spec,
    collab_spec,
    customers,
    live_drop,
)


async def count_rows(commerce, table, *where) -> int:
    async with commerce.db.read() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(table).where(*where))).scalar()
        )


async def test_500_concurrent_distinct_claims_on_10_units_make_exactly_10_holds(commerce):
    drop_id = await live_drop(commerce, capsule_spec(10))
    buyers = await customers(commerce, 500)

    results = await asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers))

    outcomes = Counter(r.outcome for r in results)
    assert outcomes == {ClaimOutcome.HELD: 10, ClaimOutcome.SOLD_OUT: 490}
    assert await count_rows(commerce, holds, holds.c.drop_id == drop_id) == 10
    assert await count_rows(commerce, claims, claims.c.drop_id == drop_id) == 500
    view = await commerce.drops.view(drop_id)
    assert_consistent(view)
    assert (view.stock[0].held, view.stock[0].available) == (10, 0)


async def test_claims_are_decided_in_arrival_order(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    buyers = await customers(commerce, 12)
    results = await asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers))
    # Fairness: the first three to arrive are the three who hold.
    assert [r.outcome for r in results[:3]] == [ClaimOutcome.HELD] * 3
    async with commerce.db.read() as conn:
        log = (await conn.execute(select(claims.c.arrived_at, claims.c.decided_at))).all()
    assert all(row.decided_at >= row.arrived_at for row in log)


async def test_a_customer_double_clicking_20_times_gets_one_hold(commerce):
    drop_id = await live_drop(commerce, capsule_spec(10))
    (buyer,) = await customers(commerce, 1)

    results = await asyncio.gather(*(commerce.claims.claim(drop_id, buyer) for _ in range(20)))

    held = [r for r in results if r.outcome is ClaimOutcome.HELD]
    assert len(held) == 1
    assert {r.outcome for r in results} == {ClaimOutcome.HELD, ClaimOutcome.ALREADY_HELD}
    assert {r.hold.id for r in results} == {held[0].hold.id}
    assert await count_rows(commerce, holds) == 1


async def test_the_same_claim_key_retried_concurrently_returns_the_first_hold(commerce):
    drop_id = await live_drop(commerce, capsule_spec(10, per_customer_limit=5))
    (buyer,) = await customers(commerce, 1)
    results = await asyncio.gather(
        *(commerce.claims.claim(drop_id, buyer, claim_key="msg-42") for _ in range(10))
    )
    assert len({r.hold.id for r in results}) == 1
    assert await count_rows(commerce, holds) == 1


async def test_per_customer_limit_holds_under_concurrency_with_distinct_keys(commerce):
    drop_id = await live_drop(commerce, capsule_spec(10, per_customer_limit=2))
    (buyer,) = await customers(commerce, 1)
    results = await asyncio.gather(
        *(commerce.claims.claim(drop_id, buyer, claim_key=f"k{i}") for i in range(10))
    )
    # Ten different requests (new links, new chat messages): never more than the limit.
    assert sum(1 for r in results if r.outcome is ClaimOutcome.HELD) == 2
    assert await count_rows(commerce, holds) == 2
    refused = {r.outcome for r in results if r.outcome is not ClaimOutcome.HELD}
    assert refused == {ClaimOutcome.ALREADY_HELD}


async def test_bundle_with_unequal_parts_never_splits_and_is_bounded_by_the_smaller(commerce):
    drop_id = await live_drop(commerce, bundle_spec(chips=7, salsa=4))
    view = await commerce.drops.view(drop_id)
    assert view.available_units() == 4
    buyers = await customers(commerce, 60)

    results = await asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers))

    assert sum(r.outcome is ClaimOutcome.HELD for r in results) == 4
    view = await commerce.drops.view(drop_id)
    by_sku = {line.sku: line for line in view.stock}
    assert (by_sku["CHIPS"].held, by_sku["SALSA"].held) == (4, 4)  # whole bundles only
    assert (by_sku["CHIPS"].available, by_sku["SALSA"].available) == (3, 0)
    assert view.available_units() == 0
    assert_consistent(view)


async def test_bundle_payment_sells_every_part(commerce):
    drop_id = await live_drop(commerce, bundle_spec(chips=2, salsa=2))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    assert order.amount.amount_minor == 950
    await commerce.orders.confirm_payment(order.id, "pi_1")
    view = await commerce.drops.view(drop_id)
    assert [(s.sku, s.sold, s.held) for s in view.stock] == [("CHIPS", 1, 0), ("SALSA", 1, 0)]


async def test_collab_pools_are_separate_and_claims_name_the_pool(commerce):
    drop_id = await live_drop(commerce, collab_spec(ship=1, pickup=2))
    buyers = await customers(commerce, 4)
    pickup = await asyncio.gather(
        *(commerce.claims.claim(drop_id, c, pool="pickup:corner-deli") for c in buyers[:3])
    )
    assert Counter(r.outcome for r in pickup) == {ClaimOutcome.HELD: 2, ClaimOutcome.SOLD_OUT: 1}
    ship = await commerce.claims.claim(drop_id, buyers[3], pool="ship")
    assert ship.outcome is ClaimOutcome.HELD
    with pytest.raises(UnknownItem):
        await commerce.claims.claim(drop_id, buyers[3], pool="pickup:elsewhere")


async def test_claims_before_open_and_after_close_are_refused_without_a_hold(commerce):
    from commerce.dropfile import validate_spec

    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+10m")))
    (buyer,) = await customers(commerce, 1)
    early = await commerce.claims.claim(drop_id, buyer)
    assert early.outcome is ClaimOutcome.NOT_OPEN and early.opens_at is not None
    await commerce.drops.open(drop_id)
    await commerce.drops.close(drop_id)
    late = await commerce.claims.claim(drop_id, buyer)
    assert late.outcome is ClaimOutcome.CLOSED
    assert await count_rows(commerce, holds) == 0


async def test_bad_claim_input_is_refused_and_changes_nothing(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    (buyer,) = await customers(commerce, 1)
    with pytest.raises(InvalidInput, match="qty"):
        await commerce.claims.claim(drop_id, buyer, qty=0)
    with pytest.raises(InvalidInput, match="per customer"):
        await commerce.claims.claim(drop_id, buyer, qty=2)
    with pytest.raises(UnknownItem):
        await commerce.claims.claim(drop_id, buyer, sku="NOPE")
    assert await count_rows(commerce, holds) == 0
    assert await count_rows(commerce, claims) == 0


async def test_events_reach_subscribers_after_commit_and_sold_out_is_announced(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    buyers = await customers(commerce, 3)
    for c in buyers:
        await commerce.claims.claim(drop_id, c)
    names = log.names()
    assert names.count("HoldPlaced") == 2
    assert names.count("SoldOut") == 1
    assert names.index("SoldOut") > names.index("HoldPlaced")
    assert "DropOpened" in names


async def test_one_bad_claim_in_a_batch_does_not_fail_the_others(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    buyers = await customers(commerce, 4)
    ghost = 999_999  # no such customer: its insert violates the foreign key
    results = await asyncio.gather(
        *(commerce.claims.claim(drop_id, c) for c in [buyers[0], ghost, *buyers[1:]]),
        return_exceptions=True,
    )
    assert isinstance(results[1], Exception)
    others = [r for i, r in enumerate(results) if i != 1]
    outcomes = [r if isinstance(r, BaseException) else r.outcome for r in others]
    assert outcomes == [ClaimOutcome.HELD] * 4
    assert await count_rows(commerce, holds, holds.c.drop_id == drop_id) == 4
