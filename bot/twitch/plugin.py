"""Twitch as a chat platform plugin: ``twitch:<user id>`` identities. Chat has no private
reply; a whisper reaches only viewers who opted in (and a bot token allowed to whisper)."""

from __future__ import annotations

import re

from bot.platform import PlatformContext, PlatformPlugin
from bot.presenter import platforms as say
from bot.twitch.adapter import TwitchBot
from commerce.domain.identities import IdentityScheme, PrivateChannel

SCHEME = IdentityScheme(
    "twitch",
    re.compile(r"^\d{1,20}$"),
    private=PrivateChannel(say.TWITCH_WHISPERS, needs_opt_in=True, instead=say.WITHOUT_WHISPERS),
)


def build(ctx: PlatformContext) -> TwitchBot | None:
    if not ctx.settings.twitch.enabled:
        return None
    tracker = ctx.commerce.tracker

    async def viewers(drop_id: int, count: int) -> None:
        await tracker.record_viewers(drop_id, count, SCHEME.name)

    return TwitchBot(
        ctx.settings.twitch,
        ctx.handler,
        ctx.hub,
        ctx.commerce,
        linker=ctx.linker,
        on_viewers=viewers,
    )


PLUGIN = PlatformPlugin(SCHEME, build)
