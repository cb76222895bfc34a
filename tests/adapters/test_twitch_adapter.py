"""The Twitch adapter, with the real twitchio 3 client against FakeTwitch, on both engines."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import twitchio.eventsub.websockets as eventsub_websockets
from twitchio.http import Route

_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from bot.commands import CommandHandler  # noqa: E402
from bot.hub import ChatHub  # noqa: E402
from bot.messages import ChatUser, Message  # noqa: E402
from bot.presenter import Presenter  # noqa: E402
from bot.twitch import SendPolicy, TwitchBot  # noqa: E402
from bot.twitch.outlet import DUPLICATE_BREAKER, chat_limiter  # noqa: E402
from bot.webpage import PageOutlet  # noqa: E402
from commerce.domain.model import DropState  # noqa: E402
from commerce.web.inbox import WebInbox  # noqa: E402
from config.settings import TwitchSettings  # noqa: E402
from tests.fakes.twitch import BOT_SCOPES, ChatRecord, FakeTwitch, FakeUser  # noqa: E402
from tests.helpers import capsule_spec, customers, eventually, links, live_drop  # noqa: E402

pytestmark = pytest.mark.timeout(30)

SITE = "https://shop.test"
FAST = SendPolicy(reply_wait=2.0, retry_delay=0.05)


def personal_link(drop_id: int, identity: str) -> str:
    return f"{SITE}/c/{drop_id}-{identity}"


class RecordingOutlet:
    """What the Discord adapter looks like to the hub: here it only records DMs."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.private: list[tuple[str, Message]] = []

    async def post(self, message: Message) -> str | None:
        return None

    async def edit(self, handle: str, message: Message) -> None:
        return None

    async def send_private(self, identity: str, message: Message, key: str | None = None) -> bool:
        self.private.append((identity, message))
        return True

    async def edit_private(self, hold_id: int, message: Message) -> None:
        return None


@dataclass
class Stage:
    fake: FakeTwitch
    broadcaster: FakeUser
    bot_user: FakeUser
    alice: FakeUser
    hub: ChatHub
    bot: TwitchBot
    discord: RecordingOutlet
    samples: list[tuple[int, int]]
    handled: list[str]  # chat lines the bot has finished handling, in that order

    async def say(self, user: FakeUser, text: str, **kwargs: Any) -> ChatRecord:
        """``user`` types ``text``; returns the bot's reply in that thread."""
        said = await self.fake.send_chat_message(self.broadcaster, user, text, **kwargs)
        assert said.delivered == 1
        replies = await self.fake.wait_for(
            lambda: [
                m for m in self.fake.chat_messages if m.reply_parent_message_id == said.message_id
            ]
        )
        return replies[0]

    async def outcome(self, user: FakeUser, text: str = "!buy") -> ChatRecord:
        """``user`` types a claim (``text``); returns the outcome line that names them."""
        said = await self.fake.send_chat_message(self.broadcaster, user, text)
        assert said.delivered == 1
        lines = await self.fake.wait_for(
            lambda: [m for m in self.fake.sent_chat_messages if user.login in mentioned(m.text)]
        )
        return lines[0]

    async def settle(self) -> None:
        await self.hub.drain()
        await self.bot.outlet.drain()

    def streams_requests(self) -> int:
        """How often the bot asked Helix about the stream (only the viewer sampler does)."""
        return len(self.fake.helix_requests("GET", "streams"))

    def public_texts(self) -> list[str]:
        return [m.text for m in self.fake.sent_chat_messages] + [
            a.message for a in self.fake.announcements
        ]


StageFactory = Callable[..., Awaitable[Stage]]


