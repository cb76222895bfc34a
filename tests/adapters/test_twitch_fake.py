"""The real twitchio 3 client runs unchanged against ``tests.fakes.twitch.FakeTwitch``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import twitchio
from twitchio import eventsub
from twitchio.ext import commands

# `tests.fakes` must be importable whether pytest runs as `python -m pytest` (cwd on
# sys.path) or as the bare `pytest` script (only this file's directory on sys.path).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fakes.twitch import (  # noqa: E402
    BOT_SCOPES,
    BROADCASTER_SCOPES,
    FakeToken,
    FakeTwitch,
    FakeUser,
)

pytestmark = pytest.mark.timeout(30)


@dataclass
class World:
    fake: FakeTwitch
    broadcaster: FakeUser
    bot_user: FakeUser
    viewer: FakeUser
    bot_token: FakeToken
    broadcaster_token: FakeToken


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch() as server:
        with server.patch_twitchio():
            yield server


@pytest.fixture
def world(fake: FakeTwitch) -> World:
    broadcaster = fake.add_user("dropshop", display_name="DropShop", color="#9146FF")
    bot_user = fake.add_user("dropcastbot", display_name="DropcastBot", color="#1E90FF")
    viewer = fake.add_user("alice", display_name="Alice", color="#FF4500")
    return World(
        fake=fake,
        broadcaster=broadcaster,
        bot_user=bot_user,
        viewer=viewer,
        bot_token=fake.add_user_token(bot_user, BOT_SCOPES),
        broadcaster_token=fake.add_user_token(broadcaster, BROADCASTER_SCOPES),
    )


# --- a commands.Bot wired the way a production bot is --------------------------------------------


class ShopCommands(commands.Component):
    @commands.command()  # type: ignore[untyped-decorator]
    async def price(self, ctx: commands.Context[Any]) -> None:
        await ctx.reply("Drop #1 costs 25 EUR")


class ShopBot(commands.Bot):
    def __init__(self, world: World) -> None:
        super().__init__(
            client_id=world.fake.client_id,
            client_secret=world.fake.client_secret,
            bot_id=world.bot_user.id,
            owner_id=world.broadcaster.id,
            prefix="!",
        )
        self.world = world
        self.messages: asyncio.Queue[twitchio.ChatMessage] = asyncio.Queue()

    async def setup_hook(self) -> None:
        w = self.world
        await self.add_token(w.bot_token.access_token, w.bot_token.refresh_token or "")
        await self.add_token(
            w.broadcaster_token.access_token, w.broadcaster_token.refresh_token or ""
        )
        payload = eventsub.ChatMessageSubscription(
            broadcaster_user_id=w.broadcaster.id, user_id=w.bot_user.id
        )
        await self.subscribe_websocket(payload=payload)
        await self.add_component(ShopCommands())

    async def event_message(self, payload: twitchio.ChatMessage) -> None:
        self.messages.put_nowait(payload)
        await super().event_message(payload)  # runs commands; ignores the bot's own messages


@asynccontextmanager
async def running(bot: twitchio.Client) -> AsyncIterator[None]:
    """``bot.start()`` in the background (no web adapter, no .tio.tokens.json), until ready."""
    task = asyncio.create_task(bot.start(with_adapter=False, load_tokens=False, save_tokens=False))
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # start() failed: raise its error
        assert ready in done, "twitchio did not become ready"
        yield
    finally:
        ready.cancel()
        await bot.close()
        await asyncio.wait({task}, timeout=5)


@pytest_asyncio.fixture
async def client(world: World) -> AsyncIterator[twitchio.Client]:
    """A plain twitchio.Client, logged in with an app token, holding the bot's user token."""
    tio = twitchio.Client(
        client_id=world.fake.client_id,
        client_secret=world.fake.client_secret,
        bot_id=world.bot_user.id,
    )
    await tio.login(load_tokens=False, save_tokens=False)
    await tio.add_token(world.bot_token.access_token, world.bot_token.refresh_token or "")
    try:
        yield tio
    finally:
        await tio.close()


async def raw_helix(
    fake: FakeTwitch, method: str, route: str, token: str | None, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    headers = {"Client-Id": fake.client_id}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.helix_base + route, headers=headers, **kwargs) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, dict(resp.headers), body


