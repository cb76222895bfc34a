"""Slash commands mirroring the chat command set. Each one only builds a
:class:`bot.commands.Command`; the runner answers within Discord's 3 seconds."""

from __future__ import annotations

from typing import Any, Protocol

import discord
from discord import app_commands

from bot.commands import Command

Interaction = discord.Interaction[Any]


class CommandRunner(Protocol):
    async def run_command(
        self, interaction: Interaction, command: Command, *, ephemeral: bool
    ) -> None: ...

    async def refuse(self, interaction: Interaction, text: str) -> None:
        """Answer privately that the command cannot run as given."""
        ...

    async def link_code(self, interaction: Interaction) -> None: ...


def _args(*values: object) -> tuple[str, ...]:
    """Options as the chat parser would have produced them: positional, unset ones last."""
    given = list(values)
    while given and given[-1] is None:
        given.pop()
    return tuple(str(v) for v in given)


async def _claim(
    runner: CommandRunner, interaction: Interaction, name: str, sku: str | None, pool: str | None
) -> None:
    # A pool alone (``!buy pickup:corner-deli``) means that pool of the drop's one item; with
    # several items the core answers with the SKUs to choose from.
    args = (pool,) if pool is not None and sku is None else _args(sku, pool)
    await runner.run_command(interaction, Command(name, args), ephemeral=True)


def viewer_commands(runner: CommandRunner) -> list[app_commands.Command[Any, ..., None]]:
    """``/drop``, ``/buy``, ``/stock``, ``/waitlist``: everyone may use them."""

    @app_commands.command(name="drop", description="Status of the live or next drop")
    @app_commands.describe(drop="A drop id (default: the live or next drop)")
    @app_commands.guild_only()
    async def drop_status(interaction: Interaction, drop: int | None = None) -> None:
        await runner.run_command(interaction, Command("drop", _args(drop)), ephemeral=False)

    @app_commands.command(name="buy", description="Claim a unit; you get a private pay link")
    @app_commands.describe(
        sku="Which product (default: the drop's only one)", pool="ship or pickup"
    )
    @app_commands.guild_only()
    async def buy(
        interaction: Interaction, sku: str | None = None, pool: str | None = None
    ) -> None:
        await _claim(runner, interaction, "buy", sku, pool)

    @app_commands.command(name="stock", description="What is left in the current drop")
    @app_commands.guild_only()
    async def stock(interaction: Interaction) -> None:
        await runner.run_command(interaction, Command("stock"), ephemeral=False)

    @app_commands.command(name="waitlist", description="Be next in line when a unit frees up")
    @app_commands.describe(sku="Which product", pool="ship or pickup")
    @app_commands.guild_only()
    async def waitlist(
        interaction: Interaction, sku: str | None = None, pool: str | None = None
    ) -> None:
        await _claim(runner, interaction, "waitlist", sku, pool)

    @app_commands.command(name="remindme", description="Get a DM before drops (or restocks)")
    @app_commands.describe(what="'drop' for the current one, a SKU for its restocks")
    @app_commands.guild_only()
    async def remindme(interaction: Interaction, what: str | None = None) -> None:
        await runner.run_command(interaction, Command("remindme", _args(what)), ephemeral=True)

    @app_commands.command(name="unsubscribe", description="Stop every reminder")
    async def unsubscribe(interaction: Interaction) -> None:
        await runner.run_command(interaction, Command("unsubscribe"), ephemeral=True)

    @app_commands.command(name="link", description="Link your Twitch account (code for chat)")
    @app_commands.guild_only()
    async def link(interaction: Interaction) -> None:
        await runner.link_code(interaction)

    return [drop_status, buy, stock, waitlist, remindme, unsubscribe, link]


class CreatorCommands(app_commands.Group):
    """``/dropadmin start|close|restock|new``. Visible to all; the command handler refuses
    anyone who is not a creator, so the permission rule lives in one place."""

    def __init__(self, runner: CommandRunner) -> None:
        super().__init__(
            name="dropadmin", description="Creator and mod controls for drops", guild_only=True
        )
        self.runner = runner

    async def _run(self, interaction: Interaction, name: str, *args: object) -> None:
        await self.runner.run_command(interaction, Command(name, _args(*args)), ephemeral=True)

    @app_commands.command(description="Open a drop now")
    @app_commands.describe(drop="The drop id")
    async def start(self, interaction: Interaction, drop: int) -> None:
        await self._run(interaction, "drop.start", drop)

    @app_commands.command(description="Close a drop now")
    @app_commands.describe(drop="The drop id")
    async def close(self, interaction: Interaction, drop: int) -> None:
        await self._run(interaction, "drop.close", drop)

    @app_commands.command(description="Add units to a drop (the waitlist is served first)")
    @app_commands.describe(drop="The drop id", sku="Product SKU", units="Units to add", pool="Pool")
    async def restock(
        self, interaction: Interaction, drop: int, sku: str, units: int, pool: str | None = None
    ) -> None:
        await self._run(interaction, "drop.restock", drop, sku, units, pool)

    @app_commands.command(description="Schedule a prepared drop from the drops folder")
    @app_commands.describe(name="The drop file's name, without .toml")
    async def new(self, interaction: Interaction, name: str) -> None:
        await self._run(interaction, "drop.new", name)
