"""Money rules of orders, on both engines: cancelling a pending order, refunds, late and
repeated payments, pay-at-pickup, and what each leaves in the order row.

Mutants judged equivalent on SQLite, where mutmut runs:
- ``_replay`` (every mutant), ``confirm_payment``'s ``except IntegrityError`` branch, the
  "lost a race" REPLAYED return in ``_settle`` and in ``_paid_at_pickup`` and the latter's
  ``status == "reserved"`` filter: only two payment deliveries interleaving between the
  read and the conditional UPDATE reach them, and SQLite serialises writers (PostgreSQL
  runs the races in test_money_concurrency / test_orders).
- ``_settle`` provider_ref lookup dropped (``seen = None``, ``where(None)``): the unique
  index on provider_ref, then ``_replay``, give the same answers.
- ``checkout`` ``select(holds.c.id)`` -> ``select(None)``: one row exactly when the hold is
  active; ``join(drops, …)`` without its ON clause: inferred from the only foreign key;
  ``on_conflict_do_nothing(index_elements=None | ["HOLD_ID"])``: the same on SQLite.
- ``refund`` ``lock_drop`` arguments (a no-op on SQLite) and its ``status == "pending"`` /
  ``status.in_(("paid", "reserved"))`` filters: the status was read in the same serialised
  transaction; ``refund_reason=reason[:64]`` -> ``[:65]``: SQLite does not enforce a
  column's length (PostgreSQL would, for a reason over 64 characters).
- ``confirm_payment``'s ``_replay`` pre-check skipped or given ``None``: ``_settle`` looks
  the provider reference up itself, under the lock, with the same answers.
- ``OrderService.__init__`` choosing the insert by a mutated dialect test: on SQLite both
  dialects' INSERT … ON CONFLICT DO NOTHING compile to the same SQL.
"""

from __future__ import annotations

import logging

import pytest

from commerce.core import Commerce
from commerce.domain.errors import (
    HoldNotActive,
    HoldNotFound,
    InvalidInput,
    InvalidState,
    OrderNotFound,
)
from commerce.domain.events import (
    OrderPaid,
    OrderRefunded,
    SoldOut,
    StockChanged,
    WaitlistOffered,
)
from commerce.domain.model import ClaimOutcome, Money, OrderStatus
from commerce.domain.payments import PaymentOutcome
from commerce.storage.tables import holds, orders, waitlist
from tests.helpers import EventLog, assert_consistent, capsule_spec, collab_spec, live_drop
from tests.integration.money_rules import (
    HELD,
    MILD,
    PICKUP,
    SPICY,
    counts,
    flavours_spec,
    line,
    people,
    row,
    statuses,
)


async def checkout(commerce, drop_id, customer, *, qty=1, provider="test", pool=None):
    held = await commerce.claims.claim(drop_id, customer, qty=qty, pool=pool)
    assert held.outcome is HELD
    return await commerce.orders.checkout(held.hold.id, customer, provider)


async def paid_order(commerce, drop_id, customer, ref, **kwargs):
    order = await checkout(commerce, drop_id, customer, **kwargs)
    assert (await commerce.orders.confirm_payment(order.id, ref)).outcome is PaymentOutcome.PAID
    return order


async def test_cancelling_a_pending_order_releases_only_its_hold(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, per_customer_limit=2))
    buyer, other, third = await people(commerce, "buyer", "other", "third")
    order = await checkout(commerce, drop_id, buyer, qty=2)
    other_order = await checkout(commerce, drop_id, other)
    await commerce.claims.claim(drop_id, third)
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 4, 1)
    clock.advance(5)

    cancelled = await commerce.orders.refund(order.id, reason="changed my mind " * 5)

    assert cancelled.status is OrderStatus.CANCELLED
    assert (await commerce.orders.get(other_order.id)).status is OrderStatus.PENDING
    assert await statuses(commerce, holds, drop_id) == {
        buyer: "cancelled",
        other: "active",
        third: "active",
    }
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 2, 3)
    stored = await row(commerce, orders, order.id)
    assert (stored.refund_reason, stored.ended_at) == (("changed my mind " * 5)[:64], clock.now())
    assert (await row(commerce, holds, order.hold_id)).ended_at == clock.now()
    # Money arriving for it afterwards is given back; nothing is sold.
    late = await commerce.orders.confirm_payment(order.id, "pi_late")
    assert (late.outcome, late.order.status) == (PaymentOutcome.REFUND_DUE, OrderStatus.CANCELLED)
    assert (await commerce.orders.refund(order.id)).status is OrderStatus.CANCELLED
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 2, 3)


