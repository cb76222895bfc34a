"""What every command runs with: the core, the presenter, the chat's settings, and the
drop a command is about."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bot.commands.errors import CommandError, number
from bot.messages import ChatUser
from bot.presenter import Presenter, replies
from commerce.core import Commerce
from commerce.domain.model import ClipReason, Drop
from commerce.links import drop_page_url

LinkIssuer = Callable[[int, str], Awaitable[str]]  # (drop_id, identity) -> personal URL
Reachability = Callable[[ChatUser], Awaitable[bool]]


class Clipper(Protocol):
    """A platform that can clip its stream (Twitch) and keeps the clip with the drop."""

    def clip(self, drop_id: int, reason: ClipReason) -> bool:
        """Start a clip in the background; False when this platform cannot make one."""
        ...


@dataclass(slots=True)
class CommandContext:
    commerce: Commerce
    issue_link: LinkIssuer
    presenter: Presenter
    public_url: str
    prefix: str
    drops_dir: Path
    locale: str | None  # for people whose platform tells us none (chat.locale)
    # Per platform: can a personal link reach this person privately? A platform whose
    # chat is public (Twitch) registers a check; where it says no, a claim would only
    # block a unit its holder can never pay for, so we send them to the drop page.
    reachability: dict[str, Reachability] = field(default_factory=dict)
    # Per platform: what clips its stream (``!clip``); a platform that can registers here.
    clippers: dict[str, Clipper] = field(default_factory=dict)

    def drop_page(self, drop_id: int) -> str:
        return drop_page_url(self.public_url, drop_id)

    async def drop(self, given: str | None = None) -> Drop:
        """The drop with the id ``given``, else the one chat talks about."""
        if given is not None:
            return await self.commerce.drops.get(number(given, "The drop id"))
        drop = await current_drop(self.commerce)
        if drop is None:
            raise CommandError(replies.NO_DROP)
        return drop


async def current_drop(commerce: Commerce) -> Drop | None:
    """The drop chat talks about (see DropService.current)."""
    return await commerce.drops.current()
