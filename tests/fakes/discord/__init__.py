"""A faithful local fake of Discord's HTTP API v10 and Gateway for discord.py tests.

Point the real discord.py client at it with ``fake.patch_discord_py()`` (sets
``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``); see
``FakeDiscord`` for the test-facing API.
"""

from ..oauth_pages import AuthorizeRefused
from .models import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    Intents,
    PermissionOverwrite,
    Permissions,
)
from .oauth import OAuthCode, OAuthToken, s256_challenge
from .ratelimit import ForcedRateLimit, RouteLimit
from .records import (
    ApiError,
    FakeInteraction,
    ForcedError,
    GatewayFrame,
    InteractionResponseRecord,
    MessageEvent,
    RecordedRequest,
    UploadedFile,
)
from .server import FakeDiscord

__all__ = [
    "ApiError",
    "AuthorizeRefused",
    "ChannelType",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "ForcedError",
    "ForcedRateLimit",
    "GatewayFrame",
    "Intents",
    "InteractionResponseRecord",
    "MessageEvent",
    "OAuthCode",
    "OAuthToken",
    "PermissionOverwrite",
    "Permissions",
    "RecordedRequest",
    "RouteLimit",
    "UploadedFile",
    "s256_challenge",
]