async def test_a_cancelled_pending_order_hands_its_unit_to_the_first_waiter(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1))
    buyer, first, second = await people(commerce, "buyer", "first", "second")
    order = await checkout(commerce, drop_id, buyer)
    await commerce.claims.join_waitlist(drop_id, first)
    await commerce.claims.join_waitlist(drop_id, second)

    await commerce.orders.refund(order.id)

    assert [o.customer_id for o in log.of(WaitlistOffered)] == [first]
    assert await statuses(commerce, waitlist, drop_id) == {first: "offered", second: "waiting"}


async def test_cancelling_a_pending_order_after_its_hold_was_swept_moves_nothing(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    buyer, other = await people(commerce, "buyer", "other")
    order = await checkout(commerce, drop_id, buyer)
    clock.advance(30)
    await commerce.claims.claim(drop_id, other)
    clock.advance(30)
    assert await commerce.claims.expire_due() == 1

    cancelled = await commerce.orders.refund(order.id)

    assert cancelled.status is OrderStatus.CANCELLED
    assert await statuses(commerce, holds, drop_id) == {buyer: "expired", other: "active"}
    view = await commerce.drops.view(drop_id)
    assert counts(view.stock[0]) == (0, 1, 1)
    assert_consistent(view)


async def test_cancelling_a_pending_order_whose_hold_lapsed_unswept_frees_it_once(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    (buyer,) = await people(commerce, "buyer")
    order = await checkout(commerce, drop_id, buyer)
    clock.advance(60)
    await commerce.orders.refund(order.id)
    assert await commerce.claims.expire_due() == 0
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 0, 2)


async def test_a_refund_leaves_other_holds_alone_and_offers_the_unit_to_the_first_waiter(
    commerce, clock
):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(4, hold_seconds=600))
    buyer, h1, h2, h3, w1, w2 = await people(commerce, "buyer", "h1", "h2", "h3", "w1", "w2")
    order = await paid_order(commerce, drop_id, buyer, "pi_buyer")
    others = [(await commerce.claims.claim(drop_id, c)).hold for c in (h1, h2, h3)]
    for waiter in (w1, w2):
        assert (await commerce.claims.join_waitlist(drop_id, waiter)).waitlist_position
    assert len(log.of(SoldOut)) == 1
    clock.advance(10)

    refunded = await commerce.orders.refund(order.id)

    assert refunded.status is OrderStatus.REFUNDED
    assert log.of(OrderRefunded) == [OrderRefunded(drop_id, order.id, buyer, "requested")]
    assert await commerce.orders.get(order.id) == refunded
    for hold in others:
        stored = await row(commerce, holds, hold.id)
        assert (stored.status, stored.expires_at) == ("active", hold.expires_at)
    refunded_hold = await row(commerce, holds, order.hold_id)
    assert (refunded_hold.status, refunded_hold.ended_at) == ("cancelled", clock.now())
    (offer,) = log.of(WaitlistOffered)
    assert offer.customer_id == w1
    assert await statuses(commerce, waitlist, drop_id) == {w1: "offered", w2: "waiting"}
    view = await commerce.drops.view(drop_id)
    assert counts(view.stock[0]) == (0, 4, 0)
    assert_consistent(view)
    assert log.of(StockChanged)[-1] == StockChanged(drop_id, 0, 4, 0, 4)
    assert len(log.of(SoldOut)) == 1  # the unit went to the queue: no second "sold out"
    stored = await row(commerce, orders, order.id)
    assert (stored.refund_reason, stored.ended_at) == ("requested", clock.now())
    # The refunded hold no longer counts toward the buyer's limit.
    assert (await commerce.claims.claim(drop_id, buyer)).outcome is ClaimOutcome.SOLD_OUT


