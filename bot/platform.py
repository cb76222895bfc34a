"""A chat platform is a plugin: one :class:`PlatformPlugin` declares it, the composition root
builds and runs every plugin in :data:`bot.platforms.PLATFORMS`.

A plugin says who its people are (its identity scheme: name, what an id looks like, and the
private channel, if any, through which a message reaches them) and builds the running
platform from settings (``None``: not configured here). The running platform starts and
closes, adds its :class:`~bot.hub.Outlet` (public posts, edits, private messages) to the hub
once it can post, turns its chat into calls of the shared command handler, and says whether
a personal link can reach a chat user privately. The core only ever sees the identity
scheme, handed to it at composition; retention messages reach a person through the outlet
of the platform their identity belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from aiohttp import web

from bot.commands import CommandHandler
from bot.hub import ChatHub, Outlet
from bot.linking import AccountLinker
from bot.messages import ChatUser
from commerce.core import Commerce
from commerce.domain.identities import IdentityScheme
from config.settings import Settings


class ChatPlatform(Protocol):
    """One chat platform at run time."""

    @property
    def outlet(self) -> Outlet:
        """What the hub and the retention dispatcher send through (valid once started)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop; when this returns, nothing the platform started is still running."""
        ...

    async def reachable(self, user: ChatUser) -> bool:
        """Can a personal link reach ``user`` privately from here? False: the chat command
        sends them to the drop page instead of holding a unit they could never pay for."""
        ...

    def routes(self) -> list[web.RouteDef]:
        """Web pages the platform serves itself (a chat in the browser); most serve none."""
        ...


@dataclass(frozen=True, slots=True)
class PlatformContext:
    """What a plugin may build its platform from: everything is shared by all platforms."""

    settings: Settings
    commerce: Commerce
    handler: CommandHandler
    hub: ChatHub
    linker: AccountLinker
    demo: bool = False  # `dropcast run --demo`


@dataclass(frozen=True, slots=True)
class PlatformPlugin:
    scheme: IdentityScheme
    build: Callable[[PlatformContext], ChatPlatform | None]
    # The process role that runs it: "bots" for a remote platform's connection, "web" for
    # a chat served by this process's web server.
    role: Literal["bots", "web"] = "bots"

    @property
    def name(self) -> str:
        return self.scheme.name