# --- 1. EventSub: connect, subscribe, receive a chat message -------------------------------------


async def test_bot_receives_chat_message_over_eventsub(world: World) -> None:
    fake = world.fake
    bot = ShopBot(world)
    async with running(bot):
        sub = (await fake.wait_for_subscription("channel.chat.message"))[0]
        assert sub.condition == {
            "broadcaster_user_id": world.broadcaster.id,
            "user_id": world.bot_user.id,
        }
        assert sub.cost == 0  # the condition's user_id is the token's user
        session = fake.sessions[sub.session_id]
        assert session.keepalive_timeout == 10  # twitchio asks ?keepalive_timeout_seconds=10
        assert fake.frames[0].message_type == "session_welcome"

        injected = await fake.send_chat_message(
            world.broadcaster,
            world.viewer,
            "hi @dropcastbot, is drop 1 live?",
            badges=["subscriber/12", "vip"],
        )
        assert injected.delivered == 1
        msg = await asyncio.wait_for(bot.messages.get(), 5)

    assert msg.id == injected.message_id
    assert msg.text == "hi @dropcastbot, is drop 1 live?"
    assert msg.broadcaster.id == world.broadcaster.id
    assert (msg.chatter.id, msg.chatter.name, msg.chatter.display_name) == (
        world.viewer.id,
        "alice",
        "Alice",
    )
    assert [(b.set_id, b.id, b.info) for b in msg.badges] == [
        ("subscriber", "12", "12"),
        ("vip", "1", ""),
    ]
    assert msg.chatter.subscriber and msg.chatter.vip and not msg.chatter.moderator
    assert msg.colour is not None and msg.colour.html == "#FF4500"
    assert [u.id for u in msg.mentions] == [world.bot_user.id]
    assert msg.type == "text" and msg.reply is None and msg.source_broadcaster is None

    # Startup went through the real OAuth + Helix calls.
    routes = [(r.method, r.route) for r in fake.requests]
    assert routes[:2] == [("POST", "oauth2/token"), ("GET", "oauth2/validate")]
    assert ("GET", "users") in routes and ("POST", "eventsub/subscriptions") in routes
    assert all(r.status and r.status < 400 for r in fake.requests)


async def test_bot_command_replies_with_app_token_and_sees_its_echo(world: World) -> None:
    fake = world.fake
    bot = ShopBot(world)
    async with running(bot):
        await fake.wait_for_subscription()
        asked = await fake.send_chat_message(world.broadcaster, world.viewer, "!price")
        await fake.wait_for(lambda: fake.sent_chat_messages)
        # Twitch also delivers the bot's own message to its channel.chat.message subscription.
        first = await asyncio.wait_for(bot.messages.get(), 5)
        echo = await asyncio.wait_for(bot.messages.get(), 5)

    sent = fake.sent_chat_messages[0]
    assert first.id == asked.message_id
    assert (sent.sender_id, sent.broadcaster_id) == (world.bot_user.id, world.broadcaster.id)
    assert sent.text == "Drop #1 costs 25 EUR"
    assert sent.reply_parent_message_id == asked.message_id
    assert sent.app_token  # ctx.reply sends with the app token (user:bot + channel:bot path)
    assert echo.id == sent.message_id and echo.chatter.id == world.bot_user.id
    assert echo.text == "@Alice Drop #1 costs 25 EUR"  # replies get the parent mention prefix
    assert echo.reply is not None and echo.reply.parent_message_id == asked.message_id


# --- 2. Sending: sent / dropped ------------------------------------------------------------------


