"""Personal data, on both engines: `forget` erases a person (every linked identity, email,
display name, shipping address, subscription and message address) and leaves no trace of
them in any table while their orders keep amounts and SKUs; retention erases the
addresses of orders done long enough ago, and nothing else."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from commerce.desk import OrderDesk, packing_csv
from commerce.domain.errors import InvalidInput
from commerce.domain.model import Address, ClaimOutcome, DeskStatus, Money, OrderStatus
from commerce.domain.payments import PaymentGateways
from commerce.dropfile import validate_spec
from commerce.payments.simple import ManualGateway, TestGateway
from commerce.services.checkout import CheckoutService
from commerce.storage.database import Database
from commerce.storage.tables import customers, metadata, notifications, subscriptions, waitlist
from tests.helpers import capsule_spec, collab_spec, live_drop

DISCORD = "discord:987654321012345678"
EMAIL = "annabelle.quux@example.com"
WEB = f"web:{EMAIL}"
NAME = "Annabelle Quux"
HOOK = "https://hooks.example.com/annabelle-quux-hook"
HOME = Address(NAME, "77 Quincunx Lane", "Zyzzyva City", "QX-4417", "NZ", "Flat 9Z", "Otago")
WORK = Address("A. Quux", "12 Xylograph Rd", "Wumpus Falls", "WF-2290", "NZ")
BOB = Address("Bob Roe", "Hauptstr. 5", "Berlin", "10115", "DE")
FIVE = Money(500, "USD")


def needles() -> list[str]:
    """Everything that says who she is. (The country, two letters, says nothing alone.)"""
    fields = [v for a in (HOME, WORK) for k, v in a.as_dict().items() if k != "country" and v]
    return [DISCORD, "987654321012345678", EMAIL, NAME, "annabelle-quux-hook", *fields]


async def traces(db: Database, words: list[str]) -> set[tuple[str, str, str]]:
    """(table, column, word) for every stored value that contains one of ``words``."""
    found: set[tuple[str, str, str]] = set()
    async with db.read() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if value is None:
                        continue
                    text = value if isinstance(value, str) else json.dumps(value, default=str)
                    found.update(
                        (table.name, column, w) for w in words if w.lower() in text.lower()
                    )
    return found


def desk_for(commerce: Any) -> OrderDesk:
    gateways = PaymentGateways("test", {"test": TestGateway(), "manual": ManualGateway()})
    return OrderDesk(commerce.db, commerce.orders, CheckoutService(commerce.orders, gateways))


async def paid(commerce, drop_id: int, customer: int, ship_to: Address | None):
    held = await commerce.claims.claim(drop_id, customer)
    assert held.outcome is ClaimOutcome.HELD, held
    order = await commerce.orders.checkout(
        held.hold.id, customer, "test", ship_to=ship_to, shipping=FIVE
    )
    return (await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")).order


async def annabelle_and_bob(commerce) -> dict[str, Any]:
    """Annabelle buys as a web customer, then as a Discord one; the two are linked. She
    subscribed, queued on a sold-out drop and has messages queued; Bob bought too."""
    first = await live_drop(commerce, capsule_spec(5))
    second = await live_drop(commerce, capsule_spec(5))
    tiny = await live_drop(commerce, capsule_spec(1, hold_seconds=600))
    upcoming = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+1h")))

    web = await commerce.customers.resolve(WEB)
    web_order = await paid(commerce, first, web, WORK)
    await commerce.subscriptions.subscribe(web, "creator", webhook=HOOK)
    ann = await commerce.customers.resolve(DISCORD, NAME)
    ann_order = await paid(commerce, second, ann, HOME)
    await commerce.orders.ship(ann_order.id, "UPS", "1Z999AA10123456784")
    await commerce.subscriptions.subscribe(ann, "drop", str(upcoming))
    assert await commerce.customers.link(DISCORD, WEB) == ann

    bob = await commerce.customers.resolve("discord:1111", "Bob")
    bob_order = await paid(commerce, first, bob, BOB)
    await commerce.subscriptions.subscribe(bob, "creator")
    assert (await commerce.claims.claim(tiny, bob)).outcome is ClaimOutcome.HELD
    joined = await commerce.claims.join_waitlist(tiny, ann)
    assert joined.waitlist_position == 1
    assert await commerce.notifications.fan_out(upcoming, "reminder:300") == 3
    return {
        "ann": ann,
        "web": web,
        "bob": bob,
        "orders": (web_order, ann_order),
        "bob_order": bob_order,
        "tiny": tiny,
    }


async def test_forget_leaves_no_trace_of_the_person_in_any_table(commerce):
    await annabelle_and_bob(commerce)
    before = await traces(commerce.db, needles())
    assert {w for _, _, w in before} == set(needles())  # the scan sees her everywhere

    erased = await commerce.customers.forget(WEB)  # either identity names the person

    assert await traces(commerce.db, needles()) == set()
    assert erased == {
        "customers": 2,
        "identities": 2,
        "display_names": 1,
        "addresses": 2,
        "subscriptions": 2,
        "messages": 4,  # two receipts, "shipped", a reminder (the webhook's went too)
        "unsent_messages": 4,
        "waitlist_places": 1,
    }


async def test_forgotten_orders_keep_amounts_skus_and_statuses(commerce):
    world = await annabelle_and_bob(commerce)
    desk = desk_for(commerce)
    kept = {line.order.id: line for line in await desk.lines()}

    await commerce.customers.forget(DISCORD)

    after = {line.order.id: line for line in await desk.lines()}
    assert after.keys() == kept.keys()
    for order in world["orders"]:
        line = after[order.id]
        assert line.order.amount == kept[order.id].order.amount == Money(1700, "USD")
        assert line.items == kept[order.id].items == (("CHIPS-SPICY", 1),)
        assert line.order.ship_to is None
        assert line.customer == f"customer {world['ann']}"  # no name, no identity left
    assert after[world["orders"][1].id].status is DeskStatus.SHIPPED
    assert after[world["orders"][0].id].order.status is OrderStatus.PAID
    csv = packing_csv(after.values())
    assert not [w for w in needles() if w.lower() in csv.lower()]
    assert "Hauptstr. 5" in csv  # Bob's order still ships


async def test_forget_touches_nobody_else(commerce):
    world = await annabelle_and_bob(commerce)
    await commerce.customers.forget(DISCORD)

    bob = await commerce.customers.get(world["bob"])
    assert (bob.identities, bob.display_name) == (("discord:1111",), "Bob")
    assert (await commerce.orders.get(world["bob_order"].id)).ship_to == BOB
    async with commerce.db.read() as conn:
        addresses = set(
            (
                await conn.execute(
                    select(subscriptions.c.address).where(
                        subscriptions.c.customer_id == world["bob"]
                    )
                )
            ).scalars()
        )
        statuses = dict(
            (
                await conn.execute(
                    select(notifications.c.address, notifications.c.status).where(
                        notifications.c.customer_id == world["bob"]
                    )
                )
            ).all()
        )
    assert addresses == {"discord:1111"}
    assert statuses == {"discord:1111": "pending"}


async def test_forget_ends_subscriptions_skips_unsent_messages_and_lapses_queues(commerce):
    world = await annabelle_and_bob(commerce)
    await commerce.customers.forget(DISCORD)
    people = (world["ann"], world["web"])
    async with commerce.db.read() as conn:
        subs = (
            await conn.execute(
                select(subscriptions.c.status, subscriptions.c.address).where(
                    subscriptions.c.customer_id.in_(people)
                )
            )
        ).all()
        notes = (
            await conn.execute(
                select(notifications.c.status, notifications.c.address).where(
                    notifications.c.customer_id.in_(people)
                )
            )
        ).all()
        queue = (
            await conn.execute(select(waitlist.c.status).where(waitlist.c.customer_id.in_(people)))
        ).scalars()
        forgotten = (
            await conn.execute(select(customers.c.forgotten_at).where(customers.c.id.in_(people)))
        ).scalars()
        assert all(when is not None for when in forgotten)
        assert list(queue) == ["lapsed"]
    assert set(subs) == {("ended", "forgotten")}
    assert set(notes) == {("skipped", "forgotten")}
    # A unit freed later goes to whoever queues next, never to the forgotten person.
    assert await commerce.claims.holding(world["tiny"], world["ann"]) is None


async def test_forget_is_refused_for_an_unknown_identity_and_a_second_time(commerce):
    await annabelle_and_bob(commerce)
    with pytest.raises(InvalidInput, match="discord:5555 is not known"):
        await commerce.customers.forget("discord:5555")
    with pytest.raises(InvalidInput, match="is not an identity"):
        await commerce.customers.forget("annabelle")

    await commerce.customers.forget(DISCORD)
    snapshot = await traces(commerce.db, ["forgotten", "Bob", "discord:1111"])
    with pytest.raises(InvalidInput, match=f"{WEB} is not known"):
        await commerce.customers.forget(WEB)
    assert await traces(commerce.db, ["forgotten", "Bob", "discord:1111"]) == snapshot


async def test_a_forgotten_person_who_comes_back_is_a_new_customer(commerce):
    world = await annabelle_and_bob(commerce)
    await commerce.customers.forget(DISCORD)  # this process had her in its memory
    again = await commerce.customers.resolve(DISCORD)
    assert again not in (world["ann"], world["web"])
    assert (await commerce.customers.get(again)).identities == (DISCORD,)


# -- retention ----------------------------------------------------------------------------


async def test_retention_erases_addresses_of_orders_done_before_the_cut(commerce, clock):
    ship_drop = await live_drop(commerce, capsule_spec(10))
    pickup_drop = await live_drop(commerce, collab_spec(ship=0, pickup=2))
    buyers = [await commerce.customers.resolve(f"discord:{100 + i}") for i in range(5)]
    shipped = await paid(commerce, ship_drop, buyers[0], HOME)
    refunded = await paid(commerce, ship_drop, buyers[1], WORK)
    waiting = await paid(commerce, ship_drop, buyers[2], BOB)  # paid, not shipped yet
    held = await commerce.claims.claim(pickup_drop, buyers[3], pool="pickup:corner-deli")
    pickup = await commerce.orders.checkout(held.hold.id, buyers[3], "manual")
    await commerce.orders.reserve(pickup.id)
    await commerce.orders.ship(shipped.id, "UPS", "1Z1")
    await commerce.orders.refund(refunded.id, "requested")
    await commerce.orders.picked_up(pickup.id)

    clock.advance(30 * 86400)
    late = await paid(commerce, ship_drop, buyers[4], HOME)
    await commerce.orders.ship(late.id, "UPS", "1Z2")  # shipped 30 days after the others
    cut = clock.now() - timedelta(days=10)

    assert await commerce.orders.erase_old_addresses(cut) == 2
    assert await commerce.orders.erase_old_addresses(cut) == 0  # a rerun erases none
    after = {o: (await commerce.orders.get(o)) for o in (shipped.id, refunded.id, waiting.id)}
    assert after[shipped.id].ship_to is None and after[refunded.id].ship_to is None
    assert after[waiting.id].ship_to == BOB  # not shipped: still needed
    assert (await commerce.orders.get(late.id)).ship_to == HOME  # within retention
    kept = after[shipped.id]
    assert (kept.amount, kept.tracking, kept.status) == (Money(1700, "USD"), "1Z1", shipped.status)
