"""The Discord adapter: the real discord.py client, our bot, against ``FakeDiscord``,
with the real command handler, hub and database (both engines)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.commands import CommandHandler
from bot.discord import DiscordBot
from bot.hub import ChatHub
from bot.messages import Button, Message, Outbound
from bot.presenter import Presenter
from bot.recap import RecapChart
from commerce.core import Commerce
from commerce.domain.model import DropState
from commerce.dropfile import validate_spec
from commerce.links import LinkSigner
from config.settings import DiscordSettings
from tests.helpers import PATIENCE, capsule_spec, customers, eventually, live_drop

# `tests.fakes` must be importable whether pytest runs as `python -m pytest` or bare `pytest`.
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.fakes.discord import FakeDiscord, FakeGuild, FakeUser  # noqa: E402
from tests.fakes.discord.models import FakeChannel  # noqa: E402

pytestmark = pytest.mark.timeout(30)

BASE = "https://shop.test"
EPHEMERAL = 64
MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"


@dataclass
class World:
    guild: FakeGuild
    channel: FakeChannel
    viewer: FakeUser
    mod: FakeUser
    creator_role_id: int


@dataclass
class Chat:
    commerce: Commerce
    signer: LinkSigner
    handler: CommandHandler

    def hub(self, thresholds: tuple[int, ...] = (5, 3, 1), edit_interval: float = 0.2) -> ChatHub:
        return ChatHub(
            self.commerce,
            Presenter(self.commerce, BASE),
            self.handler.issue_link,
            thresholds=list(thresholds),
            edit_interval=edit_interval,
            chart=RecapChart(self.commerce.analytics),
        )


class FastBot(DiscordBot):
    """Only skips discord.py's 5 s pause before a *re*-IDENTIFY."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        with server.patch_discord_py():  # restores discord.py's endpoints afterwards
            yield server


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Drop Shop")
    crew = fake.add_role(guild, "Drop crew")
    viewer = fake.add_user("alice", global_name="Alice")
    mod = fake.add_user("marco", global_name="Marco")
    fake.add_member(guild, viewer)
    fake.add_member(guild, mod, roles=[crew])
    return World(guild, guild.channel("general"), viewer, mod, crew.id)


@pytest.fixture
def chat(commerce: Commerce) -> Chat:
    signer = LinkSigner("discord-test-secret", commerce.clock)

    async def issue(drop_id: int, identity: str) -> str:
        return f"{BASE}/c/{signer.issue(drop_id, identity)[0]}"

    return Chat(commerce, signer, CommandHandler(commerce, issue, public_url=BASE))


def make_bot(
    fake: FakeDiscord, world: World, chat: Chat, hub: ChatHub, *, in_guild: bool = True
) -> DiscordBot:
    settings = DiscordSettings(
        token=fake.token,
        guild_ids=[world.guild.id] if in_guild else [],
        channel_id=world.channel.id,
        creator_role_ids=[world.creator_role_id],
        api_base=fake.api_base,
        gateway_url=fake.gateway_url,
    )
    # guild_ready_timeout: discord.py otherwise waits 2 s for more GUILD_CREATEs.
    return FastBot(settings, chat.handler, hub, guild_ready_timeout=0.05)


@asynccontextmanager
async def running(bot: DiscordBot) -> AsyncIterator[DiscordBot]:
    await bot.start()
    try:
        await asyncio.wait_for(bot.commands_synced.wait(), PATIENCE)
        yield bot
    finally:
        await bot.close()


@asynccontextmanager
async def bot_with_hub(
    fake: FakeDiscord, world: World, chat: Chat, **hub_options: Any
) -> AsyncIterator[tuple[DiscordBot, ChatHub]]:
    """A running bot and a started hub; the hub is drained before the bot closes."""
    hub = chat.hub(**hub_options)
    await hub.start()
    try:
        async with running(make_bot(fake, world, chat, hub)) as bot:
            yield bot, hub
            await hub.drain()
    finally:
        await hub.stop()


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components") or [] for c in row.get("components", [])]


def pay_link(message: dict[str, Any]) -> str:
    [url] = [b["url"] for b in buttons(message) if b.get("label") == "Pay now"]
    return str(url)