async def test_send_message_reports_sent_and_dropped(world: World, client: twitchio.Client) -> None:
    fake = world.fake
    channel = client.create_partialuser(world.broadcaster.id)

    sent = await channel.send_message(
        sender=world.bot_user.id, message="Drop #1 is live!", token_for=world.bot_user.id
    )
    assert sent.sent and sent.dropped_code is None
    assert sent.id == fake.sent_chat_messages[0].message_id
    request = fake.helix_requests("POST", "chat/messages")[0]
    assert request.user_id == world.bot_user.id
    assert request.json == {
        "broadcaster_id": world.broadcaster.id,
        "sender_id": world.bot_user.id,
        "message": "Drop #1 is live!",
    }

    # twitchio 3.3 turns `is_sent: false` into MessageRejectedError instead of returning it.
    fake.drop_chat_messages("msg_duplicate", times=1)
    with pytest.raises(twitchio.MessageRejectedError) as rejected:
        await channel.send_message(sender=world.bot_user.id, message="Drop #1 is live!!")
    assert rejected.value.code == "msg_duplicate"
    assert rejected.value.message == fake.dropped_chat_messages[0].drop_message
    assert fake.helix_requests("POST", "chat/messages")[-1].status == 200  # dropped is still a 200
    assert fake.helix_requests("POST", "chat/messages")[-1].response == {
        "data": [
            {
                "message_id": "",
                "is_sent": False,
                "drop_reason": {
                    "code": "msg_duplicate",
                    "message": fake.dropped_chat_messages[0].drop_message,
                },
            }
        ]
    }

    # The raw payload, for code that reads it without twitchio's exception.
    raw = await client.http.post_chat_message(
        broadcaster_id=world.broadcaster.id,
        sender_id=world.bot_user.id,
        message="Drop #1 is live!",  # same text < 30 s ago: Twitch's own duplicate rule
        token_for=world.bot_user.id,
    )
    assert raw["data"][0]["is_sent"] is False
    assert raw["data"][0]["drop_reason"]["code"] == "msg_duplicate"
    assert len(fake.sent_chat_messages) == 1 and len(fake.dropped_chat_messages) == 2


# --- 3. The chat limit drops, it does not 429 ----------------------------------------------------


async def test_chat_limit_drops_messages_and_counts_them(
    world: World, client: twitchio.Client
) -> None:
    fake = world.fake
    fake.chat_window = 5.0
    channel = client.create_partialuser(world.broadcaster.id)

    for i in range(20):
        await channel.send_message(sender=world.bot_user.id, message=f"stock update {i}")
    with pytest.raises(twitchio.MessageRejectedError) as rejected:
        await channel.send_message(sender=world.bot_user.id, message="stock update 20")
    assert rejected.value.code == "msg_ratelimit"
    assert len(fake.sent_chat_messages) == 20
    assert fake.drop_counts == {"msg_ratelimit": 1}
    assert all(r.status == 200 for r in fake.helix_requests("POST", "chat/messages"))

    # Moderators (and the broadcaster) get 100 per window.
    fake.add_moderator(world.broadcaster, world.bot_user)
    sent = await channel.send_message(sender=world.bot_user.id, message="mods may send more")
    assert sent.sent

    # Once the window has passed, a regular sender can talk again.
    fake.remove_moderator(world.broadcaster, world.bot_user)
    fake.chat_window = 0.2
    await asyncio.sleep(0.25)
    assert (await channel.send_message(sender=world.bot_user.id, message="back again")).sent
    assert fake.drop_counts == {"msg_ratelimit": 1}


# --- 4. Streams / KPIs ---------------------------------------------------------------------------


async def test_fetch_streams_returns_configured_viewer_count(
    world: World, client: twitchio.Client
) -> None:
    fake = world.fake
    assert await client.fetch_streams(user_ids=[world.broadcaster.id]) == []

    fake.set_stream(
        world.broadcaster, viewer_count=1234, title="Sneaker drop", game_name="Just Chatting"
    )
    streams = await client.fetch_streams(user_ids=[world.broadcaster.id])
    assert len(streams) == 1
    stream = streams[0]
    assert (stream.viewer_count, stream.title, stream.type) == (1234, "Sneaker drop", "live")
    assert stream.user.id == world.broadcaster.id and stream.user.name == "dropshop"

    fake.set_stream(world.broadcaster, viewer_count=1500, title="Sneaker drop")
    by_login = await client.fetch_streams(user_logins=["dropshop"])
    assert by_login[0].viewer_count == 1500 and by_login[0].id == stream.id

    fake.end_stream(world.broadcaster)
    assert await client.fetch_streams(user_ids=[world.broadcaster.id]) == []


# --- 5. Helix 429 --------------------------------------------------------------------------------


