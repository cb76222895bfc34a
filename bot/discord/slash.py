"""Slash commands generated from the chat command registry (``bot.commands``): each
command's word, help text and arguments become a slash command, its description and
options; a command group becomes a slash group (``/dropadmin start``). Each one only
builds a :class:`bot.commands.Command`; the runner answers within Discord's 3 seconds.

Creator commands are visible to all: the command handler refuses anyone who is not a
creator, so the permission rule lives in one place."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import discord
from discord import app_commands

from bot.commands import COMMANDS, Command, CommandSpec, Registry

Interaction = discord.Interaction[Any]
SlashCommand = app_commands.Command[Any, ..., None]


class CommandRunner(Protocol):
    async def run_command(
        self, interaction: Interaction, command: Command, *, ephemeral: bool
    ) -> None: ...

    async def refuse(self, interaction: Interaction, text: str) -> None:
        """Answer privately that the command cannot run as given."""
        ...

    async def link_code(self, interaction: Interaction) -> None: ...


def slash_commands(
    runner: CommandRunner, commands: Registry = COMMANDS
) -> list[SlashCommand | app_commands.Group]:
    """Every registered command, plus ``/link`` (Discord's half of account linking)."""
    tree: list[SlashCommand | app_commands.Group] = [
        slash_command(spec, runner) for spec in commands if spec.group is None
    ]
    tree.append(_link(runner))
    for group in commands.groups():
        slash_group = app_commands.Group(
            name=group.slash_name, description=group.help, guild_only=True
        )
        for spec in commands:
            if spec.group == group:
                slash_group.add_command(slash_command(spec, runner))
        tree.append(slash_group)
    return tree


def slash_command(spec: CommandSpec, runner: CommandRunner) -> SlashCommand:
    """``spec`` as a slash command: its arguments as options of their kind, required or
    not, described by their help."""

    async def run(interaction: Interaction, **options: object) -> None:
        # Options as the chat parser would have produced them: positional, unset ones left
        # out. A lone pool of /buy then reads as "!buy POOL" does.
        given = (options.get(arg.name) for arg in spec.args)
        command = Command(spec.name, tuple(str(value) for value in given if value is not None))
        await runner.run_command(interaction, command, ephemeral=not spec.public_answer)

    # discord.py reads the options from the callback's signature.
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            *(
                inspect.Parameter(
                    arg.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    annotation=arg.kind if arg.required else arg.kind | None,
                    default=inspect.Parameter.empty if arg.required else None,
                )
                for arg in spec.args
            ),
        ]
    )
    descriptions = {arg.name: arg.help for arg in spec.args if arg.help}
    callback = app_commands.describe(**descriptions)(run) if descriptions else run
    command: SlashCommand = app_commands.Command(
        name=spec.word, description=spec.help, callback=callback
    )
    if spec.group is None and not spec.in_private_chat:
        command = app_commands.guild_only(command)
    return command


def _link(runner: CommandRunner) -> SlashCommand:
    @app_commands.command(name="link", description="Link your Twitch account (code for chat)")
    @app_commands.guild_only()
    async def link(interaction: Interaction) -> None:
        await runner.link_code(interaction)

    return link
