"""Clips of the Twitch stream, with the real twitchio 3 client against FakeTwitch's Helix, on
both engines: made as a drop goes live, as it sells out and on the creator's ``!clip``;
polled until Twitch serves them and kept with the drop; none when the channel is offline;
one clear line and no retry storm without ``clips:edit``; a 429 waited out until
``Ratelimit-Reset``; and the replay message that links the sold-out clip."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from bot.commands import CommandHandler
from bot.hub import ChatHub
from bot.presenter import Presenter, replies
from bot.presenter.retention import RetentionRenderer
from bot.twitch import SendPolicy, TwitchBot
from bot.twitch.clips import ClipTiming, poll_delays
from commerce.domain.model import ClipReason, ClipStatus
from commerce.links import drop_page_url
from config.settings import TwitchSettings
from scheduler.outbox import Dispatcher
from tests.fakes.twitch import BOT_SCOPES, FakeTwitch, FakeUser
from tests.helpers import capsule_spec, eventually, links, live_drop
from tests.scheduler.test_retention import FakeSender

pytestmark = pytest.mark.timeout(60)

SITE = "https://shop.test"
FAST = SendPolicy(reply_wait=2.0, retry_delay=0.05)


@dataclass
class Stage:
    fake: FakeTwitch
    broadcaster: FakeUser
    bot_user: FakeUser
    alice: FakeUser
    bot: TwitchBot
    waits: list[float] = field(default_factory=list)  # what the clip maker slept

    async def say(self, user: FakeUser, text: str) -> str:
        """``user`` types ``text`` in chat; returns the bot's reply in that thread."""
        said = await self.fake.send_chat_message(self.broadcaster, user, text)
        found = await self.fake.wait_for(
            lambda: [
                m for m in self.fake.chat_messages if m.reply_parent_message_id == said.message_id
            ]
        )
        return found[0].text

    def clip_posts(self) -> list[Any]:
        return self.fake.helix_requests("POST", "clips")


StageFactory = Callable[..., Awaitable[Stage]]


@pytest_asyncio.fixture
async def stage(commerce: Any) -> AsyncIterator[StageFactory]:
    async with AsyncExitStack() as stack:

        async def build(
            *,
            live: bool = True,
            scopes: tuple[str, ...] = (*BOT_SCOPES, "clips:edit"),
            on_sleep: Callable[[FakeTwitch], None] | None = None,
            wall: Callable[[], float] = time.time,
            hold: asyncio.Event | None = None,
            **fake_options: Any,
        ) -> Stage:
            fake = await stack.enter_async_context(FakeTwitch(**fake_options))
            broadcaster = fake.add_user("dropshop", display_name="DropShop")
            bot_user = fake.add_user("dropcastbot", display_name="DropcastBot")
            alice = fake.add_user("alice", display_name="Alice")
            token = fake.add_user_token(bot_user, list(scopes))
            fake.add_user_token(broadcaster, ["channel:bot"])
            if live:
                fake.set_stream(broadcaster, viewer_count=120, title="Chips unboxing")
            waits: list[float] = []

            async def sleep(seconds: float) -> None:
                # Twitch's clock is not ours to wait on: a wait is noted and over at once.
                waits.append(seconds)
                if on_sleep is not None:
                    on_sleep(fake)
                if hold is not None:  # a wait that lasts until the test lets it end
                    await hold.wait()
                await asyncio.sleep(0)

            hub = ChatHub(
                commerce, Presenter(commerce, SITE), links(lambda d, i: SITE), thresholds=[]
            )
            await hub.start()
            stack.push_async_callback(hub.stop)
            bot = TwitchBot(
                TwitchSettings(
                    client_id=fake.client_id,
                    client_secret=fake.client_secret,
                    bot_id=bot_user.id,
                    bot_token=token.access_token,
                    bot_refresh_token=token.refresh_token,
                    channel="dropshop",
                    api_base=fake.helix_base,
                    id_base=fake.id_base,
                    eventsub_url=fake.eventsub_url,
                ),
                CommandHandler(commerce, links(lambda d, i: f"{SITE}/c/{d}"), public_url=SITE),
                hub,
                commerce,
                policy=FAST,
                clip_timing=ClipTiming(sleep=sleep, wall=wall),
            )
            await bot.start()
            stack.push_async_callback(bot.close)
            await fake.wait_for_subscription("channel.chat.message")
            return Stage(fake, broadcaster, bot_user, alice, bot, waits)

        yield build


