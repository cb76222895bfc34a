"""The real discord.py client runs unchanged against ``tests.fakes.discord.FakeDiscord``."""

from __future__ import annotations

import asyncio
import io
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
from discord import app_commands
from multidict import CIMultiDictProxy

# `tests.fakes` must be importable whether pytest runs as `python -m pytest` (cwd on
# sys.path) or as the bare `pytest` script (only this file's directory on sys.path).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser, Permissions  # noqa: E402
from tests.fakes.discord.models import FakeChannel  # noqa: E402

pytestmark = pytest.mark.timeout(30)


@dataclass
class World:
    guild: FakeGuild
    channel: FakeChannel
    customer: FakeUser


class FastClient(discord.Client):
    """A plain Client; only skips discord.py's 5 s pause before a *re*-IDENTIFY."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


def make_client(*, message_content: bool = False) -> FastClient:
    intents = discord.Intents.default()
    intents.message_content = message_content
    # guild_ready_timeout: how long discord.py waits for more GUILD_CREATEs before on_ready.
    return FastClient(intents=intents, guild_ready_timeout=0.05)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        with server.patch_discord_py():
            yield server


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Drop Shop")
    customer = fake.add_user("alice", global_name="Alice")
    fake.add_member(guild, customer)
    return World(guild, guild.channel("general"), customer)


@asynccontextmanager
async def running(client: discord.Client, fake: FakeDiscord) -> AsyncIterator[discord.Client]:
    await client.login(fake.token)
    task = asyncio.create_task(client.connect())
    try:
        await asyncio.wait_for(client.wait_until_ready(), 5)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


def text_channel(client: discord.Client, channel: FakeChannel) -> discord.TextChannel:
    found = client.get_channel(channel.id)
    assert isinstance(found, discord.TextChannel)
    return found


# --------------------------------------------------------------------------- required scenarios
@pytest.mark.asyncio
async def test_client_logs_in_and_becomes_ready(fake: FakeDiscord, world: World) -> None:
    client = make_client()
    ready = asyncio.Event()

    @client.event
    async def on_ready() -> None:
        ready.set()

    async with running(client, fake):
        await asyncio.wait_for(ready.wait(), 5)
        guild = client.get_guild(world.guild.id)
        assert guild is not None and guild.name == "Drop Shop"
        assert text_channel(client, world.channel).name == "general"
        assert guild.me is not None and guild.me.id == fake.bot.id
        assert client.user is not None and client.user.id == fake.bot.id
        assert client.application_id == fake.application_id

    assert fake.requests_to("GET", "/users/@me")[0].status == 200
    assert fake.requests_to("GET", "/oauth2/applications/@me")[0].status == 200
    first = fake.gateway.connection_log[0]
    assert first["query"]["v"] == "10" and first["query"]["encoding"] == "json"
    assert first["compressed"]  # discord.py asked for zlib-stream and decoded it
    received = [f.op for f in fake.gateway_log if f.direction == "recv"]
    assert received[:2] == [1, 2]  # heartbeat right after HELLO, then IDENTIFY
    sent = [f for f in fake.gateway_log if f.direction == "send"]
    assert sent[0].op == 10 and sent[0].d["heartbeat_interval"] == 41_250
    dispatched = [(f.t, f.s) for f in sent if f.op == 0]
    assert dispatched[:2] == [("READY", 1), ("GUILD_CREATE", 2)]


@pytest.mark.asyncio
async def test_slash_command_defers_ephemerally_then_follows_up(
    fake: FakeDiscord, world: World
) -> None:
    client = make_client()
    tree = app_commands.CommandTree(client)
    calls: list[tuple[str, int, int]] = []

    @tree.command(name="drop", description="Start a drop", guild=discord.Object(world.guild.id))
    @app_commands.describe(sku="Product SKU", qty="Units on sale")
    async def drop(interaction: discord.Interaction, sku: str, qty: int = 1) -> None:
        calls.append((sku, qty, interaction.user.id))
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(f"Drop {sku} x{qty} is live")

    async with running(client, fake):
        synced = await tree.sync(guild=discord.Object(world.guild.id))
        assert [c.name for c in synced] == ["drop"]
        interaction = await fake.inject_slash_command(
            "drop", user=world.customer, channel=world.channel, options={"sku": "TEE-01", "qty": 2}
        )
        await fake.wait_for(lambda: interaction.followups)

    assert calls == [("TEE-01", 2, world.customer.id)]
    [callback] = [r for r in fake.interaction_responses if r.interaction_id == interaction.id]
    assert (callback.type, callback.flags, callback.status) == (5, 64, 200)
    [followup] = interaction.followups
    assert followup["content"] == "Drop TEE-01 x2 is live"
    # Discord quirk reproduced: the first follow-up replaces the "thinking" message.
    assert interaction.original is followup and followup["flags"] == 64
    [put] = fake.requests_to("PUT", "/applications/{application_id}/guilds/{guild_id}/commands")
    assert put.json[0]["options"][0]["name"] == "sku" and put.status == 200


class DropView(discord.ui.View):
    def __init__(self, clicks: list[int]) -> None:
        super().__init__(timeout=None)
        self.clicks = clicks

    @discord.ui.button(label="Reserve", style=discord.ButtonStyle.success, custom_id="drop:reserve")
    async def reserve(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        self.clicks.append(interaction.user.id)
        await interaction.response.send_message("Reserved!", ephemeral=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("resumable", [True, False], ids=["resume", "reidentify"])
async def test_persistent_view_handles_click_after_reconnect(
    fake: FakeDiscord, world: World, resumable: bool
) -> None:
    client = make_client()
    clicks: list[int] = []
    async with running(client, fake):
        client.add_view(DropView(clicks))
        message = await text_channel(client, world.channel).send("New drop!", view=DropView(clicks))

        identifies = fake.identify_count
        await fake.disconnect(code=4000, resumable=resumable)
        if resumable:
            await fake.wait_for(lambda: fake.resume_count == 1)
            assert fake.gateway.connection_log[-1]["path"] == "/gateway/resume"
        else:
            await fake.wait_until_ready()
            assert fake.identify_count == identifies + 1

        interaction = await fake.inject_component(
            "drop:reserve", message=message.id, user=world.customer
        )
        response = await fake.wait_for_response(interaction)

    assert clicks == [world.customer.id]
    assert (response.type, response.ephemeral, response.status) == (4, True, 200)
    assert interaction.original is not None and interaction.original["content"] == "Reserved!"


@pytest.mark.asyncio
async def test_dm_to_user_with_closed_dms_is_forbidden(fake: FakeDiscord, world: World) -> None:
    fake.close_dms(world.customer)
    client = make_client()
    async with running(client, fake):
        user = await client.fetch_user(world.customer.id)
        with pytest.raises(discord.Forbidden) as excinfo:
            await user.send("Your reservation expires in 5 minutes")

    assert (excinfo.value.status, excinfo.value.code) == (403, 50007)
    assert excinfo.value.text == "Cannot send messages to this user"
    dm = fake.dm_channel_for(world.customer)
    assert fake.requests_to("POST", "/users/@me/channels")[0].status == 200  # opening works
    assert fake.messages[dm.id] == []


@pytest.mark.asyncio
async def test_forced_429_is_retried_after_retry_after(fake: FakeDiscord, world: World) -> None:
    client = make_client()
    async with running(client, fake):
        channel = text_channel(client, world.channel)
        fake.force_rate_limit("POST", "/channels/{channel_id}/messages", retry_after=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await channel.send("Only 3 left!")
        elapsed = loop.time() - started

    posts = fake.requests_to("POST", f"/channels/{world.channel.id}/messages")
    assert [r.status for r in posts] == [429, 200]
    assert posts[0].response == {
        "message": "You are being rate limited.",
        "retry_after": 0.2,
        "global": False,
    }
    assert elapsed >= 0.2
    assert [m["content"] for m in fake.messages[world.channel.id]] == ["Only 3 left!"]


@pytest.mark.asyncio
async def test_message_edit_goes_through_patch(fake: FakeDiscord, world: World) -> None:
    client = make_client()
    async with running(client, fake):
        message = await text_channel(client, world.channel).send("Drop starts soon")
        edited = await message.edit(
            content="Drop is LIVE", embed=discord.Embed(title="TEE-01", description="$25")
        )

    [patch] = fake.requests_to("PATCH", "/channels/{channel_id}/messages/{message_id}")
    assert patch.path == f"/channels/{world.channel.id}/messages/{message.id}"
    assert patch.json["content"] == "Drop is LIVE" and patch.status == 200
    stored = fake.get_message(message.id)
    assert stored is not None
    assert stored["content"] == "Drop is LIVE" and stored["edited_timestamp"]
    assert stored["embeds"][0]["title"] == "TEE-01"
    assert edited.edited_at is not None
    assert [e.action for e in fake.message_log if e.message_id == message.id] == ["create", "edit"]


# --------------------------------------------------------------------------- fidelity checks
async def raw(
    fake: FakeDiscord, method: str, path: str, *, auth: bool = True, **kwargs: Any
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    """A bare HTTP call, to check status codes, bodies and headers exactly."""
    headers = {"Authorization": f"Bot {fake.token}"} if auth else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, fake.api_base + path, headers=headers, **kwargs) as resp,
    ):
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers


@pytest.mark.asyncio
async def test_unknown_route_and_bad_auth_answer_like_discord(
    fake: FakeDiscord, world: World
) -> None:
    assert (await raw(fake, "GET", "/nope"))[:2] == (404, {"message": "404: Not Found", "code": 0})
    status, body, headers = await raw(fake, "GET", "/users/@me", auth=False)
    assert (status, body) == (401, {"message": "401: Unauthorized", "code": 0})
    assert headers["Via"] == "1.1 google"
    status, body, _ = await raw(fake, "POST", f"/channels/{world.channel.id}/messages", json={})
    assert (status, body) == (400, {"message": "Cannot send an empty message", "code": 50006})

    client = make_client()
    with pytest.raises(discord.LoginFailure):
        await client.login("not-the-token")
    await client.close()


@pytest.mark.asyncio
async def test_route_bucket_and_global_limits(fake: FakeDiscord, world: World) -> None:
    path = f"/channels/{world.channel.id}/messages"
    fake.set_route_limit("POST", "/channels/{channel_id}/messages", 2, 5.0)
    first = await raw(fake, "POST", path, json={"content": "1"})
    assert first[0] == 200
    assert first[2]["X-RateLimit-Limit"] == "2" and first[2]["X-RateLimit-Remaining"] == "1"
    assert first[2]["X-RateLimit-Bucket"]
    assert (await raw(fake, "POST", path, json={"content": "2"}))[0] == 200
    status, body, headers = await raw(fake, "POST", path, json={"content": "3"})
    assert status == 429 and body["global"] is False and 0 < body["retry_after"] <= 5.0
    assert headers["X-RateLimit-Scope"] == "user" and headers["Via"] == "1.1 google"
    assert headers["X-RateLimit-Remaining"] == "0" and "Retry-After" in headers

    fake.limiter.reset()
    fake.limiter.global_limit = 3
    statuses = [(await raw(fake, "GET", "/users/@me"))[0] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    status, body, headers = await raw(fake, "GET", "/users/@me")
    assert body["global"] is True and headers["X-RateLimit-Global"] == "true"


@pytest.mark.asyncio
async def test_429_without_via_is_not_retried_by_discord_py(
    fake: FakeDiscord, world: World
) -> None:
    client = make_client()
    async with running(client, fake):
        fake.force_rate_limit("POST", "/channels/{channel_id}/messages", cloudflare=True)
        with pytest.raises(discord.HTTPException) as excinfo:
            await text_channel(client, world.channel).send("hello")
    assert excinfo.value.status == 429


@pytest.mark.asyncio
async def test_interaction_double_ack_and_expiry(fake: FakeDiscord, world: World) -> None:
    client = make_client()
    tree = app_commands.CommandTree(client)
    errors: list[BaseException] = []

    @tree.command(name="fast", description="Answers at once", guild=discord.Object(world.guild.id))
    async def fast(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("ok")

    @tree.command(name="slow", description="Answers too late", guild=discord.Object(world.guild.id))
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.4)
        await interaction.response.send_message("too late")

    @tree.error
    async def on_error(interaction: discord.Interaction, exc: app_commands.AppCommandError) -> None:
        errors.append(exc.__cause__ or exc)

    async with running(client, fake):
        await tree.sync(guild=discord.Object(world.guild.id))
        done = await fake.inject_slash_command("fast", user=world.customer, channel=world.channel)
        await fake.wait_for_response(done)
        status, body, _ = await raw(
            fake,
            "POST",
            f"/interactions/{done.id}/{done.token}/callback",
            auth=False,
            json={"type": 4, "data": {"content": "again"}},
        )
        assert (status, body["code"]) == (400, 40060)
        assert body["message"] == "Interaction has already been acknowledged."

        # Shrunk only now: on a busy machine even "fast" may take longer than 0.3 s.
        fake.interaction_ack_timeout = 0.3
        await fake.inject_slash_command("slow", user=world.customer, channel=world.channel)
        await fake.wait_for(lambda: errors)

    assert isinstance(errors[0], discord.NotFound) and errors[0].code == 10062


@pytest.mark.asyncio
async def test_attachments_message_create_and_content_intent(
    fake: FakeDiscord, world: World
) -> None:
    client = make_client(message_content=False)
    seen: list[discord.Message] = []
    two_seen = asyncio.Event()

    @client.event
    async def on_message(message: discord.Message) -> None:
        if message.author.id != fake.bot.id:
            seen.append(message)
            if len(seen) == 2:
                two_seen.set()

    async with running(client, fake):
        channel = text_channel(client, world.channel)
        sent = await channel.send(
            "Receipt", file=discord.File(io.BytesIO(b"order #42"), filename="receipt.txt")
        )
        assert sent.attachments[0].filename == "receipt.txt"
        assert await sent.attachments[0].read() == b"order #42"

        await fake.inject_message(world.channel, world.customer, "buy TEE-01")
        await fake.inject_message(world.channel, world.customer, f"{fake.bot.mention} buy TEE-02")
        await asyncio.wait_for(two_seen.wait(), 5)

    # Without the MESSAGE_CONTENT intent, content is only visible when the bot is mentioned.
    assert [m.content for m in seen] == ["", f"<@{fake.bot.id}> buy TEE-02"]
    upload = fake.requests_to("POST", "/channels/{channel_id}/messages")[0]
    assert upload.files[0].data == b"order #42" and upload.json["content"] == "Receipt"


@pytest.mark.asyncio
async def test_bot_without_send_permission_gets_50013(fake: FakeDiscord) -> None:
    guild = fake.add_guild("Read only", bot_permissions=Permissions.VIEW_CHANNEL)
    guild.everyone.permissions = Permissions.VIEW_CHANNEL
    status, body, _ = await raw(
        fake, "POST", f"/channels/{guild.channel('general').id}/messages", json={"content": "hi"}
    )
    assert (status, body) == (403, {"message": "Missing Permissions", "code": 50013})


@pytest.mark.asyncio
async def test_forced_server_error_surfaces(fake: FakeDiscord, world: World) -> None:
    client = make_client()
    async with running(client, fake):
        fake.force_error("POST", "/channels/{channel_id}/messages", status=503)
        with pytest.raises(discord.DiscordServerError) as excinfo:
            await text_channel(client, world.channel).send("hello")
        await text_channel(client, world.channel).send("hello again")  # next one succeeds
    assert excinfo.value.status == 503
    assert [m["content"] for m in fake.messages[world.channel.id]] == ["hello again"]
