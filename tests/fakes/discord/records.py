"""What the fake remembers, for tests to assert on, and the Discord error catalogue."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

Json = dict[str, Any]


@dataclass
class UploadedFile:
    """One ``files[n]`` part of a multipart request."""

    field_name: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RecordedRequest:
    method: str
    path: str  # path below the API base, e.g. "/channels/1/messages"
    route: str | None  # matched template, e.g. "/channels/{channel_id}/messages"
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    time: float = field(default_factory=time.monotonic)
    status: int | None = None  # filled in once answered
    response: Any = None  # JSON body; for /oauth2/authorize the Location or the HTML page
    form: dict[str, str] | None = None  # an x-www-form-urlencoded body (OAuth routes only)


@dataclass
class MessageEvent:
    action: str  # "create" | "edit" | "delete"
    channel_id: int
    message_id: int
    snapshot: Json
    time: float = field(default_factory=time.monotonic)


@dataclass
class InteractionResponseRecord:
    """One ``POST /interactions/{id}/{token}/callback`` attempt (accepted or not)."""

    interaction_id: int
    type: int
    data: Json
    status: int
    time: float = field(default_factory=time.monotonic)

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & 64)


@dataclass
class GatewayFrame:
    direction: str  # "send" (fake -> client) | "recv" (client -> fake)
    op: int | None
    t: str | None
    s: int | None
    d: Any
    session_id: str | None
    time: float = field(default_factory=time.monotonic)


@dataclass
class FakeInteraction:
    """An interaction the test injected, plus everything the bot did with it."""

    id: int
    token: str
    type: int  # 2 = application command, 3 = component, 4 = autocomplete, 5 = modal
    application_id: int
    guild_id: int | None
    channel_id: int
    user_id: int
    payload: Json  # exactly what was dispatched in INTERACTION_CREATE
    created_at: float = field(default_factory=time.monotonic)
    component_message_id: int | None = None
    response_type: int | None = None  # accepted callback type
    response_data: Json = field(default_factory=dict)
    original: Json | None = None  # live message dict (edits mutate it)
    original_loading: bool = False
    followups: list[Json] = field(default_factory=list)  # live message dicts
    deleted_original: bool = False

    @property
    def acknowledged(self) -> bool:
        return self.response_type is not None

    @property
    def contents(self) -> list[str]:
        """Visible text the user got back: original response then follow-ups."""
        out: list[str] = []
        if self.original is not None and not self.original_loading:
            out.append(self.original.get("content", ""))
        out.extend(m.get("content", "") for m in self.followups if m is not self.original)
        return out


@dataclass
class ForcedError:
    """A test switch: the next ``count`` matching requests answer ``status``."""

    method: str | None
    route: str  # template or concrete path
    count: int
    status: int
    code: int = 0
    message: str | None = None

    def matches(self, method: str, template: str, path: str) -> bool:
        if self.count <= 0 or self.route not in (template, path):
            return False
        return self.method is None or self.method.upper() == method

    def to_error(self) -> ApiError:
        try:
            reason = HTTPStatus(self.status).phrase
        except ValueError:  # e.g. Cloudflare's 524
            reason = "Error"
        return ApiError(self.status, self.code, self.message or f"{self.status}: {reason}")


class ApiError(Exception):
    """Raised by handlers; rendered as Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> Json:
        data: Json = {"message": self.message, "code": self.code}
        if self.errors:
            data["errors"] = self.errors
        return data


def form_error(path: str, code: str, message: str) -> ApiError:
    """50035 "Invalid Form Body" with Discord's nested ``errors`` layout.

    ``path`` is dotted, e.g. "embeds.0.title" -> {"embeds": {"0": {"title": {"_errors": ...}}}}.
    """
    tree: Json = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".") if path else []):  # "" = the body itself
        tree = {part: tree}
    return ApiError(400, 50035, "Invalid Form Body", tree)


# Errors Discord really returns (https://discord.com/developers/docs/topics/opcodes-and-status-codes)
def not_found() -> ApiError:
    return ApiError(404, 0, "404: Not Found")


def unauthorized() -> ApiError:
    return ApiError(401, 0, "401: Unauthorized")


def method_not_allowed() -> ApiError:
    return ApiError(405, 0, "405: Method Not Allowed")


UNKNOWN_APPLICATION = (404, 10002, "Unknown Application")
UNKNOWN_CHANNEL = (404, 10003, "Unknown Channel")
UNKNOWN_GUILD = (404, 10004, "Unknown Guild")
UNKNOWN_MEMBER = (404, 10007, "Unknown Member")
UNKNOWN_MESSAGE = (404, 10008, "Unknown Message")
UNKNOWN_USER = (404, 10013, "Unknown User")
UNKNOWN_WEBHOOK = (404, 10015, "Unknown Webhook")
UNKNOWN_INTERACTION = (404, 10062, "Unknown interaction")
UNKNOWN_COMMAND = (404, 10063, "Unknown application command")
ALREADY_ACKNOWLEDGED = (400, 40060, "Interaction has already been acknowledged.")
MISSING_ACCESS = (403, 50001, "Missing Access")
CANNOT_EDIT_OTHERS = (403, 50005, "Cannot edit a message authored by another user")
EMPTY_MESSAGE = (400, 50006, "Cannot send an empty message")
CANNOT_DM = (403, 50007, "Cannot send messages to this user")
MISSING_PERMISSIONS = (403, 50013, "Missing Permissions")
INVALID_WEBHOOK_TOKEN = (401, 50027, "Invalid Webhook Token")
INVALID_RECIPIENTS = (400, 50033, "Invalid Recipient(s)")
INVALID_JSON = (400, 50109, "The request body contains invalid JSON.")


def error(spec: tuple[int, int, str]) -> ApiError:
    return ApiError(*spec)