@pytest_asyncio.fixture
async def stage(commerce: Any) -> AsyncIterator[StageFactory]:
    """Builds a running hub + TwitchBot against a fresh FakeTwitch; closes both afterwards."""
    async with AsyncExitStack() as stack:

        async def build(
            *,
            moderator: bool = False,
            whisper: bool = False,
            policy: SendPolicy = FAST,
            fake_options: dict[str, Any] | None = None,
            **settings: Any,
        ) -> Stage:
            fake = await stack.enter_async_context(FakeTwitch(**(fake_options or {})))
            broadcaster = fake.add_user("dropshop", display_name="DropShop")
            bot_user = fake.add_user("dropcastbot", display_name="DropcastBot")
            alice = fake.add_user("alice", display_name="Alice")
            scopes = [*BOT_SCOPES, "moderator:manage:announcements"]
            if whisper:
                scopes.append("user:manage:whispers")
            token = fake.add_user_token(bot_user, scopes)
            fake.add_user_token(broadcaster, ["channel:bot"])  # lets the bot chat there
            if moderator:
                fake.add_moderator(broadcaster, bot_user)

            hub = ChatHub(
                commerce,
                Presenter(commerce, SITE),
                links(personal_link),
                thresholds=[10, 5, 3, 1],
                edit_interval=0.05,
            )
            discord = RecordingOutlet("discord")
            hub.add_outlet(discord)
            await hub.start()
            stack.push_async_callback(hub.stop)
            samples: list[tuple[int, int]] = []

            async def record(drop_id: int, viewers: int) -> None:
                samples.append((drop_id, viewers))

            bot = TwitchBot(
                TwitchSettings(
                    client_id=fake.client_id,
                    client_secret=fake.client_secret,
                    bot_id=bot_user.id,
                    bot_token=token.access_token,
                    bot_refresh_token=token.refresh_token,
                    channel="dropshop",
                    whisper_fallback=whisper,
                    api_base=fake.helix_base,
                    id_base=fake.id_base,
                    eventsub_url=fake.eventsub_url,
                    **settings,
                ),
                CommandHandler(commerce, links(personal_link), public_url=SITE),
                hub,
                commerce,
                on_viewers=record,
                sample_interval=0.05,
                policy=policy,
            )
            bot.handler.reachability["twitch"] = bot.reachable  # as the composition root does
            handled: list[str] = []
            handle_chat = bot.handle_chat

            async def recording_handle_chat(
                user: ChatUser, text: str, message_id: str, **options: Any
            ) -> None:
                try:
                    await handle_chat(user, text, message_id, **options)
                finally:
                    handled.append(text)

            bot.handle_chat = recording_handle_chat  # type: ignore[method-assign]
            await bot.start()
            stack.push_async_callback(bot.close)
            await fake.wait_for_subscription("channel.chat.message")
            return Stage(fake, broadcaster, bot_user, alice, hub, bot, discord, samples, handled)

        yield build


def mentioned(text: str) -> set[str]:
    """The logins an outcome line names (``@ann @bo: you hold a unit · @cy: sold out``)."""
    return set(re.findall(r"(?<!\S)@(\w+)", text))


def held_units(view: Any) -> int:
    return sum(line.held for line in view.stock)


# --- claims ----------------------------------------------------------------------------------


async def test_buy_from_a_viewer_we_cannot_reach_privately_points_to_the_drop_page(stage, commerce):
    world = await stage()
    drop_id = await live_drop(commerce, capsule_spec(5))

    reply = await world.outcome(world.alice)

    assert reply.is_sent and reply.sender_id == world.bot_user.id
    assert reply.text.startswith("@alice: chat is public, so no pay link here")
    assert f"{SITE}/d/{drop_id}" in reply.text
    assert "/c/" not in reply.text
    assert "/link" in reply.text  # tells the viewer how to buy from chat next time
    # No hold: it would block a unit its holder could never get a pay link for.
    assert held_units(await commerce.drops.view(drop_id)) == 0
    assert world.discord.private == [] and world.fake.whispers == []
    await world.settle()
    assert world.fake.dropped_chat_messages == []
    assert all("/c/" not in text for text in world.public_texts())


async def test_a_viewer_signed_in_on_the_drop_page_buys_from_chat_without_discord(stage, commerce):
    world = await stage()
    inbox = WebInbox(commerce.customers)
    world.hub.add_outlet(PageOutlet(inbox))
    drop_id = await live_drop(commerce, capsule_spec(5))
    alice = f"twitch:{world.alice.id}"
    await commerce.customers.verify(alice, "Alice")  # "Sign in with Twitch", once

    reply = await world.outcome(world.alice)

    # The web side pushes the link to her page on HoldPlaced (tests/web/test_signin.py).
    assert reply.text.startswith("@alice: you hold a unit — your pay link is on the drop page")
    assert "/c/" not in reply.text
    assert held_units(await commerce.drops.view(drop_id)) == 1
    assert world.discord.private == [] and world.fake.whispers == []


