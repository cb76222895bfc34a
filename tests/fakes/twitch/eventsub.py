"""EventSub over WebSocket: sessions, message envelopes, subscription rules, chat events.

Reference: https://dev.twitch.tv/docs/eventsub/handling-websocket-events/ and
https://dev.twitch.tv/docs/eventsub/eventsub-subscription-types/ .
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .models import ChatLogEntry, FakeUser, Json, Subscription, new_uuid, rfc3339_nano

# Close codes the EventSub websocket server uses.
CLOSE_INTERNAL_ERROR = 4000
CLOSE_INBOUND_TRAFFIC = 4001  # the client sent something other than a pong
CLOSE_FAILED_PING_PONG = 4002
CLOSE_CONNECTION_UNUSED = 4003  # no subscription within keepalive_timeout_seconds of welcome
CLOSE_RECONNECT_GRACE_EXPIRED = 4004
CLOSE_NETWORK_TIMEOUT = 4005
CLOSE_NETWORK_ERROR = 4006
CLOSE_INVALID_RECONNECT = 4007

CLOSE_REASONS: dict[int, str] = {
    CLOSE_INTERNAL_ERROR: "internal server error",
    CLOSE_INBOUND_TRAFFIC: "sent inbound traffic",
    CLOSE_FAILED_PING_PONG: "failed ping pong",
    CLOSE_CONNECTION_UNUSED: "connection unused",
    CLOSE_RECONNECT_GRACE_EXPIRED: "client reconnect grace time expired",
    CLOSE_NETWORK_TIMEOUT: "network timeout",
    CLOSE_NETWORK_ERROR: "network error",
    CLOSE_INVALID_RECONNECT: "invalid reconnect attempt",
}

# Subscription status a websocket subscription takes when its connection ends this way.
STATUS_ON_CLOSE: dict[int | None, str] = {
    None: "websocket_disconnected",
    CLOSE_INTERNAL_ERROR: "websocket_internal_error",
    CLOSE_INBOUND_TRAFFIC: "websocket_received_inbound_traffic",
    CLOSE_FAILED_PING_PONG: "websocket_failed_ping_pong",
    CLOSE_CONNECTION_UNUSED: "websocket_connection_unused",
    CLOSE_NETWORK_TIMEOUT: "websocket_network_timeout",
    CLOSE_NETWORK_ERROR: "websocket_network_error",
}

KEEPALIVE_MIN, KEEPALIVE_MAX, KEEPALIVE_DEFAULT = 10, 600, 10

# Per user token: at most 3 websocket connections with subscriptions, 300 enabled subscriptions
# per connection, and a total cost of 10.
MAX_CONNECTIONS_PER_TOKEN = 3
MAX_SUBSCRIPTIONS_PER_SESSION = 300
MAX_TOTAL_COST = 10


def new_session_id() -> str:
    # Real ids are opaque base64url strings, e.g. "AgoQHR3s6Mb4T8GFB1l3DlPfiRIGY2VsbC1h".
    return base64.urlsafe_b64encode(secrets.token_bytes(27)).decode().rstrip("=")


@dataclass
class WsSession:
    id: str
    ws: web.WebSocketResponse
    keepalive_timeout: int
    connected_at: str = field(default_factory=rfc3339_nano)
    status: str = "connected"  # "connected" | "reconnecting" | "closed"
    # A websocket belongs to the first user token that subscribes on it.
    client_id: str | None = None
    user_id: str | None = None
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    last_sent: float = field(default_factory=time.monotonic)
    close_code: int | None = None  # set when the server closes it
    reconnected_from: str | None = None
    migrated_to: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != "closed" and not self.ws.closed


# --- message envelopes -------------------------------------------------------------------------


def _metadata(message_type: str, **extra: str) -> Json:
    return {
        "message_id": new_uuid(),
        "message_type": message_type,
        "message_timestamp": rfc3339_nano(),
        **extra,
    }


def welcome_message(session: WsSession) -> Json:
    return {
        "metadata": _metadata("session_welcome"),
        "payload": {
            "session": {
                "id": session.id,
                "status": "connected",
                "keepalive_timeout_seconds": session.keepalive_timeout,
                "reconnect_url": None,
                "connected_at": session.connected_at,
            }
        },
    }


def keepalive_message() -> Json:
    return {"metadata": _metadata("session_keepalive"), "payload": {}}


def reconnect_message(session: WsSession, reconnect_url: str) -> Json:
    return {
        "metadata": _metadata("session_reconnect"),
        "payload": {
            "session": {
                "id": session.id,
                "status": "reconnecting",
                "keepalive_timeout_seconds": None,
                "reconnect_url": reconnect_url,
                "connected_at": session.connected_at,
            }
        },
    }


def notification_message(sub: Subscription, event: Json) -> Json:
    return {
        "metadata": _metadata(
            "notification", subscription_type=sub.type, subscription_version=sub.version
        ),
        "payload": {"subscription": sub.payload(), "event": event},
    }


def revocation_message(sub: Subscription) -> Json:
    return {
        "metadata": _metadata(
            "revocation", subscription_type=sub.type, subscription_version=sub.version
        ),
        "payload": {"subscription": sub.payload()},
    }


# --- subscription types --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionSpec:
    """What creating a subscription of one type + version needs."""

    required: tuple[str, ...]  # condition fields that must be present
    optional: tuple[str, ...] = ()
    token_user_field: str | None = None  # condition field that must equal the token's user
    scopes: tuple[str, ...] = ()  # the token needs at least one of these (if any)


_CHAT_READ = SubscriptionSpec(
    required=("broadcaster_user_id", "user_id"),
    token_user_field="user_id",
    scopes=("user:read:chat",),
)
_BROADCASTER_ONLY = SubscriptionSpec(required=("broadcaster_user_id",))

SUBSCRIPTION_TYPES: dict[tuple[str, str], SubscriptionSpec] = {
    ("channel.chat.message", "1"): _CHAT_READ,
    ("channel.chat.notification", "1"): _CHAT_READ,
    ("channel.chat.message_delete", "1"): _CHAT_READ,
    ("channel.chat.clear", "1"): _CHAT_READ,
    ("channel.chat.clear_user_messages", "1"): _CHAT_READ,
    ("channel.chat_settings.update", "1"): _CHAT_READ,
    ("user.whisper.message", "1"): SubscriptionSpec(
        required=("user_id",),
        token_user_field="user_id",
        scopes=("user:read:whispers", "user:manage:whispers"),
    ),
    ("stream.online", "1"): _BROADCASTER_ONLY,
    ("stream.offline", "1"): _BROADCASTER_ONLY,
    ("channel.update", "2"): _BROADCASTER_ONLY,
    ("channel.raid", "1"): SubscriptionSpec(
        required=(), optional=("from_broadcaster_user_id", "to_broadcaster_user_id")
    ),
    ("channel.follow", "2"): SubscriptionSpec(
        required=("broadcaster_user_id", "moderator_user_id"),
        token_user_field="moderator_user_id",
        scopes=("moderator:read:followers",),
    ),
    ("channel.channel_points_custom_reward_redemption.add", "1"): SubscriptionSpec(
        required=("broadcaster_user_id",),
        optional=("reward_id",),
        token_user_field="broadcaster_user_id",
        scopes=("channel:read:redemptions", "channel:manage:redemptions"),
    ),
    ("channel.subscribe", "1"): SubscriptionSpec(
        required=("broadcaster_user_id",),
        token_user_field="broadcaster_user_id",
        scopes=("channel:read:subscriptions",),
    ),
    ("channel.cheer", "1"): SubscriptionSpec(
        required=("broadcaster_user_id",),
        token_user_field="broadcaster_user_id",
        scopes=("bits:read",),
    ),
}


def subscription_cost(condition: Mapping[str, str], token_user_id: str) -> int:
    """Websocket subscriptions are free when a user in the condition is the token's user."""
    user_fields = (v for k, v in condition.items() if k.endswith("user_id"))
    return 0 if token_user_id in user_fields else 1