async def test_a_refunded_customer_may_buy_again(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await people(commerce, "buyer")
    order = await paid_order(commerce, drop_id, buyer, "pi_1")
    await commerce.orders.refund(order.id)
    again = await commerce.claims.claim(drop_id, buyer)
    assert again.outcome is HELD
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 1, 2)


async def test_a_reserved_pickup_order_can_be_refunded(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, collab_spec(ship=1, pickup=1))
    (buyer,) = await people(commerce, "buyer")
    order = await checkout(commerce, drop_id, buyer, provider="manual", pool=PICKUP)
    reserved = await commerce.orders.reserve(order.id)
    assert (reserved.outcome, reserved.order.status) == (
        PaymentOutcome.RESERVED,
        OrderStatus.RESERVED,
    )
    assert reserved.order.paid_at is None
    assert log.of(OrderPaid) == []

    refunded = await commerce.orders.refund(order.id, reason="no-show")

    assert refunded.status is OrderStatus.REFUNDED
    assert log.of(OrderRefunded) == [OrderRefunded(drop_id, order.id, buyer, "no-show")]
    view = await commerce.drops.view(drop_id)
    assert counts(line(view, "TOTE", PICKUP)) == (0, 0, 1)
    assert counts(line(view, "TOTE", "ship")) == (0, 0, 1)


async def test_a_pickup_payment_keeps_its_reference_and_time(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=2))
    cash, card = await people(commerce, "cash", "card")
    at_till = await checkout(commerce, drop_id, cash, provider="manual", pool=PICKUP)
    by_card = await checkout(commerce, drop_id, card, provider="manual", pool=PICKUP)
    for order in (at_till, by_card):
        await commerce.orders.reserve(order.id)
    clock.advance(3600)

    paid = await commerce.orders.mark_paid(at_till.id, "cash-001")
    assert paid.outcome is PaymentOutcome.PAID
    assert (paid.order.status, paid.order.provider_ref, paid.order.paid_at) == (
        OrderStatus.PAID,
        "cash-001",
        clock.now(),
    )
    again = await commerce.orders.mark_paid(at_till.id, "cash-002")
    assert (again.outcome, again.order.provider_ref) == (PaymentOutcome.REPLAYED, "cash-001")
    # A provider's webhook for a reserved order is the pickup payment too.
    webhook = await commerce.orders.confirm_payment(by_card.id, "pi_card")
    assert (webhook.outcome, webhook.order.provider_ref) == (PaymentOutcome.PAID, "pi_card")
    assert (await commerce.orders.get(by_card.id)).paid_at == clock.now()
    assert log.of(OrderPaid) == [
        OrderPaid(drop_id, at_till.id, at_till.hold_id, cash, 2000, "USD"),
        OrderPaid(drop_id, by_card.id, by_card.hold_id, card, 2000, "USD"),
    ]
    assert counts(line(await commerce.drops.view(drop_id), "TOTE", PICKUP)) == (2, 0, 0)


async def test_pay_at_pickup_only_applies_to_reserved_orders(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    pending, paid, quitter = await people(commerce, "pending", "paid", "quitter")
    waiting = await checkout(commerce, drop_id, pending)
    with pytest.raises(InvalidState, match=f"order {waiting.id} is pending, not reserved"):
        await commerce.orders.mark_paid(waiting.id, "cash-1")
    done = await paid_order(commerce, drop_id, paid, "pi_paid")
    replay = await commerce.orders.mark_paid(done.id, "cash-2")
    assert (replay.outcome, replay.order.provider_ref) == (PaymentOutcome.REPLAYED, "pi_paid")
    with pytest.raises(InvalidState, match=f"order {done.id} is paid"):
        await commerce.orders.reserve(done.id)
    await commerce.orders.reserve(waiting.id)
    with pytest.raises(InvalidState, match=f"order {waiting.id} is reserved"):
        await commerce.orders.reserve(waiting.id)
    cancelled = await checkout(commerce, drop_id, quitter)
    await commerce.orders.refund(cancelled.id)
    with pytest.raises(InvalidState, match=f"order {cancelled.id} is cancelled"):
        await commerce.orders.reserve(cancelled.id)


async def test_late_money_for_a_refunded_order_is_due_back_and_a_second_payment_is_flagged(
    commerce,
):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await people(commerce, "buyer")
    order = await paid_order(commerce, drop_id, buyer, "pi_a")
    second = await commerce.orders.confirm_payment(order.id, "pi_b")
    assert (second.outcome, second.order.provider_ref) == (PaymentOutcome.DUPLICATE, "pi_a")
    await commerce.orders.refund(order.id)
    late = await commerce.orders.confirm_payment(order.id, "pi_c")
    assert (late.outcome, late.order.status) == (PaymentOutcome.REFUND_DUE, OrderStatus.REFUNDED)
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 0, 3)