async def test_a_viewer_who_linked_discord_gets_the_personal_link_by_dm(stage, commerce):
    world = await stage()
    drop_id = await live_drop(commerce, capsule_spec(5))

    # Codes are never shown in public chat: !link alone explains the private route.
    answer = await world.say(world.alice, "!link")
    assert "/link in our Discord" in answer.text and not re.search(r"[A-Z0-9]{6}", answer.text)
    code = world.bot.linker.issue_link_code("discord:4242")  # what Discord's /link shows
    linked = await world.say(world.alice, f"!link {code}")
    assert "linked" in linked.text
    assert not await world.bot.linker.redeem_link_code(code, f"twitch:{world.alice.id}")  # once

    reply = await world.outcome(world.alice)

    ((identity, dm),) = world.discord.private
    assert identity == "discord:4242"
    assert dm.personal_link == personal_link(drop_id, f"twitch:{world.alice.id}")
    assert "Discord DMs" in reply.text and "/c/" not in reply.text
    assert held_units(await commerce.drops.view(drop_id)) == 1
    twitch = await commerce.customers.find(f"twitch:{world.alice.id}")
    assert twitch == await commerce.customers.find("discord:4242")


async def test_a_code_issued_on_discord_links_when_typed_in_twitch_chat(stage, commerce):
    world = await stage()
    code = world.bot.linker.issue_link_code("discord:777")

    assert "unknown or expired" in (await world.say(world.alice, "!link WRONG1")).text
    assert "linked" in (await world.say(world.alice, f"!link {code.lower()}")).text
    alice = await commerce.customers.find(f"twitch:{world.alice.id}")
    assert alice is not None and alice == await commerce.customers.find("discord:777")
    # A code cannot link two accounts of the same platform.
    other = world.bot.linker.issue_link_code("discord:778")
    assert not await world.bot.linker.redeem_link_code(other, "discord:779")


async def test_expired_link_codes_are_refused(stage, commerce, clock):
    world = await stage()
    code = world.bot.linker.issue_link_code(f"twitch:{world.alice.id}")
    clock.advance(601)
    assert not await world.bot.linker.redeem_link_code(code, "discord:1")


async def test_whisper_fallback_delivers_the_personal_link_when_opted_in(stage, commerce):
    world = await stage(whisper=True)
    drop_id = await live_drop(commerce, capsule_spec(5))

    reply = await world.outcome(world.alice)

    (whisper,) = world.fake.whispers
    assert whisper.to_user_id == world.alice.id
    assert personal_link(drop_id, f"twitch:{world.alice.id}") in whisper.message
    assert "Twitch whispers" in reply.text and "/c/" not in reply.text


# --- stock ticks -----------------------------------------------------------------------------


async def test_40_stock_changes_in_2_seconds_post_only_thresholds_and_always_sold_out(
    stage, commerce
):
    # Twitch's chat limit shrunk to 4 per second (same sliding window as 20 per 30 s), and
    # the bot's limiter sized the same way: posts must queue, stale ticks must be skipped.
    world = await stage(
        policy=SendPolicy(limiter=lambda moderator: chat_limiter(4, 1.0), retry_delay=0.05),
        fake_options={"chat_limit": 4, "chat_window": 1.0},
    )
    drop_id = await live_drop(commerce, capsule_spec(32))
    buyers = await customers(commerce, 40)

    async def claim(i: int) -> None:
        await asyncio.sleep(i * 0.05)
        await commerce.claims.claim(drop_id, buyers[i])

    async def restock(i: int) -> None:
        await asyncio.sleep(i * 0.05)
        await commerce.drops.restock(drop_id, "CHIPS-SPICY", 1)

    await asyncio.gather(
        *(claim(i) for i in range(40)), *(restock(i) for i in (1, 7, 13, 19))
    )  # 36 sales + 4 restocks = 40 stock changes, then 4 sold-out answers
    view = await commerce.drops.view(drop_id)
    assert view.available_units() == 0 and held_units(view) == 36
    await world.settle()

    texts = [m.text for m in world.fake.sent_chat_messages]
    ticks = [t for t in texts if t.startswith("Only ")]
    assert len(ticks) <= 4  # thresholds 10, 5, 3, 1 at most
    assert [t for t in texts if t.startswith("SOLD OUT")] == [texts[-1]]
    assert sum(t.startswith("Restocked") for t in texts) <= 4
    # Never over Twitch's limit. (Two posts rendered while the hub lags behind a busy
    # machine may read the same stock count and so carry the same text: Twitch's duplicate
    # rule refuses the second, and the outlet resends it made distinct. Nothing is lost.)
    dropped = world.fake.dropped_chat_messages
    assert [m for m in dropped if m.drop_code != "msg_duplicate"] == []
    assert all(m.text + DUPLICATE_BREAKER in texts for m in dropped)
    assert world.bot.outlet.stats.failed == 0


