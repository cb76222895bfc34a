"""Runs parsed commands against the core: the permission check, the usage check, and
errors turned into short replies. Platform adapters only translate events in and out."""

from __future__ import annotations

from pathlib import Path

from bot.commands.context import Clipper, CommandContext, LinkIssuer, Reachability
from bot.commands.errors import CommandError
from bot.commands.registered import COMMANDS
from bot.commands.registry import HELP, UNKNOWN, Registry
from bot.commands.spec import Call, Command, Role
from bot.messages import ChatUser, Message, Outbound
from bot.presenter import Presenter, replies
from bot.ratelimit import AnswerThrottle
from commerce.core import Commerce
from commerce.domain.errors import DomainError
from commerce.observability import bind_request_id
from commerce.services.arrivals import Arrival


class CommandHandler:
    """One chat line or platform command in, the answer out (``Outbound``)."""

    def __init__(
        self,
        commerce: Commerce,
        issue_link: LinkIssuer,
        *,
        public_url: str,
        prefix: str = "!",
        drops_dir: Path | str = "drops",
        locale: str | None = None,
        help_throttle: AnswerThrottle | None = None,
        commands: Registry | None = None,
    ) -> None:
        self.commands = commands or COMMANDS
        self.context = CommandContext(
            commerce=commerce,
            issue_link=issue_link,
            presenter=Presenter(commerce, public_url, prefix, locale),
            public_url=public_url.rstrip("/"),
            prefix=prefix,
            drops_dir=Path(drops_dir),
            locale=locale,
        )
        # Unknown commands are answered with help at most once in a while per person and
        # per channel.
        self.help_throttle = help_throttle or AnswerThrottle(
            clock=lambda: commerce.clock.now().timestamp()
        )

    @property
    def commerce(self) -> Commerce:
        return self.context.commerce

    @property
    def issue_link(self) -> LinkIssuer:
        return self.context.issue_link

    @property
    def prefix(self) -> str:
        return self.context.prefix

    @property
    def reachability(self) -> dict[str, Reachability]:
        """See ``CommandContext.reachability``: platforms register their check here."""
        return self.context.reachability

    @property
    def clippers(self) -> dict[str, Clipper]:
        """See ``CommandContext.clippers``: platforms that clip their stream register here."""
        return self.context.clippers

    def drop_page(self, drop_id: int) -> str:
        return self.context.drop_page(drop_id)

    def parse(self, text: str) -> Command | None:
        """The command in a chat line (see ``Registry.parse``)."""
        return self.commands.parse(text, self.prefix)

    def place_in_line(self, command: Command | str) -> Arrival | None:
        """For a claim (a parsed command, or a chat line), its place in line, taken now.
        A platform that awaits something between receiving a claim and running it (a
        check, an echo to other viewers) takes it first and passes it to ``execute`` or
        ``handle``, so a claim that came in later elsewhere cannot go first. It must leave
        the line (``with``) if the command never runs."""
        if isinstance(command, str):
            try:
                parsed = self.parse(command)
            except CommandError:
                return None
            if parsed is None:
                return None
            command = parsed
        spec = self.commands.spec(command.name)
        return self.commerce.claims.arrival() if spec is not None and spec.in_line else None

    async def handle(
        self,
        user: ChatUser,
        text: str,
        *,
        message_id: str,
        channel: str | None = None,
        arrival: Arrival | None = None,
    ) -> Outbound | None:
        """React to one chat line; None when it is not for us, or when it is an unknown
        command whose help this person or ``channel`` got a moment ago. ``arrival``: see
        ``place_in_line``."""
        try:
            command = self.parse(text)
        except CommandError as exc:
            return self._unasked(user, channel, str(exc))
        if command is None:
            return None
        if command.name == UNKNOWN:
            line = f"{self.prefix}{command.args[0]}"
            viewers = self.commands.viewer_help(self.prefix)
            return self._unasked(user, channel, replies.unknown_command(line, viewers))
        return await self.execute(user, command, message_id=message_id, arrival=arrival)

    def _unasked(self, user: ChatUser, channel: str | None, text: str) -> Outbound | None:
        """A reply to a line that was no valid command, unless it would flood the chat."""
        where = channel or user.identity.split(":", 1)[0]
        if not self.help_throttle.allow(user.identity, where):
            return None
        return Outbound(replies=[Message(text, kind="help")])

    async def execute(
        self, user: ChatUser, command: Command, *, message_id: str, arrival: Arrival | None = None
    ) -> Outbound:
        """Run a command that a platform already parsed (e.g. a slash command or a button):
        errors become short replies, never exceptions. ``arrival``: see ``place_in_line``."""
        bind_request_id(f"{user.identity.split(':', 1)[0]}:{message_id}")
        try:
            return await self.run(user, command, message_id=message_id, arrival=arrival)
        except CommandError as exc:
            return Outbound(replies=[Message(str(exc), kind="error")])
        except DomainError as exc:
            return Outbound(
                replies=[Message(replies.describe_error(exc, self.prefix), kind="error")]
            )

    async def run(
        self, user: ChatUser, command: Command, *, message_id: str, arrival: Arrival | None = None
    ) -> Outbound:
        role = Role.CREATOR if user.is_creator else Role.VIEWER
        if command.name == HELP:
            text = self.commands.help(role, command.args, self.prefix)
            return Outbound(replies=[Message(text, kind="help")])
        spec = self.commands.spec(command.name)
        if spec is None:  # a platform built a command that no module registers
            raise CommandError(self.commands.viewer_help(self.prefix))
        if spec.role is Role.CREATOR and role is not Role.CREATOR:
            raise CommandError(replies.CREATORS_ONLY)
        spec.check_arity(command.args, self.prefix)
        return await spec.run(self.context, Call(user, command.args, message_id, arrival))