async def test_a_payment_after_the_hold_lapsed_is_refunded_with_its_reason(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(1, hold_seconds=60))
    (buyer,) = await people(commerce, "buyer")
    order = await checkout(commerce, drop_id, buyer)
    clock.advance(60)
    late = await commerce.orders.confirm_payment(order.id, "pi_late")
    assert (late.outcome, late.order.status, late.order.paid_at) == (
        PaymentOutcome.REFUND_DUE,
        OrderStatus.REFUNDED,
        None,
    )
    stored = await row(commerce, orders, order.id)
    assert (stored.refund_reason, stored.ended_at) == ("hold_expired", clock.now())
    assert log.of(OrderRefunded) == [OrderRefunded(drop_id, order.id, buyer, "hold_expired")]
    assert log.of(OrderPaid) == []
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 0, 1)


async def test_a_payment_sells_the_units_and_records_when_and_how_much(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(5, per_customer_limit=2))
    (buyer,) = await people(commerce, "buyer")
    held = await commerce.claims.claim(drop_id, buyer, qty=2)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test", idempotency_key="idem-1")
    assert (order.qty, order.amount, order.pool, order.provider) == (
        2,
        Money(2400, "USD"),
        "ship",
        "test",
    )
    assert (order.status, order.created_at, order.paid_at) == (
        OrderStatus.PENDING,
        clock.now(),
        None,
    )
    assert (await row(commerce, orders, order.id)).idempotency_key == "idem-1"
    assert await commerce.orders.for_hold(held.hold.id) == order
    clock.advance(20)

    result = await commerce.orders.confirm_payment(order.id, "p" * 200)

    assert (result.outcome, result.order.status) == (PaymentOutcome.PAID, OrderStatus.PAID)
    stored = await commerce.orders.get(order.id)
    assert (stored.paid_at, stored.provider_ref) == (clock.now(), "p" * 200)
    assert log.of(OrderPaid) == [OrderPaid(drop_id, order.id, held.hold.id, buyer, 2400, "USD")]
    assert log.of(StockChanged)[-1] == StockChanged(drop_id, 3, 0, 2, 5)
    converted = await row(commerce, holds, held.hold.id)
    assert (converted.status, converted.ended_at) == ("converted", clock.now())
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (2, 0, 3)

    await commerce.orders.refund(order.id)
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (0, 0, 5)


