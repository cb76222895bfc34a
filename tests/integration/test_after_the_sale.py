"""After the sale, on both engines: shipping in the amount, refunds (live drops give the
unit to the waitlist first, even racing claims; closed drops keep it sold), fulfilment,
pickup codes, and the buyer's messages queued with the change."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from commerce.desk import OrderDesk, parse_ship_csv
from commerce.domain.errors import InvalidInput, InvalidState
from commerce.domain.events import OrderFulfilled, OrderRefunded
from commerce.domain.model import (
    Address,
    ClaimOutcome,
    DeskStatus,
    DropState,
    Fulfilment,
    Money,
    OrderStatus,
)
from commerce.domain.payments import PaymentGateways
from commerce.dropfile import validate_spec
from commerce.payments.simple import ManualGateway, TestGateway
from commerce.services.checkout import CheckoutService
from commerce.services.orders import PICKUP_ALPHABET, PICKUP_CODE_LENGTH
from commerce.storage.tables import notifications
from tests.helpers import (
    EventLog,
    assert_consistent,
    capsule_spec,
    collab_spec,
    customers,
    live_drop,
)

ANN = Address("Ann Lee", "1 Main St", "Springfield", "12345", "US", region="IL")
BOB = Address("Bob Roe", "Hauptstr. 5", "Berlin", "10115", "DE")
FIVE = Money(500, "USD")
PICKUP = "pickup:corner-deli"


def desk_for(commerce) -> tuple[OrderDesk, TestGateway]:
    test = TestGateway()
    gateways = PaymentGateways("test", {"test": test, "manual": ManualGateway()})
    return OrderDesk(commerce.db, commerce.orders, CheckoutService(commerce.orders, gateways)), test


async def paid_order(commerce, drop_id, customer, *, ship_to=ANN, shipping=FIVE, pool=None):
    held = await commerce.claims.claim(drop_id, customer, pool=pool)
    assert held.outcome is ClaimOutcome.HELD, held
    order = await commerce.orders.checkout(
        held.hold.id, customer, "test", ship_to=ship_to, shipping=shipping
    )
    return (await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")).order


async def queued(commerce, kind):
    async with commerce.db.read() as conn:
        rows = await conn.execute(
            select(notifications.c.dedupe_key, notifications.c.address).where(
                notifications.c.kind == kind
            )
        )
        return sorted(tuple(r) for r in rows)


async def test_the_amount_is_items_plus_shipping_and_the_address_is_kept(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await paid_order(commerce, drop_id, buyer)

    assert order.amount == Money(1700, "USD")
    assert (order.items_amount, order.shipping, order.ship_to) == (Money(1200, "USD"), FIVE, ANN)
    assert order.pickup_code is None
    assert (await commerce.orders.get(order.id)).ship_to == ANN


async def test_a_pending_order_asked_again_with_another_destination_is_repriced(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    first = await commerce.orders.checkout(
        held.hold.id, buyer, "stripe", ship_to=ANN, shipping=FIVE
    )
    again = await commerce.orders.checkout(
        held.hold.id, buyer, "stripe", ship_to=BOB, shipping=Money(1400, "USD")
    )

    assert again.id == first.id
    assert (again.amount, again.ship_to) == (Money(2600, "USD"), BOB)
    paid = (await commerce.orders.confirm_payment(first.id, "pi_1")).order
    after = await commerce.orders.checkout(held.hold.id, buyer, "stripe", ship_to=ANN)
    assert (after.status, after.amount) == (OrderStatus.PAID, paid.amount)  # settled: fixed


async def test_shipping_in_another_currency_or_on_a_pickup_order_is_refused(commerce):
    drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=2))
    (buyer, other) = await customers(commerce, 2)
    ship = await commerce.claims.claim(drop_id, buyer, pool="ship")
    with pytest.raises(InvalidInput, match="shipping: must be in USD"):
        await commerce.orders.checkout(ship.hold.id, buyer, "test", shipping=Money(5, "EUR"))
    pickup = await commerce.claims.claim(drop_id, other, pool="pickup:corner-deli")
    with pytest.raises(InvalidInput, match="nothing to ship"):
        await commerce.orders.checkout(pickup.hold.id, other, "test", shipping=FIVE)
    assert await commerce.orders.for_hold(ship.hold.id) is None


async def test_a_pickup_order_gets_a_short_code_the_shop_checks(commerce):
    drop_id = await live_drop(commerce, collab_spec(ship=0, pickup=2))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer, pool="pickup:corner-deli")
    order = await commerce.orders.checkout(held.hold.id, buyer, "manual")
    reserved = (await commerce.orders.reserve(order.id)).order
    code = reserved.pickup_code
    assert code and len(code) == PICKUP_CODE_LENGTH and set(code) <= set(PICKUP_ALPHABET)

    with pytest.raises(InvalidInput, match="code: does not match"):
        await commerce.orders.picked_up(order.id, "WRONG1")
    assert (await commerce.orders.get(order.id)).fulfilment is None

    done, changed = await commerce.orders.picked_up(order.id, code.lower())
    again, changed_again = await commerce.orders.picked_up(order.id, code)
    assert (done.status, done.fulfilment, changed) == (OrderStatus.PAID, Fulfilment.PICKED_UP, True)
    assert (again.desk_status, changed_again) == (DeskStatus.PICKED_UP, False)
    with pytest.raises(InvalidState, match="not shipped"):
        await commerce.orders.ship(order.id, "UPS", "1Z999")


async def test_a_live_drops_refund_goes_to_the_first_waitlisted_even_racing_claims(commerce):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    paying, holding, first, second, *racers = await customers(commerce, 24)
    order = await paid_order(commerce, drop_id, paying)
    assert (await commerce.claims.claim(drop_id, holding)).outcome is ClaimOutcome.HELD
    for waiting in (first, second):
        joined = await commerce.claims.join_waitlist(drop_id, waiting)
        assert joined.waitlist_position is not None
    desk, provider = desk_for(commerce)

    results = await asyncio.gather(
        desk.refund(order.id, "damaged in transit"),
        *(commerce.claims.claim(drop_id, c) for c in racers),
    )

    refunded, changed = results[0]
    assert (refunded.status, changed) == (OrderStatus.REFUNDED, True)
    assert all(r.outcome is not ClaimOutcome.HELD for r in results[1:])
    offered = await commerce.claims.holding(drop_id, first)
    assert offered is not None and offered.is_active(commerce.clock.now())
    assert await commerce.claims.holding(drop_id, second) is None
    assert provider.refunds == [(order.id, f"pi_{order.id}", "damaged in transit")]
    assert len(log.of(OrderRefunded)) == 1
    assert_consistent(await commerce.drops.view(drop_id))


async def test_refunds_are_idempotent_and_go_through_the_provider_once(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await paid_order(commerce, drop_id, buyer)
    desk, provider = desk_for(commerce)

    outcomes = await asyncio.gather(*(desk.refund(order.id, "requested") for _ in range(5)))
    later, changed = await desk.refund(order.id, "requested")

    assert {o.status for o, _ in outcomes} == {OrderStatus.REFUNDED}
    assert changed is False
    assert later.refund_reason == "requested"
    view = await commerce.drops.view(drop_id)
    assert (view.stock[0].sold, view.stock[0].available) == (0, 3)
    # Concurrent calls may each ask; the provider's key (the payment) makes it one refund.
    assert {r[1] for r in provider.refunds} == {f"pi_{order.id}"}


@pytest.mark.parametrize("reason", ["damaged\x00", "in\u200btransit", "\x1b[31mred"])
async def test_a_refund_reason_no_label_or_database_can_hold_is_refused_before_any_money_moves(
    commerce, reason
):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await paid_order(commerce, drop_id, buyer)
    desk, provider = desk_for(commerce)

    with pytest.raises(InvalidInput, match="reason"):
        await desk.refund(order.id, reason)

    assert provider.refunds == []
    assert (await commerce.orders.get(order.id)).status is OrderStatus.PAID


async def test_a_sold_out_drops_refund_opens_it_again_for_the_first_waitlisted(commerce):
    drop_id = await live_drop(commerce, capsule_spec(2))
    first_buyer, second_buyer, first, second = await customers(commerce, 4)
    order = await paid_order(commerce, drop_id, first_buyer)
    last = await commerce.claims.claim(drop_id, second_buyer)
    for waiting in (first, second):  # sold out, one hold still open: they queue
        assert (await commerce.claims.join_waitlist(drop_id, waiting)).waitlist_position
    pay_last = await commerce.orders.checkout(last.hold.id, second_buyer, "test", shipping=FIVE)
    await commerce.orders.confirm_payment(pay_last.id, "pi_last")
    assert (await commerce.drops.get(drop_id)).state is DropState.CLOSED  # sold through
    desk, _ = desk_for(commerce)

    await desk.refund(order.id, "damaged in transit")

    view = await commerce.drops.view(drop_id)
    assert view.drop.state is DropState.LIVE
    offered = await commerce.claims.holding(drop_id, first)
    assert offered is not None and offered.is_active(commerce.clock.now())
    assert await commerce.claims.holding(drop_id, second) is None
    assert (view.stock[0].sold, view.stock[0].held, view.stock[0].available) == (1, 1, 0)


async def test_a_closed_drops_refund_leaves_its_units_sold(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await paid_order(commerce, drop_id, buyer)
    await commerce.drops.close(drop_id)  # by hand: it never reopens
    desk, _ = desk_for(commerce)

    refunded, _ = await desk.refund(order.id, "requested")

    view = await commerce.drops.view(drop_id)
    assert refunded.status is OrderStatus.REFUNDED
    assert (view.drop.state, view.stock[0].sold, view.stock[0].available) == (
        DropState.CLOSED,
        1,
        2,
    )


async def test_a_shipped_orders_refund_never_puts_its_unit_back_on_sale(commerce):
    """The goods have left: refunding the money must not sell them a second time, on a
    live drop (no unit back, no waitlist offer) nor on one that sold out (it stays shut)."""
    drop_id = await live_drop(commerce, capsule_spec(2))
    buyer, other, waiting = await customers(commerce, 3)
    shipped = await paid_order(commerce, drop_id, buyer)
    await commerce.orders.ship(shipped.id, "DHL", "00340434161094042557")
    last = await paid_order(commerce, drop_id, other)
    assert (await commerce.drops.get(drop_id)).state is DropState.CLOSED  # sold through
    desk, _ = desk_for(commerce)

    refunded, _ = await desk.refund(shipped.id, "arrived broken")

    view = await commerce.drops.view(drop_id)
    assert refunded.status is OrderStatus.REFUNDED
    assert view.drop.state is DropState.CLOSED
    assert (view.stock[0].sold, view.stock[0].held, view.stock[0].available) == (2, 0, 0)
    # Not shipped yet: that one's unit does come back, the drop reopening for it.
    await desk.refund(last.id, "changed my mind")
    view = await commerce.drops.view(drop_id)
    assert (view.drop.state, view.stock[0].sold, view.stock[0].available) == (
        DropState.LIVE,
        1,
        1,
    )
    assert (await commerce.claims.claim(drop_id, waiting)).outcome is ClaimOutcome.HELD


async def test_a_picked_up_orders_refund_keeps_the_unit_sold_on_a_live_drop(commerce):
    drop_id = await live_drop(commerce, collab_spec(ship=2, pickup=2))
    (buyer,) = await customers(commerce, 1)
    order = await paid_order(commerce, drop_id, buyer, ship_to=None, shipping=None, pool=PICKUP)
    await commerce.orders.picked_up(order.id, order.pickup_code)
    before = await commerce.drops.view(drop_id)
    desk, _ = desk_for(commerce)

    await desk.refund(order.id, "not as described")

    after = await commerce.drops.view(drop_id)
    assert after.drop.state is DropState.LIVE
    assert after.available_units(pool=PICKUP) == before.available_units(pool=PICKUP)
    assert [line.sold for line in after.stock] == [line.sold for line in before.stock]


async def test_a_refund_needs_a_reason_of_a_few_words(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    order = await paid_order(commerce, drop_id, buyer)
    desk, provider = desk_for(commerce)
    for reason, problem in (("  ", "say why"), ("x" * 65, "longer than 64")):
        with pytest.raises(InvalidInput, match=problem):
            await desk.refund(order.id, reason)
    assert (await commerce.orders.get(order.id)).status is OrderStatus.PAID
    assert provider.refunds == []


async def test_shipping_is_idempotent_and_a_corrected_code_is_sent_again(commerce, clock):
    log = EventLog(commerce)
    drop_id = await live_drop(commerce, capsule_spec(3))
    buyer = await commerce.customers.resolve("discord:5")
    order = await paid_order(commerce, drop_id, buyer)

    shipped, changed = await commerce.orders.ship(order.id, " UPS ", "1Z 999")
    same, changed_again = await commerce.orders.ship(order.id, "UPS", "1Z 999")
    assert same == shipped
    clock.advance(3600)
    fixed, corrected = await commerce.orders.ship(order.id, "UPS", "1Z 998")

    assert (shipped.desk_status, shipped.carrier, shipped.tracking) == (
        DeskStatus.SHIPPED,
        "UPS",
        "1Z 999",
    )
    assert (changed, changed_again, corrected) == (True, False, True)
    assert fixed.fulfilled_at == shipped.fulfilled_at  # when it left, not when corrected
    assert len(log.of(OrderFulfilled)) == 2
    assert [key for key, _ in await queued(commerce, "shipped")] == [
        f"shipped:{order.id}:1Z 998",
        f"shipped:{order.id}:1Z 999",
    ]


async def test_only_settled_ship_orders_ship_and_bad_codes_are_named(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    buyer, other = await customers(commerce, 2)
    order = await paid_order(commerce, drop_id, buyer)
    with pytest.raises(InvalidInput, match="tracking"):
        await commerce.orders.ship(order.id, "UPS", "<script>")
    with pytest.raises(InvalidInput, match="carrier"):
        await commerce.orders.ship(order.id, "", "1Z")
    held = await commerce.claims.claim(drop_id, other)
    pending = await commerce.orders.checkout(held.hold.id, other, "stripe", ship_to=BOB)
    with pytest.raises(InvalidState, match="pending: it cannot ship"):
        await commerce.orders.ship(pending.id, "UPS", "1Z")
    assert (await commerce.orders.get(order.id)).fulfilment is None


async def test_a_receipt_is_queued_with_the_payment_for_a_buyer_a_dm_reaches(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    discord_buyer = await commerce.customers.resolve("discord:10")
    twitch_buyer = await commerce.customers.resolve("twitch:77")
    order = await paid_order(commerce, drop_id, discord_buyer)
    await paid_order(commerce, drop_id, twitch_buyer)  # reads it on the page it signed in to
    # A retried webhook settles nothing new and queues nothing new.
    await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")

    assert await queued(commerce, "receipt") == [(f"receipt:{order.id}", "discord:10")]


def test_a_carriers_csv_is_checked_whole_before_anything_ships():
    rows = parse_ship_csv("Order ID,Carrier,Tracking,Weight\n#12,UPS,1Z1,2kg\n\n13,DHL,JD2,1kg\n")
    assert [(r.line, r.order_id, r.carrier, r.tracking) for r in rows] == [
        (2, 12, "UPS", "1Z1"),
        (4, 13, "DHL", "JD2"),
    ]
    for text, problem in (
        ("order,carrier\n1,UPS\n", "needs the column(s) tracking"),
        ("order,carrier,tracking\nabc,UPS,1Z\n", "line 2: order 'abc' is not a number"),
        ("order,carrier,tracking\n1,UPS,\n", "line 2: tracking is empty"),
        ("order,carrier,tracking\n", "has no rows"),
    ):
        with pytest.raises(InvalidInput, match=problem.replace("(", r"\(").replace(")", r"\)")):
            parse_ship_csv(text)


async def test_a_drop_files_shipping_table_is_checked_and_kept(commerce):
    spec = capsule_spec(3, shipping={"us": "5.00", "*": "14.00"})
    drop_id = await commerce.drops.create(validate_spec(spec))
    assert (await commerce.drops.get(drop_id)).shipping == {"US": 500, "*": 1400}
    for shipping, problem in (
        ({"ZZ": "5.00"}, "drop.shipping.ZZ: 'ZZ' is not an ISO 3166-1 country code"),
        ({"US": "5.001"}, "drop.shipping.US: '5.001' has more decimals than USD allows"),
        ({"US": "-1"}, "drop.shipping.US: '-1' must be zero or more"),
        ({}, "drop.shipping: name at least one country"),
    ):
        with pytest.raises(InvalidInput) as caught:
            await commerce.drops.create(validate_spec(capsule_spec(3, shipping=shipping)))
        assert str(caught.value).startswith(problem), str(caught.value)


async def test_concurrent_pickups_of_a_pay_at_pickup_order_pay_it_once(commerce):
    from commerce.domain.events import OrderPaid

    log = EventLog(commerce)
    drop_id = await live_drop(commerce, collab_spec(ship=0, pickup=3))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer, pool="pickup:corner-deli")
    order = await commerce.orders.checkout(held.hold.id, buyer, "manual")
    code = (await commerce.orders.reserve(order.id)).order.pickup_code

    results = await asyncio.gather(*(commerce.orders.picked_up(order.id, code) for _ in range(8)))

    assert sum(changed for _, changed in results) == 1
    done = await commerce.orders.get(order.id)
    assert (done.status, done.fulfilment, done.provider_ref) == (
        OrderStatus.PAID,
        Fulfilment.PICKED_UP,
        f"pickup_{order.id}",
    )
    assert len(log.of(OrderPaid)) == 1 and len(log.of(OrderFulfilled)) == 1


async def test_concurrent_checkouts_to_different_countries_make_one_consistent_order(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    destinations = [(ANN, FIVE), (BOB, Money(1400, "USD"))] * 6

    orders = await asyncio.gather(
        *(
            commerce.orders.checkout(held.hold.id, buyer, "stripe", ship_to=a, shipping=s)
            for a, s in destinations
        )
    )

    assert len({o.id for o in orders}) == 1
    final = await commerce.orders.get(orders[0].id)
    assert (final.ship_to, final.shipping) in destinations  # never one's address, other's rate
    assert final.amount == final.items_amount + final.shipping
