"""A faithful local fake of Twitch (Helix, OAuth on id.twitch.tv, EventSub WebSocket).

The real twitchio 3 client runs against it unchanged once ``fake.patch_twitchio()`` has pointed
``twitchio.http.Route.BASE``, ``Route.ID_BASE`` and ``twitchio.eventsub.websockets.WSS`` at it.
See ``FakeTwitch`` for the test-facing API and README.md for what is (not) modelled.
"""

from ..oauth_pages import AuthorizeRefused
from .eventsub import SUBSCRIPTION_TYPES, WsSession
from .models import AuthCode, ChannelState, FakeClip, FakeStream, FakeToken, FakeUser, Subscription
from .ratelimit import ForcedFailure, TokenBucket
from .records import (
    AnnouncementRecord,
    ChatRecord,
    InjectedChat,
    RecordedRequest,
    WhisperRecord,
    WsFrame,
)
from .server import (
    BOT_SCOPES,
    BROADCASTER_SCOPES,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DROP_MESSAGES,
    FakeTwitch,
    HelixError,
)

__all__ = [
    "BOT_SCOPES",
    "BROADCASTER_SCOPES",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DROP_MESSAGES",
    "SUBSCRIPTION_TYPES",
    "AnnouncementRecord",
    "AuthCode",
    "AuthorizeRefused",
    "ChannelState",
    "ChatRecord",
    "FakeClip",
    "FakeStream",
    "FakeToken",
    "FakeTwitch",
    "FakeUser",
    "ForcedFailure",
    "HelixError",
    "InjectedChat",
    "RecordedRequest",
    "Subscription",
    "TokenBucket",
    "WhisperRecord",
    "WsFrame",
    "WsSession",
]
