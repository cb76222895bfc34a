"""Retention delivery end to end over Discord: the real Dispatcher, ``OutletSender`` and
DiscordBot (real discord.py) against ``FakeDiscord``, on both engines. Every subscriber
gets exactly one DM; closed DMs end 'unreachable' after one attempt; a 5xx is retried;
a resend of the same notification (a crash) is dropped by Discord's message nonce."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from sqlalchemy import select

from bot.commands import CommandHandler
from bot.delivery import OutletSender
from bot.discord import DiscordBot
from bot.discord.outlet import _nonce
from bot.hub import ChatHub
from bot.presenter import Presenter
from bot.presenter.retention import RetentionRenderer
from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.dropfile import validate_spec
from commerce.services.notifications import DeliveryStatus
from commerce.storage.tables import notifications
from config.settings import DiscordSettings
from scheduler.outbox import Dispatcher
from tests.helpers import PATIENCE, capsule_spec, links

# `tests.fakes` must be importable whether pytest runs as `python -m pytest` or bare `pytest`.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser  # noqa: E402

pytestmark = pytest.mark.timeout(30)

BASE = "https://shop.test"
MESSAGES = "/channels/{channel_id}/messages"
TITLE = "Spicy chips capsule"  # capsule_spec's drop title


class FastBot(DiscordBot):
    """Only skips discord.py's 5 s pause before a *re*-IDENTIFY."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


@dataclass
class Shop:
    fake: FakeDiscord
    guild: FakeGuild
    fans: list[FakeUser]
    drop_id: int


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        with server.patch_discord_py():  # restores discord.py's endpoints afterwards
            yield server


async def shop(fake: FakeDiscord, commerce: Commerce, fans: int) -> Shop:
    """A guild of ``fans`` members, each a creator subscriber by Discord DM, and a drop
    opening in 10 minutes."""
    guild = fake.add_guild("Drop Shop")
    users = []
    for i in range(fans):
        user = fake.add_user(f"fan{i}")
        fake.add_member(guild, user)
        customer = await commerce.customers.resolve(f"discord:{user.id}")
        sub = await commerce.subscriptions.subscribe(customer, "creator")
        assert (sub.channel, sub.address) == ("discord", f"discord:{user.id}")
        users.append(user)
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+10m")))
    return Shop(fake, guild, users, drop_id)


@asynccontextmanager
async def running_bot(world: Shop, commerce: Commerce) -> AsyncIterator[DiscordBot]:
    settings = DiscordSettings(
        token=world.fake.token,
        guild_ids=[world.guild.id],
        channel_id=world.guild.channel("general").id,
        api_base=world.fake.api_base,
        gateway_url=world.fake.gateway_url,
    )
    handler = CommandHandler(commerce, links(lambda d, who: f"{BASE}/c/{d}/{who}"), public_url=BASE)
    hub = ChatHub(commerce, Presenter(commerce, BASE), handler.issue_link, thresholds=[5])
    bot = FastBot(settings, handler, hub, guild_ready_timeout=0.05)
    await bot.start()
    try:
        await asyncio.wait_for(bot.commands_synced.wait(), PATIENCE)
        yield bot
    finally:
        await bot.close()


def dispatcher(commerce: Commerce, bot: DiscordBot) -> Dispatcher:
    render = RetentionRenderer(
        commerce,
        links(lambda d, who, tag: f"{BASE}/c/{d}/{who}?tag={tag}"),
        lambda c: f"{BASE}/u/{c}",
        BASE,
    )
    return Dispatcher(commerce, render, {"discord": OutletSender(bot.outlet)}, backoff_seconds=5)


async def rows(commerce: Commerce) -> dict[str, dict[str, Any]]:
    """Notification rows by address."""
    async with commerce.db.read() as conn:
        result = await conn.execute(select(notifications))
        return {r.address: dict(r._mapping) for r in result}


