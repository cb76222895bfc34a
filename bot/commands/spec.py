"""What a command module declares: its name, aliases, arguments, who may run it and its
help text, plus the function that runs it. The registry (``bot.commands.registry``) turns
these declarations into the chat parser, ``!help`` and Discord's slash commands."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from bot.commands.context import CommandContext
from bot.commands.errors import CommandError
from bot.messages import ChatUser, Outbound
from bot.presenter import replies
from commerce.services.arrivals import Arrival


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: ``name`` is a spec's name (``buy``, ``drop.start``), ``help``, or
    ``unknown`` with the unknown word as its argument."""

    name: str
    args: tuple[str, ...] = ()


class Role(StrEnum):
    """Who may run a command. ``CREATOR`` is the creator and their mods: whoever the
    platform vouches for as ``ChatUser.is_creator``."""

    VIEWER = "viewer"
    CREATOR = "creator"


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument, positional in chat and a named option in a slash command."""

    name: str  # the slash option's name: "sku"
    usage: str  # how usage lines show it: "SKU", "ID", "drop|SKU"
    help: str | None = None  # the slash option's description
    kind: type[int] | type[str] = str
    required: bool = False

    @property
    def shown(self) -> str:
        return self.usage if self.required else f"[{self.usage}]"


@dataclass(frozen=True, slots=True)
class Group:
    """Commands under one leading word (``!drop start ID``). Its slash command cannot share
    that word with the plain command of the same name (``/drop``), hence ``slash_name``."""

    word: str
    slash_name: str
    help: str


@dataclass(frozen=True, slots=True)
class Call:
    """One run of a command: who asked, with which arguments (their count already fits
    the spec), and the chat message it came from (the claim's idempotency key).
    ``arrival``: the place in line a platform took for it as it came in, when it had to
    await something before running it (see ``CommandHandler.place_in_line``)."""

    user: ChatUser
    args: tuple[str, ...]
    message_id: str
    arrival: Arrival | None = None

    def place_in_line(self, ctx: CommandContext) -> Arrival:
        """The claim's place in line: the one taken as it came in, else one taken now."""
        return self.arrival or ctx.commerce.claims.arrival()


Run = Callable[[CommandContext, Call], Awaitable[Outbound]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One chat command. ``help`` is the slash command's description and ``!help WORD``'s
    answer; ``listed`` is how the ``!help`` list shows it when not as its usage."""

    word: str
    help: str
    run: Run
    args: tuple[Arg, ...] = ()
    aliases: tuple[str, ...] = ()
    role: Role = Role.VIEWER
    group: Group | None = None
    listed: str | None = None
    # Words after its arguments are ignored, not refused with the usage line (as they
    # always were for !drop, !stock and !unsubscribe: "!stock please").
    ignores_extra_words: bool = False
    public_answer: bool = False  # shown to the channel where a platform could answer privately
    in_private_chat: bool = False  # also usable in a private chat with the bot (reminders)
    # A claim (or a waitlist join): its place in line is the moment it came in.
    in_line: bool = False

    @property
    def name(self) -> str:
        """What ``Command.name`` carries: ``buy``, or ``drop.start`` within a group."""
        return f"{self.group.word}.{self.word}" if self.group else self.word

    @property
    def words(self) -> str:
        return f"{self.group.word} {self.word}" if self.group else self.word

    def usage(self, prefix: str) -> str:
        """``!drop restock ID SKU N [POOL]``"""
        return " ".join([f"{prefix}{self.words}", *(arg.shown for arg in self.args)])

    def check_arity(self, args: tuple[str, ...], prefix: str) -> None:
        """Refuse with the usage line when the number of arguments does not fit."""
        required = sum(arg.required for arg in self.args)
        too_many = len(args) > len(self.args) and not self.ignores_extra_words
        if len(args) < required or too_many:
            raise CommandError(replies.usage(self.usage(prefix)))
