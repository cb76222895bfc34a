"""State the fake keeps: users, tokens, live streams, channels, EventSub subscriptions."""

from __future__ import annotations

import datetime
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

# Twitch access tokens are 30 lowercase alphanumerics; refresh tokens are longer.
_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


def new_token(length: int = 30) -> str:
    return "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(length))


def new_uuid() -> str:
    return str(uuid.uuid4())


def rfc3339_nano(ns: int | None = None) -> str:
    """EventSub timestamps: RFC3339 with nanoseconds, e.g. ``2023-07-19T14:56:51.634234626Z``."""
    ns = time.time_ns() if ns is None else ns
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def rfc3339(t: float | None = None) -> str:
    """Helix resource timestamps (users, streams) have whole seconds: ``2016-12-14T20:32:28Z``."""
    t = time.time() if t is None else t
    return datetime.datetime.fromtimestamp(int(t), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeUser:
    id: str
    login: str
    display_name: str
    color: str = ""  # "#RRGGBB", or "" when the user never picked one (Twitch sends "")
    type: str = ""  # "", "admin", "global_mod", "staff"
    broadcaster_type: str = ""  # "", "affiliate", "partner"
    description: str = ""
    email: str | None = None
    created_at: str = field(default_factory=rfc3339)
    accepts_whispers: bool = True
    phone_verified: bool = True  # Send Whisper requires a verified phone number

    def helix(self, *, include_email: bool = False) -> Json:
        data: Json = {
            "id": self.id,
            "login": self.login,
            "display_name": self.display_name,
            "type": self.type,
            "broadcaster_type": self.broadcaster_type,
            "description": self.description,
            "profile_image_url": (
                f"https://static-cdn.jtvnw.net/jtv_user_pictures/{self.login}-profile_image-300x300.png"
            ),
            "offline_image_url": "",
            "view_count": 0,  # deprecated by Twitch, always 0 now
            "created_at": self.created_at,
        }
        if include_email and self.email is not None:
            data["email"] = self.email
        return data

    def mention(self) -> Json:
        return {"user_id": self.id, "user_login": self.login, "user_name": self.display_name}


@dataclass
class FakeToken:
    access_token: str
    client_id: str
    user_id: str | None  # None: an app access token (client credentials)
    scopes: list[str]
    expires_at: float  # epoch seconds
    refresh_token: str | None = None
    revoked: bool = False

    @property
    def is_app(self) -> bool:
        return self.user_id is None

    def expires_in(self, now: float | None = None) -> int:
        now = time.time() if now is None else now
        return max(0, int(self.expires_at - now))

    def valid(self, now: float | None = None) -> bool:
        return not self.revoked and self.expires_in(now) > 0

    def has(self, *scopes: str) -> bool:
        return all(s in self.scopes for s in scopes)


@dataclass
class AuthCode:
    """An authorization code: single use, short-lived, bound to what the authorize step saw."""

    code: str
    client_id: str
    user_id: str
    scopes: list[str]
    # None only for codes minted by ``FakeTwitch.authorization_code`` without a redirect URI:
    # those accept any ``redirect_uri`` at the token endpoint (the pre-authorize-page behaviour).
    redirect_uri: str | None
    expires_at: float  # epoch seconds

    def valid(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at


@dataclass
class FakeStream:
    id: str
    user: FakeUser
    viewer_count: int
    title: str = ""
    game_id: str = ""
    game_name: str = ""
    language: str = "en"
    tags: list[str] = field(default_factory=list)
    is_mature: bool = False
    started_at: str = field(default_factory=rfc3339)

    def helix(self) -> Json:
        return {
            "id": self.id,
            "user_id": self.user.id,
            "user_login": self.user.login,
            "user_name": self.user.display_name,
            "game_id": self.game_id,
            "game_name": self.game_name,
            "type": "live",
            "title": self.title,
            "tags": list(self.tags),
            "viewer_count": self.viewer_count,
            "started_at": self.started_at,
            "language": self.language,
            "thumbnail_url": (
                "https://static-cdn.jtvnw.net/previews-ttv/"
                f"live_user_{self.user.login}-{{width}}x{{height}}.jpg"
            ),
            "tag_ids": [],  # deprecated, always empty
            "is_mature": self.is_mature,
        }


@dataclass
class ChannelState:
    broadcaster_id: str
    moderators: set[str] = field(default_factory=set)
    vips: set[str] = field(default_factory=set)
    banned: set[str] = field(default_factory=set)
    chatters: dict[str, None] = field(default_factory=dict)  # ordered set of user ids


@dataclass
class ChatLogEntry:
    """A message that exists in a chat room (injected or sent), so replies can reference it."""

    message_id: str
    broadcaster_id: str
    chatter: FakeUser
    text: str
    thread_id: str | None = None  # id of the thread's root message, for replies to replies
    thread_user: FakeUser | None = None


@dataclass
class Subscription:
    """One EventSub subscription with a websocket transport."""

    id: str
    type: str
    version: str
    condition: dict[str, str]
    client_id: str
    user_id: str  # the user token's owner: websocket subscriptions always use user tokens
    session_id: str
    connected_at: str
    cost: int = 0
    status: str = "enabled"
    created_at: str = field(default_factory=rfc3339_nano)
    disconnected_at: str | None = None

    def transport(self, *, full: bool) -> Json:
        data: Json = {"method": "websocket", "session_id": self.session_id}
        if full:  # Helix answers add the connection times; websocket payloads do not
            data["connected_at"] = self.connected_at
            if self.disconnected_at is not None:
                data["disconnected_at"] = self.disconnected_at
        return data

    def helix(self) -> Json:
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "version": self.version,
            "condition": dict(self.condition),
            "created_at": self.created_at,
            "transport": self.transport(full=True),
            "cost": self.cost,
        }

    def payload(self) -> Json:
        """The ``payload.subscription`` object of notification/revocation messages."""
        return {
            "id": self.id,
            "status": self.status,
            "type": self.type,
            "version": self.version,
            "cost": self.cost,
            "condition": dict(self.condition),
            "transport": self.transport(full=False),
            "created_at": self.created_at,
        }


# Clip ids are slugs of capitalised words and a random tail, as Twitch makes them
# ("FunPoisedGiraffeGingerPower-KDy2fwLNuUEHU").
_CLIP_WORDS = ("Fun", "Poised", "Giraffe", "Ginger", "Power", "Brave", "Crispy", "Salsa")


def new_clip_id() -> str:
    words = "".join(secrets.choice(_CLIP_WORDS) for _ in range(4))
    tail = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(16))
    return f"{words}-{tail}"


