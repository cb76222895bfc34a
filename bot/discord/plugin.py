"""Discord as a chat platform plugin: ``discord:<user id>`` identities, reached by DM."""

from __future__ import annotations

import re

from bot.discord.client import DiscordBot
from bot.platform import PlatformContext, PlatformPlugin
from bot.presenter import platforms as say
from commerce.domain.identities import IdentityScheme, PrivateChannel

SCHEME = IdentityScheme(
    "discord", re.compile(r"^\d{1,20}$"), private=PrivateChannel(say.DISCORD_DMS)
)


def build(ctx: PlatformContext) -> DiscordBot | None:
    if not ctx.settings.discord.enabled:
        return None
    return DiscordBot(ctx.settings.discord, ctx.handler, ctx.hub, linker=ctx.linker)


PLUGIN = PlatformPlugin(SCHEME, build)
