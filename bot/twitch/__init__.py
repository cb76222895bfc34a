"""Twitch: EventSub chat in, Helix replies / announcements / whispers out (twitchio 3)."""

from bot.twitch.adapter import TwitchBot
from bot.twitch.outlet import SendPolicy, SendStats, TwitchOutlet
from bot.twitch.viewers import ViewerSampler

__all__ = [
    "SendPolicy",
    "SendStats",
    "TwitchBot",
    "TwitchOutlet",
    "ViewerSampler",
]