async def sell_out(commerce: Any, drop_id: int, identity: str = "local:buyer") -> None:
    buyer = await commerce.customers.resolve(identity)
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")


async def ready_clips(commerce: Any, drop_id: int, count: int) -> list[Any]:
    async def ready() -> list[Any]:
        found = await commerce.clips.for_drop(drop_id)
        done = [c for c in found if c.status is ClipStatus.READY]
        return done if len(done) >= count else []

    return list(await eventually(ready, what=f"{count} ready clips of drop {drop_id}"))


async def test_a_drop_that_goes_live_and_sells_out_is_clipped_twice(stage, commerce):
    s = await stage()
    drop_id = await live_drop(commerce, capsule_spec(1))
    await sell_out(commerce, drop_id)
    clips = await ready_clips(commerce, drop_id, 2)
    assert {c.reason for c in clips} == {ClipReason.OPENED, ClipReason.SOLD_OUT}
    for clip in clips:
        made = s.fake.clips[clip.clip_id]  # Twitch made it, for the broadcaster, as the bot
        assert made.broadcaster.id == s.broadcaster.id and made.creator.id == s.bot_user.id
        assert (clip.platform, clip.url) == ("twitch", made.url)
        assert clip.thumbnail_url == made.helix()["thumbnail_url"]
        # Ready once Get Clips returned it: the fake serves a clip from its 2nd poll.
        polls = [r for r in s.fake.helix_requests("GET", "clips") if r.param("id") == clip.clip_id]
        assert len(polls) == 2 and polls[-1].response["data"][0]["id"] == clip.clip_id
    assert [r.status for r in s.clip_posts()] == [202, 202]
    assert all(r.param("broadcaster_id") == s.broadcaster.id for r in s.clip_posts())
    # Each clip waited the first two steps of the bounded backoff (the two may interleave).
    assert sorted(s.waits) == sorted(poll_delays()[:2] * 2)


async def test_the_replay_message_links_the_sold_out_clip_and_the_drop_page(stage, commerce):
    await stage()
    drop_id = await live_drop(commerce, capsule_spec(1))
    missed = await commerce.customers.resolve("local:missed")
    await sell_out(commerce, drop_id)
    await commerce.claims.claim(drop_id, missed)  # too late: a non-buyer who claimed
    sold_out = next(
        c for c in await ready_clips(commerce, drop_id, 2) if c.reason is ClipReason.SOLD_OUT
    )
    assert (await commerce.clips.best(drop_id)).id == sold_out.id
    await commerce.clips.post_replay(drop_id)  # `dropcast drop replay ID`: the best clip
    assert await commerce.notifications.fan_out(drop_id, "replay") == 1
    renderer = RetentionRenderer(
        commerce, links(lambda d, who, tag: f"{SITE}/c/{d}"), lambda c: f"{SITE}/u/{c}", SITE
    )
    sender = FakeSender()
    await Dispatcher(commerce, renderer, {"local": sender}).run_once()
    (replay,) = [(a, m) for a, m, _ in sender.sent if m.kind == "replay"]
    address, message = replay
    assert address == "local:missed"
    assert sold_out.url in message.text and drop_page_url(SITE, drop_id) in message.text
    assert message.public_link == drop_page_url(SITE, drop_id)


async def test_an_offline_channel_gets_no_clip_and_says_so_once(stage, commerce, caplog):
    caplog.set_level(logging.INFO, logger="bot.twitch.clips")
    s = await stage(live=False)
    first = await live_drop(commerce, capsule_spec(1))
    await sell_out(commerce, first)
    await live_drop(commerce, capsule_spec(1))
    await eventually(lambda: len(s.clip_posts()) == 3, what="three clip requests")
    await s.bot.clips.drain()
    assert [r.status for r in s.clip_posts()] == [404, 404, 404]
    assert await commerce.clips.for_drop(first) == []
    assert s.fake.helix_requests("GET", "clips") == []
    offline = [r for r in caplog.records if "not live" in r.getMessage()]
    assert len(offline) == 1


