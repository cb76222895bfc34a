"""One command set for every platform: parsed once, executed against the core.

Each command is a module here declaring a ``CommandSpec`` (name, aliases, arguments, who
may run it, help text) and the function that runs it; ``registered`` lists them. The
parser, ``!help`` and Discord's slash commands are generated from that registry.

Viewers: ``!drop`` (status), ``!buy [SKU] [POOL]`` (or ``!buy POOL`` when the drop sells
one item), ``!stock``, ``!waitlist``, ``!remindme``, ``!unsubscribe``. Creators and mods:
``!drop start|close ID``, ``!drop restock ID SKU N [POOL]``, ``!drop new NAME``,
``!clip [ID]``. A refused
or malformed command gets a short reply saying why and changes nothing; an unknown one
gets the list of commands, at most once in a while per person and per channel.
"""

from __future__ import annotations

from bot.commands.context import CommandContext, current_drop
from bot.commands.errors import CommandError
from bot.commands.handler import CommandHandler
from bot.commands.registered import COMMANDS
from bot.commands.registry import Registry
from bot.commands.spec import Arg, Call, Command, CommandSpec, Group, Role


def parse(text: str, prefix: str = "!") -> Command | None:
    """The command in a chat line, by the registered commands (``Registry.parse``)."""
    return COMMANDS.parse(text, prefix)


__all__ = [
    "COMMANDS",
    "Arg",
    "Call",
    "Command",
    "CommandContext",
    "CommandError",
    "CommandHandler",
    "CommandSpec",
    "Group",
    "Registry",
    "Role",
    "current_drop",
    "parse",
]
