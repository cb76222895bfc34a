"""The chat platforms this build knows: the composition root builds each one configured.

Their order is the order of preference for private messages (subscriptions, receipts): the
first platform a person can be reached on privately is the one used. Adding a platform is
one plugin module (see ``bot.platform``) and one line here.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.discord.plugin import PLUGIN as DISCORD
from bot.platform import PlatformPlugin
from bot.studio.plugin import PLUGIN as STUDIO
from bot.twitch.plugin import PLUGIN as TWITCH
from commerce.domain.identities import SCHEMES

PLATFORMS: tuple[PlatformPlugin, ...] = (DISCORD, STUDIO, TWITCH)


def register_schemes(plugins: Iterable[PlatformPlugin] = PLATFORMS) -> None:
    """Tell the core the platforms' identity schemes and private channels."""
    for plugin in plugins:
        SCHEMES.register(plugin.scheme)