async def test_without_clips_edit_one_clear_line_and_no_retry_storm(stage, commerce, caplog):
    caplog.set_level(logging.INFO, logger="bot.twitch.clips")
    s = await stage(scopes=BOT_SCOPES)
    drop_id = await live_drop(commerce, capsule_spec(1))
    await eventually(lambda: s.clip_posts(), what="a clip request")
    await s.bot.clips.drain()
    await sell_out(commerce, drop_id)
    await live_drop(commerce, capsule_spec(1))
    assert await s.say(s.broadcaster, "!clip") == replies.CLIPS_OFF
    await s.bot.clips.drain()
    assert [(r.status, r.response["message"]) for r in s.clip_posts()] == [
        (401, "Missing scope: clips:edit")
    ]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "clips:edit" in errors[0]
    assert await commerce.clips.for_drop(drop_id) == []


async def test_a_rate_limited_clip_waits_until_ratelimit_reset_then_is_made(stage, commerce):
    walls: list[float] = []

    def wall() -> float:
        walls.append(time.time())
        return walls[-1]

    def refill(fake: FakeTwitch) -> None:  # the wait is over: Helix's bucket is full again
        fake.set_helix_rate_limit(800)

    s = await stage(on_sleep=refill, wall=wall)
    s.fake.set_helix_rate_limit(10, window=30.0)
    s.fake.bucket(s.fake.client_id, s.bot_user.id).drain()  # the bot's bucket is empty
    drop_id = await live_drop(commerce, capsule_spec(3))
    (clip,) = await ready_clips(commerce, drop_id, 1)
    refused, made = s.clip_posts()
    assert (refused.status, made.status) == (429, 202)
    assert refused.response_headers["Ratelimit-Remaining"] == "0"
    reset = float(refused.response_headers["Ratelimit-Reset"])
    assert s.waits[0] == pytest.approx(reset - walls[0]) and s.waits[0] > 0
    assert clip.clip_id == made.response["data"][0]["id"]


async def test_clip_is_the_creators_command(stage, commerce):
    s = await stage()
    drop_id = await live_drop(commerce, capsule_spec(3))
    await ready_clips(commerce, drop_id, 1)  # the opening's
    assert await s.say(s.alice, "!clip") == replies.CREATORS_ONLY
    assert len(s.clip_posts()) == 1
    assert await s.say(s.broadcaster, "!clip") == replies.clipping(drop_id).text
    clips = await ready_clips(commerce, drop_id, 2)
    assert {c.reason for c in clips} == {ClipReason.OPENED, ClipReason.COMMAND}
    assert len(s.clip_posts()) == 2


async def test_a_clip_twitch_never_serves_is_given_up_after_the_budget(stage, commerce):
    s = await stage(clip_ready_after=None)
    drop_id = await live_drop(commerce, capsule_spec(3))
    await eventually(lambda: s.clip_posts(), what="a clip request")
    await s.bot.clips.drain()
    (clip,) = await commerce.clips.for_drop(drop_id)
    assert clip.status is ClipStatus.FAILED and clip.url is None
    assert len(s.fake.helix_requests("GET", "clips")) == len(poll_delays())
    assert sum(s.waits) == pytest.approx(15.0)
    assert await commerce.clips.best(drop_id) is None


async def test_chat_is_answered_while_a_clip_is_being_polled_and_close_cancels_it(stage, commerce):
    hold = asyncio.Event()  # never set: the clip maker is stuck waiting to poll
    s = await stage(hold=hold)
    drop_id = await live_drop(commerce, capsule_spec(3))
    await eventually(lambda: s.waits, what="the clip maker waiting to poll")
    assert "LIVE NOW" in await s.say(s.alice, "!drop")  # chat goes on meanwhile
    (clip,) = await commerce.clips.for_drop(drop_id)
    assert clip.status is ClipStatus.PENDING
    assert s.bot.clips is not None
    await s.bot.close()  # cancels the poll under way, and returns once it has ended
    assert not hold.is_set() and s.bot.clips.clip(drop_id, ClipReason.COMMAND) is False
