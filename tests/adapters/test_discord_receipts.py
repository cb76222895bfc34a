"""After the sale over Discord, on both engines: the receipt and the "shipped" message reach
the buyer as DMs through the real dispatcher and discord.py against ``FakeDiscord``; once
each, whatever retries; a closed DM ends unreachable; nothing for an order refunded first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select

from commerce.core import Commerce
from commerce.domain.model import Address, Money
from commerce.dropfile import validate_spec
from commerce.storage.tables import notifications
from tests.adapters.test_discord_retention import Shop, dispatcher, dms, rows, running_bot
from tests.fakes.discord import FakeDiscord
from tests.helpers import capsule_spec, collab_spec

pytestmark = pytest.mark.timeout(30)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        with server.patch_discord_py():
            yield server


ANN = Address("Ann Lee", "1 Main St", "Springfield", "12345", "US", region="IL")


async def world_with_buyers(fake: FakeDiscord, commerce: Commerce, spec, buyers: int) -> Shop:
    guild = fake.add_guild("Drop Shop")
    users = [fake.add_user(f"buyer{i}") for i in range(buyers)]
    for user in users:
        fake.add_member(guild, user)
    drop_id = await commerce.drops.create(validate_spec(spec))
    await commerce.drops.open(drop_id)
    return Shop(fake, guild, users, drop_id)


async def buy(commerce: Commerce, shop: Shop, user, *, pool=None, provider="test"):
    customer = await commerce.customers.resolve(f"discord:{user.id}")
    held = await commerce.claims.claim(shop.drop_id, customer, pool=pool)
    assert held.hold is not None, held
    ship = pool in (None, "ship")
    order = await commerce.orders.checkout(
        held.hold.id,
        customer,
        provider,
        ship_to=ANN if ship else None,
        shipping=Money(500, "USD") if ship else None,
    )
    if provider == "manual":
        return (await commerce.orders.reserve(order.id)).order
    return (await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")).order


def embed_fields(message) -> dict[str, str]:
    return {f["name"]: f["value"] for e in message.get("embeds", []) for f in e.get("fields", [])}


async def test_the_receipt_and_the_tracking_reach_the_buyer_once(
    fake: FakeDiscord, commerce: Commerce
) -> None:
    shop = await world_with_buyers(fake, commerce, capsule_spec(3), 1)
    [buyer] = shop.fans
    order = await buy(commerce, shop, buyer)
    async with running_bot(shop, commerce) as bot:
        run = dispatcher(commerce, bot)
        assert await run.run_once() == 1
        await commerce.orders.ship(order.id, "UPS", "1Z999AA10123456784")
        await commerce.orders.ship(order.id, "UPS", "1Z999AA10123456784")  # the CSV again
        assert await run.run_once() == 1
        assert await run.run_once() == 0

    receipt, shipped = dms(fake, buyer)
    assert f"order #{order.id}" in receipt["content"] and "17.00" in receipt["content"]
    fields = embed_fields(receipt)
    assert fields["Shipping"].endswith("5.00") and fields["Total paid"].endswith("17.00")
    assert fields["Ships to"] == "Ann Lee, 1 Main St, 12345 Springfield, IL, US"
    assert "1Z999AA10123456784" in shipped["content"]
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in shipped["content"]
    assert {r["status"] for r in (await rows(commerce)).values()} == {"sent"}


async def test_a_pickup_receipt_carries_the_code_and_no_address(
    fake: FakeDiscord, commerce: Commerce
) -> None:
    shop = await world_with_buyers(fake, commerce, collab_spec(ship=0, pickup=2), 1)
    [buyer] = shop.fans
    order = await buy(commerce, shop, buyer, pool="pickup:corner-deli", provider="manual")
    async with running_bot(shop, commerce) as bot:
        assert await dispatcher(commerce, bot).run_once() == 1

    [receipt] = dms(fake, buyer)
    fields = embed_fields(receipt)
    assert (fields["Pick up at"], fields["Pickup code"]) == ("Corner Deli", order.pickup_code)
    assert "To pay at pickup" in fields and "Ships to" not in fields
    assert order.pickup_code in receipt["content"]


async def test_closed_dms_end_unreachable_and_a_refunded_order_gets_no_receipt(
    fake: FakeDiscord, commerce: Commerce
) -> None:
    shop = await world_with_buyers(fake, commerce, capsule_spec(5), 2)
    closed, refunded_buyer = shop.fans
    fake.close_dms(closed)
    await buy(commerce, shop, closed)
    refunded = await buy(commerce, shop, refunded_buyer)
    await commerce.orders.refund(refunded.id, "requested")
    async with running_bot(shop, commerce) as bot:
        assert await dispatcher(commerce, bot).run_once() == 3

    state = {(r["kind"], r["address"]): r["status"] for r in await all_rows(commerce)}
    assert state[("receipt", f"discord:{closed.id}")] == "unreachable"
    assert state[("receipt", f"discord:{refunded_buyer.id}")] == "skipped"
    assert dms(fake, closed) == []
    [told] = dms(fake, refunded_buyer)  # the refund, never a receipt for it
    assert f"Order #{refunded.id}" in told["content"] and "refunded by the shop" in told["content"]
    assert "17.00 goes back" in told["content"]


async def all_rows(commerce: Commerce) -> list[dict[str, object]]:
    async with commerce.db.read() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(notifications))]
