"""One command set for every platform: parsed once here, executed against the core.

Viewers: ``!drop`` (status), ``!buy [SKU] [POOL]`` (or ``!buy POOL`` when the drop sells
one item), ``!stock``, ``!waitlist``. Creators and mods: ``!drop start|close ID``,
``!drop restock ID SKU N [POOL]``, ``!drop new NAME``. A refused or malformed command gets
a short reply saying why and changes nothing; an unknown one gets the list of commands, at
most once in a while per person and per channel.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.messages import ChatUser, Message, Outbound, a_unit
from bot.presenter import Presenter
from bot.ratelimit import AnswerThrottle
from commerce.core import Commerce
from commerce.domain.errors import DomainError
from commerce.domain.model import ClaimOutcome, ClaimResult, Drop, DropFormat
from commerce.dropfile import load_drop_file
from commerce.observability import bind_request_id

LinkIssuer = Callable[[int, str], Awaitable[str]]  # (drop_id, identity) -> personal URL

VIEWER_HELP = (
    "Commands: !drop (status) · !buy [SKU] [POOL] · !stock · !waitlist · !remindme [drop|SKU] · "
    "!unsubscribe · !help"
)
CREATOR_HELP = (
    "Creator: !drop start ID · !drop close ID · !drop restock ID SKU N [POOL] · !drop new NAME"
)
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_WORD = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")  # what reads as a command name ("!foo")
_POOL = re.compile(r"^(ship|pickup:[a-z0-9][a-z0-9-]{0,70})$")  # as the core names pools


def viewer_help(prefix: str = "!") -> str:
    return VIEWER_HELP.replace("!", prefix)


def creator_help(prefix: str = "!") -> str:
    return CREATOR_HELP.replace("!", prefix)


class CommandError(Exception):
    """Malformed or refused: the message is the reply, nothing changed."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # drop | buy | stock | waitlist | help | drop.start | drop.close | unknown | …
    args: tuple[str, ...] = ()


def parse(text: str, prefix: str = "!") -> Command | None:
    """The command in a chat line, or None when the line is ordinary chat. A word after the
    prefix that is none of ours is ``Command("unknown", (word,))``."""
    text = text.strip()
    if not text.startswith(prefix) or text[len(prefix) : len(prefix) + 1].isspace():
        return None  # "! hello" is chat, not a command
    try:
        words = shlex.split(text[len(prefix) :])
    except ValueError:
        raise CommandError("I couldn't read that: check the quotes.") from None
    if not words:
        return None
    head, rest = words[0].lower(), words[1:]
    if head in ("buy", "stock", "waitlist", "help", "remindme", "unsubscribe"):
        return Command(head, tuple(rest))
    if head != "drop":
        return Command("unknown", (head,)) if _WORD.match(head) else None
    if not rest:
        return Command("drop")
    action = rest[0].lower()
    if action in ("start", "open", "close", "restock", "new"):
        return Command(f"drop.{'start' if action == 'open' else action}", tuple(rest[1:]))
    if action.isdigit():
        return Command("drop", (action,))
    raise CommandError(f"Unknown drop command {rest[0]!r}. {CREATOR_HELP}")


def _int(value: str, what: str) -> int:
    if not value.isdigit():
        raise CommandError(f"{what} must be a number, not {value!r}.")
    return int(value)