async def test_sold_out_is_retried_until_twitch_accepts_it(stage, commerce):
    world = await stage()
    world.fake.drop_chat_messages("msg_ratelimit", times=2)

    await world.bot.outlet.post(Message("SOLD OUT: chips!", kind="sold_out", drop_id=1))
    await world.bot.outlet.drain()

    assert [m.text for m in world.fake.sent_chat_messages] == ["SOLD OUT: chips!"]
    assert world.bot.outlet.stats.dropped == {"msg_ratelimit": 2}


async def test_a_repeated_post_survives_the_duplicate_rule(stage, commerce):
    world = await stage()
    for _ in range(2):
        await world.bot.outlet.post(Message("SOLD OUT: chips!", kind="sold_out", drop_id=1))
    await world.bot.outlet.drain()

    sent = world.fake.sent_chat_messages
    assert len(sent) == 2 and sent[1].text.startswith("SOLD OUT: chips!")
    assert world.bot.outlet.stats.dropped == {"msg_duplicate": 1}


async def test_a_moderator_bot_announces_live_and_sold_out_and_chats_ticks(stage, commerce):
    world = await stage(moderator=True)
    drop_id = await live_drop(commerce, capsule_spec(3))
    first, second, last = await customers(commerce, 3)
    await commerce.claims.claim(drop_id, first)
    await commerce.claims.claim(drop_id, second)
    # "Only 1 left" goes out before the last sale: queued behind a slow announcement, a
    # newer "sold out" would rightly make it stale (the outlet skips stale ticks).
    await world.settle()
    await commerce.claims.claim(drop_id, last)
    await world.settle()

    announced = [a.message for a in world.fake.announcements]
    assert announced[0].startswith("LIVE NOW") and announced[-1].startswith("SOLD OUT")
    assert any(m.text.startswith("Only 1 left") for m in world.fake.sent_chat_messages)
    assert world.bot.outlet.moderator is True


async def test_a_regular_bot_posts_live_as_chat_and_never_edits(stage, commerce):
    world = await stage()
    await live_drop(commerce, capsule_spec(3))
    await world.settle()

    assert world.fake.announcements == []  # 403 (not a moderator): plain chat instead
    assert [m.text[:8] for m in world.fake.sent_chat_messages] == ["LIVE NOW"]
    assert world.bot.outlet.moderator is False
    await world.bot.outlet.edit("anything", Message("LIVE: 2 left", kind="tick"))
    await world.settle()
    assert len(world.fake.chat_messages) == 1


# --- permissions and bad input ---------------------------------------------------------------


async def test_a_viewer_cannot_close_a_drop_but_a_moderator_can(stage, commerce):
    world = await stage()
    drop_id = await live_drop(commerce, capsule_spec(3))
    mod = world.fake.add_user("helper", display_name="Helper")
    world.fake.add_moderator(world.broadcaster, mod)

    refused = await world.say(world.alice, f"!drop close {drop_id}")
    assert "Only the creator and mods" in refused.text
    assert (await commerce.drops.get(drop_id)).state.value == "live"

    done = await world.say(mod, f"!drop close {drop_id}")
    assert done.text == f"Drop {drop_id} is closed."
    assert (await commerce.drops.get(drop_id)).state.value == "closed"


