"""``FakeTwitch``: Helix, OAuth (id.twitch.tv) and EventSub WebSocket on one local aiohttp server.

twitchio 3 builds URLs as ``Route.BASE + "users"`` (Helix), ``Route.ID_BASE + "oauth2/token"``
(OAuth) and ``f"{WSS}?keepalive_timeout_seconds=10"`` (EventSub), so the server mounts Helix under
``/helix/``, OAuth at ``/oauth2/...`` (the ID base is the server root) and EventSub at ``/ws``.

The browser half of the authorization code grant flow (``GET``/``POST /oauth2/authorize``) is a
plain HTML consent page: no JavaScript, no external resources, two submit buttons.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import http
import json
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlsplit

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from ..oauth_pages import (
    AuthorizeAnswer,
    AuthorizeRefused,
    consent_form,
    error_page,
    html_document,
    redirect,
    scope_list,
    who_html,
)
from .eventsub import (
    CLOSE_CONNECTION_UNUSED,
    CLOSE_INBOUND_TRAFFIC,
    CLOSE_INVALID_RECONNECT,
    CLOSE_REASONS,
    CLOSE_RECONNECT_GRACE_EXPIRED,
    KEEPALIVE_DEFAULT,
    KEEPALIVE_MAX,
    KEEPALIVE_MIN,
    MAX_CONNECTIONS_PER_TOKEN,
    MAX_SUBSCRIPTIONS_PER_SESSION,
    MAX_TOTAL_COST,
    STATUS_ON_CLOSE,
    SUBSCRIPTION_TYPES,
    BadgeLike,
    WsSession,
    chat_message_event,
    default_badges,
    dumps,
    keepalive_message,
    make_badges,
    new_session_id,
    notification_message,
    reconnect_message,
    revocation_message,
    subscription_cost,
    welcome_message,
)
from .models import (
    AuthCode,
    ChannelState,
    ChatLogEntry,
    FakeClip,
    FakeStream,
    FakeToken,
    FakeUser,
    Json,
    Subscription,
    new_clip_id,
    new_token,
    new_uuid,
    rfc3339_nano,
)
from .ratelimit import ForcedDrop, ForcedFailure, SlidingWindows, TokenBucket
from .records import (
    AnnouncementRecord,
    ChatRecord,
    InjectedChat,
    RecordedRequest,
    WhisperRecord,
    WsFrame,
)

T = TypeVar("T")
UserRef = FakeUser | str  # a user, or its id or login
# How long wait_for and friends wait by default. Generous: only a test that is failing anyway
# waits this long, and on a busy CI machine "at once" can take seconds.
WAIT_TIMEOUT = 20.0

DEFAULT_CLIENT_ID = "fakeclientid0000000000000000000"
DEFAULT_CLIENT_SECRET = "fakeclientsecret00000000000000"
DEFAULT_APP_NAME = "Dropcast"

# id.twitch.tv's wording for the authorization code grant flow.
ACCESS_DENIED_DESCRIPTION = "The user denied you access"
REDIRECT_MISMATCH = "Parameter redirect_uri does not match registered URI"
INVALID_CODE = "Invalid authorization code"

# Scopes a chat bot account and its broadcaster typically grant (twitchio's docs ask for these).
BOT_SCOPES: tuple[str, ...] = ("user:read:chat", "user:write:chat", "user:bot")
BROADCASTER_SCOPES: tuple[str, ...] = (
    "channel:bot",
    "user:read:chat",
    "user:write:chat",
    "moderator:manage:announcements",
    "moderator:read:chatters",
    "moderation:read",
)

# Drop reasons as the chat servers word them (the same texts IRC NOTICEs carry).
DROP_MESSAGES: dict[str, str] = {
    "msg_duplicate": (
        "Your message was not sent because it is identical to the previous one you sent, "
        "less than 30 seconds ago."
    ),
    "msg_ratelimit": "Your message was not sent because you are sending messages too quickly.",
    "msg_rejected": "Your message is being checked by mods and has not been sent.",
    "msg_rejected_mandatory": (
        "Your message wasn't posted due to conflicts with the channel's moderation settings."
    ),
    "msg_followersonly": "This room is in followers-only mode.",
    "msg_subsonly": "This room is in subscribers-only mode.",
    "msg_slowmode": "This room is in slow mode and you are sending messages too quickly.",
}

NOT_PERMITTED_TO_CHAT = (
    "The sender is not permitted to send chat messages to the broadcaster's chat room."
)
ANNOUNCEMENT_COLORS = frozenset({"blue", "green", "orange", "purple", "primary"})
Handler = Callable[["HelixCall"], Awaitable[tuple[int, Json | None]]]


class HelixError(Exception):
    """Becomes ``{"error": <reason phrase>, "status": ..., "message": ...}``."""

    def __init__(self, status: int, message: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})

    def body(self) -> Json:
        return {
            "error": http.HTTPStatus(self.status).phrase,
            "status": self.status,
            "message": self.message,
        }


class OAuthError(Exception):
    """id.twitch.tv errors have no ``error`` key: ``{"status": 401, "message": "..."}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class HelixCall:
    request: web.Request
    token: FakeToken
    query: MultiMapping[str]
    body: Any

    def param(self, name: str) -> str | None:
        return self.query.get(name)

    def params(self, name: str) -> list[str]:
        return [v for v in self.query.getall(name, []) if v != ""]

    def require(self, name: str) -> str:
        value = self.query.get(name)
        if not value:
            raise HelixError(400, f'Missing required parameter "{name}"')
        return value

    def field(self, name: str) -> Any:
        return self.body.get(name) if isinstance(self.body, dict) else None

    def require_field(self, name: str) -> str:
        value = self.field(name)
        if value is None or value == "":
            raise HelixError(400, f'Missing required parameter "{name}"')
        return str(value)

    def user_token(self) -> str:
        """The token's user id; endpoints that need a user access token reject app tokens."""
        if self.token.user_id is None:
            raise HelixError(401, "The Authorization header must contain a user access token.")
        return self.token.user_id

    def require_scope(self, *any_of: str) -> None:
        if not any(self.token.has(s) for s in any_of):
            raise HelixError(401, f"Missing scope: {' or '.join(any_of)}")