def dms(fake: FakeDiscord, user: FakeUser) -> list[dict[str, Any]]:
    return fake.messages[fake.dm_channel_for(user).id]


def posts_to(fake: FakeDiscord, user: FakeUser) -> list[Any]:
    return fake.requests_to("POST", f"/channels/{fake.dm_channel_for(user).id}/messages")


async def test_every_subscriber_gets_exactly_one_dm(fake: FakeDiscord, commerce: Commerce) -> None:
    world = await shop(fake, commerce, 5)
    assert await commerce.notifications.fan_out(world.drop_id, "reminder:300") == 5
    async with running_bot(world, commerce) as bot:
        run = dispatcher(commerce, bot)
        assert await run.run_once() == 5
        assert await run.run_once() == 0
        assert await commerce.notifications.fan_out(world.drop_id, "reminder:300") == 0
        assert await run.run_once() == 0

    for user in world.fans:
        [message] = dms(fake, user)
        assert TITLE in message["content"] and "unsubscribe" in message["content"].lower()
        customer = await commerce.customers.resolve(f"discord:{user.id}")
        key = f"reminder:300:{world.drop_id}:{customer}"  # the notification's dedupe key
        assert message["nonce"] == _nonce(key)
        assert [r.json["enforce_nonce"] for r in posts_to(fake, user)] == [True]
    assert {(r["status"], r["attempts"]) for r in (await rows(commerce)).values()} == {("sent", 1)}
    assert run.sent == 5 and fake.nonce_replays == []
    assert all(r.status == 200 for r in fake.requests_to("POST", MESSAGES))


async def test_closed_dms_end_unreachable_after_one_attempt(
    fake: FakeDiscord, commerce: Commerce, clock: ManualClock
) -> None:
    world = await shop(fake, commerce, 3)
    closed = world.fans[1]
    fake.close_dms(closed)
    await commerce.notifications.fan_out(world.drop_id, "reminder:300")
    async with running_bot(world, commerce) as bot:
        run = dispatcher(commerce, bot)
        assert await run.run_once() == 3
        clock.advance(3600)  # any backoff would be due by now
        assert await run.run_once() == 0

    state = await rows(commerce)
    row = state[f"discord:{closed.id}"]
    assert (row["status"], row["attempts"]) == ("unreachable", 1)
    [refused] = posts_to(fake, closed)
    assert (refused.status, refused.response["code"]) == (403, 50007)
    assert dms(fake, closed) == []
    for user in (world.fans[0], world.fans[2]):
        assert len(dms(fake, user)) == 1
        assert state[f"discord:{user.id}"]["status"] == "sent"


async def test_a_server_error_on_the_dm_is_retried_not_unreachable(
    fake: FakeDiscord, commerce: Commerce, clock: ManualClock
) -> None:
    world = await shop(fake, commerce, 1)
    [fan] = world.fans
    # 503: discord.py raises at once (it would sleep and retry a 500/502/504 itself).
    fake.force_error("POST", f"/channels/{fake.dm_channel_for(fan).id}/messages", status=503)
    await commerce.notifications.fan_out(world.drop_id, "reminder:300")
    async with running_bot(world, commerce) as bot:
        run = dispatcher(commerce, bot)
        assert await run.run_once() == 1
        row = (await rows(commerce))[f"discord:{fan.id}"]
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert "503" in row["error"]
        assert await run.run_once() == 0  # backing off: not due yet
        clock.advance(10)
        assert await run.run_once() == 1

    row = (await rows(commerce))[f"discord:{fan.id}"]
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, None)
    assert bot.outlet.unreachable == set()
    assert [r.status for r in posts_to(fake, fan)] == [503, 200]
    assert len(dms(fake, fan)) == 1


