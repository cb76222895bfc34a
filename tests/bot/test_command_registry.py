"""The command registry is the single source: every registered command is in ``!help`` and
in Discord's slash tree with its help text, and a command module added elsewhere (here,
in this file) is parsed, listed, run and offered as a slash command with nothing else
touched."""

from __future__ import annotations

from typing import Any

import discord
import pytest
from discord import AppCommandOptionType as OptionType
from discord import app_commands

from bot.commands import (
    COMMANDS,
    Arg,
    Call,
    Command,
    CommandContext,
    CommandHandler,
    CommandSpec,
    Group,
    Registry,
    Role,
)
from bot.discord.slash import slash_commands
from bot.messages import ChatUser, Message, Outbound
from tests.helpers import links

VIEWER = ChatUser("local:ann", "ann")
CREATOR = ChatUser("local:boss", "boss", is_creator=True)


# -- a command module, as a contributor would add one -------------------------------------


async def hug(ctx: CommandContext, call: Call) -> Outbound:
    return Outbound(replies=[Message(f"{call.user.name} hugs {call.args[0]}.")])


async def confetti(ctx: CommandContext, call: Call) -> Outbound:
    return Outbound(replies=[Message(f"Confetti × {call.args[0]}!")])


PARTY = Group("party", "partyadmin", "Creator controls for the party")
HUG = CommandSpec("hug", "Hug someone in chat", hug, args=(Arg("who", "NAME", "Whom to hug"),))
CONFETTI = CommandSpec(
    "confetti",
    "Throw confetti",
    confetti,
    args=(Arg("bursts", "N", "How many bursts", int, required=True),),
    aliases=("throw",),
    role=Role.CREATOR,
    group=PARTY,
)
WITH_FAKES = Registry([*COMMANDS, HUG, CONFETTI])


# -- helpers ------------------------------------------------------------------------------


class Runner:
    """What the Discord bot does with a slash command, recorded."""

    def __init__(self) -> None:
        self.commands: list[tuple[Command, bool]] = []

    async def run_command(self, interaction: Any, command: Command, *, ephemeral: bool) -> None:
        self.commands.append((command, ephemeral))

    async def refuse(self, interaction: Any, text: str) -> None:
        raise AssertionError(text)

    async def link_code(self, interaction: Any) -> None:
        raise AssertionError("not a registered command")


def slash_tree(registry: Registry, runner: Runner | None = None) -> dict[str, dict[str, Any]]:
    """The slash commands as Discord receives them, by name (``dropadmin start``)."""
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(
        discord.Client(intents=discord.Intents.none())
    )
    for command in slash_commands(runner or Runner(), registry):
        tree.add_command(command)
    return {c.qualified_name: c.to_dict(tree) for c in tree.walk_commands()}


def help_for(registry: Registry, spec: CommandSpec) -> str:
    if spec.role is Role.CREATOR:
        return registry.creator_help()
    return registry.viewer_help()


def assert_offered(registry: Registry, spec: CommandSpec, tree: dict[str, dict[str, Any]]):
    listed = spec.listed or spec.usage("")
    assert f"!{listed}" in help_for(registry, spec)
    name = f"{spec.group.slash_name} {spec.word}" if spec.group else spec.word
    slash = tree[name]
    assert slash["description"] == spec.help
    options = {o["name"]: o for o in slash["options"]}
    assert list(options) == [a.name for a in sorted(spec.args, key=lambda a: not a.required)]
    for arg in spec.args:
        assert options[arg.name]["required"] == arg.required
        assert options[arg.name]["description"] == (arg.help or "…")
        kind = OptionType.integer if arg.kind is int else OptionType.string
        assert options[arg.name]["type"] == kind.value


# -- the registry is the single source -----------------------------------------------------


