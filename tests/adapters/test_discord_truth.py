"""Discord tells the truth (issue 9, chat side), with the real discord.py client against
``FakeDiscord``: pay messages turn into "paid", a lone pool can be bought, money follows the
client's language, an instant waitlist hold is answered once, and an announcement stops
counting down once the drop is live (both engines)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from commerce.dropfile import validate_spec
from commerce.storage.tables import holds
from tests.adapters import test_discord_adapter as adapter
from tests.adapters.test_discord_adapter import (
    EPHEMERAL,
    Chat,
    World,
    answer,
    buttons,
    embed_text,
)
from tests.fakes.discord import FakeDiscord
from tests.helpers import capsule_spec, collab_spec, live_drop

pytestmark = pytest.mark.timeout(30)

# The same Discord world and chat as the adapter's own tests.
fake = adapter.fake
world = adapter.world
chat = adapter.chat


def bot_and_hub(fake: FakeDiscord, world: World, chat: Chat) -> Any:
    """A running bot and a started hub, wired as the composition root wires them."""
    return adapter.bot_with_hub(fake, world, chat, thresholds=(1,), edit_interval=0.05)


async def pay_the_hold_of(chat: Chat, drop_id: int) -> int:
    async with chat.commerce.db.read() as conn:
        hold = (await conn.execute(select(holds).where(holds.c.drop_id == drop_id))).one()
    order = await chat.commerce.orders.checkout(hold.id, hold.customer_id, "test")
    await chat.commerce.orders.confirm_payment(order.id, f"pi_{hold.id}")
    return order.id


def labels(message: dict[str, Any]) -> set[str | None]:
    return {b.get("label") for b in buttons(message)}


async def test_the_ephemeral_pay_message_says_paid_once_paid(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(3))
    async with bot_and_hub(fake, world, chat) as (_, hub):
        interaction = await fake.inject_slash_command(
            "buy", user=world.viewer, channel=world.channel
        )
        reply = await answer(fake, interaction)
        assert "Pay now" in labels(reply)
        order_id = await pay_the_hold_of(chat, drop_id)
        await hub.drain()
        edited = await fake.wait_for(
            lambda: (m := fake.get_message(reply["id"])) and m.get("edited_timestamp") and m
        )

    assert int(edited["flags"]) & EPHEMERAL
    assert edited["content"].startswith("Paid") and f"order #{order_id}" in edited["content"]
    assert "Pay now" not in labels(edited)
    assert fake.requests_to(
        "PATCH", "/webhooks/{application_id}/{interaction_token}/messages/{message_ref}"
    )


async def test_a_waitlist_offer_by_dm_says_paid_once_paid(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(1))
    holder = await chat.commerce.customers.resolve("web:holder@example.com")
    first = await chat.commerce.claims.claim(drop_id, holder)
    assert first.hold is not None
    async with bot_and_hub(fake, world, chat) as (_, hub):
        joined = await fake.inject_slash_command(
            "waitlist", user=world.viewer, channel=world.channel
        )
        assert "number 1 in line" in (await answer(fake, joined))["content"]
        await chat.commerce.claims.cancel_hold(first.hold.id)  # the unit goes to Alice
        await hub.drain()
        dm = fake.dm_channel_for(world.viewer)
        (offer,) = fake.messages[dm.id]
        assert "freed up" in offer["content"] and "Pay now" in labels(offer)
        await pay_the_hold_of_customer(chat, drop_id, f"discord:{world.viewer.id}")
        await hub.drain()

    (paid,) = fake.messages[dm.id]
    assert paid["id"] == offer["id"] and paid["content"].startswith("Paid")
    assert "Pay now" not in labels(paid)


async def pay_the_hold_of_customer(chat: Chat, drop_id: int, identity: str) -> None:
    customer = await chat.commerce.customers.find(identity)
    assert customer is not None, identity
    async with chat.commerce.db.read() as conn:
        hold = (
            await conn.execute(
                select(holds).where(
                    holds.c.drop_id == drop_id,
                    holds.c.customer_id == customer,
                    holds.c.status == "active",
                )
            )
        ).one()
    order = await chat.commerce.orders.checkout(hold.id, customer, "test")
    await chat.commerce.orders.confirm_payment(order.id, f"pi_{hold.id}")


async def test_waitlist_with_a_unit_free_gives_one_answer_and_no_dm(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    await live_drop(chat.commerce, capsule_spec(2))
    async with bot_and_hub(fake, world, chat):
        interaction = await fake.inject_slash_command(
            "waitlist", user=world.viewer, channel=world.channel
        )
        reply = await answer(fake, interaction)

    assert "no need to wait" in reply["content"] and "Pay now" in labels(reply)
    assert not fake.requests_to("POST", "/users/@me/channels")  # no DM opened for an offer
    assert len(adapter.answers(interaction)) == 1


async def test_slash_buy_with_only_a_pool_claims_that_pool(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, collab_spec(ship=2, pickup=2))
    async with bot_and_hub(fake, world, chat):
        interaction = await fake.inject_slash_command(
            "buy", user=world.viewer, channel=world.channel, options={"pool": "pickup:corner-deli"}
        )
        reply = await answer(fake, interaction)

    assert "a unit is yours" in reply["content"]
    view = await chat.commerce.drops.view(drop_id)
    assert {line.pool: line.held for line in view.stock} == {"ship": 0, "pickup:corner-deli": 1}


async def test_money_follows_the_discord_clients_language(
    fake: FakeDiscord, world: World, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = capsule_spec(2)
    spec["products"][0]["currency"] = "EUR"
    await live_drop(chat.commerce, spec)
    base = fake._interaction_base

    def german(*args: Any, **kwargs: Any) -> Any:
        payload = base(*args, **kwargs)
        payload["locale"] = "de"  # what Discord sends for a German client
        return payload

    async with bot_and_hub(fake, world, chat):
        english = await answer(
            fake,
            await fake.inject_slash_command("drop", user=world.viewer, channel=world.channel),
        )
        monkeypatch.setattr(fake, "_interaction_base", german)
        deutsch = await answer(
            fake,
            await fake.inject_slash_command("drop", user=world.viewer, channel=world.channel),
        )

    assert "€12.00" in english["content"]
    assert "12,00\xa0€" in deutsch["content"]
    assert "EUR" not in english["content"] + deutsch["content"]


async def test_the_announcement_stops_counting_down_once_the_drop_is_live(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    async with bot_and_hub(fake, world, chat):
        drop_id = await chat.commerce.drops.create(validate_spec(capsule_spec(3, opens_at="+5m")))
        announced = await fake.wait_for_message(
            world.channel, lambda m: "STARTING SOON" in embed_text(m)
        )
        assert re.search(r"opens <t:\d+:t> \(<t:\d+:R>\)", embed_text(announced))
        await chat.commerce.drops.open(drop_id)
        await fake.wait_for_message(world.channel, lambda m: "LIVE NOW" in embed_text(m))
        edited = await fake.wait_for(
            lambda: (m := fake.get_message(announced["id"])) and m.get("edited_timestamp") and m
        )

    text = embed_text(edited)
    assert re.search(r"opened <t:\d+:t> \(<t:\d+:R>\)", text) and "opens" not in text
    assert not buttons(edited) or labels(edited) == {"Drop page"}