async def test_payment_references_are_checked_and_never_reused(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    first, second = await people(commerce, "first", "second")
    order = await checkout(commerce, drop_id, first)
    other = await checkout(commerce, drop_id, second)
    for bad in ("", "p" * 201):
        with pytest.raises(InvalidInput) as refused:
            await commerce.orders.confirm_payment(order.id, bad)
        assert (refused.value.field, refused.value.problem) == (
            "provider_ref",
            "must be 1 to 200 characters",
        )
    await commerce.orders.confirm_payment(order.id, "pi_1")
    with pytest.raises(InvalidInput) as reused:
        await commerce.orders.confirm_payment(other.id, "pi_1")
    assert (reused.value.field, reused.value.problem) == (
        "provider_ref",
        "already used for another order",
    )
    assert (await commerce.orders.get(other.id)).status is OrderStatus.PENDING
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (1, 1, 1)


async def test_unknown_orders_and_holds_are_not_found(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    owner, other = await people(commerce, "owner", "other")
    held = await commerce.claims.claim(drop_id, owner)
    for call in (
        commerce.orders.get(4242),
        commerce.orders.confirm_payment(4242, "pi_x"),
        commerce.orders.refund(4242),
        commerce.orders.reserve(4242),
    ):
        with pytest.raises(OrderNotFound) as missing:
            await call
        assert (str(missing.value), missing.value.details) == (
            "order 4242 does not exist",
            {"order_id": 4242},
        )
    with pytest.raises(HoldNotFound):
        await commerce.orders.checkout(held.hold.id + 100, owner, "test")
    with pytest.raises(HoldNotFound) as foreign:
        await commerce.orders.checkout(held.hold.id, other, "test")
    assert (str(foreign.value), foreign.value.details) == (
        f"hold {held.hold.id} does not exist",
        {"hold_id": held.hold.id},
    )
    assert await commerce.orders.for_hold(held.hold.id) is None
    await commerce.claims.cancel_hold(held.hold.id, owner)
    await commerce.claims.claim(drop_id, other)  # someone else's hold is still open
    with pytest.raises(HoldNotActive) as ended:
        await commerce.orders.checkout(held.hold.id, owner, "test")
    assert (str(ended.value), ended.value.details) == (
        f"hold {held.hold.id} has expired",
        {"hold_id": held.hold.id},
    )


async def test_every_payment_is_logged_with_its_outcome_and_ids(commerce, caplog):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await people(commerce, "buyer")
    order = await checkout(commerce, drop_id, buyer)
    with caplog.at_level(logging.INFO, logger="commerce.services.orders"):
        await commerce.orders.confirm_payment(order.id, "pi_1")
    (record,) = [r for r in caplog.records if r.name == "commerce.services.orders"]
    assert record.getMessage() == f"payment paid: order {order.id} hold {order.hold_id}"
    assert (record.order_id, record.hold_id, record.drop_id, record.outcome) == (
        order.id,
        order.hold_id,
        drop_id,
        "paid",
    )


async def test_asking_for_checkout_again_after_the_hold_lapsed_returns_the_same_order(
    commerce, clock
):
    drop_id = await live_drop(commerce, capsule_spec(2, hold_seconds=60))
    (buyer,) = await people(commerce, "buyer")
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    clock.advance(60)
    assert await commerce.orders.checkout(held.hold.id, buyer, "test") == order


async def test_cancelling_a_pending_order_for_one_flavour_leaves_the_other_held(commerce):
    drop_id = await live_drop(commerce, flavours_spec(spicy=1, mild=1))
    spicy_fan, mild_fan = await people(commerce, "spicy", "mild")
    spicy = await commerce.claims.claim(drop_id, spicy_fan, sku=SPICY)
    await commerce.claims.claim(drop_id, mild_fan, sku=MILD)
    order = await commerce.orders.checkout(spicy.hold.id, spicy_fan, "test")

    await commerce.orders.refund(order.id)

    view = await commerce.drops.view(drop_id)
    assert counts(line(view, SPICY)) == (0, 0, 1)
    assert counts(line(view, MILD)) == (0, 1, 0)


async def test_another_process_with_a_cold_cache_takes_the_payment(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(2))
    (buyer,) = await people(commerce, "buyer")
    order = await checkout(commerce, drop_id, buyer)
    webhook = Commerce.build(commerce.db, clock=clock)  # the process the webhook reached
    paid = await webhook.orders.confirm_payment(order.id, "pi_cold")
    assert paid.outcome is PaymentOutcome.PAID
    assert counts((await commerce.drops.view(drop_id)).stock[0]) == (1, 0, 1)


async def test_paying_and_refunding_in_one_drop_never_moves_the_same_sku_in_another(commerce):
    first = await live_drop(commerce, capsule_spec(2))
    second = await live_drop(commerce, capsule_spec(2))
    buyer, holder = await people(commerce, "buyer", "holder")
    await commerce.claims.claim(first, holder)
    order = await paid_order(commerce, second, buyer, "pi_second")
    assert counts((await commerce.drops.view(first)).stock[0]) == (0, 1, 1)
    assert counts((await commerce.drops.view(second)).stock[0]) == (1, 0, 1)
    await commerce.orders.refund(order.id)
    assert counts((await commerce.drops.view(first)).stock[0]) == (0, 1, 1)
    assert counts((await commerce.drops.view(second)).stock[0]) == (0, 0, 2)