class FakeTwitch:
    """A local Twitch: start it, ``patch_twitchio()``, add users and tokens, drive chat."""

    def __init__(
        self,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        host: str = "127.0.0.1",
        port: int = 0,
        helix_points: int = 800,
        helix_window: float = 60.0,
        chat_limit: int = 20,
        chat_limit_elevated: int = 100,
        chat_window: float = 30.0,
        duplicate_window: float | None = 30.0,
        announcement_interval: float = 2.0,
        whisper_per_second: int = 3,
        whisper_per_minute: int = 100,
        whisper_recipients_per_day: int = 40,
        keepalive_interval: float | None = None,
        unused_timeout: float | Literal["keepalive"] | None = "keepalive",
        reconnect_grace: float = 30.0,
        echo_sent_messages: bool = True,
        app_token_ttl: int = 5_000_000,
        code_ttl: float = 600.0,
        app_name: str = DEFAULT_APP_NAME,
        clip_ready_after: int | None = 2,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.host = host
        self._requested_port = port
        self.port = 0
        # Limits (mutable between requests; shrink them to keep tests fast).
        self.helix_points = helix_points
        self.helix_window = helix_window
        self.chat_limit = chat_limit
        self.chat_limit_elevated = chat_limit_elevated
        self.chat_window = chat_window
        self.duplicate_window = duplicate_window
        self.announcement_interval = announcement_interval
        self.whisper_per_second = whisper_per_second
        self.whisper_per_minute = whisper_per_minute
        self.whisper_recipients_per_day = whisper_recipients_per_day
        self.keepalive_interval = keepalive_interval
        self.unused_timeout = unused_timeout
        self.reconnect_grace = reconnect_grace
        self.echo_sent_messages = echo_sent_messages
        self.app_token_ttl = app_token_ttl
        self.code_ttl = code_ttl  # seconds an authorization code can be exchanged
        # Get Clips returns a new clip from its Nth poll (None: only once finish_clip says).
        self.clip_ready_after = clip_ready_after

        # State.
        self.apps: dict[str, str] = {client_id: client_secret}
        self.app_names: dict[str, str] = {client_id: app_name}  # shown on the consent page
        # client id -> the OAuth Redirect URLs registered in the developer console.
        self.redirect_uris: dict[str, list[str]] = {}
        # The Twitch account "logged in" in the browser that opens /oauth2/authorize.
        self.browser_user: FakeUser | None = None
        self.users: dict[str, FakeUser] = {}
        self.tokens: dict[str, FakeToken] = {}
        self.grants: dict[tuple[str, str], set[str]] = {}  # (client_id, user_id) -> scopes
        self.streams: dict[str, FakeStream] = {}
        self.clips: dict[str, FakeClip] = {}
        self.channels: dict[str, ChannelState] = {}
        self.sessions: dict[str, WsSession] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self._chat_log: dict[str, ChatLogEntry] = {}
        self._auth_codes: dict[str, AuthCode] = {}
        self._dead_refresh_tokens: set[str] = set()
        self._next_user_id = 100_000_001

        # Limiters.
        self._buckets: dict[tuple[str, str | None], TokenBucket] = {}
        self._chat_windows = SlidingWindows()
        self._whisper_windows = SlidingWindows()
        self._last_text: dict[tuple[str, str], tuple[str, float]] = {}
        self._last_announcement: dict[str, float] = {}
        self._whisper_recipients: dict[str, dict[str, float]] = {}
        self._whispered: set[tuple[str, str]] = set()  # (from, to) pairs that ever whispered
        self._forced: list[ForcedFailure] = []
        self._forced_drop: ForcedDrop | None = None

        # Records.
        self.requests: list[RecordedRequest] = []
        self.chat_messages: list[ChatRecord] = []
        self.announcements: list[AnnouncementRecord] = []
        self.whispers: list[WhisperRecord] = []
        self.frames: list[WsFrame] = []

        self._change = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._helix_routes: dict[tuple[str, str], Handler] = {
            ("GET", "users"): self._get_users,
            ("POST", "eventsub/subscriptions"): self._create_subscription,
            ("GET", "eventsub/subscriptions"): self._get_subscriptions,
            ("DELETE", "eventsub/subscriptions"): self._delete_subscription,
            ("POST", "chat/messages"): self._send_chat_message,
            ("POST", "chat/announcements"): self._send_announcement,
            ("GET", "chat/chatters"): self._get_chatters,
            ("GET", "moderation/moderators"): self._get_moderators,
            ("GET", "streams"): self._get_streams,
            ("POST", "whispers"): self._send_whisper,
            ("POST", "clips"): self._create_clip,
            ("GET", "clips"): self._get_clips,
        }

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/helix/{tail:.*}", self._helix_entry)
        app.router.add_route("*", "/oauth2/{tail:.*}", self._oauth_entry)
        app.router.add_get("/ws", self._ws_entry)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=2.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        """Close every session, cancel the fake's own tasks and wait for them, then stop the
        server (handlers still running after 2 s are cancelled)."""
        for session in list(self.sessions.values()):
            if session.open:
                await session.ws.close(code=1001, message=b"server shutting down")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTwitch:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def helix_base(self) -> str:
        """For ``twitchio.http.Route.BASE`` (trailing slash: twitchio appends ``"users"``)."""
        return f"{self.base_url}/helix/"

    @property
    def id_base(self) -> str:
        """For ``twitchio.http.Route.ID_BASE``: the root (twitchio's paths are ``oauth2/...``)."""
        return f"{self.base_url}/"

    @property
    def eventsub_url(self) -> str:
        """For ``twitchio.eventsub.websockets.WSS`` (twitchio adds the keepalive query)."""
        return f"ws://{self.host}:{self.port}/ws"

    @contextlib.contextmanager
    def patch_twitchio(self) -> Iterator[None]:
        """Point twitchio's three module-level URLs at this server; restore them afterwards."""
        import twitchio.eventsub.websockets as ws_module
        from twitchio.http import Route

        saved = (Route.BASE, Route.ID_BASE, ws_module.WSS)
        Route.BASE, Route.ID_BASE, ws_module.WSS = self.helix_base, self.id_base, self.eventsub_url
        try:
            yield
        finally:
            Route.BASE, Route.ID_BASE, ws_module.WSS = saved

    # --- accounts and tokens -----------------------------------------------------------------

    def add_app(self, client_id: str, client_secret: str, *, name: str | None = None) -> None:
        self.apps[client_id] = client_secret
        self.app_names[client_id] = name or client_id

    def add_redirect_uri(self, uri: str, client_id: str | None = None) -> None:
        """Register an OAuth Redirect URL for an app (default: ``self.client_id``). Twitch
        compares the ``redirect_uri`` parameter with these exactly (no prefix matching)."""
        uris = self.redirect_uris.setdefault(client_id or self.client_id, [])
        if uri not in uris:
            uris.append(uri)

    def add_user(
        self,
        login: str,
        *,
        user_id: str | None = None,
        display_name: str | None = None,
        color: str = "",
        **fields: Any,
    ) -> FakeUser:
        if user_id is None:
            user_id = str(self._next_user_id)
            self._next_user_id += 1
        user = FakeUser(
            id=user_id,
            login=login.lower(),
            display_name=display_name or login,
            color=color,
            **fields,
        )
        self.users[user.id] = user
        return user

    def user(self, ref: UserRef) -> FakeUser:
        if isinstance(ref, FakeUser):
            return ref
        if ref in self.users:
            return self.users[ref]
        for user in self.users.values():
            if user.login == ref.lower():
                return user
        raise KeyError(f"unknown fake Twitch user {ref!r}")

    def _users_by_login(self) -> dict[str, FakeUser]:
        return {u.login: u for u in self.users.values()}

    def add_user_token(
        self,
        user: UserRef,
        scopes: Iterable[str],
        *,
        client_id: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        expires_in: int = 14_400,  # > 3600, or twitchio's add_token refreshes it straight away
    ) -> FakeToken:
        """A user access token, as if ``user`` had authorized the app with ``scopes``."""
        return self._issue(
            client_id or self.client_id,
            self.user(user).id,
            list(scopes),
            expires_in=expires_in,
            access_token=access_token,
            refresh_token=refresh_token or new_token(50),
        )

    def issue_app_token(self, client_id: str | None = None) -> FakeToken:
        return self._issue(client_id or self.client_id, None, [], expires_in=self.app_token_ttl)

    def authorization_code(
        self,
        user: UserRef,
        scopes: Iterable[str],
        client_id: str | None = None,
        *,
        redirect_uri: str | None = None,
    ) -> str:
        """A code for the ``authorization_code`` grant (what the OAuth redirect would carry),
        minted without the browser. Without ``redirect_uri`` the token request may send any."""
        return self._new_code(
            client_id or self.client_id, self.user(user).id, list(scopes), redirect_uri
        ).code

    def _new_code(
        self, client_id: str, user_id: str, scopes: list[str], redirect_uri: str | None
    ) -> AuthCode:
        entry = AuthCode(
            code=new_token(),
            client_id=client_id,
            user_id=user_id,
            scopes=scopes,
            redirect_uri=redirect_uri,
            expires_at=time.time() + self.code_ttl,
        )
        self._auth_codes[entry.code] = entry
        return entry

    def expire_codes(self) -> None:
        """Make every authorization code issued so far expired (the token request then fails)."""
        past = time.time() - 1
        for entry in self._auth_codes.values():
            entry.expires_at = past

    def approve(self, authorize_url: str, user: UserRef | None = None) -> str:
        """Click "Authorize" on the consent page of ``authorize_url`` as ``user`` (default:
        ``browser_user``) and return the redirect (``Location``) Twitch would send, code and
        all. Raises ``AuthorizeRefused`` where Twitch shows an error page instead."""
        return self._click(authorize_url, "authorize", user)

    def deny(self, authorize_url: str, user: UserRef | None = None) -> str:
        """Click "Cancel": the ``error=access_denied`` redirect (same rules as ``approve``)."""
        return self._click(authorize_url, "cancel", user)

    def _click(self, authorize_url: str, action: str, user: UserRef | None) -> str:
        parts = urlsplit(authorize_url)
        if not parts.path.endswith("/oauth2/authorize"):
            raise ValueError(f"not an /oauth2/authorize URL: {authorize_url!r}")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        who = self.user(user) if user is not None else self.browser_user
        answer = self._authorize_decision(params, action, who)
        if answer.location is None:
            raise AuthorizeRefused(answer.status, answer.message)
        return answer.location

    def _issue(
        self,
        client_id: str,
        user_id: str | None,
        scopes: list[str],
        *,
        expires_in: int,
        access_token: str | None = None,
        refresh_token: str | None = None,
    ) -> FakeToken:
        token = FakeToken(
            access_token=access_token or new_token(),
            client_id=client_id,
            user_id=user_id,
            scopes=list(scopes),
            expires_at=time.time() + expires_in,
            refresh_token=refresh_token,
        )
        self.tokens[token.access_token] = token
        if user_id is not None:
            self.grants.setdefault((client_id, user_id), set()).update(scopes)
        return token

    def _token(self, token: FakeToken | str) -> FakeToken:
        return token if isinstance(token, FakeToken) else self.tokens[token]

    def expire_token(self, token: FakeToken | str) -> None:
        """Make an access token expired: validate/Helix answer 401 and clients must refresh."""
        self._token(token).expires_at = time.time() - 1

    def revoke_token(self, token: FakeToken | str) -> None:
        """Revoke an access token and its refresh token (refreshing fails afterwards)."""
        tok = self._token(token)
        tok.revoked = True
        if tok.refresh_token:
            self._dead_refresh_tokens.add(tok.refresh_token)

    # --- channels, streams ---------------------------------------------------------------------

    def channel(self, broadcaster: UserRef) -> ChannelState:
        user_id = self.user(broadcaster).id
        return self.channels.setdefault(user_id, ChannelState(broadcaster_id=user_id))

    def add_moderator(self, broadcaster: UserRef, user: UserRef) -> None:
        self.channel(broadcaster).moderators.add(self.user(user).id)

    def remove_moderator(self, broadcaster: UserRef, user: UserRef) -> None:
        self.channel(broadcaster).moderators.discard(self.user(user).id)

    def add_vip(self, broadcaster: UserRef, user: UserRef) -> None:
        self.channel(broadcaster).vips.add(self.user(user).id)

    def ban(self, broadcaster: UserRef, user: UserRef) -> None:
        self.channel(broadcaster).banned.add(self.user(user).id)

    def add_chatter(self, broadcaster: UserRef, user: UserRef) -> None:
        self.channel(broadcaster).chatters[self.user(user).id] = None

    def is_elevated(self, broadcaster_id: str, user_id: str) -> bool:
        """Broadcaster or moderator: the higher chat limit, announcements, chatters list."""
        channel = self.channels.get(broadcaster_id)
        return user_id == broadcaster_id or (channel is not None and user_id in channel.moderators)

    def set_stream(
        self,
        user: UserRef,
        *,
        viewer_count: int = 0,
        title: str = "",
        game_id: str = "",
        game_name: str = "",
        language: str = "en",
        tags: Iterable[str] = (),
    ) -> FakeStream:
        """Put ``user`` live (or update its live stream, keeping id and started_at)."""
        owner = self.user(user)
        stream = self.streams.get(owner.id)
        if stream is None:
            stream = FakeStream(
                id=str(40_000_000_000 + len(self.streams) + 1), user=owner, viewer_count=0
            )
            self.streams[owner.id] = stream
        stream.viewer_count = viewer_count
        stream.title, stream.game_id, stream.game_name = title, game_id, game_name
        stream.language, stream.tags = language, list(tags)
        return stream

    def end_stream(self, user: UserRef) -> None:
        self.streams.pop(self.user(user).id, None)

    def finish_clip(self, clip_id: str) -> FakeClip:
        """Twitch is done making the clip: Get Clips returns it from now on."""
        clip = self.clips[clip_id]
        clip.ready, clip.lost = True, False
        self._notify()
        return clip

    def lose_clip(self, clip_id: str) -> FakeClip:
        """The clip never gets made: Get Clips never returns it."""
        clip = self.clips[clip_id]
        clip.ready, clip.lost = False, True
        return clip

    # --- test controls -------------------------------------------------------------------------

    def fail_next(
        self,
        method: str | None,
        route: str,
        *,
        status: int = 429,
        message: str | None = None,
        times: int | None = 1,
    ) -> ForcedFailure:
        """Answer the next ``times`` (None: all) Helix ``method route`` requests with ``status``.

        What twitchio 3.3.2 does with them: any status >= 400 raises ``HTTPException`` (``.status``,
        ``.extra`` = the JSON body) with no retry, except 503 (retried once after 3 s) and 401
        with message "Invalid OAuth token" (token refreshed, request repeated).
        """
        if message is None:
            message = "Too Many Requests" if status == 429 else ""
        failure = ForcedFailure(method and method.upper(), route.strip("/"), status, message, times)
        self._forced.append(failure)
        return failure

    def clear_failures(self) -> None:
        self._forced.clear()

    def drop_chat_messages(
        self, code: str = "msg_duplicate", message: str | None = None, *, times: int | None = None
    ) -> None:
        """Drop sent chat messages (HTTP 200, ``is_sent: false``) until ``stop_dropping``."""
        self._forced_drop = ForcedDrop(code, message or DROP_MESSAGES.get(code, code), times)

    def stop_dropping(self) -> None:
        self._forced_drop = None

    def set_helix_rate_limit(self, points: int, window: float = 60.0) -> None:
        self.helix_points, self.helix_window = points, window
        self._buckets.clear()

    def bucket(self, client_id: str | None = None, user_id: str | None = None) -> TokenBucket:
        key = (client_id or self.client_id, user_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.helix_points, self.helix_window)
        return bucket

    # --- EventSub: test-side injection ---------------------------------------------------------

    async def dispatch_event(
        self,
        sub_type: str,
        event: Json,
        *,
        match: Mapping[str, str] | None = None,
        version: str | None = None,
    ) -> int:
        """Send a notification on every enabled subscription of ``sub_type`` whose condition
        contains ``match``; returns how many were written."""
        delivered = 0
        for session in list(self.sessions.values()):
            if not session.open:
                continue
            for sub in list(session.subscriptions.values()):
                if sub.status != "enabled" or sub.type != sub_type:
                    continue
                if version is not None and sub.version != version:
                    continue
                if match and any(sub.condition.get(k) != v for k, v in match.items()):
                    continue
                if await self._send(session, notification_message(sub, event)):
                    delivered += 1
        return delivered

    async def send_chat_message(
        self,
        broadcaster: UserRef,
        chatter: UserRef,
        text: str,
        *,
        badges: Iterable[BadgeLike] | None = None,
        color: str | None = None,
        message_id: str | None = None,
        reply_to: str | None = None,
        cheer_bits: int | None = None,
        message_type: str = "text",
        channel_points_custom_reward_id: str | None = None,
    ) -> InjectedChat:
        """A viewer types ``text`` in ``broadcaster``'s chat: one ``channel.chat.message``
        notification per matching subscription. ``badges`` default to the chatter's role
        (broadcaster / moderator / vip); give e.g. ``["subscriber/12", "vip"]`` to override."""
        owner, user = self.user(broadcaster), self.user(chatter)
        channel = self.channel(owner)
        parent = None
        if reply_to is not None:
            parent = self._chat_log.get(reply_to)
            if parent is None:
                raise KeyError(f"no chat message {reply_to!r} to reply to")
        message_id = message_id or new_uuid()
        event = chat_message_event(
            broadcaster=owner,
            chatter=user,
            text=text,
            message_id=message_id,
            badges=(
                make_badges(badges)
                if badges is not None
                else default_badges(user.id, owner.id, channel.moderators, channel.vips)
            ),
            color=user.color if color is None else color,
            users_by_login=self._users_by_login(),
            reply_to=parent,
            cheer_bits=cheer_bits,
            message_type=message_type,
            channel_points_custom_reward_id=channel_points_custom_reward_id,
        )
        self._log_chat(message_id, owner.id, user, event["message"]["text"], parent)
        channel.chatters[user.id] = None
        delivered = await self.dispatch_event(
            "channel.chat.message", event, match={"broadcaster_user_id": owner.id}
        )
        return InjectedChat(message_id=message_id, event=event, delivered=delivered)

    async def send_session_reconnect(self, session: WsSession | str | None = None) -> list[str]:
        """Send ``session_reconnect`` (to one session, or all open ones); returns their ids.
        A client connecting to the reconnect URL gets a new session with the subscriptions."""
        targets = [self._session(session)] if session is not None else list(self.sessions.values())
        done: list[str] = []
        for target in targets:
            if not target.open or target.status == "reconnecting":
                continue
            target.status = "reconnecting"
            url = f"{self.eventsub_url}?reconnect_id={target.id}"
            await self._send(target, reconnect_message(target, url))
            target.tasks.append(self._spawn(self._reconnect_grace(target)))
            done.append(target.id)
        return done

    async def revoke_subscription(self, sub_id: str, status: str = "authorization_revoked") -> None:
        """Twitch revoked a subscription: a ``revocation`` message on its websocket.

        Twitch's revocation statuses are ``authorization_revoked``, ``user_removed``,
        ``version_removed``, ``notification_failures_exceeded`` (and ``chat_user_banned``).
        twitchio 3.3.2 parses the status into an enum: any other value raises inside its
        websocket listener, which then silently stops reading that socket.
        """
        sub = self.subscriptions[sub_id]
        sub.status = status
        session = self.sessions.get(sub.session_id)
        if session is not None:
            session.subscriptions.pop(sub.id, None)
            await self._send(session, revocation_message(sub))
        self._notify()

    async def close_session(self, session: WsSession | str, code: int = 4000) -> None:
        """The server ends a websocket with an EventSub close code (4000-4007)."""
        target = self._session(session)
        # A session's own timer closing it must not be cancelled by the close it triggers.
        current = asyncio.current_task()
        if current in target.tasks:
            target.tasks.remove(current)
        target.close_code = code
        await target.ws.close(code=code, message=CLOSE_REASONS.get(code, "").encode())

    def _session(self, session: WsSession | str) -> WsSession:
        return session if isinstance(session, WsSession) else self.sessions[session]

    # --- records and waiting -------------------------------------------------------------------

    def helix_requests(
        self, method: str | None = None, route: str | None = None
    ) -> list[RecordedRequest]:
        return [
            r
            for r in self.requests
            if r.api == "helix"
            and (method is None or r.method == method.upper())
            and (route is None or r.route == route.strip("/"))
        ]

    @property
    def sent_chat_messages(self) -> list[ChatRecord]:
        return [m for m in self.chat_messages if m.is_sent]

    @property
    def dropped_chat_messages(self) -> list[ChatRecord]:
        return [m for m in self.chat_messages if not m.is_sent]

    @property
    def drop_counts(self) -> Counter[str]:
        return Counter(m.drop_code or "" for m in self.dropped_chat_messages)

    @property
    def open_sessions(self) -> list[WsSession]:
        return [s for s in self.sessions.values() if s.open]

    def active_subscriptions(self, sub_type: str | None = None) -> list[Subscription]:
        return [
            s
            for s in self.subscriptions.values()
            if s.status == "enabled" and (sub_type is None or s.type == sub_type)
        ]

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = WAIT_TIMEOUT,
    ) -> T:
        """Wait until ``predicate()`` is truthy (re-checked on every request, frame, record)."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"FakeTwitch.wait_for: condition not met within {timeout}s")
            change = self._change
            with contextlib.suppress(TimeoutError):
                # Also poll now and then: time-based state (limits) changes without events.
                await asyncio.wait_for(change.wait(), min(remaining, 0.25))

    async def wait_for_subscription(
        self,
        sub_type: str = "channel.chat.message",
        count: int = 1,
        timeout: float = WAIT_TIMEOUT,
    ) -> list[Subscription]:
        def enough() -> list[Subscription]:
            subs = self.active_subscriptions(sub_type)
            return subs if len(subs) >= count else []

        return await self.wait_for(enough, timeout)

    # --- plumbing ------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    def _respond(
        status: int, payload: Json | None, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        if payload is None:
            return web.Response(status=status, headers=headers)
        return web.Response(
            status=status,
            text=json.dumps(payload),
            content_type="application/json",
            charset="utf-8",
            headers=headers,
        )

    @staticmethod
    def _query(request: web.Request) -> dict[str, list[str]]:
        return {key: request.query.getall(key) for key in dict.fromkeys(request.query.keys())}

    async def _not_found(self, request: web.Request) -> web.Response:
        return self._respond(404, HelixError(404).body())

    # --- Helix ---------------------------------------------------------------------------------

    async def _helix_entry(self, request: web.Request) -> web.Response:
        route = request.match_info["tail"]
        method = request.method.upper()
        raw = await request.read()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        record = RecordedRequest(
            api="helix",
            method=method,
            route=route,
            query=self._query(request),
            headers=dict(request.headers),
            json=body,
        )
        self.requests.append(record)
        headers: dict[str, str] = {}
        try:
            handler = self._helix_routes.get((method, route))
            if handler is None:
                raise HelixError(404)  # Twitch: {"error":"Not Found","status":404,"message":""}
            token = self._authenticate(request)
            record.token, record.client_id, record.user_id = (
                token.access_token,
                token.client_id,
                token.user_id,
            )
            bucket = self.bucket(token.client_id, token.user_id)
            forced = self._take_forced(method, route)
            if forced is not None:
                headers = bucket.headers()
                if forced.status == 429:
                    headers["Ratelimit-Remaining"] = "0"
                raise HelixError(forced.status, forced.message)
            allowed = bucket.take()
            headers = bucket.headers()
            if not allowed:
                raise HelixError(429, "Too Many Requests")
            if bad_json:
                raise HelixError(400, "Invalid JSON body")
            status, payload = await handler(HelixCall(request, token, request.query, body))
        except HelixError as error:
            status, payload = error.status, error.body()
            headers.update(error.headers)
        record.status, record.response = status, payload
        record.response_headers = dict(headers)
        self._notify()
        return self._respond(status, payload, headers)

    def _authenticate(self, request: web.Request) -> FakeToken:
        auth = request.headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if not auth:
            raise HelixError(401, "OAuth token is missing")
        if scheme.lower() != "bearer" or not value.strip():
            raise HelixError(401, "Invalid OAuth token")
        client_id = request.headers.get("Client-Id")
        if not client_id:
            raise HelixError(401, "Client ID is missing")
        token = self.tokens.get(value.strip())
        # twitchio refreshes on 401 only when the message is "invalid oauth token".
        if token is None or not token.valid():
            raise HelixError(401, "Invalid OAuth token")
        if token.client_id != client_id:
            raise HelixError(401, "Client ID and OAuth token do not match")
        return token

    def _take_forced(self, method: str, route: str) -> ForcedFailure | None:
        for failure in self._forced:
            if failure.matches(method, route):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._forced.remove(failure)
                return failure
        return None

    async def _get_users(self, call: HelixCall) -> tuple[int, Json | None]:
        ids, logins = call.params("id"), [login.lower() for login in call.params("login")]
        if len(ids) + len(logins) > 100:
            raise HelixError(400, "The total number of IDs and logins may not exceed 100")
        if not ids and not logins:
            if call.token.user_id is None:
                raise HelixError(400, "Must provide an ID, Login or OAuth Token.")
            ids = [call.token.user_id]
        found: dict[str, FakeUser] = {}
        by_login = self._users_by_login()
        for user_id in ids:
            if user_id in self.users:
                found[user_id] = self.users[user_id]
        for login in logins:
            if login in by_login:
                found[by_login[login].id] = by_login[login]
        data = [
            u.helix(include_email=u.id == call.token.user_id and call.token.has("user:read:email"))
            for u in found.values()
        ]
        return 200, {"data": data}

    # EventSub subscriptions -------------------------------------------------------------------

    def _owned_subscriptions(self, token: FakeToken) -> list[Subscription]:
        return [
            s
            for s in self.subscriptions.values()
            if s.client_id == token.client_id and s.user_id == token.user_id
        ]

    def _totals(self, token: FakeToken) -> Json:
        enabled = [s for s in self._owned_subscriptions(token) if s.status == "enabled"]
        return {
            "total": len(enabled),
            "total_cost": sum(s.cost for s in enabled),
            "max_total_cost": MAX_TOTAL_COST,
        }

    async def _create_subscription(self, call: HelixCall) -> tuple[int, Json | None]:
        sub_type, version = call.require_field("type"), call.require_field("version")
        condition, transport = call.field("condition"), call.field("transport")
        if not isinstance(condition, dict):
            raise HelixError(400, 'Missing required parameter "condition"')
        if not isinstance(transport, dict):
            raise HelixError(400, 'Missing required parameter "transport"')
        method = transport.get("method")
        if method in ("webhook", "conduit"):
            # Not Twitch behaviour: this fake only implements the websocket transport.
            raise HelixError(400, f"FakeTwitch does not implement the {method} transport")
        if method != "websocket":
            raise HelixError(400, "The value specified in the 'method' field is not valid")
        token = call.token
        if token.user_id is None:
            # Websocket subscriptions need a user access token; app tokens are for webhooks.
            raise HelixError(400, "invalid transport and auth combination")
        spec = SUBSCRIPTION_TYPES.get((sub_type, version))
        if spec is None:
            raise HelixError(
                400, "The combination of values in the type and version fields is not valid"
            )
        cond = {str(k): str(v) for k, v in condition.items() if v is not None and v != ""}
        missing = [name for name in spec.required if name not in cond]
        if missing:
            raise HelixError(400, f"missing required condition field(s): {', '.join(missing)}")
        session = self.sessions.get(str(transport.get("session_id") or ""))
        if session is None or not session.open:
            raise HelixError(
                400, "websocket transport session does not exist or has already disconnected"
            )
        if session.user_id is not None and (session.client_id, session.user_id) != (
            token.client_id,
            token.user_id,
        ):
            raise HelixError(400, "websocket transport session belongs to a different user token")
        if spec.token_user_field is not None and cond.get(spec.token_user_field) != token.user_id:
            raise HelixError(403, "subscription missing proper authorization")
        if spec.scopes and not any(token.has(scope) for scope in spec.scopes):
            raise HelixError(403, "subscription missing proper authorization")
        for existing in session.subscriptions.values():
            if (existing.type, existing.version, existing.condition) == (sub_type, version, cond):
                raise HelixError(409, "subscription already exists")
        if len(session.subscriptions) >= MAX_SUBSCRIPTIONS_PER_SESSION:
            raise HelixError(429, "websocket transport subscription limit exceeded")
        other_sessions = {
            s.id
            for s in self.open_sessions
            if s.subscriptions
            and s.id != session.id
            and (s.client_id, s.user_id) == (token.client_id, token.user_id)
        }
        if len(other_sessions) >= MAX_CONNECTIONS_PER_TOKEN:
            raise HelixError(429, "websocket transports limit exceeded")
        cost = subscription_cost(cond, token.user_id)
        if self._totals(token)["total_cost"] + cost > MAX_TOTAL_COST:
            raise HelixError(429, "subscription cost limit exceeded")
        sub = Subscription(
            id=new_uuid(),
            type=sub_type,
            version=version,
            condition=cond,
            client_id=token.client_id,
            user_id=token.user_id,
            session_id=session.id,
            connected_at=session.connected_at,
            cost=cost,
        )
        session.client_id, session.user_id = token.client_id, token.user_id
        session.subscriptions[sub.id] = sub
        self.subscriptions[sub.id] = sub
        return 202, {"data": [sub.helix()], **self._totals(token)}

    async def _get_subscriptions(self, call: HelixCall) -> tuple[int, Json | None]:
        filters = {k: call.param(k) for k in ("status", "type", "user_id", "subscription_id")}
        if sum(1 for v in filters.values() if v) > 1:
            raise HelixError(
                400, "Only one of status, type, user_id or subscription_id may be given"
            )
        subs = self._owned_subscriptions(call.token)  # app tokens own no websocket subscriptions
        if filters["status"]:
            subs = [s for s in subs if s.status == filters["status"]]
        if filters["type"]:
            subs = [s for s in subs if s.type == filters["type"]]
        if filters["user_id"]:
            subs = [s for s in subs if filters["user_id"] in s.condition.values()]
        if filters["subscription_id"]:
            subs = [s for s in subs if s.id == filters["subscription_id"]]
        return 200, {
            "data": [s.helix() for s in subs],
            **self._totals(call.token),
            "pagination": {},
        }

    async def _delete_subscription(self, call: HelixCall) -> tuple[int, Json | None]:
        sub_id = call.require("id")
        sub = self.subscriptions.get(sub_id)
        if sub is None or (sub.client_id, sub.user_id) != (
            call.token.client_id,
            call.token.user_id,
        ):
            raise HelixError(404, "subscription not found")
        del self.subscriptions[sub_id]
        session = self.sessions.get(sub.session_id)
        if session is not None:
            session.subscriptions.pop(sub_id, None)
        return 204, None

    # Chat ---------------------------------------------------------------------------------------

    async def _send_chat_message(self, call: HelixCall) -> tuple[int, Json | None]:
        broadcaster_id = call.require_field("broadcaster_id")
        sender_id = call.require_field("sender_id")
        message = call.field("message")
        if message is None:
            raise HelixError(400, 'Missing required parameter "message"')
        if not isinstance(message, str) or not message.strip():
            raise HelixError(400, "The message field may not contain an empty string.")
        if broadcaster_id not in self.users:
            raise HelixError(400, "The ID in broadcaster_id is not valid.")
        if sender_id not in self.users:
            raise HelixError(400, "The ID in sender_id is not valid.")
        token = call.token
        if token.user_id is None:
            # App token ("chat bot" path): the sender granted user:write:chat + user:bot, and
            # the broadcaster granted channel:bot unless the sender is a moderator there.
            granted = self.grants.get((token.client_id, sender_id), set())
            if not {"user:write:chat", "user:bot"} <= granted:
                raise HelixError(
                    401, "The sender has not authorized the user:write:chat and user:bot scopes."
                )
            broadcaster_granted = self.grants.get((token.client_id, broadcaster_id), set())
            if (
                not self.is_elevated(broadcaster_id, sender_id)
                and "channel:bot" not in broadcaster_granted
            ):
                raise HelixError(403, NOT_PERMITTED_TO_CHAT)
        else:
            if call.field("for_source_only") is not None:
                raise HelixError(400, "for_source_only may only be set with an app access token.")
            if token.user_id != sender_id:
                raise HelixError(
                    401, "The ID in sender_id must match the user ID in the access token."
                )
            call.require_scope("user:write:chat")
        if len(message) > 500:
            raise HelixError(422, "The message is too large.")
        if sender_id in self.channel(broadcaster_id).banned:
            raise HelixError(403, NOT_PERMITTED_TO_CHAT)
        reply_id = call.field("reply_parent_message_id")
        parent = None
        if reply_id:
            parent = self._chat_log.get(str(reply_id))
            if parent is None or parent.broadcaster_id != broadcaster_id:
                raise HelixError(400, "The specified reply_parent_message_id is not valid.")

        record = ChatRecord(
            broadcaster_id=broadcaster_id,
            sender_id=sender_id,
            text=message,
            message_id="",
            is_sent=False,
            reply_parent_message_id=str(reply_id) if reply_id else None,
            app_token=token.user_id is None,
        )
        drop = self._drop_reason(broadcaster_id, sender_id, message)
        if drop is not None:
            # Twitch answers 200 for a dropped message; only the body says it was not sent.
            record.drop_code, record.drop_message = drop
            self.chat_messages.append(record)
            result: Json = {
                "message_id": "",
                "is_sent": False,
                "drop_reason": {"code": drop[0], "message": drop[1]},
            }
            return 200, {"data": [result]}

        record.message_id, record.is_sent = new_uuid(), True
        key = (sender_id, broadcaster_id)
        self._chat_windows.record(key)
        self._last_text[key] = (message, time.monotonic())
        self.chat_messages.append(record)
        self.channel(broadcaster_id).chatters[sender_id] = None
        if self.echo_sent_messages:
            # Real Twitch also delivers the bot's own message to channel.chat.message subscribers.
            self._spawn(self._echo(record, parent))
        else:
            self._log_chat(
                record.message_id, broadcaster_id, self.users[sender_id], message, parent
            )
        return 200, {
            "data": [{"message_id": record.message_id, "is_sent": True, "drop_reason": None}]
        }

    def _drop_reason(
        self, broadcaster_id: str, sender_id: str, message: str
    ) -> tuple[str, str] | None:
        forced = self._forced_drop
        if forced is not None:
            if forced.times is not None:
                forced.times -= 1
                if forced.times <= 0:
                    self._forced_drop = None
            return forced.code, forced.message
        elevated = self.is_elevated(broadcaster_id, sender_id)
        key = (sender_id, broadcaster_id)
        limit = self.chat_limit_elevated if elevated else self.chat_limit
        if not self._chat_windows.allows(key, limit, self.chat_window):
            return "msg_ratelimit", DROP_MESSAGES["msg_ratelimit"]
        if self.duplicate_window is not None and not elevated:
            last = self._last_text.get(key)
            if (
                last is not None
                and last[0] == message
                and time.monotonic() - last[1] < self.duplicate_window
            ):
                return "msg_duplicate", DROP_MESSAGES["msg_duplicate"]
        return None

    def _log_chat(
        self,
        message_id: str,
        broadcaster_id: str,
        chatter: FakeUser,
        text: str,
        parent: ChatLogEntry | None,
    ) -> None:
        self._chat_log[message_id] = ChatLogEntry(
            message_id=message_id,
            broadcaster_id=broadcaster_id,
            chatter=chatter,
            text=text,
            thread_id=(parent.thread_id or parent.message_id) if parent else None,
            thread_user=(parent.thread_user or parent.chatter) if parent else None,
        )

    async def _echo(self, record: ChatRecord, parent: ChatLogEntry | None) -> None:
        owner, sender = self.users[record.broadcaster_id], self.users[record.sender_id]
        channel = self.channel(owner)
        event = chat_message_event(
            broadcaster=owner,
            chatter=sender,
            text=record.text,
            message_id=record.message_id,
            badges=default_badges(sender.id, owner.id, channel.moderators, channel.vips),
            color=sender.color,
            users_by_login=self._users_by_login(),
            reply_to=parent,
        )
        self._log_chat(record.message_id, owner.id, sender, event["message"]["text"], parent)
        await self.dispatch_event(
            "channel.chat.message", event, match={"broadcaster_user_id": owner.id}
        )

    async def _send_announcement(self, call: HelixCall) -> tuple[int, Json | None]:
        broadcaster_id, moderator_id = call.require("broadcaster_id"), call.require("moderator_id")
        user_id = call.user_token()
        if user_id != moderator_id:
            raise HelixError(
                401, "The ID in moderator_id must match the user ID in the access token."
            )
        call.require_scope("moderator:manage:announcements")
        if broadcaster_id not in self.users:
            raise HelixError(400, "The ID in broadcaster_id is not valid.")
        if not self.is_elevated(broadcaster_id, moderator_id):
            raise HelixError(
                403, "The user in moderator_id is not one of the broadcaster's moderators."
            )
        message = call.field("message")
        if not isinstance(message, str) or not message.strip():
            raise HelixError(400, 'Missing required parameter "message"')
        if len(message) > 500:
            raise HelixError(400, "The message may contain a maximum of 500 characters.")
        color = str(call.field("color") or "primary").lower()
        if color not in ANNOUNCEMENT_COLORS:
            raise HelixError(400, "The value in the color field is not valid.")
        now = time.monotonic()
        last = self._last_announcement.get(broadcaster_id)
        if last is not None and now - last < self.announcement_interval:
            # Twitch: one announcement per channel every 2 seconds, else 429.
            raise HelixError(429, "Announcements are limited to one every 2 seconds.")
        self._last_announcement[broadcaster_id] = now
        self.announcements.append(AnnouncementRecord(broadcaster_id, moderator_id, message, color))
        return 204, None

    async def _get_chatters(self, call: HelixCall) -> tuple[int, Json | None]:
        broadcaster_id, moderator_id = call.require("broadcaster_id"), call.require("moderator_id")
        if call.user_token() != moderator_id:
            raise HelixError(
                401, "The ID in moderator_id must match the user ID in the access token."
            )
        call.require_scope("moderator:read:chatters", "moderator:manage:chatters")
        if not self.is_elevated(broadcaster_id, moderator_id):
            raise HelixError(
                403, "The user in moderator_id is not one of the broadcaster's moderators."
            )
        first = self._first(call, default=100, maximum=1000)
        chatters = [self.users[i] for i in self.channel(broadcaster_id).chatters if i in self.users]
        data = [
            {"user_id": u.id, "user_login": u.login, "user_name": u.display_name} for u in chatters
        ]
        return 200, {"data": data[:first], "pagination": {}, "total": len(data)}

    async def _get_moderators(self, call: HelixCall) -> tuple[int, Json | None]:
        broadcaster_id = call.require("broadcaster_id")
        if call.user_token() != broadcaster_id:
            raise HelixError(
                401, "The ID in broadcaster_id must match the user ID in the access token."
            )
        call.require_scope("moderation:read", "channel:manage:moderators")
        first = self._first(call, default=20, maximum=100)
        wanted = set(call.params("user_id"))
        mods = [
            self.users[i]
            for i in sorted(self.channel(broadcaster_id).moderators)
            if i in self.users and (not wanted or i in wanted)
        ]
        data = [{"user_id": u.id, "user_login": u.login, "user_name": u.display_name} for u in mods]
        return 200, {"data": data[:first], "pagination": {}}

    @staticmethod
    def _first(call: HelixCall, *, default: int, maximum: int) -> int:
        raw = call.param("first")
        if raw is None:
            return default
        try:
            first = int(raw)
        except ValueError:
            raise HelixError(400, "The value in first is not valid.") from None
        if not 1 <= first <= maximum:
            raise HelixError(400, f"The value in first must be between 1 and {maximum}.")
        return first

    async def _get_streams(self, call: HelixCall) -> tuple[int, Json | None]:
        first = self._first(call, default=20, maximum=100)
        user_ids, logins = (
            set(call.params("user_id")),
            {x.lower() for x in call.params("user_login")},
        )
        game_ids, languages = set(call.params("game_id")), set(call.params("language"))
        streams = list(self.streams.values())
        if user_ids or logins:
            streams = [s for s in streams if s.user.id in user_ids or s.user.login in logins]
        if game_ids:
            streams = [s for s in streams if s.game_id in game_ids]
        if languages:
            streams = [s for s in streams if s.language in languages]
        streams.sort(key=lambda s: s.viewer_count, reverse=True)  # Twitch orders by viewers
        return 200, {"data": [s.helix() for s in streams[:first]], "pagination": {}}

    async def _create_clip(self, call: HelixCall) -> tuple[int, Json | None]:
        """Create Clip: a user token with ``clips:edit``, of a broadcaster who is live (else
        404); 202 with the clip's id and edit URL, the clip itself made asynchronously."""
        broadcaster_id = call.require("broadcaster_id")
        user_id = call.user_token()
        call.require_scope("clips:edit")
        broadcaster = self.users.get(broadcaster_id)
        if broadcaster is None:
            raise HelixError(400, "The ID in broadcaster_id is not valid.")
        stream = self.streams.get(broadcaster_id)
        if stream is None:
            raise HelixError(404, "The broadcaster in broadcaster_id must be broadcasting live.")
        duration = 30.0
        raw = call.param("duration")
        if raw is not None:
            try:
                duration = float(raw)
            except ValueError:
                raise HelixError(400, "The value in duration is not valid.") from None
            if not 5 <= duration <= 60:
                raise HelixError(400, "The duration must be between 5 and 60 seconds.")
        clip = FakeClip(
            id=new_clip_id(),
            broadcaster=broadcaster,
            creator=self.users[user_id],
            stream=stream,
            title=call.param("title") or stream.title,
            duration=duration,
            ready_after=self.clip_ready_after,
        )
        self.clips[clip.id] = clip
        return 202, {"data": [{"id": clip.id, "edit_url": clip.edit_url}]}

    async def _get_clips(self, call: HelixCall) -> tuple[int, Json | None]:
        """Get Clips by ``id`` (up to 100), ``broadcaster_id`` or ``game_id`` (exactly one).
        A clip still being made is not returned; each poll of its id counts towards
        ``clip_ready_after``."""
        ids = call.params("id")
        broadcaster_id, game_id = call.param("broadcaster_id"), call.param("game_id")
        if sum(bool(x) for x in (ids, broadcaster_id, game_id)) != 1:
            raise HelixError(
                400, "The request must specify only one of broadcaster_id, game_id, or id."
            )
        if len(ids) > 100:
            raise HelixError(400, "The request may specify a maximum of 100 IDs.")
        first = self._first(call, default=20, maximum=100)
        if ids:
            wanted = [self.clips[i] for i in dict.fromkeys(ids) if i in self.clips]
            for clip in wanted:
                clip.polls += 1
                if not clip.lost and clip.ready_after is not None:
                    clip.ready = clip.ready or clip.polls >= clip.ready_after
        else:
            wanted = [
                c
                for c in self.clips.values()
                if (broadcaster_id and c.broadcaster.id == broadcaster_id)
                or (game_id and c.stream.game_id == game_id)
            ]
        data = [c.helix() for c in wanted if c.ready][:first]
        return 200, {"data": data, "pagination": {}}

    async def _send_whisper(self, call: HelixCall) -> tuple[int, Json | None]:
        from_id, to_id = call.require("from_user_id"), call.require("to_user_id")
        if call.user_token() != from_id:
            raise HelixError(
                401, "The ID in from_user_id must match the user ID in the access token."
            )
        call.require_scope("user:manage:whispers")
        sender, recipient = self.users.get(from_id), self.users.get(to_id)
        if sender is None:
            raise HelixError(400, "The ID in from_user_id is not valid.")
        if not sender.phone_verified:
            raise HelixError(401, "The user in from_user_id must have a verified phone number.")
        if recipient is None or to_id == from_id:
            raise HelixError(400, "The ID in to_user_id is not valid.")
        if not recipient.accepts_whispers:
            raise HelixError(403, "The user in to_user_id doesn't allow whispers from this sender.")
        message = call.field("message")
        if not isinstance(message, str) or not message:
            raise HelixError(400, 'Missing required parameter "message"')
        # Whisper limits: 3/s and 100/min per sender, 40 distinct recipients per day.
        day_ago = time.monotonic() - 86_400
        recipients = {
            k: t for k, t in self._whisper_recipients.get(from_id, {}).items() if t > day_ago
        }
        self._whisper_recipients[from_id] = recipients
        if to_id not in recipients and len(recipients) >= self.whisper_recipients_per_day:
            raise HelixError(
                429, "The sender exceeded the number of unique whisper recipients per day."
            )
        if not self._whisper_windows.allows(from_id, self.whisper_per_second, 1.0) or not (
            self._whisper_windows.allows(from_id, self.whisper_per_minute, 60.0)
        ):
            raise HelixError(429, "The sender exceeded the number of whispers allowed.")
        recipients.setdefault(to_id, time.monotonic())
        self._whisper_windows.record(from_id)
        # Twitch silently truncates: 500 characters unless the recipient has whispered the
        # sender before, then 10,000.
        limit = 10_000 if (to_id, from_id) in self._whispered else 500
        self._whispered.add((from_id, to_id))
        self.whispers.append(WhisperRecord(from_id, to_id, message[:limit]))
        return 204, None

    # --- OAuth (id.twitch.tv) ------------------------------------------------------------------

    async def _oauth_entry(self, request: web.Request) -> web.Response:
        route = f"oauth2/{request.match_info['tail']}"
        method = request.method.upper()
        # twitchio sends the token grant parameters in the query string with an empty form body;
        # Twitch accepts either, so merge both.
        params: dict[str, str] = dict(request.query)
        form: dict[str, str] | None = None
        if method == "POST" and request.content_type == "application/x-www-form-urlencoded":
            form = {k: str(v) for k, v in (await request.post()).items()}
            params.update(form)
        record = RecordedRequest(
            api="oauth",
            method=method,
            route=route,
            query=self._query(request),
            headers=dict(request.headers),
            json=None,
            form=form or None,
        )
        self.requests.append(record)
        if route == "oauth2/authorize" and method in ("GET", "POST"):
            answer = (
                self._authorize_page(params)
                if method == "GET"
                else self._authorize_decision(
                    params, params.get("action", ""), self._form_user(params)
                )
            )
            record.status = answer.status
            record.response = answer.location if answer.location is not None else answer.page
            self._notify()
            return answer.response()
        try:
            if (method, route) == ("POST", "oauth2/token"):
                status, payload = 200, self._oauth_token(params)
            elif (method, route) == ("GET", "oauth2/validate"):
                status, payload = 200, self._oauth_validate(request)
            else:
                status, payload = 404, HelixError(404).body()
        except OAuthError as error:
            status, payload = error.status, {"status": error.status, "message": error.message}
        record.status, record.response = status, payload
        self._notify()
        return self._respond(status, payload)

    def _oauth_token(self, params: Mapping[str, str]) -> Json:
        client_id = params.get("client_id", "")
        if client_id not in self.apps:
            raise OAuthError(400, "invalid client")
        grant_type = params.get("grant_type")
        if not grant_type:
            raise OAuthError(400, "missing grant_type")
        if params.get("client_secret") != self.apps[client_id]:
            raise OAuthError(403, "invalid client secret")
        if grant_type == "client_credentials":
            token = self.issue_app_token(client_id)
            return {
                "access_token": token.access_token,
                "expires_in": token.expires_in(),
                "token_type": "bearer",
            }
        if grant_type == "refresh_token":
            refresh = params.get("refresh_token", "")
            old = next(
                (
                    t
                    for t in self.tokens.values()
                    if t.refresh_token == refresh and t.client_id == client_id
                ),
                None,
            )
            if old is None or old.user_id is None or refresh in self._dead_refresh_tokens:
                raise OAuthError(400, "Invalid refresh token")
            # Twitch typically hands back the same refresh token with a fresh access token.
            token = self._issue(
                client_id, old.user_id, old.scopes, expires_in=14_400, refresh_token=refresh
            )
            return self._user_token_body(token)
        if grant_type == "authorization_code":
            # PKCE (code_challenge / code_verifier) is not part of Twitch's OAuth: ignored.
            code = params.get("code", "")
            entry = self._auth_codes.get(code)
            if entry is None or entry.client_id != client_id or not entry.valid():
                raise OAuthError(400, INVALID_CODE)
            if entry.redirect_uri is not None and params.get("redirect_uri") != entry.redirect_uri:
                raise OAuthError(400, REDIRECT_MISMATCH)
            del self._auth_codes[code]  # single use; a refused exchange does not burn it
            token = self._issue(
                client_id,
                entry.user_id,
                entry.scopes,
                expires_in=14_400,
                refresh_token=new_token(50),
            )
            return self._user_token_body(token)
        raise OAuthError(400, "unsupported grant type")

    @staticmethod
    def _user_token_body(token: FakeToken) -> Json:
        return {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_in": token.expires_in(),
            "scope": list(token.scopes),
            "token_type": "bearer",
        }

    def _oauth_validate(self, request: web.Request) -> Json:
        auth = request.headers.get("Authorization", "")
        if not auth:
            raise OAuthError(401, "missing authorization token")
        # twitchio sends "OAuth <token>"; Twitch also takes "Bearer <token>".
        scheme, _, value = auth.partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() in ("oauth", "bearer") else None
        if token is None or not token.valid():
            raise OAuthError(401, "invalid access token")
        data: Json = {"client_id": token.client_id, "scopes": list(token.scopes)}
        if token.user_id is not None:
            data["login"] = self.users[token.user_id].login
            data["user_id"] = token.user_id
        data["expires_in"] = token.expires_in()
        return data

    # --- OAuth: the authorize page (authorization code grant flow) -----------------------------

    def _authorize_check(self, params: Mapping[str, str]) -> AuthorizeAnswer | None:
        """Checks the page (GET) and the button (POST) share; an answer means "stop here"."""
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if client_id not in self.apps:
            return error_page("Error - Twitch", 400, "invalid client")
        # Twitch never redirects to an unregistered URI: it shows the error itself.
        if redirect_uri not in self.redirect_uris.get(client_id, []):
            return error_page("Error - Twitch", 400, f"redirect_mismatch: {REDIRECT_MISMATCH}")
        response_type = params.get("response_type", "")
        if response_type != "code" and {"token", "id_token"} & set(response_type.split()):
            # Not Twitch behaviour: Twitch runs the implicit / OIDC flows, this fake does not.
            return error_page(
                "Error - Twitch",
                400,
                f"FakeTwitch does not implement response_type={response_type}",
            )
        if response_type != "code":
            return redirect(
                redirect_uri, {"error": "unsupported_response_type"}, params.get("state")
            )
        return None

    def _authorize_page(self, params: Mapping[str, str]) -> AuthorizeAnswer:
        """``GET /oauth2/authorize``: the consent page (or an error, or a redirect)."""
        stop = self._authorize_check(params)
        if stop is not None:
            return stop
        user = self.browser_user
        scopes = params.get("scope", "").split()
        key = (params["client_id"], user.id) if user else None
        granted = self.grants.get(key) if key else None
        force = params.get("force_verify", "").lower() == "true"
        if granted is not None and not force and set(scopes) <= granted:
            # Twitch skips the page when the user already authorized this app for these
            # scopes (an app never authorized asks, even for no scope at all).
            return self._authorize_decision(params, "authorize", user)
        return AuthorizeAnswer(200, page=self._consent_html(params, scopes, user))

    def _form_user(self, params: Mapping[str, str]) -> FakeUser | None:
        """The account the consent form was submitted as: its ``user`` field, else the
        browser's. An unknown ``user`` counts as nobody (the page then asks to log in)."""
        ref = params.get("user")
        if not ref:
            return self.browser_user
        try:
            return self.user(ref)
        except KeyError:
            return None

    def _authorize_decision(
        self, params: Mapping[str, str], action: str, user: FakeUser | None
    ) -> AuthorizeAnswer:
        """The user clicked ``action`` ("authorize" or "cancel") on the consent page."""
        stop = self._authorize_check(params)
        if stop is not None:
            return stop
        redirect_uri, state = params["redirect_uri"], params.get("state")
        if action == "cancel":
            return redirect(
                redirect_uri,
                {"error": "access_denied", "error_description": ACCESS_DENIED_DESCRIPTION},
                state,
            )
        if action != "authorize":
            return error_page(
                "Error - Twitch", 400, f"unknown action {action!r} (FakeTwitch's form)"
            )
        if user is None:
            return error_page(
                "Error - Twitch", 400, "log in first: set FakeTwitch.browser_user or pick a user"
            )
        scopes = params.get("scope", "").split()
        entry = self._new_code(params["client_id"], user.id, scopes, redirect_uri)
        return redirect(redirect_uri, {"code": entry.code, "scope": " ".join(scopes)}, state)

    def _consent_html(
        self, params: Mapping[str, str], scopes: list[str], user: FakeUser | None
    ) -> str:
        app = html.escape(self.app_names.get(params["client_id"], params["client_id"]))
        keep = ("client_id", "redirect_uri", "response_type", "scope", "state", "force_verify")
        signed_in = ("Logged in as", user.display_name, user.login) if user else None
        # nobody logged in: pick one of the fake's accounts in the same form
        accounts = ((u.id, u.login) for u in self.users.values())
        body = (
            f"<h1>Authorize {app}</h1>\n{who_html(signed_in, accounts)}"
            f"<p><strong>{app}</strong> would like to:</p>\n{scope_list(scopes)}"
            f"{consent_form(params, keep, '/oauth2/authorize')}"
        )
        return html_document(f"Authorize {app} - Twitch", body)

    # --- EventSub WebSocket --------------------------------------------------------------------

    async def _ws_entry(self, request: web.Request) -> web.StreamResponse:
        keepalive = KEEPALIVE_DEFAULT
        raw = request.query.get("keepalive_timeout_seconds")
        if raw is not None:
            try:
                # Twitch: a numeric but out-of-range value is clamped to the nearest valid one.
                keepalive = min(max(int(raw), KEEPALIVE_MIN), KEEPALIVE_MAX)
            except ValueError:
                return self._respond(
                    400, HelixError(400, "invalid keepalive_timeout_seconds").body()
                )
        ws = web.WebSocketResponse(autoping=True)  # answers client pings; those are allowed
        await ws.prepare(request)
        session = WsSession(id=new_session_id(), ws=ws, keepalive_timeout=keepalive)
        self.sessions[session.id] = session

        reconnect_id = request.query.get("reconnect_id")
        if reconnect_id is not None and not self._migrate(reconnect_id, session):
            session.close_code = CLOSE_INVALID_RECONNECT
            await ws.close(
                code=CLOSE_INVALID_RECONNECT,
                message=CLOSE_REASONS[CLOSE_INVALID_RECONNECT].encode(),
            )
            self._closed(session)
            return ws

        await self._send(session, welcome_message(session))
        session.tasks.append(self._spawn(self._keepalive_loop(session)))
        unused = (
            session.keepalive_timeout if self.unused_timeout == "keepalive" else self.unused_timeout
        )
        if unused is not None and reconnect_id is None:
            session.tasks.append(self._spawn(self._unused_watch(session, unused)))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    # Clients may only send pongs; anything else ends the connection.
                    session.close_code = CLOSE_INBOUND_TRAFFIC
                    await ws.close(
                        code=CLOSE_INBOUND_TRAFFIC,
                        message=CLOSE_REASONS[CLOSE_INBOUND_TRAFFIC].encode(),
                    )
                    break
        finally:
            self._closed(session)
        return ws

    def _migrate(self, old_id: str, new: WsSession) -> bool:
        old = self.sessions.get(old_id)
        if old is None or old.status != "reconnecting" or old.migrated_to is not None:
            return False
        new.keepalive_timeout = old.keepalive_timeout
        new.client_id, new.user_id = old.client_id, old.user_id
        new.reconnected_from, old.migrated_to = old.id, new.id
        for sub in old.subscriptions.values():
            sub.session_id, sub.connected_at = new.id, new.connected_at
        new.subscriptions, old.subscriptions = old.subscriptions, {}
        return True

    def _closed(self, session: WsSession) -> None:
        if session.status == "closed":
            return
        session.status = "closed"
        current = asyncio.current_task()
        for task in session.tasks:
            if task is not current:
                task.cancel()
        status = STATUS_ON_CLOSE.get(session.close_code, "websocket_disconnected")
        disconnected_at = rfc3339_nano()
        for sub in session.subscriptions.values():
            if sub.status == "enabled":
                sub.status, sub.disconnected_at = status, disconnected_at
        self._notify()

    async def _send(self, session: WsSession, message: Json) -> bool:
        if not session.open:
            return False
        try:
            await session.ws.send_str(dumps(message))
        except (ConnectionError, RuntimeError):
            return False
        session.last_sent = time.monotonic()
        kind = message["metadata"]["message_type"]
        self.frames.append(WsFrame(session_id=session.id, message_type=kind, data=message))
        self._notify()
        return True

    async def _keepalive_loop(self, session: WsSession) -> None:
        # Twitch sends a keepalive whenever the socket was silent for keepalive_timeout_seconds.
        interval = self.keepalive_interval or session.keepalive_timeout
        while session.open:
            wait = session.last_sent + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if not await self._send(session, keepalive_message()):
                return

    async def _unused_watch(self, session: WsSession, delay: float) -> None:
        await asyncio.sleep(delay)
        if session.open and not session.subscriptions and session.migrated_to is None:
            await self.close_session(session, CLOSE_CONNECTION_UNUSED)

    async def _reconnect_grace(self, session: WsSession) -> None:
        await asyncio.sleep(self.reconnect_grace)
        if session.open:
            await self.close_session(session, CLOSE_RECONNECT_GRACE_EXPIRED)
