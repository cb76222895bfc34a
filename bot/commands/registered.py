"""Every chat command, registered. Adding one is a module in this package that declares
its ``COMMANDS`` and one line below; the parser, ``!help`` and Discord's slash commands
follow from the registry."""

from __future__ import annotations

from bot.commands import buy, clip, drop_admin, remind, status, stock, waitlist
from bot.commands.registry import Registry

# In the order !help lists them and Discord shows them.
COMMANDS = Registry(
    [
        *status.COMMANDS,
        *buy.COMMANDS,
        *stock.COMMANDS,
        *waitlist.COMMANDS,
        *remind.COMMANDS,
        *drop_admin.COMMANDS,
        *clip.COMMANDS,
    ]
)