async def test_a_resend_of_the_same_notification_is_one_dm(
    fake: FakeDiscord, commerce: Commerce, clock: ManualClock
) -> None:
    world = await shop(fake, commerce, 2)
    first, second = world.fans
    await commerce.notifications.fan_out(world.drop_id, "reminder:300")
    async with running_bot(world, commerce) as bot:
        run = dispatcher(commerce, bot)
        sender = run.senders["discord"]
        leased = await commerce.notifications.lease(10, lease_seconds=60)
        by_address = {n.address: n for n in leased}

        # A crash between sending and recording: the same key is sent again.
        item = by_address[f"discord:{first.id}"]
        message = await run.render(item, clock.now())
        assert message is not None
        for _ in range(2):
            delivery = await sender.send(item.address, message, item.dedupe_key)
            assert delivery.status is DeliveryStatus.SENT

        # Same, through the dispatcher: the process died holding the lease; it lapses and
        # the row is leased and sent again, with the same key.
        other = by_address[f"discord:{second.id}"]
        message = await run.render(other, clock.now())
        assert message is not None
        await sender.send(other.address, message, other.dedupe_key)
        clock.advance(61)
        assert await run.run_once() == 2

    # first: sent twice by hand, then once more when its lease lapsed; second: twice.
    for user, sends in ((first, 3), (second, 2)):
        [dm] = dms(fake, user)
        answers = posts_to(fake, user)
        assert [(r.status, r.response["id"]) for r in answers] == [(200, dm["id"])] * sends
    assert len(fake.nonce_replays) == 3
    assert {(r["status"], r["attempts"]) for r in (await rows(commerce)).values()} == {("sent", 2)}


# -- the fake's nonce itself (no database) ----------------------------------------------


async def test_fake_nonce_is_per_channel_needs_enforce_and_expires(fake: FakeDiscord) -> None:
    guild = fake.add_guild("Drop Shop")
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    fake.add_member(guild, alice)
    fake.add_member(guild, bob)
    to_alice, to_bob = fake.dm_channel_for(alice), fake.dm_channel_for(bob)

    async def post(channel_id: int, body: dict[str, Any]) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{fake.api_base}/channels/{channel_id}/messages",
                json=body,
                headers={"Authorization": f"Bot {fake.token}"},
            ) as response,
        ):
            return response.status, await response.json()

    hi = {"content": "hi", "nonce": "n1", "enforce_nonce": True}
    status, original = await post(to_alice.id, hi)
    assert status == 200
    assert await post(to_alice.id, {**hi, "content": "changed"}) == (200, original)
    assert (await post(to_bob.id, hi))[1]["id"] != original["id"]  # another channel
    loose = await post(to_alice.id, {"content": "hi", "nonce": "n1"})  # no enforce_nonce
    assert loose[1]["id"] != original["id"] and loose[1]["nonce"] == "n1"
    too_long = await post(to_alice.id, {"content": "x", "nonce": "n" * 26, "enforce_nonce": True})
    assert too_long[0] == 400 and too_long[1]["code"] == 50035
    fake.nonce_window = 0.0  # the "past few minutes" are over
    await asyncio.sleep(0.01)
    assert (await post(to_alice.id, hi))[1]["id"] not in (original["id"], loose[1]["id"])
    assert fake.nonce_replays == [int(original["id"])]
    assert len(fake.messages[to_alice.id]) == 3 and len(fake.messages[to_bob.id]) == 1


async def test_discord_py_send_with_a_nonce_is_idempotent(fake: FakeDiscord) -> None:
    guild = fake.add_guild("Drop Shop")
    alice = fake.add_user("alice")
    fake.add_member(guild, alice)
    client = discord.Client(intents=discord.Intents.none())
    await client.login(fake.token)
    try:
        dm = await client.create_dm(discord.Object(alice.id))
        one = await dm.send("Starts in 5 minutes", nonce="reminder-1")
        two = await dm.send("Starts in 5 minutes", nonce="reminder-1")
    finally:
        await client.close()
    assert one.id == two.id
    assert len(fake.messages[dm.id]) == 1
