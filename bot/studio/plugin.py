"""The local studio as a chat platform plugin: ``local:<name>`` identities (names typed in
the page, owned by the browser session that first used them), served by the web role. On
in the demo, elsewhere only when ``chat.studio = true``."""

from __future__ import annotations

import re

from bot.platform import PlatformContext, PlatformPlugin
from bot.presenter import platforms as say
from bot.studio.outlet import StudioOutlet
from commerce.domain.identities import IdentityScheme, PrivateChannel

SCHEME = IdentityScheme(
    "local",
    re.compile(r"^[A-Za-z0-9_.-]{1,40}$"),
    "<name>",
    private=PrivateChannel(say.STUDIO_CHAT),
)


def build(ctx: PlatformContext) -> StudioOutlet | None:
    configured = ctx.settings.chat.studio
    if not (ctx.demo if configured is None else configured):
        return None
    studio = StudioOutlet(
        ctx.handler,
        per_ip=ctx.settings.web.claim_rate_per_ip,
        per_session=ctx.settings.web.claim_rate_per_customer,
        local_rehearsals=ctx.demo,
    )
    ctx.hub.add_outlet(studio)
    return studio


PLUGIN = PlatformPlugin(SCHEME, build, role="web")
