"""Discord adapter (discord.py 2.7): slash commands, persistent buttons, embeds, DMs.

Only translates: interactions become :class:`bot.commands.Command`s for the shared
:class:`bot.commands.CommandHandler`, and the hub's neutral messages become embeds.
"""

from bot.discord.buttons import DropButton
from bot.discord.client import DiscordBot
from bot.discord.outlet import DiscordOutlet

__all__ = ["DiscordBot", "DiscordOutlet", "DropButton"]