def first_response(fake: FakeDiscord, interaction: Any) -> Any:
    return next(r for r in fake.interaction_responses if r.interaction_id == interaction.id)


def answers(interaction: Any) -> list[dict[str, Any]]:
    """What the bot visibly answered: its response (unless that was a deferral, whose
    "thinking" placeholder the first follow-up takes over) and its follow-ups."""
    shown: list[dict[str, Any]] = []
    if interaction.response_type == 4 and interaction.original is not None:
        shown.append(interaction.original)
    shown.extend(m for m in interaction.followups if m is not interaction.original or not shown)
    return shown


async def answer(fake: FakeDiscord, interaction: Any) -> dict[str, Any]:
    """The bot's one visible answer to ``interaction``."""
    await fake.wait_for(lambda: answers(interaction))
    [message] = answers(interaction)
    return message


def public_messages(fake: FakeDiscord, channel: FakeChannel) -> list[dict[str, Any]]:
    return [m for m in fake.messages[channel.id] if not int(m.get("flags") or 0) & EPHEMERAL]


def embed_text(message: dict[str, Any]) -> str:
    return " ".join(e.get("description") or "" for e in message.get("embeds") or [])


async def held(commerce: Commerce, drop_id: int) -> int:
    view = await commerce.drops.view(drop_id)
    return sum(line.held for line in view.stock)


async def test_slash_buy_is_answered_at_once_with_a_private_valid_personal_link(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(5))
    async with bot_with_hub(fake, world, chat):
        interaction = await fake.inject_slash_command(
            "buy", user=world.viewer, channel=world.channel
        )
        reply = await answer(fake, interaction)

    response = first_response(fake, interaction)
    # Decided fast: the claim's outcome is the response itself, no deferral round trip.
    assert (response.type, response.ephemeral, response.status) == (4, True, 200)
    assert int(reply["flags"]) & EPHEMERAL
    assert "Alice, a unit is yours" in reply["content"]
    assert "the hold expires <t:" in reply["content"]
    token = pay_link(reply).removeprefix(f"{BASE}/c/")
    link = chat.signer.verify(token)
    assert (link.drop_id, link.identity) == (drop_id, f"discord:{world.viewer.id}")
    assert await held(chat.commerce, drop_id) == 1
    assert await chat.commerce.customers.find(f"discord:{world.viewer.id}") is not None
    assert not [m for m in public_messages(fake, world.channel) if token in json.dumps(m)]


def slowed(chat: Chat, monkeypatch: pytest.MonkeyPatch, fake: FakeDiscord) -> None:
    """Make every command wait until Discord has seen its deferral: a claim that cannot be
    decided within the answer window."""
    execute = chat.handler.execute

    async def slow_execute(user: Any, command: Any, *, message_id: str, **more: Any) -> Outbound:
        await fake.wait_for(
            lambda: any(
                str(r.interaction_id) == message_id and r.type == 5
                for r in fake.interaction_responses
            )
        )
        return await execute(user, command, message_id=message_id, **more)

    monkeypatch.setattr(chat.handler, "execute", slow_execute)


async def test_a_slow_claim_is_deferred_privately_then_answered_in_its_place(
    fake: FakeDiscord, world: World, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(5))
    slowed(chat, monkeypatch, fake)
    async with bot_with_hub(fake, world, chat):
        interaction = await fake.inject_slash_command(
            "buy", user=world.viewer, channel=world.channel
        )
        reply = await answer(fake, interaction)

    deferral = first_response(fake, interaction)
    assert (deferral.type, deferral.ephemeral, deferral.status) == (5, True, 200)
    assert int(reply["flags"]) & EPHEMERAL and "Alice, a unit is yours" in reply["content"]
    link = chat.signer.verify(pay_link(reply).removeprefix(f"{BASE}/c/"))
    assert (link.drop_id, link.identity) == (drop_id, f"discord:{world.viewer.id}")