# --- channel.chat.message ----------------------------------------------------------------------

BadgeLike = str | Mapping[str, str]

_MENTION = re.compile(r"@(\w+)")


def make_badges(badges: Iterable[BadgeLike]) -> list[Json]:
    """Badges as ``"moderator"``, ``"subscriber/12"`` (IRC ``set/id`` form) or full dicts."""
    result: list[Json] = []
    for badge in badges:
        if isinstance(badge, str):
            set_id, _, version = badge.partition("/")
            # Twitch puts the subscribed months in ``info`` for subscriber badges only.
            info = version if set_id in ("subscriber", "founder") and version else ""
            result.append({"set_id": set_id, "id": version or "1", "info": info})
        else:
            result.append(
                {
                    "set_id": badge["set_id"],
                    "id": badge.get("id", "1"),
                    "info": badge.get("info", ""),
                }
            )
    return result


def _text_fragment(text: str) -> Json:
    return {"type": "text", "text": text, "cheermote": None, "emote": None, "mention": None}


def make_fragments(text: str, users_by_login: Mapping[str, FakeUser]) -> list[Json]:
    """Split ``text`` into text and mention fragments (``@login`` of a known user)."""
    fragments: list[Json] = []
    pos = 0
    for match in _MENTION.finditer(text):
        user = users_by_login.get(match.group(1).lower())
        if user is None:
            continue
        if match.start() > pos:
            fragments.append(_text_fragment(text[pos : match.start()]))
        fragments.append(
            {
                "type": "mention",
                "text": match.group(0),
                "cheermote": None,
                "emote": None,
                "mention": user.mention(),
            }
        )
        pos = match.end()
    if pos < len(text) or not fragments:
        fragments.append(_text_fragment(text[pos:]))
    return fragments


