"""The neutral message every platform adapter renders its own way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from commerce.views import DropStatus


class Button(StrEnum):
    BUY = "buy"
    REMIND = "remind"
    WAITLIST = "waitlist"


@dataclass(frozen=True, slots=True)
class Message:
    """Text plus optional structure. ``{at}`` in ``text`` is replaced by ``at`` rendered in
    the viewer's own time zone (Discord ``<t:…:R>``; plain "in 4 min" elsewhere).

    ``personal_link`` is for one person only: adapters send it privately (ephemeral reply,
    DM, studio session) and never post it in public chat. ``hold_id`` names the hold such a
    private message is about, so that the platforms that can edit it say "paid" once it is.
    ``status`` is the drop's one headline and action (``commerce.views.drop_status``) for
    outlets that show it apart from the text (the studio's status bar). ``brief``: see
    ``bot.coalesce``; ``{at}`` may stand in it as in ``text``.
    """

    text: str
    kind: str = "info"
    drop_id: int | None = None
    at: datetime | None = None
    title: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    public_link: str | None = None
    personal_link: str | None = None
    buttons: tuple[Button, ...] = ()
    private: bool = False
    image: bytes | None = None  # a PNG to attach where the platform can (the recap chart)
    hold_id: int | None = None
    unit: str = "unit"  # what one claim takes here: "unit", or "bundle" for a bundle drop
    status: DropStatus | None = None
    # A claim's outcome without the person's name ("sold out — type !waitlist …"), for
    # platforms that answer many people in one line at the peak (bot.coalesce).
    brief: str | None = None


@dataclass(frozen=True, slots=True)
class ChatUser:
    """Who said something, as the platform vouches for it."""

    identity: str  # "discord:123", "twitch:456", "local:ann"
    name: str
    is_creator: bool = False  # broadcaster / mod / creator role / allow-listed
    locale: str | None = None  # "en-US", "de": how they read money; None = the chat default


@dataclass(slots=True)
class Outbound:
    """What a command produced: replies to the speaker, and posts for the channel."""

    replies: list[Message] = field(default_factory=list)
    posts: list[Message] = field(default_factory=list)


def a_unit(unit: str) -> str:
    """ "a unit", "a bundle": what one claim takes, with its article."""
    return f"a {unit}"


def relative(at: datetime, now: datetime) -> str:
    """'in 4 min', '30 s ago' — for platforms without native timestamps. It stands where a
    Discord timestamp would, so texts put it after a verb ("opens {at}", "expires {at}"),
    never after "until"."""
    seconds = int((at - now).total_seconds())
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        span = f"{seconds} s"
    elif seconds < 3600:
        span = f"{round(seconds / 60)} min"
    elif seconds < 86400:
        span = f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    else:
        span = f"{round(seconds / 86400)} d"
    return f"in {span}" if future else f"{span} ago"
