"""A drop's catalogue is fixed when it is created; a hold and its order carry the price the
buyer saw; a price change is an explicit, audited command that waits for open holds."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from commerce.domain.errors import InvalidInput, InvalidState, UnknownItem
from commerce.domain.events import PriceChanged
from commerce.domain.model import ClaimOutcome, Money
from commerce.dropfile import validate_spec
from commerce.storage.tables import activity, holds
from tests.helpers import EventLog, bundle_spec, capsule_spec, customers, live_drop


def repriced(spec: dict, price: str, title: str) -> dict:
    spec["products"][0].update(price=price, title=title)
    return spec


async def test_a_later_drop_reusing_a_sku_never_reprices_a_live_drop(commerce):
    live = await live_drop(commerce, capsule_spec(5))
    (buyer,) = await customers(commerce, 1)
    # Another drop sells the same SKU for a cent under another name.
    await commerce.drops.create(validate_spec(repriced(capsule_spec(5), "0.01", "Cheap chips")))
    view = await commerce.drops.view(live)
    product = view.products["CHIPS-SPICY"]
    assert (product.title, product.price) == ("Spicy chips, 6-pack", Money(1200, "USD"))
    held = await commerce.claims.claim(live, buyer)
    assert held.hold.price_minor == 1200
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    assert order.amount == Money(1200, "USD")


async def test_a_hold_keeps_the_price_it_was_placed_at(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    first, second = await customers(commerce, 2)
    early = await commerce.claims.claim(drop_id, first)
    clock.advance(61)  # the hold lapses; nothing is open, so the price may change
    await commerce.drops.set_price(drop_id, "15.00")
    late = await commerce.claims.claim(drop_id, second)
    assert (early.hold.price_minor, late.hold.price_minor) == (1200, 1500)
    order = await commerce.orders.checkout(late.hold.id, second, "test")
    assert order.amount == Money(1500, "USD")


async def test_a_price_change_is_refused_while_a_hold_is_open(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    (buyer,) = await customers(commerce, 1)
    held = await commerce.claims.claim(drop_id, buyer)
    with pytest.raises(InvalidState, match="1 open hold"):
        await commerce.drops.set_price(drop_id, "0.01")
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    assert order.amount == Money(1200, "USD")
    view = await commerce.drops.view(drop_id)
    assert view.products["CHIPS-SPICY"].price == Money(1200, "USD")


async def test_a_price_change_is_audited_and_announced(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    events = EventLog(commerce)
    assert await commerce.drops.set_price(drop_id, "13.50", sku="chips-spicy") == Money(1350, "USD")
    async with commerce.db.read() as conn:
        rows = (
            await conn.execute(
                select(activity.c.kind, activity.c.detail).where(activity.c.drop_id == drop_id)
            )
        ).all()
    assert [(r.kind, r.detail) for r in rows] == [
        (
            "price_changed",
            {"sku": "CHIPS-SPICY", "from_minor": 1200, "to_minor": 1350, "currency": "USD"},
        )
    ]
    assert events.of(PriceChanged) == [PriceChanged(drop_id, "CHIPS-SPICY", 1350, "USD")]


async def test_a_bundle_has_its_price_fixed_at_creation_and_changed_as_a_whole(commerce, clock):
    drop_id = await live_drop(commerce, bundle_spec(4, 4))
    (buyer,) = await customers(commerce, 1)
    await commerce.drops.create(validate_spec(repriced(bundle_spec(2, 2), "0.50", "Other")))
    view = await commerce.drops.view(drop_id)
    assert view.unit_price == Money(950, "USD")
    with pytest.raises(InvalidInput, match="one price"):
        await commerce.drops.set_price(drop_id, "9.00", sku="CHIPS")
    await commerce.drops.set_price(drop_id, "9.00")
    held = await commerce.claims.claim(drop_id, buyer)
    assert held.outcome is ClaimOutcome.HELD and held.hold.price_minor == 900
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    assert order.amount == Money(900, "USD")


async def test_bad_price_changes_name_the_problem_and_change_nothing(commerce):
    drop_id = await live_drop(commerce, capsule_spec(5))
    with pytest.raises(InvalidInput, match="price"):
        await commerce.drops.set_price(drop_id, "12.001")
    with pytest.raises(InvalidInput, match="price"):
        await commerce.drops.set_price(drop_id, "-1")
    with pytest.raises(UnknownItem):
        await commerce.drops.set_price(drop_id, "1.00", sku="NOPE")
    await commerce.drops.close(drop_id)
    with pytest.raises(InvalidState, match="closed"):
        await commerce.drops.set_price(drop_id, "1.00")
    view = await commerce.drops.view(drop_id)
    assert view.products["CHIPS-SPICY"].price == Money(1200, "USD")


async def test_an_expired_hold_no_longer_blocks_a_price_change(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5, hold_seconds=60))
    (buyer,) = await customers(commerce, 1)
    await commerce.claims.claim(drop_id, buyer)
    clock.advance(59)
    with pytest.raises(InvalidState):
        await commerce.drops.set_price(drop_id, "10.00")
    clock.advance(2)
    assert await commerce.drops.set_price(drop_id, "10.00") == Money(1000, "USD")


async def test_a_price_change_racing_a_surge_never_splits_the_holds_price(commerce):
    drop_id = await live_drop(commerce, capsule_spec(10))
    buyers = await customers(commerce, 30)

    async def change() -> bool:
        try:
            await commerce.drops.set_price(drop_id, "15.00")
        except InvalidState:
            return False
        return True

    changed, *_ = await asyncio.gather(
        change(), *(commerce.claims.claim(drop_id, b) for b in buyers)
    )
    async with commerce.db.read() as conn:
        prices = set((await conn.execute(select(holds.c.price_minor))).scalars())
    # Either the change came first (every hold at the new price) or a hold did (refused).
    assert prices == ({1500} if changed else {1200})
