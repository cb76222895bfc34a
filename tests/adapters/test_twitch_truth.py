"""Twitch tells the truth (issue 9, chat side), with the real twitchio client against
FakeTwitch: bundles are named as bundles, hold times read right, money is Babel's, and an
unknown command gets help once, not a flood (both engines)."""

from __future__ import annotations

import pytest

from bot.messages import ChatUser
from tests.adapters import test_twitch_adapter as adapter
from tests.helpers import bundle_spec, capsule_spec, live_drop

pytestmark = pytest.mark.timeout(30)

stage = adapter.stage  # the same running hub + TwitchBot against FakeTwitch


async def test_a_bundle_hold_is_called_a_bundle_and_its_expiry_reads_right(stage, commerce):
    world = await stage(whisper=True)
    await live_drop(commerce, bundle_spec(chips=4, salsa=2, hold_seconds=60))

    reply = await world.outcome(world.alice)
    status = await world.say(world.alice, "!drop")

    assert reply.text == "@alice: you hold a bundle — your pay link is in your Twitch whispers"
    (whisper,) = world.fake.whispers
    assert "a bundle is yours" in whisper.message and "the hold expires in 1 min" in whisper.message
    assert "until in" not in whisper.message + reply.text
    assert "1 of 2 bundles left at $9.50" in status.text and "USD" not in status.text


async def test_an_unknown_command_gets_short_help_once_not_a_flood(stage, commerce):
    world = await stage()
    await live_drop(commerce, capsule_spec(3))
    alice = ChatUser(f"twitch:{world.alice.id}", "Alice")

    first = await world.fake.send_chat_message(world.broadcaster, world.alice, "hello")
    await world.bot.handle_chat(alice, "!foo", first.message_id)
    second = await world.fake.send_chat_message(world.broadcaster, world.alice, "hello again")
    for _ in range(5):
        await world.bot.handle_chat(alice, "!foo", second.message_id)

    (help_reply,) = world.fake.sent_chat_messages
    assert help_reply.reply_parent_message_id == first.message_id
    assert "!foo" in help_reply.text and "!buy" in help_reply.text
    assert len(help_reply.text) < 200