async def test_unknown_sku_gets_a_short_private_error_and_holds_nothing(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(5))
    async with bot_with_hub(fake, world, chat):
        interaction = await fake.inject_slash_command(
            "buy", user=world.viewer, channel=world.channel, options={"sku": "NOPE-1"}
        )
        reply = await answer(fake, interaction)

    assert int(reply["flags"]) & EPHEMERAL
    assert "NOPE-1" in reply["content"] and len(reply["content"]) < 120
    assert not buttons(reply)
    assert await held(chat.commerce, drop_id) == 0


async def test_status_is_public_with_buttons_and_errors_are_short(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(5))
    async with bot_with_hub(fake, world, chat):
        status = await fake.inject_slash_command("drop", user=world.viewer, channel=world.channel)
        shown = await answer(fake, status)
        missing = await fake.inject_slash_command(
            "drop", user=world.viewer, channel=world.channel, options={"drop": drop_id + 99}
        )
        refused = await answer(fake, missing)

    assert not int(shown["flags"] or 0) & EPHEMERAL
    assert "LIVE NOW: Spicy chips capsule — 5 of 5 left" in shown["content"]
    assert f"dropcast:buy:{drop_id}" in {b.get("custom_id") for b in buttons(shown)}
    assert refused["content"] == "There is no such drop."


@pytest.mark.parametrize("decided", ["at once", "after a deferral"])
async def test_a_private_answer_to_a_public_command_never_shows_in_public(
    fake: FakeDiscord, world: World, chat: Chat, monkeypatch: pytest.MonkeyPatch, decided: str
) -> None:
    secret = f"{BASE}/c/only-for-alice"

    async def private_answer(user: Any, command: Any, **_: Any) -> Outbound:
        return Outbound(replies=[Message("Yours:", personal_link=secret, private=True)])

    monkeypatch.setattr(chat.handler, "execute", private_answer)
    if decided == "after a deferral":
        slowed(chat, monkeypatch, fake)
    async with bot_with_hub(fake, world, chat):
        interaction = await fake.inject_slash_command(
            "stock", user=world.viewer, channel=world.channel
        )
        private = await fake.wait_for(
            lambda: next((m for m in answers(interaction) if secret in json.dumps(m)), None)
        )

    if decided == "after a deferral":
        assert not first_response(fake, interaction).ephemeral  # /stock defers publicly
        assert interaction.original is not None
        assert interaction.original["content"] == "I've sent you the answer privately."
    assert int(private["flags"]) & EPHEMERAL and pay_link(private) == secret
    assert not [m for m in public_messages(fake, world.channel) if secret in json.dumps(m)]


async def test_viewer_cannot_steer_a_drop_but_the_crew_and_server_managers_can(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(5))
    async with bot_with_hub(fake, world, chat):
        attempt = await fake.inject_slash_command(
            "dropadmin close", user=world.viewer, channel=world.channel, options={"drop": drop_id}
        )
        refusal = await answer(fake, attempt)
        assert (await chat.commerce.drops.get(drop_id)).state is DropState.LIVE

        restocking = await fake.inject_slash_command(
            "dropadmin restock",
            user=fake.owner,  # Manage Server, no creator role
            channel=world.channel,
            options={"drop": drop_id, "sku": "chips-spicy", "units": 2},
        )
        restocked = await answer(fake, restocking)
        closing = await fake.inject_slash_command(
            "dropadmin close", user=world.mod, channel=world.channel, options={"drop": drop_id}
        )
        done = await answer(fake, closing)

    assert refusal["content"] == "Only the creator and mods can steer drops."
    assert int(refusal["flags"]) & EPHEMERAL
    assert restocked["content"] == "Restocked 2 × CHIPS-SPICY."
    assert done["content"] == f"Drop {drop_id} is closed."
    assert (await chat.commerce.drops.get(drop_id)).state is DropState.CLOSED