@dataclass
class FakeClip:
    """A clip being made (POST /clips answered 202) or made. Get Clips returns it only once
    it is ready: after ``ready_after`` polls of its id, or when a test finishes it."""

    id: str
    broadcaster: FakeUser
    creator: FakeUser
    stream: FakeStream
    title: str
    duration: float
    ready_after: int | None  # None: only when the test says (finish_clip)
    polls: int = 0
    ready: bool = False
    lost: bool = False  # never becomes ready (Twitch: "after 15 s, assume it failed")
    created_at: str = field(default_factory=rfc3339)

    @property
    def url(self) -> str:
        return f"https://clips.twitch.tv/{self.id}"

    @property
    def edit_url(self) -> str:
        return f"https://clips.twitch.tv/{self.id}/edit"

    def helix(self) -> Json:
        return {
            "id": self.id,
            "url": self.url,
            "embed_url": f"https://clips.twitch.tv/embed?clip={self.id}",
            "broadcaster_id": self.broadcaster.id,
            "broadcaster_name": self.broadcaster.display_name,
            "creator_id": self.creator.id,
            "creator_name": self.creator.display_name,
            "video_id": "",  # the VOD is linked minutes later, if ever
            "game_id": self.stream.game_id,
            "language": self.stream.language,
            "title": self.title,
            "view_count": 0,
            "created_at": self.created_at,
            "thumbnail_url": (
                f"https://clips-media-assets2.twitch.tv/{self.id}-preview-480x272.jpg"
            ),
            "duration": self.duration,
            "vod_offset": None,
            "is_featured": False,
        }
