"""Shutdown is bounded and complete: when ``close()`` or ``stop()`` returns, no task the
component started is still running, even one stuck mid-call.

Why it matters: a task left running is cancelled a second time when the event loop closes.
If it was mid-query on SQLite, SQLAlchemy's graceful close of the connection then waits
for aiosqlite's worker thread, which the second cancel has already stopped: the loop close
waits forever (the suite hung at teardown this way).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import twitchio

import bot.discord.client as discord_client
import bot.twitch.adapter as twitch_adapter
from bot.hub import ChatHub
from bot.messages import Message
from bot.presenter import Presenter
from tests.adapters import test_discord_adapter as discord_world
from tests.adapters import test_twitch_adapter as twitch_world
from tests.helpers import PATIENCE, capsule_spec, eventually, links, live_drop

pytestmark = pytest.mark.timeout(60)

stage = twitch_world.stage  # a running hub + TwitchBot against FakeTwitch
fake, world, chat = discord_world.fake, discord_world.world, discord_world.chat


async def forever(*args: Any, **kwargs: Any) -> Any:
    """A call that never answers (a platform that hangs, a query that never returns)."""
    await asyncio.Event().wait()


def tasks_named(name: str) -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == name]


class StuckOutlet:
    """An outlet whose posts never return."""

    platform = "stuck"

    def __init__(self) -> None:
        self.posting = asyncio.Event()

    async def post(self, message: Message) -> str | None:
        self.posting.set()
        return await forever()

    async def edit(self, handle: str, message: Message) -> None:
        return None

    async def edit_private(self, hold_id: int, message: Message) -> None:
        return None

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        return False


async def test_hub_stop_ends_its_worker_even_mid_post(commerce):
    hub = ChatHub(
        commerce,
        Presenter(commerce, twitch_world.SITE),
        links(twitch_world.personal_link),
        thresholds=[1],
    )
    outlet = StuckOutlet()
    hub.add_outlet(outlet)
    await hub.start()
    workers = tasks_named("chat-hub")
    await live_drop(commerce, capsule_spec(3))  # "LIVE NOW" goes to every outlet
    await eventually(outlet.posting.is_set, what="the hub to post")

    await hub.stop()

    assert workers and all(t.done() for t in workers)


async def test_twitch_close_ends_the_chat_lines_it_is_still_handling(stage, monkeypatch):
    world = await stage()
    monkeypatch.setattr(twitch_adapter, "CHAT_GRACE", 0.05, raising=False)
    handling: list[asyncio.Task[Any]] = []

    async def stuck(*args: Any, **kwargs: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        handling.append(task)
        await forever()

    monkeypatch.setattr(world.bot.handler, "handle", stuck)
    await world.fake.send_chat_message(world.broadcaster, world.alice, "!stock")
    await eventually(lambda: handling, what="the bot to handle the line")

    await world.bot.close()

    assert handling[0].done()


async def test_twitch_outlet_close_ends_its_sender_even_mid_send(stage, monkeypatch):
    world = await stage()
    monkeypatch.setattr(twitchio.PartialUser, "send_message", forever)
    await world.bot.outlet.post(Message("Only 2 left!", kind="tick", drop_id=1))
    senders = await eventually(lambda: tasks_named("twitch-outlet"), what="the sender")

    await world.bot.outlet.close(flush_timeout=0.05)

    assert all(t.done() for t in senders)


async def test_twitch_outlet_closed_twice_does_not_wait_for_posts_it_can_no_longer_send(
    stage, monkeypatch, caplog
):
    world = await stage()
    monkeypatch.setattr(twitchio.PartialUser, "send_message", forever)
    await world.bot.outlet.post(Message("Only 2 left!", kind="tick", drop_id=1))
    await eventually(lambda: tasks_named("twitch-outlet"), what="the sender")
    await world.bot.outlet.close(flush_timeout=0.05)

    # The bot's own close closes its outlet again: that must not wait out a flush (the
    # sender is gone), however long the flush timeout.
    await asyncio.wait_for(world.bot.outlet.close(flush_timeout=3600), PATIENCE)

    unsent = [r for r in caplog.records if "posts not sent at shutdown" in r.getMessage()]
    assert len(unsent) == 1


async def test_discord_close_ends_the_commands_it_is_still_running(fake, world, chat, monkeypatch):
    monkeypatch.setattr(discord_client, "COMMAND_GRACE", 0.05, raising=False)
    running: list[asyncio.Task[Any]] = []

    async def stuck(*args: Any, **kwargs: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.append(task)
        await forever()

    monkeypatch.setattr(chat.handler, "execute", stuck)
    hub = chat.hub()
    await hub.start()
    try:
        bot = discord_world.make_bot(fake, world, chat, hub)
        await bot.start()
        await asyncio.wait_for(bot.commands_synced.wait(), PATIENCE)
        await fake.inject_slash_command("stock", user=world.viewer, channel=world.channel)
        await eventually(lambda: running, what="the bot to run the command")

        await bot.close()

        assert running[0].done()
    finally:
        await hub.stop()