async def test_helix_429_raises_http_exception_without_retry(
    world: World, client: twitchio.Client
) -> None:
    fake = world.fake
    fake.set_stream(world.broadcaster, viewer_count=10)

    # twitchio does not retry a 429 (it only retries a 503 once): it raises HTTPException.
    fake.fail_next("GET", "streams", status=429)
    with pytest.raises(twitchio.HTTPException) as exc:
        await client.fetch_streams(user_ids=[world.broadcaster.id])
    assert exc.value.status == 429
    assert exc.value.extra == {
        "error": "Too Many Requests",
        "status": 429,
        "message": "Too Many Requests",
    }
    assert len(fake.helix_requests("GET", "streams")) == 1
    assert (await client.fetch_streams(user_ids=[world.broadcaster.id]))[0].viewer_count == 10

    # A real empty bucket behaves the same, with the Ratelimit-* headers counting down.
    fake.set_helix_rate_limit(3, window=60.0)
    app_token = fake.issue_app_token().access_token
    remaining = []
    for _ in range(3):
        status, headers, _ = await raw_helix(fake, "GET", "streams", app_token)
        assert status == 200
        remaining.append(int(headers["Ratelimit-Remaining"]))
        assert headers["Ratelimit-Limit"] == "3" and int(headers["Ratelimit-Reset"]) > 0
    assert remaining == [2, 1, 0]
    status, headers, body = await raw_helix(fake, "GET", "streams", app_token)
    assert status == 429 and headers["Ratelimit-Remaining"] == "0"
    assert body["error"] == "Too Many Requests" and body["status"] == 429
    with pytest.raises(twitchio.HTTPException) as exc:
        await client.fetch_streams()  # same app token bucket (per client id)
    assert exc.value.status == 429


# --- more Twitch behaviour twitchio depends on ---------------------------------------------------


async def test_expired_user_token_is_refreshed_by_twitchio(
    world: World, client: twitchio.Client
) -> None:
    fake = world.fake
    fake.expire_token(world.bot_token)
    channel = client.create_partialuser(world.broadcaster.id)
    sent = await channel.send_message(
        sender=world.bot_user.id, message="after refresh", token_for=world.bot_user.id
    )
    assert sent.sent
    posts = fake.helix_requests("POST", "chat/messages")
    assert [p.status for p in posts] == [401, 200]
    assert posts[0].response["message"] == "Invalid OAuth token"
    assert posts[1].token != world.bot_token.access_token
    assert any(
        r.route == "oauth2/token" and "refresh_token" in r.query.get("grant_type", [])
        for r in fake.requests
    )


async def test_announcements_and_whispers(world: World, client: twitchio.Client) -> None:
    fake = world.fake
    await client.add_token(
        world.broadcaster_token.access_token, world.broadcaster_token.refresh_token or ""
    )
    channel = client.create_partialuser(world.broadcaster.id)

    # The bot is no moderator yet, and lacks the scope anyway: 401 before 403.
    with pytest.raises(twitchio.HTTPException) as exc:
        await channel.send_announcement(moderator=world.bot_user.id, message="Drop in 5 minutes!")
    assert exc.value.status == 401

    await channel.send_announcement(
        moderator=world.broadcaster.id, message="Drop in 5 minutes!", color="purple"
    )
    assert [(a.moderator_id, a.message, a.color) for a in fake.announcements] == [
        (world.broadcaster.id, "Drop in 5 minutes!", "purple")
    ]
    with pytest.raises(twitchio.HTTPException) as exc:  # one announcement per 2 s per channel
        await channel.send_announcement(moderator=world.broadcaster.id, message="again")
    assert exc.value.status == 429

    mod = fake.add_user("helper")
    fake.add_user_token(mod, ["moderator:manage:announcements"])
    stranger_token = fake.add_user_token(
        fake.add_user("stranger"), ["moderator:manage:announcements"]
    )
    status, _, body = await raw_helix(
        fake,
        "POST",
        f"chat/announcements?broadcaster_id={world.broadcaster.id}&moderator_id={stranger_token.user_id}",
        stranger_token.access_token,
        json={"message": "hi"},
    )
    assert status == 403 and body["error"] == "Forbidden"

    whisper_token = fake.add_user_token(world.broadcaster, ["user:manage:whispers"])
    await client.add_token(whisper_token.access_token, whisper_token.refresh_token or "")
    await channel.send_whisper(to_user=world.viewer.id, message="x" * 600)
    assert len(fake.whispers) == 1 and len(fake.whispers[0].message) == 500  # silently truncated