def chat_message_event(
    *,
    broadcaster: FakeUser,
    chatter: FakeUser,
    text: str,
    message_id: str,
    badges: Sequence[Json],
    color: str,
    users_by_login: Mapping[str, FakeUser],
    reply_to: ChatLogEntry | None = None,
    cheer_bits: int | None = None,
    message_type: str = "text",
    channel_points_custom_reward_id: str | None = None,
) -> Json:
    """The ``event`` of a ``channel.chat.message`` v1 notification, as Twitch sends it."""
    reply: Json | None = None
    if reply_to is not None:
        thread_id = reply_to.thread_id or reply_to.message_id
        thread_user = reply_to.thread_user or reply_to.chatter
        reply = {
            "parent_message_id": reply_to.message_id,
            "parent_message_body": reply_to.text,
            "parent_user_id": reply_to.chatter.id,
            "parent_user_name": reply_to.chatter.display_name,
            "parent_user_login": reply_to.chatter.login,
            "thread_message_id": thread_id,
            "thread_user_id": thread_user.id,
            "thread_user_name": thread_user.display_name,
            "thread_user_login": thread_user.login,
        }
        # Twitch prefixes a reply's text with "@ParentDisplayName ".
        text = f"@{reply_to.chatter.display_name} {text}"
    return {
        "broadcaster_user_id": broadcaster.id,
        "broadcaster_user_login": broadcaster.login,
        "broadcaster_user_name": broadcaster.display_name,
        # Shared chat fields are null outside a shared chat session.
        "source_broadcaster_user_id": None,
        "source_broadcaster_user_login": None,
        "source_broadcaster_user_name": None,
        "chatter_user_id": chatter.id,
        "chatter_user_login": chatter.login,
        "chatter_user_name": chatter.display_name,
        "message_id": message_id,
        "source_message_id": None,
        "is_source_only": None,
        "message": {"text": text, "fragments": make_fragments(text, users_by_login)},
        "color": color,
        "badges": list(badges),
        "source_badges": None,
        "message_type": message_type,
        "cheer": {"bits": cheer_bits} if cheer_bits else None,
        "reply": reply,
        "channel_points_custom_reward_id": channel_points_custom_reward_id,
        "channel_points_animation_id": None,
    }


def default_badges(
    user_id: str, broadcaster_id: str, moderators: set[str], vips: set[str]
) -> list[Json]:
    if user_id == broadcaster_id:
        return make_badges(["broadcaster"])
    if user_id in moderators:
        return make_badges(["moderator"])
    if user_id in vips:
        return make_badges(["vip"])
    return []


def dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))
