"""What chat commands answer, in words: claims, the waitlist, reminders, drop steering,
refusals and the help lines. Commands (``bot.commands``) decide what happened; this module
says it, so all command wording sits in one place next to the rest of the presenter.

``prefix`` is the chat's command prefix ("!"); Discord shows such hints as slash commands.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.messages import Message, a_unit
from commerce.domain.errors import DomainError
from commerce.domain.model import ClaimOutcome

# -- a hold, and claims that placed none ---------------------------------------------------


def held(
    name: str,
    unit: str,
    *,
    already: bool,
    instant: bool,
    drop_id: int,
    hold_id: int,
    expires_at: datetime,
    personal_link: str,
    public_link: str,
) -> Message:
    """The one private answer about a hold: whose it is, how to pay, when it lapses."""
    what = a_unit(unit)
    brief = f"you hold {what}"
    if already:
        lead = f"{name}, you already hold {what}"
        brief = f"you already hold {what}"
    elif instant:
        lead = f"{name}, no need to wait: {what} is free, so it's yours now"
    else:
        lead = f"{name}, {what} is yours"
    return Message(
        f"{lead}. Pay with your personal link (only you can see it); the hold expires {{at}}.",
        kind="held",
        drop_id=drop_id,
        at=expires_at,
        personal_link=personal_link,
        public_link=public_link,
        private=True,
        hold_id=hold_id,
        unit=unit,
        brief=brief,
    )


def not_held(
    name: str,
    outcome: ClaimOutcome,
    *,
    unit: str,
    drop_id: int,
    opens_at: datetime | None,
    public_link: str,
    prefix: str,
) -> Message:
    """A ``!buy`` that placed no hold: sold out, not open yet, closed, or over the limit."""
    text, brief = {
        ClaimOutcome.SOLD_OUT: (
            f"Sold out, {name}. Type {prefix}waitlist to be next if {a_unit(unit)} frees up.",
            f"sold out — type {prefix}waitlist to be next",
        ),
        ClaimOutcome.NOT_OPEN: (
            f"Not open yet, {name}: it opens {{at}}.",
            "not open yet: it opens {at}",
        ),
        ClaimOutcome.CLOSED: ("This drop is closed.", "this drop is closed"),
        ClaimOutcome.LIMIT_REACHED: (
            f"{name}, you've reached the limit for this drop.",
            "you've reached the limit for this drop",
        ),
    }[outcome]
    return Message(
        text,
        kind=outcome.value,
        drop_id=drop_id,
        at=opens_at,
        public_link=public_link,
        unit=unit,
        brief=brief,
    )


def claim_elsewhere(name: str, *, drop_id: int, page: str) -> Message:
    """For someone a personal link cannot reach privately: buy on the drop page instead."""
    how = (
        f"sign in with Twitch once on the drop page {page} (or link your Discord with /link) to buy"
    )
    return Message(
        f"{name}, chat here is public, so I can't hand you a pay link: {how} from chat.",
        kind="claim_elsewhere",
        drop_id=drop_id,
        public_link=page,
        brief=f"chat is public, so no pay link here: {how} from chat",
    )


# -- the waitlist and reminders ------------------------------------------------------------

DROP_CLOSED = "This drop is closed."


def waitlist_full_for(name: str) -> str:
    return f"{name}, you already have as many as this drop allows."


def in_line(name: str, position: int | None, *, unit: str, drop_id: int) -> Message:
    return Message(
        f"{name}, you're number {position} in line. "
        f"I'll message you privately if {a_unit(unit)} frees up.",
        kind="waitlist",
        drop_id=drop_id,
        unit=unit,
    )


def subscribed(name: str, what: str, *, prefix: str) -> Message:
    """``what``: when the reminder comes ("before every drop", "when X is restocked")."""
    return Message(
        f"{name}, I'll message you {what}. {prefix}unsubscribe stops it.",
        kind="subscribed",
        private=True,
    )


def unsubscribed(ended: int) -> Message:
    """``ended``: how many subscriptions ended."""
    text = "Done: no more reminders." if ended else "You had no reminders."
    return Message(text, kind="unsubscribed", private=True)


# -- steering a drop -------------------------------------------------------------------------


def drop_live(drop_id: int) -> Message:
    return Message(f"Drop {drop_id} is live.")


def drop_closed(drop_id: int) -> Message:
    return Message(f"Drop {drop_id} is closed.")


def restocked(units: int, sku: str, offered: int) -> Message:
    note = f" ({offered} offered to the waitlist first)" if offered else ""
    return Message(f"Restocked {units} × {sku.upper()}{note}.")


def drop_created(drop_id: int, name: str) -> Message:
    return Message(f"Drop {drop_id} created from {name}.toml.")


def clipping(drop_id: int) -> Message:
    """``!clip``: a clip of the stream is being made; it is kept with the drop."""
    return Message(
        f"Clipping the stream: the clip will be kept with drop {drop_id} for its replay.",
        kind="clipping",
        drop_id=drop_id,
    )


NO_CLIPS = "No stream here can be clipped (clips need the Twitch bot with the clips:edit scope)."
CLIPS_OFF = "Clips are off: the Twitch bot's token lacks the clips:edit scope."


BAD_DROP_NAME = "Drop names are letters, digits, - and _ (a file in the drops folder)."


def no_prepared_drop(name: str) -> str:
    return f"There is no prepared drop named {name!r}."


def bad_drop_file(name: str, error: DomainError) -> str:
    return f"{name}.toml: {error}"


# -- refusals and help -----------------------------------------------------------------------

NO_DROP = "No drop is scheduled right now."
CREATORS_ONLY = "Only the creator and mods can steer drops."
UNREADABLE = "I couldn't read that: check the quotes."


def usage(line: str) -> str:
    """``line``: the command as typed, with its arguments ("!buy [SKU] [POOL]")."""
    return f"Usage: {line}"


def not_a_number(what: str, value: str) -> str:
    return f"{what} must be a number, not {value!r}."


def help_list(title: str, entries: Iterable[str]) -> str:
    """``Commands: !drop (status) · !buy [SKU] [POOL] · …``: one line, short enough for
    Twitch chat."""
    return f"{title}: {' · '.join(entries)}"


VIEWER_TITLE = "Commands"
CREATOR_TITLE = "Creator"


def command_help(line: str, text: str) -> str:
    """``!help buy``: one command, its arguments and what it does."""
    return f"{line}: {text}"


def unknown_action(word: str, action: str, creator_help: str) -> str:
    """``!drop explode``: a word the group has no command for."""
    return f"Unknown {word} command {action!r}. {creator_help}"


def unknown_command(line: str, viewer_help: str) -> str:
    return f"I don't know {line}. {viewer_help}"


def describe_error(error: DomainError, prefix: str = "!") -> str:
    """Chat wording for domain error codes (short; no internals)."""
    return {
        "DROP_NOT_FOUND": "There is no such drop.",
        "INVALID_STATE": str(error),
        "UNKNOWN_ITEM": f"{error} — type {prefix}stock to see what's on sale.",
        "INVALID_INPUT": f"That doesn't work: {error}.",
    }.get(error.code, f"That didn't work: {error}.")