async def test_session_reconnect_keeps_subscriptions(world: World) -> None:
    fake = world.fake
    bot = ShopBot(world)
    async with running(bot):
        sub = (await fake.wait_for_subscription())[0]
        old_session = sub.session_id
        await fake.send_session_reconnect(old_session)
        await fake.wait_for(
            lambda: sub.session_id != old_session and not fake.sessions[old_session].open
        )
        new_session = fake.sessions[sub.session_id]
        assert new_session.reconnected_from == old_session and sub.status == "enabled"
        assert len(fake.helix_requests("POST", "eventsub/subscriptions")) == 1  # no resubscribe

        await fake.send_chat_message(world.broadcaster, world.viewer, "still there?")
        msg = await asyncio.wait_for(bot.messages.get(), 5)
        assert msg.text == "still there?"


async def test_eventsub_subscription_errors(world: World, client: twitchio.Client) -> None:
    fake = world.fake
    bot_token = world.bot_token.access_token
    body = {
        "type": "channel.chat.message",
        "version": "1",
        "condition": {"broadcaster_user_id": world.broadcaster.id, "user_id": world.bot_user.id},
        "transport": {"method": "websocket", "session_id": "no-such-session"},
    }
    status, headers, answer = await raw_helix(
        fake, "POST", "eventsub/subscriptions", bot_token, json=body
    )
    assert status == 400 and "Ratelimit-Remaining" in headers
    assert (
        answer["message"]
        == "websocket transport session does not exist or has already disconnected"
    )

    payload = eventsub.ChatMessageSubscription(
        broadcaster_user_id=world.broadcaster.id, user_id=world.bot_user.id
    )
    created = await client.subscribe_websocket(payload, token_for=world.bot_user.id)
    assert created is not None and created["data"][0]["status"] == "enabled"
    assert (created["total"], created["total_cost"], created["max_total_cost"]) == (1, 0, 10)
    # A duplicate is a 409, which twitchio logs and swallows (returns None).
    assert await client.subscribe_websocket(payload, token_for=world.bot_user.id) is None
    assert fake.helix_requests("POST", "eventsub/subscriptions")[-1].status == 409

    # Subscribing for another user than the token's is refused.
    other = eventsub.ChatMessageSubscription(
        broadcaster_user_id=world.broadcaster.id, user_id=world.viewer.id
    )
    with pytest.raises(twitchio.HTTPException) as exc:
        await client.subscribe_websocket(other, token_for=world.bot_user.id)
    assert exc.value.status == 403

    listed = await client.fetch_eventsub_subscriptions(token_for=world.bot_user.id)
    assert listed.total == 1
    assert [s.type async for s in listed.subscriptions] == ["channel.chat.message"]