async def test_buy_button_still_works_after_the_bot_restarts(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await chat.commerce.drops.create(validate_spec(capsule_spec(5)))
    async with bot_with_hub(fake, world, chat):
        await chat.commerce.drops.open(drop_id)
        live = await fake.wait_for_message(world.channel, lambda m: "LIVE NOW" in embed_text(m))

    custom_id = f"dropcast:buy:{drop_id}"
    assert custom_id in {b.get("custom_id") for b in buttons(live)}
    # A new process: nothing remembered in memory, only the custom_id on the message.
    async with running(make_bot(fake, world, chat, chat.hub())):
        click = await fake.inject_component(custom_id, message=live["id"], user=world.viewer)
        reply = await answer(fake, click)

    assert first_response(fake, click).ephemeral
    assert int(reply["flags"]) & EPHEMERAL
    link = chat.signer.verify(pay_link(reply).removeprefix(f"{BASE}/c/"))
    assert (link.drop_id, link.identity) == (drop_id, f"discord:{world.viewer.id}")
    assert await held(chat.commerce, drop_id) == 1


async def test_a_buy_click_keeps_its_place_in_line_while_its_button_is_checked(
    fake: FakeDiscord, world: World, chat: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A click's place in line is the moment it came in: a claim that arrives elsewhere
    while the bot still checks that the clicked button's drop is the current one goes
    after it, so the click gets the last unit."""
    commerce = chat.commerce
    commerce.claims.line.patience = PATIENCE  # the check is held up on purpose below
    drop_id = await commerce.drops.create(validate_spec(capsule_spec(1)))
    [later_buyer] = await customers(commerce, 1, "web:later")
    checking, release = asyncio.Event(), asyncio.Event()
    current = commerce.drops.current

    async def held_up_check() -> Any:
        checking.set()
        await release.wait()
        return await current()

    async with bot_with_hub(fake, world, chat):
        await commerce.drops.open(drop_id)
        live = await fake.wait_for_message(world.channel, lambda m: "LIVE NOW" in embed_text(m))
        monkeypatch.setattr(commerce.drops, "current", held_up_check)
        click = await fake.inject_component(
            f"dropcast:buy:{drop_id}", message=live["id"], user=world.viewer
        )
        await asyncio.wait_for(checking.wait(), PATIENCE)
        later = asyncio.ensure_future(
            commerce.claims.claim(drop_id, later_buyer, arrival=commerce.claims.arrival())
        )
        # Queued behind the click (or, were the click not in line yet, already decided).
        await eventually(lambda: commerce.claims.queued(drop_id) == 1 or later.done())
        release.set()
        reply = await answer(fake, click)
        outcome = await later

    assert "Alice, a unit is yours" in reply["content"]
    assert outcome.outcome.value == "sold_out"


async def test_stock_ticks_edit_one_message_with_bounded_rest_calls(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await chat.commerce.drops.create(validate_spec(capsule_spec(10)))
    buyers = await customers(chat.commerce, 20)
    async with bot_with_hub(fake, world, chat):
        await chat.commerce.drops.open(drop_id)
        live = await fake.wait_for_message(world.channel, lambda m: "LIVE NOW" in embed_text(m))
        await asyncio.gather(*(chat.commerce.claims.claim(drop_id, c) for c in buyers))
        await fake.wait_for_message(world.channel, lambda m: "SOLD OUT" in embed_text(m))

    channel_calls = fake.requests_to("POST", MESSAGES) + fake.requests_to("PATCH", MESSAGE)
    channel_calls = [
        r for r in channel_calls if r.path.startswith(f"/channels/{world.channel.id}/")
    ]
    edits = fake.requests_to("PATCH", f"/channels/{world.channel.id}/messages/{live['id']}")
    assert 1 <= len(edits) <= 5
    assert len(channel_calls) <= 10  # 20 claims, 10 sales: live, thresholds, sold out, recap
    final = fake.get_message(live["id"])
    assert final is not None and embed_text(final).startswith("SOLD OUT")
    assert {b.get("custom_id") for b in buttons(final)} == {f"dropcast:waitlist:{drop_id}", None}
    texts = [embed_text(m) for m in public_messages(fake, world.channel)]
    assert sum("SOLD OUT" in t for t in texts) == 2  # the sold-out post and the edited live one
    assert all(r.status == 200 for r in channel_calls)


async def test_waitlist_offer_to_closed_dms_marks_unreachable_and_is_not_retried(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await live_drop(chat.commerce, capsule_spec(1))
    [buyer] = await customers(chat.commerce, 1)
    first = await chat.commerce.claims.claim(drop_id, buyer)
    assert first.hold is not None
    fake.close_dms(world.viewer)
    async with bot_with_hub(fake, world, chat) as (bot, hub):
        joined = await fake.inject_slash_command(
            "waitlist", user=world.viewer, channel=world.channel
        )
        assert "number 1 in line" in (await answer(fake, joined))["content"]

        await chat.commerce.claims.cancel_hold(first.hold.id)  # the unit goes to Alice
        await hub.drain()
        calls = len(fake.requests)
        offer = Message("again", kind="waitlist_offer", personal_link=f"{BASE}/c/x", private=True)
        assert not await bot.outlet.send_private(f"discord:{world.viewer.id}", offer)
        assert len(fake.requests) == calls  # remembered: no second attempt

    assert bot.outlet.unreachable == {world.viewer.id}
    [opened] = fake.requests_to("POST", "/users/@me/channels")
    assert opened.status == 200
    dm = fake.dm_channel_for(world.viewer)
    [refused] = fake.requests_to("POST", f"/channels/{dm.id}/messages")
    assert (refused.status, refused.response["code"]) == (403, 50007)
    assert fake.messages[dm.id] == []


async def test_remind_subscribes_and_stale_buttons_change_nothing(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    old = await live_drop(chat.commerce, capsule_spec(5))
    await chat.commerce.drops.close(old)
    current = await live_drop(chat.commerce, capsule_spec(5))
    async with bot_with_hub(fake, world, chat) as (bot, _):
        posted = await bot.outlet.post(Message("Soon!", drop_id=current, buttons=(Button.REMIND,)))
        stale = await bot.outlet.post(Message("Earlier", drop_id=old, buttons=(Button.BUY,)))
        assert posted is not None and stale is not None
        remind = await fake.inject_component(
            f"dropcast:remind:{current}", message=int(posted), user=world.viewer
        )
        note = await answer(fake, remind)
        click = await fake.inject_component(
            f"dropcast:buy:{old}", message=int(stale), user=world.viewer
        )
        late = await answer(fake, click)

    assert "I'll message you before" in note["content"] and int(note["flags"]) & EPHEMERAL
    assert "earlier drop" in late["content"] and int(late["flags"]) & EPHEMERAL
    viewer = await chat.commerce.customers.find(f"discord:{world.viewer.id}")
    assert viewer is not None
    (subscription,) = await chat.commerce.subscriptions.of(viewer)
    assert (subscription.scope, subscription.target) == ("drop", str(current))
    assert (subscription.channel, subscription.address) == ("discord", f"discord:{world.viewer.id}")
    assert await held(chat.commerce, old) == 0 and await held(chat.commerce, current) == 0


async def test_without_guild_ids_the_commands_are_registered_globally(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    async with running(make_bot(fake, world, chat, chat.hub(), in_guild=False)):
        pass
    names = {c["name"] for c in fake.commands[None]}
    assert names == {
        "drop",
        "buy",
        "stock",
        "waitlist",
        "remindme",
        "unsubscribe",
        "link",
        "dropadmin",
        "clip",
    }
    assert not fake.commands.get(world.guild.id)


async def test_closing_a_drop_posts_a_recap_with_the_chart_attached(
    fake: FakeDiscord, world: World, chat: Chat
) -> None:
    drop_id = await chat.commerce.drops.create(
        validate_spec(capsule_spec(2, objective={"metric": "units_first_10m", "target": 1}))
    )
    (buyer,) = await customers(chat.commerce, 1)
    async with bot_with_hub(fake, world, chat):
        await chat.commerce.drops.open(drop_id)
        held = await chat.commerce.claims.claim(drop_id, buyer)
        assert held.hold is not None, held
        order = await chat.commerce.orders.checkout(held.hold.id, buyer, "test")
        await chat.commerce.orders.confirm_payment(order.id, "pi_recap")
        await chat.commerce.drops.close(drop_id)
        recap = await fake.wait_for_message(world.channel, lambda m: "Thank you" in embed_text(m))

    text = embed_text(recap)
    assert "Goal: Units sold in the first 10 minutes ≥ 1: MET (1)" in text and "1 of 2 sold" in text
    (attachment,) = recap["attachments"]
    assert attachment["filename"] == "recap.png"
    assert recap["embeds"][0]["image"]["url"] == "attachment://recap.png"
