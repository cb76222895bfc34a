"""What the fake remembers for tests to assert on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from .models import Json


@dataclass
class RecordedRequest:
    api: Literal["helix", "oauth"]
    method: str
    route: str  # below the API base, no slashes around it: "chat/messages", "oauth2/token"
    query: dict[str, list[str]]
    headers: dict[str, str]
    json: Any
    token: str | None = None  # the bearer token used, when it was a known one
    client_id: str | None = None
    user_id: str | None = None  # owner of the user token; None for app tokens
    status: int | None = None  # filled in once answered
    response: Any = None  # JSON body; for /oauth2/authorize the Location or the HTML page
    time: float = field(default_factory=time.monotonic)
    form: dict[str, str] | None = None  # an x-www-form-urlencoded body (OAuth routes only)
    response_headers: dict[str, str] = field(default_factory=dict)  # Ratelimit-* (Helix)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class ChatRecord:
    """One accepted ``POST /chat/messages``: sent, or dropped with a reason (still HTTP 200)."""

    broadcaster_id: str
    sender_id: str
    text: str
    message_id: str  # "" when dropped, as Twitch answers
    is_sent: bool
    drop_code: str | None = None
    drop_message: str | None = None
    reply_parent_message_id: str | None = None
    app_token: bool = False  # sent with an app access token (the bot's "chat bot" path)
    time: float = field(default_factory=time.monotonic)


@dataclass
class AnnouncementRecord:
    broadcaster_id: str
    moderator_id: str
    message: str
    color: str
    time: float = field(default_factory=time.monotonic)


@dataclass
class WhisperRecord:
    from_user_id: str
    to_user_id: str
    message: str  # as delivered, i.e. after Twitch's silent truncation
    time: float = field(default_factory=time.monotonic)


@dataclass
class InjectedChat:
    """What ``FakeTwitch.send_chat_message`` produced."""

    message_id: str
    event: Json
    delivered: int  # notifications written to websockets (one per matching subscription)


@dataclass
class WsFrame:
    """A message the fake wrote to an EventSub websocket."""

    session_id: str
    message_type: str
    data: Json
    time: float = field(default_factory=time.monotonic)