async def test_auth_errors_and_unknown_routes(fake: FakeTwitch, world: World) -> None:
    status, _, body = await raw_helix(fake, "GET", "no/such/route", world.bot_token.access_token)
    assert (status, body) == (404, {"error": "Not Found", "status": 404, "message": ""})
    status, _, body = await raw_helix(fake, "GET", "users", None)
    assert status == 401 and body["error"] == "Unauthorized"
    status, _, body = await raw_helix(fake, "GET", "users", "not-a-token")
    assert (status, body["message"]) == (401, "Invalid OAuth token")
    status, _, body = await raw_helix(fake, "GET", "users", world.bot_token.access_token)
    assert status == 200 and body["data"][0]["login"] == "dropcastbot"

    async with aiohttp.ClientSession() as session:
        url = fake.id_base + "oauth2/validate"
        async with session.get(url, headers={"Authorization": "OAuth nope"}) as resp:
            assert resp.status == 401
            assert await resp.json() == {"status": 401, "message": "invalid access token"}
        async with session.get(
            url, headers={"Authorization": f"OAuth {world.bot_token.access_token}"}
        ) as resp:
            info = await resp.json()
    assert info["login"] == "dropcastbot" and info["user_id"] == world.bot_user.id
    assert info["client_id"] == fake.client_id and sorted(info["scopes"]) == sorted(BOT_SCOPES)
    assert info["expires_in"] > 3600


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes the socket (skipping keepalives); return its close code."""
    while True:
        msg = await ws.receive(timeout=3)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code


async def test_eventsub_websocket_protocol(fake: FakeTwitch) -> None:
    fake.keepalive_interval = 0.05  # keepalives every 50 ms instead of keepalive_timeout_seconds
    fake.unused_timeout = 0.3  # Twitch: keepalive_timeout_seconds to subscribe, else 4003
    async with aiohttp.ClientSession() as http_session:
        # Out-of-range keepalive values are clamped to 10..600, like Twitch does.
        async with http_session.ws_connect(
            f"{fake.eventsub_url}?keepalive_timeout_seconds=3"
        ) as ws:
            welcome = await ws.receive_json(timeout=3)
            assert set(welcome["metadata"]) == {"message_id", "message_type", "message_timestamp"}
            assert welcome["metadata"]["message_type"] == "session_welcome"
            session = welcome["payload"]["session"]
            assert session["status"] == "connected" and session["reconnect_url"] is None
            assert session["keepalive_timeout_seconds"] == 10
            assert session["connected_at"].endswith("Z")
            keepalive = await ws.receive_json(timeout=3)
            assert keepalive["metadata"]["message_type"] == "session_keepalive"
            assert keepalive["payload"] == {}
            assert await _close_code(ws) == 4003  # never subscribed
        assert not fake.sessions[session["id"]].open

        # Clients may not send anything but pongs.
        async with http_session.ws_connect(fake.eventsub_url) as ws:
            await ws.receive_json(timeout=3)
            await ws.send_str('{"hello": "twitch"}')
            assert await _close_code(ws) == 4001

        # A reconnect URL that was never handed out.
        async with http_session.ws_connect(f"{fake.eventsub_url}?reconnect_id=bogus") as ws:
            assert await _close_code(ws) == 4007


async def test_chatters_moderators_and_subscription_lifecycle(
    world: World, client: twitchio.Client
) -> None:
    fake = world.fake
    broadcaster_token = world.broadcaster_token
    await client.add_token(broadcaster_token.access_token, broadcaster_token.refresh_token or "")
    channel = client.create_partialuser(world.broadcaster.id)
    fake.add_moderator(world.broadcaster, world.bot_user)
    await fake.send_chat_message(world.broadcaster, world.viewer, "first!")

    chatters = await channel.fetch_chatters(moderator=world.broadcaster.id)
    assert chatters.total == 1
    assert [u.id async for u in chatters.users] == [world.viewer.id]
    assert [m.id for m in await channel.fetch_moderators()] == [world.bot_user.id]

    # Subscriptions: created on a websocket, revoked by Twitch, deleted through Helix.
    bot = ShopBot(world)
    revoked: asyncio.Queue[Any] = asyncio.Queue()
    bot.add_listener(revoked.put, event="event_subscription_revoked")
    async with running(bot):
        sub = (await fake.wait_for_subscription())[0]
        await fake.revoke_subscription(sub.id, status="authorization_revoked")
        assert (await asyncio.wait_for(revoked.get(), 5)).id == sub.id
        assert fake.active_subscriptions() == []
        # twitchio closes a websocket that has no subscriptions left.
        await fake.wait_for(lambda: not fake.open_sessions)
        listed = await bot.fetch_eventsub_subscriptions(token_for=world.bot_user.id)
        assert [(s.id, s.status) async for s in listed.subscriptions] == [
            (sub.id, "authorization_revoked")
        ]
        await bot.delete_eventsub_subscription(sub.id, token_for=world.bot_user.id)
        assert sub.id not in fake.subscriptions
        with pytest.raises(twitchio.HTTPException) as exc:
            await bot.delete_eventsub_subscription(sub.id, token_for=world.bot_user.id)
        assert exc.value.status == 404

    # The authorization-code grant, as the OAuth redirect flow uses it.
    code = fake.authorization_code(world.viewer, ["user:read:chat"])
    granted = await client.http.user_access_token(code, redirect_uri="http://localhost/callback")
    info = await client.http.validate_token(granted.access_token)
    assert (info.user_id, info.login, info.scopes) == (world.viewer.id, "alice", ["user:read:chat"])