async def test_allowed_logins_may_steer_drops_without_a_badge(stage, commerce):
    world = await stage(allowed_logins=["Alice"])
    drop_id = await live_drop(commerce, capsule_spec(3))
    assert (await world.say(world.alice, f"!drop close {drop_id}")).text.endswith("closed.")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("!buy NOPE", "!stock"),
        ("!buy a b c", "Usage: !buy [SKU] [POOL]"),
        ("!drop restock 1 CHIPS-SPICY", "Only the creator and mods"),
        ("!link A B", "use /link in our Discord"),
    ],
)
async def test_bad_input_gets_a_short_reply_and_changes_nothing(stage, commerce, line, expected):
    world = await stage()
    drop_id = await live_drop(commerce, capsule_spec(3))

    reply = await world.say(world.alice, line)

    assert expected in reply.text and len(reply.text) < 200
    assert held_units(await commerce.drops.view(drop_id)) == 0


async def test_wrong_creator_arguments_get_the_usage(stage, commerce):
    world = await stage()
    drop_id = await live_drop(commerce, capsule_spec(3))
    reply = await world.say(world.broadcaster, f"!drop restock {drop_id} CHIPS-SPICY")
    assert reply.text == "Usage: !drop restock ID SKU N [POOL]"
    assert (await commerce.drops.view(drop_id)).available_units() == 3


async def test_ordinary_chat_gets_no_answer(stage, commerce):
    world = await stage()
    line = "hype! !so someone"
    await world.fake.send_chat_message(world.broadcaster, world.alice, line)
    await eventually(lambda: line in world.handled)
    await world.settle()
    assert world.fake.chat_messages == []


# --- viewer samples --------------------------------------------------------------------------


async def test_viewer_counts_are_sampled_only_while_a_drop_is_live_and_the_stream_is_on(
    stage, commerce, monkeypatch
):
    world = await stage()
    looked: list[Any] = []  # each time the sampler asked which drops are live
    list_drops = commerce.drops.list

    async def recording_list(states: Any = None) -> Any:
        found = await list_drops(states)
        if states == (DropState.LIVE,):
            looked.append(found)
        return found

    monkeypatch.setattr(commerce.drops, "list", recording_list)
    world.fake.set_stream(world.broadcaster, viewer_count=1234)
    await eventually(lambda: len(looked) >= 3)  # it looked, and found no live drop
    assert world.samples == [] and world.streams_requests() == 0

    drop_id = await live_drop(commerce, capsule_spec(3))
    await eventually(lambda: len(world.samples) >= 2)
    world.fake.set_stream(world.broadcaster, viewer_count=1500)
    await eventually(lambda: (drop_id, 1500) in world.samples)
    assert set(world.samples) <= {(drop_id, 1234), (drop_id, 1500)}

    world.fake.end_stream(world.broadcaster)
    # The sampler is one loop: once it asks again after the stream ended, every sample of
    # the stream online has been recorded; two more questions later, none was added.
    asked = world.streams_requests()
    await eventually(lambda: world.streams_requests() > asked)
    offline = len(world.samples)
    await eventually(lambda: world.streams_requests() > asked + 2)
    assert len(world.samples) == offline  # an offline stream records nothing


# --- plumbing --------------------------------------------------------------------------------


async def test_the_bot_points_twitchio_at_the_settings_and_restores_it(stage, commerce):
    before = (Route.BASE, Route.ID_BASE, eventsub_websockets.WSS)
    world = await stage()
    assert (
        world.fake.helix_base,
        world.fake.id_base,
        world.fake.eventsub_url,
    ) == (Route.BASE, Route.ID_BASE, eventsub_websockets.WSS)
    (sub,) = world.fake.active_subscriptions("channel.chat.message")
    assert sub.condition == {
        "broadcaster_user_id": world.broadcaster.id,
        "user_id": world.bot_user.id,
    }
    await world.bot.close()
    assert before == (Route.BASE, Route.ID_BASE, eventsub_websockets.WSS)


async def test_handle_chat_is_callable_without_eventsub(stage, commerce):
    """The adapter's translation layer on its own: a ChatUser in, a thread reply out."""
    world = await stage()
    user = ChatUser(f"twitch:{world.alice.id}", "Alice")
    said = await world.fake.send_chat_message(world.broadcaster, world.alice, "hello")
    await world.bot.handle_chat(user, "!drop", said.message_id)
    (reply,) = world.fake.sent_chat_messages
    assert reply.reply_parent_message_id == said.message_id
    assert reply.text == "No drop is scheduled right now."