@pytest.mark.parametrize("spec", list(COMMANDS), ids=lambda spec: spec.name)
def test_every_registered_command_is_in_help_and_the_slash_tree_with_its_help_text(spec):
    assert_offered(COMMANDS, spec, slash_tree(COMMANDS))
    answer = COMMANDS.help(Role.VIEWER, tuple(spec.words.split()))
    assert answer == f"{spec.usage('!')}: {spec.help}"


def test_the_slash_tree_holds_the_registered_commands_and_link_only():
    names = {name.split()[0] for name in slash_tree(COMMANDS)}
    registered = {spec.group.slash_name if spec.group else spec.word for spec in COMMANDS}
    assert names == registered | {"link"}


def test_help_lists_viewers_and_creators_their_own_commands():
    assert COMMANDS.help(Role.VIEWER, ()) == COMMANDS.viewer_help()
    assert COMMANDS.help(Role.CREATOR, ()) == COMMANDS.creator_help()
    assert COMMANDS.help(Role.VIEWER, ("nothing",)) == COMMANDS.viewer_help()
    assert COMMANDS.viewer_help("?").startswith("Commands: ?drop (status) · ?buy [SKU] [POOL]")


def test_two_commands_cannot_answer_to_the_same_word():
    twin = CommandSpec("hug", "Another hug", hug)
    with pytest.raises(ValueError, match="hug"):
        Registry([HUG, twin])


async def test_a_command_module_added_elsewhere_is_parsed_listed_run_and_offered_on_discord(
    commerce,
):
    tree = slash_tree(WITH_FAKES)
    for spec in (HUG, CONFETTI):
        assert_offered(WITH_FAKES, spec, tree)
    assert WITH_FAKES.parse("!hug bob") == Command("hug", ("bob",))
    assert WITH_FAKES.parse("!party throw 3") == Command("party.confetti", ("3",))

    handler = CommandHandler(
        commerce, links(lambda *_: ""), public_url="https://x.test", commands=WITH_FAKES
    )
    hugged = await handler.handle(VIEWER, "!hug bob", message_id="1")
    assert hugged is not None and hugged.replies[0].text == "ann hugs bob."
    refused = await handler.handle(VIEWER, "!party confetti 3", message_id="2")
    assert refused is not None and "Only the creator" in refused.replies[0].text
    thrown = await handler.handle(CREATOR, "!party confetti 3", message_id="3")
    assert thrown is not None and thrown.replies[0].text == "Confetti × 3!"
    wrong = await handler.handle(CREATOR, "!party confetti", message_id="4")
    assert wrong is not None and wrong.replies[0].text == "Usage: !party confetti N"
    helped = await handler.handle(VIEWER, "!help hug", message_id="5")
    assert helped is not None and helped.replies[0].text == "!hug [NAME]: Hug someone in chat"
    unknown = await handler.handle(VIEWER, "!dance", message_id="6", channel="c")
    assert unknown is not None and "!hug [NAME]" in unknown.replies[0].text
    # The built-in command set is untouched by the fakes.
    assert "hug" not in COMMANDS.viewer_help() and COMMANDS.parse("!hug bob") == Command(
        "unknown", ("hug",)
    )


async def test_a_slash_command_builds_the_command_its_chat_line_would():
    runner = Runner()
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(
        discord.Client(intents=discord.Intents.none())
    )
    for command in slash_commands(runner, WITH_FAKES):
        tree.add_command(command)
    hug_command = tree.get_command("hug")
    assert isinstance(hug_command, app_commands.Command)
    await hug_command.callback(None, who="bob")  # type: ignore[call-arg, arg-type]
    await hug_command.callback(None, who=None)  # type: ignore[call-arg, arg-type]
    party = tree.get_command("partyadmin")
    assert isinstance(party, app_commands.Group)
    confetti_command = party.get_command("confetti")
    assert isinstance(confetti_command, app_commands.Command)
    await confetti_command.callback(None, bursts=3)  # type: ignore[call-arg, arg-type]
    assert runner.commands == [
        (Command("hug", ("bob",)), True),
        (Command("hug"), True),
        (Command("party.confetti", ("3",)), True),
    ]
