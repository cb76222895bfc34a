"""``FakeDiscord``: an in-process Discord (REST v10 + Gateway) for discord.py tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import secrets
import socket
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from aiohttp import web

from .gateway import INVALID_SESSION, RECONNECT, Gateway, GatewaySession
from .messages import (
    EPHEMERAL,
    ROLE_MENTION,
    USER_MENTION,
    guess_content_type,
    iter_components,
    json_copy,
    normalize_embeds,
    number_components,
)
from .models import (
    ChannelType,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    HasId,
    Intents,
    Json,
    PermissionOverwrite,
    Permissions,
    SnowflakeGenerator,
    as_id,
    iso_now,
)
from .oauth import OAuthApi, OAuthCode, OAuthToken
from .ratelimit import ForcedRateLimit, RateLimiter, RouteLimit
from .records import (
    CANNOT_DM,
    FakeInteraction,
    ForcedError,
    GatewayFrame,
    InteractionResponseRecord,
    MessageEvent,
    RecordedRequest,
    UploadedFile,
    error,
)
from .rest import RestApi

T = TypeVar("T")
# How long wait_for and friends wait by default. Generous: only a test that is failing anyway
# waits this long, and on a busy CI machine "at once" can take seconds.
WAIT_TIMEOUT = 20.0
IdLike = int | str | HasId

# Application flags Discord sets when a privileged intent is switched on for an
# unverified (< 100 guilds) bot: *_LIMITED variants.
_APP_FLAG_FOR_INTENT = {
    Intents.GUILD_PRESENCES: 1 << 13,
    Intents.GUILD_MEMBERS: 1 << 15,
    Intents.MESSAGE_CONTENT: 1 << 19,
}
_APP_COMMAND_BADGE = 1 << 23

# Option types whose values are snowflakes resolved into ``data.resolved``.
_OPT_SUBCOMMAND, _OPT_GROUP = 1, 2
_OPT_STRING, _OPT_INTEGER, _OPT_BOOLEAN, _OPT_NUMBER = 3, 4, 5, 10
_OPT_USER, _OPT_CHANNEL, _OPT_ROLE, _OPT_MENTIONABLE = 6, 7, 8, 9


def _token_for(bot_id: int) -> str:
    # Real bot tokens start with the base64 of the bot's user id.
    head = base64.b64encode(str(bot_id).encode()).decode().rstrip("=")
    return f"{head}.Gfake0.{secrets.token_urlsafe(28)}"


class FakeDiscord:
    """A local Discord API v10 + Gateway that the real discord.py client runs against.

    Usage::

        async with FakeDiscord() as fake, fake.patch_discord_py():
            guild = fake.add_guild("Shop")
            client = discord.Client(intents=discord.Intents.default())
            await client.login(fake.token)
            ...
    """

    def __init__(
        self,
        *,
        token: str | None = None,
        bot_username: str = "dropcast",
        privileged_intents: int = Intents.PRIVILEGED,
        heartbeat_interval_ms: int = 41_250,
        interaction_ack_timeout: float = 3.0,
        interaction_token_ttl: float = 15 * 60.0,
        global_rate_limit: int = 50,
        shard_count: int = 1,
        require_mutual_guild_for_dm: bool = True,
        nonce_window: float = 5 * 60.0,
        code_ttl: float = 600.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.snowflake = SnowflakeGenerator()
        bot_id = self.snowflake()
        self.bot = FakeUser(bot_id, bot_username, global_name=None, bot=True, discriminator="4821")
        # Applications created since 2020 share their id with the bot user.
        self.application_id = bot_id
        self.owner = FakeUser(self.snowflake(), "shop-owner", global_name="Shop Owner")
        self.token = token or _token_for(bot_id)
        # OAuth2 app credentials: the client id is the application id.
        self.oauth_client_id = str(bot_id)
        self.oauth_client_secret = secrets.token_urlsafe(24)
        self.redirect_uris: list[str] = []  # the app's registered OAuth2 redirects
        # The Discord account "logged in" in the browser that opens /oauth2/authorize.
        self.browser_user: FakeUser | None = None
        self.code_ttl = code_ttl  # seconds an authorization code can be exchanged
        self.oauth_codes: dict[str, OAuthCode] = {}
        self.oauth_tokens: dict[str, OAuthToken] = {}  # access token -> token
        self.oauth_grants: dict[int, set[str]] = {}  # user id -> scopes ever authorized
        self.privileged_intents = privileged_intents
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.interaction_ack_timeout = interaction_ack_timeout
        self.interaction_token_ttl = interaction_token_ttl
        self.shard_count = shard_count
        self.require_mutual_guild_for_dm = require_mutual_guild_for_dm
        # Seconds a message nonce is remembered for ``enforce_nonce`` ("the past few
        # minutes" in Discord's docs).
        self.nonce_window = nonce_window
        self.host = host
        self.port = 0

        # --- world ---
        self.users: dict[int, FakeUser] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self._dm_channel_by_user: dict[int, int] = {}
        self.closed_dm_user_ids: set[int] = set()
        self.commands: dict[int | None, list[Json]] = {None: []}  # None = global

        # --- recordings ---
        self.requests: list[RecordedRequest] = []
        self.messages: defaultdict[int, list[Json]] = defaultdict(list)
        self.message_log: list[MessageEvent] = []
        self.interactions: dict[int, FakeInteraction] = {}
        self.interactions_by_token: dict[str, FakeInteraction] = {}
        self.interaction_responses: list[InteractionResponseRecord] = []
        self.gateway_log: list[GatewayFrame] = []
        self.attachments: dict[int, UploadedFile] = {}
        self.pinned_at: dict[int, str] = {}
        self._message_index: dict[int, Json] = {}
        # (channel id, author id, nonce) -> (monotonic time, message id), oldest first.
        self._nonces: OrderedDict[tuple[int, int, str], tuple[float, int]] = OrderedDict()
        # Ids of existing messages answered to an enforce_nonce repeat (nothing created).
        self.nonce_replays: list[int] = []
        self.forced_errors: list[ForcedError] = []
        # Exceptions raised inside the fake's own handlers (bugs); re-raised by stop().
        self.internal_errors: list[BaseException] = []

        self.limiter = RateLimiter(global_limit=global_rate_limit)
        self.gateway = Gateway(self)
        self.rest = RestApi(self)
        self.oauth = OAuthApi(self)
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        for path in ("/gateway", "/gateway/", "/gateway/resume"):
            app.router.add_get(path, self.gateway.handle)
        app.router.add_get(
            "/attachments/{channel_id}/{attachment_id}/{filename}", self._serve_attachment
        )
        # OAuth2 before the REST catch-all: the page is discord.com/oauth2/authorize (also
        # served under /api), the token endpoint /api/v10/oauth2/token (also version-less).
        for path in ("/oauth2/authorize", "/api/oauth2/authorize", "/api/v10/oauth2/authorize"):
            app.router.add_route("*", path, self.oauth.handle_authorize)
        for path in ("/api/oauth2/token", "/api/v10/oauth2/token"):
            app.router.add_route("*", path, self.oauth.handle_token)
        app.router.add_route("*", "/api/v10{tail:/.*}", self.rest.handle)
        app.router.add_route("*", "/{tail:.*}", self.rest.handle_unknown)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.internal_errors:
            raise RuntimeError(
                f"the fake Discord failed on {len(self.internal_errors)} request(s)"
            ) from self.internal_errors[0]

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"{self.http_base}/api/v10"

    @property
    def oauth_authorize_url(self) -> str:
        """discord.com/oauth2/authorize: ``api_base`` without its ``/api/v10`` path."""
        return f"{self.http_base}/oauth2/authorize"

    @property
    def oauth_token_url(self) -> str:
        return f"{self.api_base}/oauth2/token"

    @property
    def gateway_url(self) -> str:
        """Value for ``DiscordWebSocket.DEFAULT_GATEWAY`` (discord.py appends the query)."""
        return f"ws://{self.host}:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        # A distinct path so tests can see that the client honoured resume_gateway_url.
        return f"ws://{self.host}:{self.port}/gateway/resume"

    @contextlib.contextmanager
    def patch_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST base and default gateway at this fake (restored after)."""
        import discord.gateway
        import discord.http
        import yarl

        old_base = discord.http.Route.BASE
        old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE = old_base
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ------------------------------------------------------------------ OAuth2 sign-in
    def add_redirect_uri(self, uri: str) -> None:
        """Register an OAuth2 redirect (compared exactly, as Discord does)."""
        if uri not in self.redirect_uris:
            self.redirect_uris.append(uri)

    def approve(self, authorize_url: str, user: FakeUser | None = None) -> str:
        """Click "Authorize" on the consent page of ``authorize_url`` as ``user`` (default:
        ``browser_user``); returns the redirect (``Location``) Discord would send. Raises
        ``AuthorizeRefused`` where the page would show an error instead of redirecting."""
        return self.oauth.click(authorize_url, "authorize", user or self.browser_user)

    def deny(self, authorize_url: str, user: FakeUser | None = None) -> str:
        """Click "Cancel": the ``error=access_denied`` redirect (same rules as ``approve``)."""
        return self.oauth.click(authorize_url, "cancel", user or self.browser_user)

    def expire_codes(self) -> None:
        """Make every authorization code issued so far expired."""
        past = time.time() - 1
        for entry in self.oauth_codes.values():
            entry.expires_at = past

    def add_oauth_token(
        self, user: FakeUser, scopes: tuple[str, ...] = ("identify",)
    ) -> OAuthToken:
        """A bearer token as if ``user`` had authorized ``scopes`` (no browser round trip)."""
        self.users.setdefault(user.id, user)
        return self.oauth.issue(user.id, list(scopes))

    # ------------------------------------------------------------------ world building
    def add_user(
        self, username: str, *, global_name: str | None = None, bot: bool = False
    ) -> FakeUser:
        user = FakeUser(self.snowflake(), username, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Test Guild",
        *,
        owner: FakeUser | None = None,
        text_channels: tuple[str, ...] = ("general",),
        everyone_permissions: int = Permissions.DEFAULT_EVERYONE,
        bot_permissions: int = Permissions.DEFAULT_BOT,
    ) -> FakeGuild:
        """Create a guild the bot is in: @everyone, the bot's managed role, channels."""
        owner = owner or self.owner
        guild = FakeGuild(self.snowflake(), name, owner.id)
        guild.roles[guild.id] = FakeRole(guild.id, guild.id, "@everyone", everyone_permissions)
        bot_role = FakeRole(
            self.snowflake(), guild.id, self.bot.username, bot_permissions, 1, True, self.bot.id
        )
        guild.roles[bot_role.id] = bot_role
        self.guilds[guild.id] = guild
        self.add_member(guild, owner)
        self.add_member(guild, self.bot, roles=[bot_role])
        for channel_name in text_channels:
            self.add_channel(guild, channel_name)
        return guild

    def add_channel(
        self,
        guild: FakeGuild,
        name: str,
        *,
        type: int = ChannelType.GUILD_TEXT,
        parent: FakeChannel | None = None,
        topic: str | None = None,
        overwrites: list[PermissionOverwrite] | None = None,
    ) -> FakeChannel:
        channel = FakeChannel(
            self.snowflake(),
            type,
            name=name,
            guild_id=guild.id,
            position=len(guild.channels),
            parent_id=parent.id if parent else None,
            topic=topic,
            overwrites=list(overwrites or []),
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        return channel

    def add_role(self, guild: FakeGuild, name: str, *, permissions: int = 0) -> FakeRole:
        role = FakeRole(self.snowflake(), guild.id, name, permissions, position=len(guild.roles))
        guild.roles[role.id] = role
        return role

    def add_member(
        self,
        guild: FakeGuild,
        user: FakeUser,
        *,
        roles: list[FakeRole] | None = None,
        nick: str | None = None,
    ) -> FakeMember:
        self.users.setdefault(user.id, user)
        member = FakeMember(user, guild.id, [r.id for r in roles or []], nick)
        guild.members[user.id] = member
        return member

    def dm_channel_for(self, user: IdLike) -> FakeChannel:
        """The DM channel between the bot and ``user`` (Discord reuses one per pair)."""
        user_id = as_id(user)
        existing = self._dm_channel_by_user.get(user_id)
        if existing is not None:
            return self.channels[existing]
        channel = FakeChannel(self.snowflake(), ChannelType.DM, recipient=self.users[user_id])
        self.channels[channel.id] = channel
        self._dm_channel_by_user[user_id] = channel.id
        return channel

    def close_dms(self, user: IdLike) -> None:
        """The user disabled DMs from server members (or blocked the bot)."""
        self.closed_dm_user_ids.add(as_id(user))

    def open_dms(self, user: IdLike) -> None:
        self.closed_dm_user_ids.discard(as_id(user))

    def check_dm_allowed(self, user: FakeUser) -> None:
        mutual = any(user.id in g.members for g in self.guilds.values())
        if (
            user.id in self.closed_dm_user_ids
            or user.bot
            or (self.require_mutual_guild_for_dm and not mutual)
        ):
            raise error(CANNOT_DM)

    @property
    def application_flags(self) -> int:
        flags = _APP_COMMAND_BADGE
        for intent, flag in _APP_FLAG_FOR_INTENT.items():
            if self.privileged_intents & intent:
                flags |= flag
        return flags

    def guild_create_payload(self, guild: FakeGuild, intents: int) -> Json:
        # Without GUILD_PRESENCES Discord only includes the bot's own member
        # (plus members in voice); the rest must be chunked with op 8.
        if intents & Intents.GUILD_PRESENCES:
            members = list(guild.members.values())
        else:
            members = [guild.members[self.bot.id]]
        return guild.to_payload(members=members, large=len(guild.members) > 250)

    # ------------------------------------------------------------------ rate limit controls
    def set_route_limit(self, method: str, route: str, limit: int, per: float) -> None:
        """E.g. ``set_route_limit("POST", "/channels/{channel_id}/messages", 5, 5.0)``."""
        self.limiter.set_route_limit(method, route, limit, per)

    def set_default_route_limit(self, limit: int, per: float) -> None:
        self.limiter.default_limit = RouteLimit(limit, per)

    def force_rate_limit(
        self,
        method: str | None,
        route: str,
        *,
        count: int = 1,
        retry_after: float = 0.2,
        is_global: bool = False,
        cloudflare: bool = False,
    ) -> ForcedRateLimit:
        """Answer the next ``count`` matching requests with 429 (template or concrete path)."""
        forced = ForcedRateLimit(method, route, count, retry_after, is_global, cloudflare)
        self.limiter.force(forced)
        return forced

    def force_error(
        self,
        method: str | None,
        route: str,
        *,
        status: int = 500,
        count: int = 1,
        code: int = 0,
        message: str | None = None,
    ) -> ForcedError:
        """Answer the next ``count`` matching requests with ``status`` (e.g. a 502 outage).

        discord.py retries 500/502/504/524 itself (sleeping 1 s, 3 s, ...), so keep
        ``count`` small; other statuses surface immediately as exceptions.
        """
        forced = ForcedError(method, route, count, status, code, message)
        self.forced_errors.append(forced)
        return forced

    # ------------------------------------------------------------------ gateway controls
    async def disconnect(self, *, code: int = 4000, resumable: bool = True) -> int:
        """Drop every gateway socket (bot sees a network blip / Discord restart).

        With ``resumable=False`` the session is invalidated first, so the client's
        RESUME gets op 9 and it must IDENTIFY again.
        """
        return await self.gateway.disconnect(code=code, resumable=resumable)

    async def send_reconnect(self) -> None:
        """op 7: Discord asks the client to reconnect and resume."""
        await self.gateway.send_op_to_all(RECONNECT, None)

    async def invalidate_session(self, *, resumable: bool = False) -> None:
        """op 9 with ``d=resumable``."""
        if not resumable:
            for session in self.gateway.sessions.values():
                session.invalidated = True
        await self.gateway.send_op_to_all(INVALID_SESSION, resumable)

    async def dispatch(self, event: str, data: Json, *, guild_id: int | None = None) -> int:
        """Send an arbitrary DISPATCH to every live session; returns how many got it."""
        return await self.gateway.dispatch(event, data, guild_id=guild_id)

    @property
    def identify_count(self) -> int:
        return self.gateway.identify_count

    @property
    def resume_count(self) -> int:
        return self.gateway.resume_count

    @property
    def sessions(self) -> dict[str, GatewaySession]:
        return self.gateway.sessions

    # ------------------------------------------------------------------ messages
    def get_message(self, message_id: IdLike) -> Json | None:
        return self._message_index.get(as_id(message_id))

    def channel_of(self, target: IdLike) -> FakeChannel:
        return self.channels[as_id(target)]

    def build_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        body: Json,
        files: list[UploadedFile],
        *,
        flags_mask: int,
        extra_flags: int = 0,
        msg_type: int = 0,
    ) -> Json:
        flags = (int(body.get("flags") or 0) & flags_mask) | extra_flags
        content = body.get("content") or ""
        msg: Json = {
            "id": str(self.snowflake()),
            "type": msg_type,
            "channel_id": str(channel.id),
            "author": author.to_payload(),
            "content": content,
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": self.make_attachments(channel, body, files, bool(flags & EPHEMERAL)),
            "embeds": normalize_embeds(body.get("embeds") or []),
            "components": number_components(body.get("components") or []),
            "pinned": False,
            "flags": flags,
        }
        if body.get("nonce") is not None:
            msg["nonce"] = body["nonce"]
        if body.get("poll"):
            msg["poll"] = body["poll"]
        self._set_mentions(msg, channel, body)
        return msg

    def _set_mentions(self, msg: Json, channel: FakeChannel, body: Json) -> None:
        content = msg.get("content") or ""
        user_ids = dict.fromkeys(int(u) for u in USER_MENTION.findall(content))
        msg["mentions"] = [self.users[u].to_payload() for u in user_ids if u in self.users]
        guild = self.guilds.get(channel.guild_id or 0)
        roles = [r for r in ROLE_MENTION.findall(content) if guild and int(r) in guild.roles]
        msg["mention_roles"] = list(dict.fromkeys(roles))
        parse = (body.get("allowed_mentions") or {}).get("parse", ["everyone"])
        msg["mention_everyone"] = "@everyone" in content and "everyone" in parse

    def make_attachments(
        self, channel: FakeChannel, body: Json, files: list[UploadedFile], ephemeral: bool
    ) -> list[Json]:
        meta_by_id = {str(a.get("id")): a for a in body.get("attachments") or []}
        out: list[Json] = []
        for index, upload in enumerate(files):
            match = re.fullmatch(r"files\[(\d+)\]", upload.field_name)
            meta = meta_by_id.get(match.group(1) if match else str(index), {})
            attachment_id = self.snowflake()
            filename = str(meta.get("filename") or upload.filename)
            url = f"{self.http_base}/attachments/{channel.id}/{attachment_id}/{filename}"
            attachment: Json = {
                "id": str(attachment_id),
                "filename": filename,
                "size": len(upload.data),
                "url": url,
                "proxy_url": url,
                "content_type": guess_content_type(filename, upload.content_type),
            }
            if meta.get("description"):
                attachment["description"] = meta["description"]
            if ephemeral:
                attachment["ephemeral"] = True
            self.attachments[attachment_id] = upload
            out.append(attachment)
        return out

    def store_message(self, msg: Json) -> Json:
        channel_id = int(msg["channel_id"])
        self.messages[channel_id].append(msg)
        self._message_index[int(msg["id"])] = msg
        channel = self.channels.get(channel_id)
        if channel is not None:
            channel.last_message_id = int(msg["id"])
        self.message_log.append(MessageEvent("create", channel_id, int(msg["id"]), json_copy(msg)))
        self._notify()
        return msg

    def remember_nonce(self, msg: Json) -> None:
        """Note a created message's nonce, for later ``enforce_nonce`` requests."""
        if msg.get("nonce") is None:
            return
        key = (int(msg["channel_id"]), int(msg["author"]["id"]), str(msg["nonce"]))
        self._nonces.pop(key, None)
        self._nonces[key] = (time.monotonic(), int(msg["id"]))

    def message_by_nonce(self, channel: IdLike, author: IdLike, nonce: str | int) -> Json | None:
        """The message ``author`` created in ``channel`` with ``nonce`` within the last
        ``nonce_window`` seconds, if it still exists."""
        now = time.monotonic()
        while self._nonces:  # forget expired nonces, oldest first
            oldest = next(iter(self._nonces.values()))[0]
            if now - oldest <= self.nonce_window:
                break
            self._nonces.popitem(last=False)
        found = self._nonces.get((as_id(channel), as_id(author), str(nonce)))
        return None if found is None else self.get_message(found[1])

    def log_edit(self, msg: Json) -> None:
        self.message_log.append(
            MessageEvent("edit", int(msg["channel_id"]), int(msg["id"]), json_copy(msg))
        )
        self._notify()

    def remove_message(self, msg: Json) -> None:
        channel_id, message_id = int(msg["channel_id"]), int(msg["id"])
        self.messages[channel_id] = [m for m in self.messages[channel_id] if m is not msg]
        self._message_index.pop(message_id, None)
        self.message_log.append(MessageEvent("delete", channel_id, message_id, json_copy(msg)))
        self._notify()

    def content_is_privileged(self, msg: Json, channel: FakeChannel) -> bool:
        """Whether MESSAGE_CONTENT is needed to see this message's content."""
        if channel.is_dm or int(msg["author"]["id"]) == self.bot.id:
            return False
        return not any(int(u["id"]) == self.bot.id for u in msg.get("mentions", []))

    @staticmethod
    def strip_content(msg: Json) -> Json:
        stripped = dict(msg)
        stripped.update(content="", embeds=[], attachments=[], components=[])
        stripped.pop("poll", None)
        return stripped

    async def dispatch_message(self, event: str, msg: Json) -> int:
        """MESSAGE_CREATE/UPDATE to sessions with the matching intent (never ephemerals)."""
        if int(msg.get("flags") or 0) & EPHEMERAL:
            return 0
        channel = self.channels[int(msg["channel_id"])]
        data = dict(msg)
        intent = Intents.DIRECT_MESSAGES if channel.is_dm else Intents.GUILD_MESSAGES
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            member = self.guilds[channel.guild_id].members.get(int(msg["author"]["id"]))
            if member is not None:
                data["member"] = member.to_payload(with_user=False)
        privileged = self.content_is_privileged(msg, channel)

        def for_session(session: GatewaySession, payload: Json) -> Json:
            if privileged and not session.has(Intents.MESSAGE_CONTENT):
                return self.strip_content(payload)
            return payload

        return await self.gateway.dispatch(
            event, data, guild_id=channel.guild_id, intent=intent, transform=for_session
        )

    async def inject_message(
        self,
        channel: IdLike,
        author: FakeUser,
        content: str = "",
        *,
        embeds: list[Json] | None = None,
        files: list[UploadedFile] | None = None,
    ) -> Json:
        """A user posts in a channel: stored, then MESSAGE_CREATE is dispatched."""
        target = self.channel_of(channel)
        body: Json = {"content": content, "embeds": embeds or []}
        msg = self.build_message(target, author, body, files or [], flags_mask=0)
        self.store_message(msg)
        await self.dispatch_message("MESSAGE_CREATE", msg)
        return msg

    # ------------------------------------------------------------------ interactions
    def _interaction_base(self, kind: int, user: FakeUser, channel: FakeChannel) -> Json:
        interaction_id = self.snowflake()
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
        payload: Json = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "token": token,
            "version": 1,
            "channel_id": str(channel.id),
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        guild = self.guilds.get(channel.guild_id or 0)
        if guild is not None:
            member = guild.members.get(user.id)
            if member is None:
                raise ValueError(f"user {user.username!r} is not a member of {guild.name!r}")
            user_perms = guild.channel_permissions(user.id, channel)
            channel_payload = channel.to_payload()
            channel_payload["permissions"] = str(user_perms)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
                guild_locale="en-US",
                channel=channel_payload,
                member=member.to_payload(permissions=user_perms),
                app_permissions=str(guild.channel_permissions(self.bot.id, channel)),
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            channel_payload = channel.to_payload()
            channel_payload["permissions"] = str(Permissions.DEFAULT_EVERYONE)
            payload.update(
                user=user.to_payload(),
                channel=channel_payload,
                app_permissions=str(Permissions.DEFAULT_EVERYONE),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        return payload

    async def _deliver(
        self, payload: Json, *, component_message_id: int | None = None
    ) -> FakeInteraction:
        channel = self.channels[int(payload["channel_id"])]
        user_id = int((payload.get("member") or payload)["user"]["id"])
        interaction = FakeInteraction(
            id=int(payload["id"]),
            token=payload["token"],
            type=payload["type"],
            application_id=self.application_id,
            guild_id=channel.guild_id,
            channel_id=channel.id,
            user_id=user_id,
            payload=payload,
            component_message_id=component_message_id,
        )
        self.interactions[interaction.id] = interaction
        self.interactions_by_token[interaction.token] = interaction
        # The 3-second acknowledgement window starts when Discord dispatches.
        interaction.created_at = time.monotonic()
        delivered = await self.gateway.dispatch(
            "INTERACTION_CREATE", payload, guild_id=channel.guild_id
        )
        if not delivered:
            raise RuntimeError("no identified gateway session to deliver the interaction to")
        self._notify()
        return interaction

    def find_command(self, name: str, guild_id: int | None, command_type: int = 1) -> Json | None:
        for scope in ([guild_id] if guild_id else []) + [None]:
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == command_type:
                    return cmd
        return None

    async def inject_slash_command(
        self,
        name: str,
        *,
        user: FakeUser,
        channel: IdLike,
        options: dict[str, Any] | list[Json] | None = None,
        require_registered: bool = True,
    ) -> FakeInteraction:
        """A user runs ``/name`` (``"group sub"`` for subcommands) with ``options``.

        ``options`` is ``{"option_name": value}`` (types taken from the synced command)
        or a raw Discord option list.
        """
        return await self._inject_command(
            2,
            name,
            user=user,
            channel=channel,
            options=options,
            require_registered=require_registered,
        )

    async def inject_autocomplete(
        self,
        name: str,
        *,
        user: FakeUser,
        channel: IdLike,
        focused: str,
        options: dict[str, Any],
    ) -> FakeInteraction:
        """Autocomplete (type 4) while the user types in option ``focused``."""
        return await self._inject_command(
            4, name, user=user, channel=channel, options=options, focused=focused
        )

    async def _inject_command(
        self,
        kind: int,
        name: str,
        *,
        user: FakeUser,
        channel: IdLike,
        options: dict[str, Any] | list[Json] | None,
        focused: str | None = None,
        require_registered: bool = True,
    ) -> FakeInteraction:
        target = self.channel_of(channel)
        root, *path = name.split()
        command = self.find_command(root, target.guild_id)
        if command is None and require_registered:
            raise LookupError(f"/{root} is not registered (sync the CommandTree first)")
        resolved: Json = {}
        definitions: list[Json] = list((command or {}).get("options") or [])
        # Walk down the subcommand path, nesting option objects like Discord does.
        top: list[Json] = []
        container = top
        for part in path:
            definition = next((o for o in definitions if o["name"] == part), None)
            if definition is None and require_registered:
                raise LookupError(f"/{name}: unknown subcommand {part!r}")
            sub: Json = {
                "type": definition["type"] if definition else _OPT_SUBCOMMAND,
                "name": part,
                "options": [],
            }
            container.append(sub)
            container = sub["options"]
            definitions = list((definition or {}).get("options") or [])
        if isinstance(options, list):
            container.extend(options)
        else:
            for opt_name, value in (options or {}).items():
                container.append(
                    self._build_option(opt_name, value, definitions, target, resolved, focused)
                )
        data: Json = {
            "id": (command or {}).get("id", str(self.snowflake())),
            "name": root,
            "type": 1,
            "options": top,
        }
        if command is not None and command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if resolved:
            data["resolved"] = resolved
        payload = self._interaction_base(kind, user, target)
        payload["data"] = data
        return await self._deliver(payload)

    def _build_option(
        self,
        name: str,
        value: Any,
        definitions: list[Json],
        channel: FakeChannel,
        resolved: Json,
        focused: str | None,
    ) -> Json:
        definition = next((o for o in definitions if o["name"] == name), None)
        if definition is None and definitions:
            raise LookupError(f"unknown option {name!r}; known: {[o['name'] for o in definitions]}")
        kind = definition["type"] if definition else _infer_option_type(value)
        option: Json = {"name": name, "type": kind}
        if kind == _OPT_INTEGER and focused != name:
            option["value"] = int(value)
        elif kind == _OPT_NUMBER and focused != name:
            option["value"] = float(value)
        elif kind == _OPT_BOOLEAN:
            option["value"] = bool(value)
        elif kind in (_OPT_USER, _OPT_CHANNEL, _OPT_ROLE, _OPT_MENTIONABLE):
            snowflake = as_id(value)
            option["value"] = str(snowflake)
            self._resolve(snowflake, channel, resolved)
        else:
            option["value"] = value if focused == name else str(value)
        if focused == name:
            option["focused"] = True  # autocomplete sends the partial text as typed
        return option

    def _resolve(self, snowflake: int, channel: FakeChannel, resolved: Json) -> None:
        guild = self.guilds.get(channel.guild_id or 0)
        if snowflake in self.users:
            resolved.setdefault("users", {})[str(snowflake)] = self.users[snowflake].to_payload()
            member = guild.members.get(snowflake) if guild else None
            if member is not None and guild is not None:
                perms = guild.channel_permissions(snowflake, channel)
                resolved.setdefault("members", {})[str(snowflake)] = member.to_payload(
                    permissions=perms, with_user=False
                )
        elif guild is not None and snowflake in guild.roles:
            resolved.setdefault("roles", {})[str(snowflake)] = guild.roles[snowflake].to_payload()
        elif snowflake in self.channels:
            target = self.channels[snowflake]
            partial = target.to_payload()
            if guild is not None:
                partial["permissions"] = str(guild.channel_permissions(self.bot.id, target))
            resolved.setdefault("channels", {})[str(snowflake)] = partial
        else:
            raise LookupError(f"cannot resolve snowflake {snowflake}")

    async def inject_component(
        self,
        custom_id: str,
        *,
        message: IdLike | Json,
        user: FakeUser,
        values: list[str] | None = None,
    ) -> FakeInteraction:
        """A user clicks a button / picks in a select menu on ``message``."""
        message_id = int(message["id"]) if isinstance(message, dict) else as_id(message)
        msg = self.get_message(message_id)
        if msg is None:
            raise LookupError(f"message {message_id} is unknown to the fake")
        component = next(
            (
                c
                for c in iter_components(msg.get("components") or [])
                if c.get("custom_id") == custom_id
            ),
            None,
        )
        if component is None:
            raise LookupError(f"message {message_id} has no component with custom_id {custom_id!r}")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; Discord would not send a click")
        channel = self.channels[int(msg["channel_id"])]
        payload = self._interaction_base(3, user, channel)
        data: Json = {"custom_id": custom_id, "component_type": component["type"]}
        if "id" in component:
            data["id"] = component["id"]
        if component["type"] != 2:  # select menus
            data["values"] = list(values or [])
        payload["data"] = data
        payload["message"] = json_copy(msg)
        return await self._deliver(payload, component_message_id=message_id)

    async def inject_modal_submit(
        self,
        custom_id: str,
        *,
        user: FakeUser,
        values: dict[str, str],
        channel: IdLike | None = None,
    ) -> FakeInteraction:
        """Submit the modal the bot opened (callback type 9) with text ``values``."""
        source = next(
            (
                i
                for i in reversed(list(self.interactions.values()))
                if i.response_type == 9 and i.response_data.get("custom_id") == custom_id
            ),
            None,
        )
        if source is None:
            raise LookupError(f"no modal with custom_id {custom_id!r} was opened")
        target = (
            self.channel_of(channel) if channel is not None else self.channels[source.channel_id]
        )
        components: list[Json] = []
        for row in source.response_data.get("components") or []:
            inner = row.get("components") or ([row["component"]] if "component" in row else [])
            submitted = [
                {
                    "type": c["type"],
                    "id": c.get("id", 0),
                    "custom_id": c["custom_id"],
                    "value": values.get(c["custom_id"], ""),
                }
                for c in inner
                if c.get("custom_id")
            ]
            if row.get("type") == 18 and submitted:  # label wrapper (new modal layout)
                components.append({"type": 18, "id": row.get("id", 0), "component": submitted[0]})
            elif submitted:
                components.append({"type": 1, "id": row.get("id", 0), "components": submitted})
        payload = self._interaction_base(5, user, target)
        payload["data"] = {"custom_id": custom_id, "components": components}
        if source.component_message_id is not None:
            msg = self.get_message(source.component_message_id)
            if msg is not None:
                payload["message"] = json_copy(msg)
        return await self._deliver(payload)

    # ------------------------------------------------------------------ recordings & waiting
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = WAIT_TIMEOUT,
    ) -> T:
        """Wait until ``predicate()`` is truthy and return it (re-checked on every change).

        Event-driven, no polling: every request, message, interaction response and
        gateway frame wakes the waiters. Raises ``TimeoutError`` after ``timeout``.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            changed = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

    def requests_to(self, method: str, route: str) -> list[RecordedRequest]:
        """Recorded requests by method and template or concrete path."""
        return [
            r for r in self.requests if r.method == method.upper() and route in (r.route, r.path)
        ]

    async def wait_for_request(
        self,
        method: str,
        route: str,
        *,
        count: int = 1,
        timeout: float = WAIT_TIMEOUT,
    ) -> list[RecordedRequest]:
        """Until ``count`` matching requests have been answered; returns them."""

        def answered() -> list[RecordedRequest] | None:
            found = [r for r in self.requests_to(method, route) if r.status]
            return found if len(found) >= count else None

        return await self.wait_for(answered, timeout)

    async def wait_for_message(
        self,
        channel: IdLike,
        predicate: Callable[[Json], bool] | None = None,
        *,
        timeout: float = WAIT_TIMEOUT,
    ) -> Json:
        """First message (current state) in ``channel`` matching ``predicate``."""
        channel_id = as_id(channel)

        def found() -> Json | None:
            for msg in self.messages[channel_id]:
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.wait_for(found, timeout)

    async def wait_for_response(
        self,
        interaction: FakeInteraction,
        *,
        timeout: float = WAIT_TIMEOUT,
    ) -> InteractionResponseRecord:
        """The first callback attempt (accepted or rejected) for ``interaction``."""

        def found() -> InteractionResponseRecord | None:
            for record in self.interaction_responses:
                if record.interaction_id == interaction.id:
                    return record
            return None

        return await self.wait_for(found, timeout)

    async def wait_until_ready(
        self,
        *,
        sessions: int = 1,
        timeout: float = WAIT_TIMEOUT,
    ) -> None:
        """Until ``sessions`` sessions got READY and all GUILD_CREATEs and are connected."""
        await self.wait_for(
            lambda: (
                len([s for s in self.gateway.live_sessions() if s.connection is not None])
                >= sessions
            ),
            timeout,
        )

    async def _serve_attachment(self, request: web.Request) -> web.Response:
        upload = self.attachments.get(int(request.match_info["attachment_id"]))
        if upload is None:
            return web.Response(status=404, text="Not Found")
        return web.Response(
            body=upload.data,
            content_type=guess_content_type(upload.filename, upload.content_type).split(";")[0],
        )


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return _OPT_BOOLEAN
    if isinstance(value, int):
        return _OPT_INTEGER
    if isinstance(value, float):
        return _OPT_NUMBER
    return _OPT_STRING
