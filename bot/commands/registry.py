"""The registered commands, and what is generated from them: the chat parser, the ``!help``
answers and the usage lines. Discord's slash commands are generated from the same
registry (``bot.discord.slash``).

``!help`` belongs to the registry itself: it lists what is registered, so it is no command
module of its own and has no slash command (Discord lists slash commands natively).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator

from bot.commands.errors import CommandError
from bot.commands.spec import Command, CommandSpec, Group, Role
from bot.presenter import replies

HELP = "help"
UNKNOWN = "unknown"
_WORD = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # what reads as a command name ("!foo")


class Registry:
    """Commands in the order ``!help`` lists them and Discord shows them."""

    def __init__(self, commands: Iterable[CommandSpec]) -> None:
        self.commands = tuple(commands)
        self._by_name = {spec.name: spec for spec in self.commands}
        self._plain: dict[str, CommandSpec] = {}  # by leading word, outside any group
        self._grouped: dict[str, dict[str, CommandSpec]] = {}  # group word -> word -> spec
        for spec in self.commands:
            words = self._grouped.setdefault(spec.group.word, {}) if spec.group else self._plain
            for word in (spec.word, *spec.aliases):
                if word in words or word == HELP:
                    raise ValueError(f"two commands answer to {spec.words!r} ({word!r})")
                words[word] = spec

    def __iter__(self) -> Iterator[CommandSpec]:
        return iter(self.commands)

    def spec(self, name: str) -> CommandSpec | None:
        """The command a parsed ``Command.name`` names (None for help and unknown)."""
        return self._by_name.get(name)

    def groups(self) -> list[Group]:
        """Each group once, in the order of its first command."""
        return list(dict.fromkeys(spec.group for spec in self.commands if spec.group))

    # -- parsing ------------------------------------------------------------------------------

    def parse(self, text: str, prefix: str = "!") -> Command | None:
        """The command in a chat line, or None when the line is ordinary chat. A word after
        the prefix that is none of ours is ``Command("unknown", (word,))``."""
        text = text.strip()
        if not text.startswith(prefix) or text[len(prefix) : len(prefix) + 1].isspace():
            return None  # "! hello" is chat, not a command
        try:
            words = shlex.split(text[len(prefix) :])
        except ValueError:
            raise CommandError(replies.UNREADABLE) from None
        if not words:
            return None
        head, rest = words[0].lower(), tuple(words[1:])
        if head == HELP:
            return Command(HELP, rest)
        grouped = self._grouped.get(head)
        if grouped is not None and rest and (sub := grouped.get(rest[0].lower())):
            return Command(sub.name, rest[1:])
        plain = self._plain.get(head)
        if grouped is not None and rest and not (plain and _fits_first(plain, rest[0])):
            creators = self.creator_help(prefix)
            raise CommandError(replies.unknown_action(head, rest[0], creators))
        if plain is not None:
            return Command(plain.name, rest)
        return Command(UNKNOWN, (head,)) if _WORD.match(head) else None

    # -- help ---------------------------------------------------------------------------------

    def viewer_help(self, prefix: str = "!") -> str:
        entries = [prefix + (spec.listed or spec.usage("")) for spec in self._for(Role.VIEWER)]
        return replies.help_list(replies.VIEWER_TITLE, [*entries, prefix + HELP])

    def creator_help(self, prefix: str = "!") -> str:
        entries = [spec.usage(prefix) for spec in self._for(Role.CREATOR)]
        return replies.help_list(replies.CREATOR_TITLE, entries)

    def help(self, role: Role, words: tuple[str, ...], prefix: str = "!") -> str:
        """``!help``: the commands ``role`` may run; ``!help WORD [WORD]``: that command."""
        spec = self.find(tuple(word.lower().removeprefix(prefix) for word in words))
        if spec is not None:
            return replies.command_help(spec.usage(prefix), spec.help)
        return self.creator_help(prefix) if role is Role.CREATOR else self.viewer_help(prefix)

    def find(self, words: tuple[str, ...]) -> CommandSpec | None:
        """The command that lowercase chat ``words`` start with ("drop", "open" → drop.start)."""
        if not words:
            return None
        grouped = self._grouped.get(words[0], {})
        if len(words) > 1 and words[1] in grouped:
            return grouped[words[1]]
        return self._plain.get(words[0])

    def _for(self, role: Role) -> list[CommandSpec]:
        return [spec for spec in self.commands if spec.role is role]


def _fits_first(spec: CommandSpec, word: str) -> bool:
    """Whether ``word`` can be the command's first argument (``!drop 3``: a drop id)."""
    if not spec.args:
        return False
    return word.isdigit() if spec.args[0].kind is int else True