class CommandHandler:
    """Executes parsed commands. Adapters only translate platform events in and out."""

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
    ) -> None:
        self.commerce = commerce
        self.issue_link = issue_link
        self.presenter = Presenter(commerce, public_url, prefix, locale)
        self.locale = locale  # for people whose platform tells us none (chat.locale)
        # ``!waitlist`` holds announced in the command's reply; the hub reads this too.
        self.help_throttle = help_throttle or AnswerThrottle(
            clock=lambda: commerce.clock.now().timestamp()
        )
        # Per platform: can a personal link reach this person privately? A platform whose
        # chat is public (Twitch) registers a check; where it says no, a claim would only
        # block a unit its holder can never pay for, so we send them to the drop page.
        self.reachability: dict[str, Callable[[ChatUser], Awaitable[bool]]] = {}
        self.public_url = public_url.rstrip("/")
        self.prefix = prefix
        self.drops_dir = Path(drops_dir)

    async def handle(
        self, user: ChatUser, text: str, *, message_id: str, channel: str | None = None
    ) -> Outbound | None:
        """React to one chat line; None when it is not for us, or when it is an unknown
        command whose help this person or ``channel`` got a moment ago."""
        try:
            command = parse(text, self.prefix)
        except CommandError as exc:
            return self._unasked(user, channel, str(exc))
        if command is None:
            return None
        if command.name == "unknown":
            return self._unasked(
                user,
                channel,
                f"I don't know {self.prefix}{command.args[0]}. {viewer_help(self.prefix)}",
            )
        return await self.execute(user, command, message_id=message_id)

    def _unasked(self, user: ChatUser, channel: str | None, text: str) -> Outbound | None:
        """A reply to a line that was no valid command, unless it would flood the chat."""
        where = channel or user.identity.split(":", 1)[0]
        if not self.help_throttle.allow(user.identity, where):
            return None
        return Outbound(replies=[Message(text, kind="help")])

    async def execute(self, user: ChatUser, command: Command, *, message_id: str) -> Outbound:
        """Run a command that a platform already parsed (e.g. a slash command or a button):
        errors become short replies, never exceptions."""
        bind_request_id(f"{user.identity.split(':', 1)[0]}:{message_id}")
        try:
            return await self.run(user, command, message_id=message_id)
        except CommandError as exc:
            return Outbound(replies=[Message(str(exc), kind="error")])
        except DomainError as exc:
            return Outbound(replies=[Message(describe_error(exc), kind="error")])

    async def run(self, user: ChatUser, command: Command, *, message_id: str) -> Outbound:
        if command.name.startswith("drop.") and not user.is_creator:
            raise CommandError("Only the creator and mods can steer drops.")
        match command.name:
            case "help":
                text = creator_help(self.prefix) if user.is_creator else viewer_help(self.prefix)
                return Outbound(replies=[Message(text, kind="help")])
            case "drop" | "stock":
                drop = await self._drop(command.args[0] if command.args else None)
                view = await self.commerce.drops.view(drop.id)
                locale = user.locale or self.locale
                if command.name == "stock":
                    return Outbound(replies=[self.presenter.stock(view, locale)])
                return Outbound(replies=[self.presenter.status(view, locale=locale)])
            case "buy":
                return await self._buy(user, command.args, message_id)
            case "waitlist":
                return await self._waitlist(user, command.args)
            case "remindme":
                return await self._remind(user, command.args)
            case "unsubscribe":
                customer = await self.commerce.customers.resolve(user.identity, user.name)
                ended = await self.commerce.subscriptions.unsubscribe(customer)
                text = "Done: no more reminders." if ended else "You had no reminders."
                return Outbound(replies=[Message(text, kind="unsubscribed", private=True)])
            case "drop.start":
                drop_id = _int(self._one(command, "!drop start ID"), "The drop id")
                drop = await self.commerce.drops.open(drop_id)
                return Outbound(replies=[Message(f"Drop {drop.id} is live.")])
            case "drop.close":
                drop_id = _int(self._one(command, "!drop close ID"), "The drop id")
                drop = await self.commerce.drops.close(drop_id)
                return Outbound(replies=[Message(f"Drop {drop.id} is closed.")])
            case "drop.restock":
                return await self._restock(command.args)
            case "drop.new":
                return await self._new(self._one(command, "!drop new NAME"))
        raise CommandError(viewer_help(self.prefix))  # pragma: no cover - parse() yields these

    def drop_page(self, drop_id: int) -> str:
        return f"{self.public_url}/d/{drop_id}"

    @staticmethod
    def _one(command: Command, usage: str) -> str:
        if len(command.args) != 1:
            raise CommandError(f"Usage: {usage}")
        return command.args[0]

    async def _drop(self, given: str | None) -> Drop:
        if given is not None:
            return await self.commerce.drops.get(_int(given, "The drop id"))
        drop = await current_drop(self.commerce)
        if drop is None:
            raise CommandError("No drop is scheduled right now.")
        return drop

    @staticmethod
    def _target(args: tuple[str, ...]) -> tuple[str | None, str | None]:
        """(sku, pool) from ``[SKU] [POOL]``, or from a lone POOL: ``!buy pickup:corner-deli``
        asks for that pool of the drop's one item (the core picks the only SKU, and refuses
        with the list of SKUs when there are several)."""
        if len(args) == 1 and _POOL.match(args[0].lower()):
            return None, args[0].lower()
        return (args[0] if args else None), (args[1] if len(args) > 1 else None)

    async def _buy(self, user: ChatUser, args: tuple[str, ...], message_id: str) -> Outbound:
        if len(args) > 2:
            raise CommandError(f"Usage: {self.prefix}buy [SKU] [POOL]")
        drop = await self._drop(None)
        sku, pool = self._target(args)
        platform = user.identity.split(":", 1)[0]
        elsewhere = await self._claim_elsewhere(user, drop.id, sku, pool)
        if elsewhere is not None:
            return elsewhere
        customer = await self.commerce.customers.resolve(user.identity, user.name)
        result = await self.commerce.claims.claim(
            drop.id,
            customer,
            sku=sku,
            pool=pool,
            source=platform,
            claim_key=f"chat:{platform}:{message_id}",
        )
        unit = unit_word(drop)
        page = self.drop_page(drop.id)
        if result.ok and result.hold is not None:
            return Outbound(replies=[await self._held(user, drop.id, result, unit)])
        p = self.prefix
        text, brief = {
            ClaimOutcome.SOLD_OUT: (
                f"Sold out, {user.name}. Type {p}waitlist to be next if {a_unit(unit)} frees up.",
                f"sold out — type {p}waitlist to be next",
            ),
            ClaimOutcome.NOT_OPEN: (
                f"Not open yet, {user.name}: it opens {{at}}.",
                "not open yet: it opens {at}",
            ),
            ClaimOutcome.CLOSED: ("This drop is closed.", "this drop is closed"),
            ClaimOutcome.LIMIT_REACHED: (
                f"{user.name}, you've reached the limit for this drop.",
                "you've reached the limit for this drop",
            ),
        }[result.outcome]
        return Outbound(
            replies=[
                Message(
                    text,
                    kind=result.outcome.value,
                    drop_id=drop.id,
                    at=result.opens_at,
                    public_link=page,
                    unit=unit,
                    brief=brief,
                )
            ]
        )

    async def _held(
        self, user: ChatUser, drop_id: int, result: ClaimResult, unit: str, *, instant: bool = False
    ) -> Message:
        """The one private answer about a hold: whose it is, how to pay, when it lapses."""
        assert result.hold is not None
        what = a_unit(unit)
        brief = f"you hold {what}"
        if result.outcome is ClaimOutcome.ALREADY_HELD:
            lead = f"{user.name}, you already hold {what}"
            brief = f"you already hold {what}"
        elif instant:
            lead = f"{user.name}, no need to wait: {what} is free, so it's yours now"
        else:
            lead = f"{user.name}, {what} is yours"
        return Message(
            f"{lead}. Pay with your personal link (only you can see it); the hold expires {{at}}.",
            kind="held",
            drop_id=drop_id,
            at=result.hold.expires_at,
            personal_link=await self.issue_link(drop_id, user.identity),
            public_link=self.drop_page(drop_id),
            private=True,
            hold_id=result.hold.id,
            unit=unit,
            brief=brief,
        )

    async def _claim_elsewhere(
        self, user: ChatUser, drop_id: int, sku: str | None, pool: str | None
    ) -> Outbound | None:
        """For someone a personal link cannot reach privately: the drop page instead of a
        hold (or an offer) that would block a unit they can never pay for."""
        reachable = self.reachability.get(user.identity.split(":", 1)[0])
        if reachable is None or await reachable(user):
            return None
        await self.commerce.claims.validate(drop_id, sku=sku, pool=pool)  # bad input first
        page = self.drop_page(drop_id)
        how = (
            f"sign in with Twitch once on the drop page {page} (or link your Discord with "
            "/link) to buy"
        )
        return Outbound(
            replies=[
                Message(
                    f"{user.name}, chat here is public, so I can't hand you a pay link: {how} "
                    "from chat.",
                    kind="claim_elsewhere",
                    drop_id=drop_id,
                    public_link=page,
                    brief=f"chat is public, so no pay link here: {how} from chat",
                )
            ]
        )

    async def _waitlist(self, user: ChatUser, args: tuple[str, ...]) -> Outbound:
        if len(args) > 2:
            raise CommandError(f"Usage: {self.prefix}waitlist [SKU] [POOL]")
        drop = await self._drop(None)
        sku, pool = self._target(args)
        elsewhere = await self._claim_elsewhere(user, drop.id, sku, pool)
        if elsewhere is not None:
            return elsewhere
        customer = await self.commerce.customers.resolve(user.identity, user.name)
        # With a unit free, joining holds it at once: this reply is the one answer (the core
        # announces no waitlist offer for the joiner's own instant hold).
        result = await self.commerce.claims.join_waitlist(drop.id, customer, sku=sku, pool=pool)
        unit = unit_word(drop)
        if result.ok and result.hold is not None:
            return Outbound(replies=[await self._held(user, drop.id, result, unit, instant=True)])
        if result.outcome is ClaimOutcome.CLOSED:
            raise CommandError("This drop is closed.")
        if result.outcome is ClaimOutcome.LIMIT_REACHED:
            raise CommandError(f"{user.name}, you already have as many as this drop allows.")
        return Outbound(
            replies=[
                Message(
                    f"{user.name}, you're number {result.waitlist_position} in line. "
                    f"I'll message you privately if {a_unit(unit)} frees up.",
                    kind="waitlist",
                    drop_id=drop.id,
                    unit=unit,
                )
            ]
        )

    async def _remind(self, user: ChatUser, args: tuple[str, ...]) -> Outbound:
        """!remindme: every drop; !remindme drop: the current one; !remindme SKU: restocks."""
        if len(args) > 1:
            raise CommandError("Usage: !remindme [drop|SKU]")
        customer = await self.commerce.customers.resolve(user.identity, user.name)
        if not args:
            scope, target, what = "creator", "*", "before every drop"
        elif args[0].lower() == "drop":
            drop = await self._drop(None)
            scope, target, what = "drop", str(drop.id), f"before {drop.title}"
        else:
            scope, target, what = "sku", args[0].upper(), f"when {args[0].upper()} is restocked"
        await self.commerce.subscriptions.subscribe(customer, scope, target)
        return Outbound(
            replies=[
                Message(
                    f"{user.name}, I'll message you {what}. {self.prefix}unsubscribe stops it.",
                    kind="subscribed",
                    private=True,
                )
            ]
        )

    async def _restock(self, args: tuple[str, ...]) -> Outbound:
        if len(args) not in (3, 4):
            raise CommandError("Usage: !drop restock ID SKU N [POOL]")
        drop_id = _int(args[0], "The drop id")
        units = _int(args[2], "The number of units")
        offers = await self.commerce.drops.restock(
            drop_id, args[1], units, args[3] if len(args) == 4 else None
        )
        note = f" ({offers} offered to the waitlist first)" if offers else ""
        return Outbound(replies=[Message(f"Restocked {units} × {args[1].upper()}{note}.")])

    async def _new(self, name: str) -> Outbound:
        if not _NAME.match(name):
            raise CommandError(
                "Drop names are letters, digits, - and _ (a file in the drops folder)."
            )
        path = self.drops_dir / f"{name}.toml"
        if not path.is_file():
            raise CommandError(f"There is no prepared drop named {name!r}.")
        try:
            spec = load_drop_file(path)
        except DomainError as exc:
            raise CommandError(f"{name}.toml: {exc}") from None
        drop_id = await self.commerce.drops.create(spec)
        return Outbound(replies=[Message(f"Drop {drop_id} created from {name}.toml.")])


def unit_word(drop: Drop) -> str:
    """What one claim takes, as ``DropView.unit_word`` says it, without reading the stock."""
    return "bundle" if drop.format is DropFormat.BUNDLE else "unit"


async def current_drop(commerce: Commerce) -> Drop | None:
    """The drop chat talks about (see DropService.current)."""
    return await commerce.drops.current()


def describe_error(error: DomainError) -> str:
    """Chat wording for domain error codes (short; no internals)."""
    return {
        "DROP_NOT_FOUND": "There is no such drop.",
        "INVALID_STATE": str(error),
        "UNKNOWN_ITEM": f"{error} — type !stock to see what's on sale.",
        "INVALID_INPUT": f"That doesn't work: {error}.",
    }.get(error.code, f"That didn't work: {error}.")
