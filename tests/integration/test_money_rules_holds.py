"""Money rules of holds, on both engines: who may let go of a hold, what a sweep expires,
what counts toward the per-customer limit, and what every claim leaves behind (its hold,
its audit row, its events and its log line).

Mutants judged equivalent (mutmut runs on SQLite; none changes what a buyer or the
database sees there):
- claims ``lock_drop(None, …)`` / ``lock_drop(conn, None)`` (_decide_batch, cancel_hold,
  join_waitlist, expire_due): a no-op on SQLite, whose BEGIN IMMEDIATE already serialises
  writers; the PostgreSQL row lock is exercised by the PostgreSQL concurrency tests.
- _decide_batch and _ClaimBatcher._drain ``zip(…, strict=True)`` -> ``strict=False``/
  ``None``/dropped: the zipped lists always have the same length.
- _claim_in_tx ``source[:32]`` -> ``[:33]``: SQLite does not enforce a column's length.
- _decide_batch skip bookkeeping (``qty >= exhausted`` -> ``>``, ``exhausted.get(None, …)``,
  ``qty + 2``, ``min(exhausted.get(None, …), …)``, ``queue_in_use=`` dropped, ``if skipped
  or True``): a claim that is not skipped is decided by its INSERT, with the same answer.
- _decide_batch ``shapes.get(None, drop_id)``: ``claim`` cached the shape before queueing.
- _answer_sold_out without ``claim_key.in_(keys)`` or ``customer_id.in_(…)``, or with
  ``order_by(None)``: it reads more of this drop's rows, but answers are looked up by the
  requests' own keys and customers; SQLite returns a customer's holds in id order.
- _queue_in_use ``limit`` changed, ``select(None)``, its drop or status filter dropped: it
  only lets a batch skip an UPDATE that filters by drop, customer and status itself.
- _active_hold and ClaimStatements.diagnose ``limit(1)`` -> ``2``/``None``,
  ``order_by(id)`` -> ``None``: the first row is read, and SQLite returns it in id order.
- ClaimStatements.diagnose cache bypassed (``stmt = None``, ``get(None)``): the same
  statement is rebuilt.
- stock.DropShape.has_target ``target(None, pool)`` / ``return False``, stock.ShapeCache.get
  bypassing its cache (``shape = None``, ``get(None)``), in ClaimService._shape the cache
  read or its shape lock keyed by ``None`` or ``has_target(None, pool)``, and
  ClaimService.claim's ``_shape(drop_id, None, pool)``: only make the same shape reload.
- ClaimStatements.place_hold cache bypassed (``stmt = None``, ``get(None)``): the same
  statement is rebuilt.
- Database.insert choosing the insert by a mutated dialect test: on SQLite both
  dialects' INSERT … ON CONFLICT DO NOTHING compile to the same SQL.
- ClaimService.__init__ ``max_batch = None`` or ``257``: a batch takes more of the queue;
  answers and their order are the same.
- ClaimStatements._build_place_hold ``literal(value, Type)`` -> ``literal(value)`` or
  ``literal(value, None)``: SQLite binds the same value; ``on_conflict_do_nothing`` with
  ``index_elements=None`` or upper-cased column names: the same on SQLite, where
  (drop_id, claim_key) is the only key a hold can collide on and names are
  case-insensitive.
- stock.stock_lines / ShapeCache._load ``order_by(position, id)`` -> ``order_by(position)``
  or ``order_by(position, None)``, and ShapeCache._load's order changed at all: SQLite
  sorts ties in id order, and a shape's lines are only looked up by SKU and pool (its
  first line, which picks the default pool, is the same in either order).
- _lapse_offers without ``status == "offered"``: would mark a 'claimed' entry whose hold
  lapsed 'lapsed'; nothing tells the two apart (both are served, both replaced on rejoin).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from commerce.core import Commerce
from commerce.domain.errors import HoldNotActive, HoldNotFound, InvalidInput
from commerce.domain.events import HoldCancelled, HoldExpired, HoldPlaced, SoldOut, StockChanged
from commerce.domain.model import ClaimOutcome, HoldStatus, OrderStatus
from commerce.dropfile import validate_spec
from commerce.storage.tables import claims, holds
from tests.helpers import EventLog, assert_consistent, capsule_spec, live_drop
from tests.integration.money_rules import HELD, counts, people, row, rows, statuses


async def test_cancelling_another_customers_hold_is_refused_and_changes_nothing(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    owner, other = await people(commerce, "owner", "other")
    held = await commerce.claims.claim(drop_id, owner)

    with pytest.raises(HoldNotFound) as refused:
        await commerce.claims.cancel_hold(held.hold.id, other)

    assert str(refused.value) == f"hold {held.hold.id} does not exist"
    assert refused.value.details == {"hold_id": held.hold.id}
    assert (await row(commerce, holds, held.hold.id)).status == "active"
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 1, 0)
    cancelled = await commerce.claims.cancel_hold(held.hold.id, owner)
    assert (cancelled.id, cancelled.status) == (held.hold.id, HoldStatus.CANCELLED)
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 0, 1)


async def test_the_creator_may_cancel_any_hold_but_not_one_that_does_not_exist(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(1))
    (owner,) = await people(commerce, "owner")
    held = await commerce.claims.claim(drop_id, owner)
    with pytest.raises(HoldNotFound):
        await commerce.claims.cancel_hold(held.hold.id + 100)
    clock.advance(7)
    cancelled = await commerce.claims.cancel_hold(held.hold.id)  # no customer: the creator
    assert cancelled == replace(held.hold, status=HoldStatus.CANCELLED)
    stored = await row(commerce, holds, held.hold.id)
    assert (stored.status, stored.ended_at) == ("cancelled", clock.now())


async def test_a_hold_that_lapsed_or_was_cancelled_cannot_be_cancelled_again(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60, per_customer_limit=2))
    (owner,) = await people(commerce, "owner")
    lapsing = await commerce.claims.claim(drop_id, owner)
    clock.advance(60)  # expires_at is exclusive
    with pytest.raises(HoldNotActive) as lapsed:
        await commerce.claims.cancel_hold(lapsing.hold.id, owner)
    assert str(lapsed.value) == f"hold {lapsing.hold.id} is no longer active"
    assert lapsed.value.details == {"hold_id": lapsing.hold.id}
    assert (await row(commerce, holds, lapsing.hold.id)).status == "active"  # the sweep's job
    held = await commerce.claims.claim(drop_id, owner)
    await commerce.claims.cancel_hold(held.hold.id, owner)
    with pytest.raises(HoldNotActive):
        await commerce.claims.cancel_hold(held.hold.id, owner)
    assert_consistent(await commerce.drops.view(drop_id))


async def test_cancelling_releases_exactly_its_units_and_tells_everyone(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(5, per_customer_limit=2))
    owner, other = await people(commerce, "owner", "other")
    mine = await commerce.claims.claim(drop_id, owner, qty=2)
    theirs = await commerce.claims.claim(drop_id, other)
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 3, 2)

    await commerce.claims.cancel_hold(mine.hold.id, owner)

    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 1, 4)
    assert (await row(commerce, holds, theirs.hold.id)).status == "active"
    assert log.of(HoldCancelled) == [HoldCancelled(drop_id, mine.hold.id, owner)]
    assert log.of(StockChanged)[-1] == StockChanged(drop_id, 4, 1, 0, 5)


async def test_a_sweep_expires_only_the_holds_that_lapsed(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    early, late = await people(commerce, "early", "late")
    first = await commerce.claims.claim(drop_id, early)
    clock.advance(30)
    second = await commerce.claims.claim(drop_id, late)
    clock.advance(29)
    assert await commerce.claims.expire_due() == 0

    clock.advance(1)  # exactly the first hold's expires_at; the second has 30 s left
    assert await commerce.claims.expire_due() == 1

    assert log.of(HoldExpired) == [HoldExpired(drop_id, first.hold.id, early)]
    assert await statuses(commerce, holds, drop_id) == {early: "expired", late: "active"}
    assert (await row(commerce, holds, first.hold.id)).ended_at == clock.now()
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 1, 4)
    assert log.of(StockChanged)[-1] == StockChanged(drop_id, 4, 1, 0, 5)
    order = await commerce.orders.checkout(second.hold.id, late, "test")
    assert (await commerce.orders.confirm_payment(order.id, "pi_late")).outcome == "paid"
    clock.advance(30)
    assert await commerce.claims.expire_due() == 0
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (1, 0, 4)


async def test_a_sweep_tidies_every_drop_each_on_its_own_counters(commerce, clock):
    first = await live_drop(commerce, capsule_spec(3, hold_seconds=60))
    second = await live_drop(commerce, capsule_spec(3, hold_seconds=60))
    a, b, c = await people(commerce, "a", "b", "c")
    for drop_id in (first, second):
        await commerce.claims.claim(drop_id, a)
        await commerce.claims.claim(drop_id, b)
    clock.advance(30)
    await commerce.claims.claim(first, c)
    clock.advance(30)  # a's and b's holds lapse in both drops; c's has 30 s left

    assert await commerce.claims.expire_due() == 4

    assert await statuses(commerce, holds, first) == {a: "expired", b: "expired", c: "active"}
    assert await statuses(commerce, holds, second) == {a: "expired", b: "expired"}
    assert counts((await commerce.drops.view(first)).stock[0]) == (0, 1, 2)
    assert counts((await commerce.drops.view(second)).stock[0]) == (0, 0, 3)


async def test_a_sweep_ticks_only_the_drops_where_a_hold_lapsed(commerce, clock):
    log = EventLog(commerce)
    lapsing = await live_drop(commerce, capsule_spec(3, hold_seconds=60))
    holding = await live_drop(commerce, capsule_spec(3, hold_seconds=600))
    sold = await live_drop(commerce, capsule_spec(3, hold_seconds=60))
    a, b, c = await people(commerce, "a", "b", "c")
    await commerce.claims.claim(lapsing, a)
    await commerce.claims.claim(holding, b)
    bought = await commerce.claims.claim(sold, c)
    order = await commerce.orders.checkout(bought.hold.id, c, "test")
    await commerce.orders.confirm_payment(order.id, "pi_c")
    clock.advance(60)  # only the first drop has a lapsed hold; the third's was paid
    log.events.clear()

    assert await commerce.claims.expire_due() == 1

    assert [e.drop_id for e in log.of(StockChanged)] == [lapsing]
    assert (await row(commerce, holds, bought.hold.id)).status == "converted"


async def test_another_process_with_a_cold_cache_cancels_sweeps_and_refunds(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(3, hold_seconds=60))
    buyer, quitter, lapser = await people(commerce, "buyer", "quitter", "lapser")
    bought = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(bought.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_buyer")
    let_go = await commerce.claims.claim(drop_id, quitter)
    await commerce.claims.claim(drop_id, lapser)
    clock.advance(60)

    canceller = Commerce.build(commerce.db, clock=clock)  # each its own empty cache
    sweeper = Commerce.build(commerce.db, clock=clock)
    refunder = Commerce.build(commerce.db, clock=clock)
    with pytest.raises(HoldNotActive):
        await canceller.claims.cancel_hold(let_go.hold.id, quitter)
    assert await sweeper.claims.expire_due() == 2
    assert (await refunder.orders.refund(order.id)).status is OrderStatus.REFUNDED
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 0, 3)
    fresh = Commerce.build(commerce.db, clock=clock)
    held = await fresh.claims.claim(drop_id, quitter)
    assert held.hold is not None, held
    assert (await fresh.claims.cancel_hold(held.hold.id, quitter)).status is HoldStatus.CANCELLED


async def test_the_limit_counts_paid_units_but_not_lapsed_or_cancelled_holds(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    paid, lapsed, cancelled = await people(commerce, "paid", "lapsed", "cancelled")
    bought = await commerce.claims.claim(drop_id, paid)
    order = await commerce.orders.checkout(bought.hold.id, paid, "test")
    await commerce.orders.confirm_payment(order.id, "pi_paid")
    lapsing = await commerce.claims.claim(drop_id, lapsed)
    let_go = await commerce.claims.claim(drop_id, cancelled)
    await commerce.claims.cancel_hold(let_go.hold.id, cancelled)

    assert (await commerce.claims.claim(drop_id, paid)).outcome is ClaimOutcome.LIMIT_REACHED
    again = await commerce.claims.claim(drop_id, cancelled)  # before the first one's expiry
    assert again.outcome is HELD and again.hold.id != let_go.hold.id
    clock.advance(60)
    renewed = await commerce.claims.claim(drop_id, lapsed)  # lapsed, not yet swept
    assert renewed.outcome is HELD and renewed.hold.id != lapsing.hold.id
    assert (await commerce.claims.claim(drop_id, paid)).outcome is ClaimOutcome.LIMIT_REACHED


async def test_the_limit_counts_the_units_of_every_open_hold(commerce):
    drop_id = await live_drop(commerce, capsule_spec(10, per_customer_limit=3))
    (fan,) = await people(commerce, "fan")
    assert (await commerce.claims.claim(drop_id, fan, qty=2, claim_key="a")).outcome is HELD
    over = await commerce.claims.claim(drop_id, fan, qty=2, claim_key="b")
    assert over.outcome is ClaimOutcome.ALREADY_HELD
    assert await rows(commerce, holds, holds.c.claim_key == "b") == []
    assert (await commerce.claims.claim(drop_id, fan, qty=1, claim_key="c")).outcome is HELD
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 3, 7)


async def test_on_a_sold_out_drop_a_customer_at_the_limit_is_told_so(commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    paid, other, stranger = await people(commerce, "paid", "other", "stranger")
    bought = await commerce.claims.claim(drop_id, paid)
    order = await commerce.orders.checkout(bought.hold.id, paid, "test")
    await commerce.orders.confirm_payment(order.id, "pi_paid")
    await commerce.claims.claim(drop_id, other)
    assert (await commerce.claims.claim(drop_id, paid)).outcome is ClaimOutcome.LIMIT_REACHED
    assert (await commerce.claims.claim(drop_id, stranger)).outcome is ClaimOutcome.SOLD_OUT


async def test_claims_decided_together_after_a_sell_out_get_the_one_by_one_answers(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(6, per_customer_limit=2))
    paid, holder, t1, t2, first, later = await people(
        commerce, "paid", "holder", "t1", "t2", "first", "later"
    )
    bought = await commerce.claims.claim(drop_id, paid, qty=2)
    order = await commerce.orders.checkout(bought.hold.id, paid, "test")
    await commerce.orders.confirm_payment(order.id, "pi_paid")
    a = await commerce.claims.claim(drop_id, holder, claim_key="k1")
    b = await commerce.claims.claim(drop_id, holder, claim_key="k2")  # two units left
    log.events.clear()

    # One batch: two take the last units, the first refusal marks the drop sold out and
    # the claims after it are answered without trying the insert.
    results = await asyncio.gather(
        commerce.claims.claim(drop_id, t1),
        commerce.claims.claim(drop_id, t2),
        commerce.claims.claim(drop_id, first),
        commerce.claims.claim(drop_id, paid),
        commerce.claims.claim(drop_id, holder, claim_key="k2"),
        commerce.claims.claim(drop_id, holder, claim_key="k3"),
        commerce.claims.claim(drop_id, later, qty=2),
    )

    assert [(r.outcome, r.hold) for r in results[2:]] == [
        (ClaimOutcome.SOLD_OUT, None),
        (ClaimOutcome.LIMIT_REACHED, None),
        (ClaimOutcome.ALREADY_HELD, b.hold),
        (ClaimOutcome.ALREADY_HELD, a.hold),
        (ClaimOutcome.SOLD_OUT, None),
    ]
    assert [r.outcome for r in results[:2]] == [HELD, HELD]
    logged = await rows(commerce, claims, claims.c.drop_id == drop_id)
    assert [(r.outcome, r.hold_id) for r in logged[-5:]] == [
        ("sold_out", None),
        ("limit_reached", None),
        ("already_held", b.hold.id),
        ("already_held", a.hold.id),
        ("sold_out", None),
    ]
    # Decided together, committed together: one stock tick for the whole batch.
    assert log.of(StockChanged) == [StockChanged(drop_id, 0, 4, 2, 6)]
    assert log.of(SoldOut) == [SoldOut(drop_id)]


async def test_a_claim_leaves_its_hold_audit_row_and_events(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=90))
    buyer, stranger, late = await people(commerce, "buyer", "stranger", "late")
    arrived = clock.now()
    clock.advance(2)
    source = "discord-button-" + "x" * 40

    held = await commerce.claims.claim(drop_id, buyer, source=source, arrived_at=arrived)

    now = clock.now()
    hold = held.hold
    assert (hold.drop_id, hold.customer_id, hold.qty, hold.status) == (
        drop_id,
        buyer,
        1,
        HoldStatus.ACTIVE,
    )
    assert (hold.created_at, hold.expires_at, hold.source) == (
        now,
        now + timedelta(seconds=90),
        source[:32],
    )
    stored = await row(commerce, holds, hold.id)
    assert (stored.status, stored.qty, stored.source, stored.expires_at) == (
        "active",
        1,
        source[:32],
        now + timedelta(seconds=90),
    )
    (audit,) = await rows(commerce, claims, claims.c.drop_id == drop_id)
    assert (audit.customer_id, audit.source, audit.outcome, audit.hold_id) == (
        buyer,
        source[:32],
        "held",
        hold.id,
    )
    assert (audit.arrived_at, audit.decided_at) == (arrived, now)
    assert log.of(HoldPlaced) == [HoldPlaced(drop_id, hold.id, buyer, hold.expires_at, source[:32])]
    assert log.of(StockChanged)[-1] == StockChanged(drop_id, 1, 1, 0, 2)
    assert log.of(SoldOut) == []

    await commerce.claims.claim(drop_id, stranger)
    refused = await commerce.claims.claim(drop_id, late)
    assert log.of(SoldOut) == [SoldOut(drop_id)]
    (last,) = await rows(commerce, claims, claims.c.customer_id == late)
    assert (last.outcome, last.hold_id, last.arrived_at) == ("sold_out", None, now)
    assert refused.outcome is ClaimOutcome.SOLD_OUT


async def test_every_claim_is_logged_with_its_outcome_and_ids(commerce, caplog):
    drop_id = await live_drop(commerce, capsule_spec(1))
    buyer, late = await people(commerce, "buyer", "late")
    with caplog.at_level(logging.INFO, logger="commerce.services.claims"):
        held = await commerce.claims.claim(drop_id, buyer)
        await commerce.claims.claim(drop_id, late)
    records = [r for r in caplog.records if r.name == "commerce.services.claims"]
    assert [r.getMessage() for r in records] == [
        f"claim held: drop {drop_id} customer {buyer} hold {held.hold.id}",
        f"claim sold_out: drop {drop_id} customer {late} hold None",
    ]
    assert [(r.drop_id, r.customer_id, r.outcome, r.hold_id) for r in records] == [
        (drop_id, buyer, "held", held.hold.id),
        (drop_id, late, "sold_out", None),
    ]


async def test_bad_quantities_and_claim_keys_are_refused_before_anything_is_held(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5, per_customer_limit=3))
    (buyer,) = await people(commerce, "buyer")
    for qty in (True, 0, -1, "1"):
        with pytest.raises(InvalidInput) as bad:
            await commerce.claims.claim(drop_id, buyer, qty=qty)
        assert (bad.value.field, bad.value.problem) == (
            "qty",
            "must be a whole number of at least 1",
        )
    with pytest.raises(InvalidInput) as over:
        await commerce.claims.claim(drop_id, buyer, qty=4)
    assert (over.value.field, over.value.problem) == ("qty", "at most 3 per customer")
    with pytest.raises(InvalidInput, match="claim_key: must be at most 128"):
        await commerce.claims.claim(drop_id, buyer, claim_key="k" * 129)
    assert await rows(commerce, holds) == []
    assert await rows(commerce, claims) == []
    longest = await commerce.claims.claim(drop_id, buyer, qty=3, claim_key="k" * 128)
    assert (longest.outcome, longest.hold.qty, longest.hold.source) == (HELD, 3, "chat")
    assert (await row(commerce, holds, longest.hold.id)).claim_key == "k" * 128


async def test_a_hold_placed_before_linking_accounts_still_counts_toward_the_limit(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    on_discord = await commerce.customers.resolve("discord:1001")
    assert (await commerce.claims.claim(drop_id, on_discord)).outcome is HELD
    await commerce.customers.link("twitch:2002", "discord:1001")  # a Twitch code redeemed
    linked = await commerce.customers.resolve("discord:1001")

    again = await commerce.claims.claim(drop_id, linked)

    assert again.outcome is not HELD
    assert len(await rows(commerce, holds, holds.c.drop_id == drop_id)) == 1


async def test_claims_beyond_one_batch_are_all_decided_in_arrival_order(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    buyers = await people(commerce, "b0", "b1", "b2", "b3", "b4")
    commerce.claims.max_batch = 2  # a surge larger than a batch

    results = await asyncio.wait_for(
        asyncio.gather(*(commerce.claims.claim(drop_id, c) for c in buyers)), timeout=30
    )

    assert [r.outcome for r in results] == [HELD] * 3 + [ClaimOutcome.SOLD_OUT] * 2
    assert [r.hold.customer_id for r in results[:3]] == buyers[:3]


async def test_a_claim_whose_caller_gave_up_never_stops_the_others(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    first, quitter, last, warm = await people(commerce, "first", "quitter", "last", "warm")
    await commerce.claims.claim(drop_id, warm)  # the drop's shape is cached: no reads below
    tasks = [
        asyncio.ensure_future(commerce.claims.claim(drop_id, c)) for c in (first, quitter, last)
    ]
    await asyncio.sleep(0)  # each claim is queued for the same batch
    tasks[1].cancel()

    done = await asyncio.wait_for(asyncio.gather(tasks[0], tasks[2]), timeout=30)

    assert [r.outcome for r in done] == [HELD, HELD]
    assert tasks[1].cancelled()


async def test_a_claim_on_a_draft_drop_is_not_open_yet(commerce):
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5)))
    (early,) = await people(commerce, "early")
    result = await commerce.claims.claim(drop_id, early)
    assert (result.outcome, result.opens_at, result.hold) == (ClaimOutcome.NOT_OPEN, None, None)


async def test_a_lone_claim_that_fails_raises_and_claims_queued_behind_it_are_decided(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    first, second, warm = await people(commerce, "first", "second", "warm")
    await commerce.claims.claim(drop_id, warm)  # the drop's shape is cached: no reads below
    ghost = asyncio.ensure_future(commerce.claims.claim(drop_id, 999_999))  # no such customer
    await asyncio.sleep(0)  # the ghost's claim is being decided, alone in its batch
    behind = [asyncio.ensure_future(commerce.claims.claim(drop_id, c)) for c in (first, second)]

    with pytest.raises(IntegrityError):
        await asyncio.wait_for(ghost, timeout=30)
    decided = await asyncio.wait_for(asyncio.gather(*behind), timeout=30)

    assert [r.outcome for r in decided] == [HELD, HELD]


async def test_batched_refusals_count_only_this_drops_open_holds_and_purchases(commerce):
    other = await live_drop(commerce, capsule_spec(5))
    drop_id = await live_drop(commerce, capsule_spec(4, per_customer_limit=2))
    fan, twice, once, quitter, holder, stranger = await people(
        commerce, "fan", "twice", "once", "quitter", "holder", "stranger"
    )
    assert (await commerce.claims.claim(other, fan, claim_key="msg-7")).outcome is HELD
    for buyer in (twice, twice, once):
        held = await commerce.claims.claim(drop_id, buyer)
        order = await commerce.orders.checkout(held.hold.id, buyer, "test")
        await commerce.orders.confirm_payment(order.id, f"pi_{held.hold.id}")
    let_go = await commerce.claims.claim(drop_id, quitter, qty=1)
    await commerce.claims.cancel_hold(let_go.hold.id, quitter)
    let_go = await commerce.claims.claim(drop_id, quitter, qty=1)
    await commerce.claims.cancel_hold(let_go.hold.id, quitter)
    await commerce.claims.claim(drop_id, holder)  # the last unit: sold out

    results = await asyncio.gather(  # one batch; all but the first skip the insert
        commerce.claims.claim(drop_id, stranger),
        commerce.claims.claim(drop_id, fan, claim_key="msg-7"),
        commerce.claims.claim(drop_id, fan),
        commerce.claims.claim(drop_id, twice),
        commerce.claims.claim(drop_id, once),
        commerce.claims.claim(drop_id, quitter),
    )

    assert [(r.outcome, r.hold) for r in results] == [
        (ClaimOutcome.SOLD_OUT, None),
        (ClaimOutcome.SOLD_OUT, None),
        (ClaimOutcome.SOLD_OUT, None),
        (ClaimOutcome.LIMIT_REACHED, None),
        (ClaimOutcome.SOLD_OUT, None),
        (ClaimOutcome.SOLD_OUT, None),
    ]
