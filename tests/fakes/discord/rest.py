"""REST API v10 of the fake: routing, auth, rate limits, handlers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .messages import (
    EPHEMERAL,
    INTERACTION_SETTABLE_FLAGS,
    LOADING,
    SETTABLE_FLAGS,
    json_copy,
    normalize_embeds,
    number_components,
    require_not_empty,
    validate_body,
)
from .models import FakeChannel, FakeGuild, Intents, Json, Permissions, iso_now
from .oauth import OAuthToken
from .records import (
    ALREADY_ACKNOWLEDGED,
    CANNOT_EDIT_OTHERS,
    INVALID_JSON,
    INVALID_RECIPIENTS,
    INVALID_WEBHOOK_TOKEN,
    MISSING_ACCESS,
    MISSING_PERMISSIONS,
    UNKNOWN_CHANNEL,
    UNKNOWN_COMMAND,
    UNKNOWN_GUILD,
    UNKNOWN_INTERACTION,
    UNKNOWN_MEMBER,
    UNKNOWN_MESSAGE,
    UNKNOWN_USER,
    UNKNOWN_WEBHOOK,
    ApiError,
    FakeInteraction,
    InteractionResponseRecord,
    RecordedRequest,
    UploadedFile,
    error,
    form_error,
    method_not_allowed,
    not_found,
    unauthorized,
)

if TYPE_CHECKING:
    from .server import FakeDiscord

Reply = tuple[int, Any]

# Callback types each interaction type accepts (1 PONG, 4 message, 5 deferred message,
# 6 deferred update, 7 update, 8 autocomplete result, 9 modal).
ALLOWED_CALLBACKS: dict[int, set[int]] = {
    1: {1},
    2: {4, 5, 9},
    3: {4, 5, 6, 7, 9},
    4: {8},
    5: {4, 5, 6, 7},
}
_COMMAND_NAME = re.compile(r"^[-_'\w]{1,32}$")
_TRUE = ("1", "true", "True")


@dataclass
class Ctx:
    request: web.Request
    record: RecordedRequest
    params: dict[str, str]
    body: Any
    files: list[UploadedFile]
    bearer: OAuthToken | None = None  # set when a user's OAuth2 token authenticated

    def id(self, name: str) -> int:
        return int(self.params[name])

    @property
    def query(self) -> dict[str, str]:
        return self.record.query

    def obj(self) -> Json:
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise form_error("", "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return self.body


Handler = Callable[[Ctx], Awaitable[Reply]]


@dataclass
class RouteSpec:
    method: str
    template: str
    handler: Handler
    auth: bool = True
    # Interaction endpoints are not bound to the bot's global rate limit.
    global_exempt: bool = False
    # The OAuth2 scope with which a user's ``Bearer`` token may call this route (None: bot only).
    oauth_scope: str | None = None
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        def placeholder(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.endswith("token"):
                pattern = r"[^/]+"
            elif name == "message_ref":
                pattern = r"\d+|@original"
            else:
                pattern = r"\d+"
            return f"(?P<{name}>{pattern})"

        self.regex = re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", placeholder, re.escape(self.template)) + "$"
        )

    def major(self, params: dict[str, str]) -> str:
        for key in ("channel_id", "guild_id"):
            if key in params:
                return params[key]
        if "interaction_token" in params:
            owner = params.get("interaction_id") or params.get("application_id", "")
            return f"{owner}+{params['interaction_token']}"
        return ""


def _json_response(status: int, body: Any, headers: dict[str, str]) -> web.Response:
    headers = {"Via": "1.1 google", **headers}
    if status == 204 or body is None:
        return web.Response(status=204 if status < 300 else status, headers=headers)
    # Exactly "application/json", no charset: discord.py compares the header verbatim
    # and would hand the body back as a str otherwise.
    headers["Content-Type"] = "application/json"
    return web.Response(
        status=status, body=json.dumps(body, separators=(",", ":")).encode(), headers=headers
    )


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        s = RouteSpec
        self.routes: list[RouteSpec] = [
            s("GET", "/gateway", self.get_gateway, auth=False),
            s("GET", "/gateway/bot", self.get_gateway_bot),
            s("GET", "/users/@me", self.get_me, oauth_scope="identify"),
            s("POST", "/users/@me/channels", self.create_dm),
            s("GET", "/users/{user_id}", self.get_user),
            s("GET", "/oauth2/applications/@me", self.get_application),
            s("GET", "/applications/@me", self.get_application),
            s("GET", "/applications/{application_id}/commands", self.list_commands),
            s("PUT", "/applications/{application_id}/commands", self.put_commands),
            s("POST", "/applications/{application_id}/commands", self.post_command),
            s("GET", "/applications/{application_id}/commands/{command_id}", self.get_command),
            s(
                "DELETE",
                "/applications/{application_id}/commands/{command_id}",
                self.delete_command,
            ),
            s(
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self.list_commands,
            ),
            s(
                "PUT",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self.put_commands,
            ),
            s(
                "POST",
                "/applications/{application_id}/guilds/{guild_id}/commands",
                self.post_command,
            ),
            s(
                "GET",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self.get_command,
            ),
            s(
                "DELETE",
                "/applications/{application_id}/guilds/{guild_id}/commands/{command_id}",
                self.delete_command,
            ),
            s("GET", "/channels/{channel_id}", self.get_channel),
            s("GET", "/channels/{channel_id}/messages", self.list_messages),
            s("POST", "/channels/{channel_id}/messages", self.create_message),
            s("GET", "/channels/{channel_id}/messages/pins", self.list_pins),
            s("PUT", "/channels/{channel_id}/messages/pins/{message_id}", self.pin),
            s("DELETE", "/channels/{channel_id}/messages/pins/{message_id}", self.unpin),
            s("GET", "/channels/{channel_id}/pins", self.list_pins_legacy),
            s("PUT", "/channels/{channel_id}/pins/{message_id}", self.pin),
            s("DELETE", "/channels/{channel_id}/pins/{message_id}", self.unpin),
            s("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            s("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            s("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            s("POST", "/channels/{channel_id}/typing", self.typing),
            s("GET", "/guilds/{guild_id}", self.get_guild),
            s("GET", "/guilds/{guild_id}/channels", self.get_guild_channels),
            s("GET", "/guilds/{guild_id}/roles", self.get_guild_roles),
            s("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
            s(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                self.interaction_callback,
                auth=False,
                global_exempt=True,
            ),
            s(
                "POST",
                "/webhooks/{application_id}/{interaction_token}",
                self.execute_followup,
                auth=False,
                global_exempt=True,
            ),
            s(
                "GET",
                "/webhooks/{application_id}/{interaction_token}/messages/{message_ref}",
                self.get_webhook_message,
                auth=False,
                global_exempt=True,
            ),
            s(
                "PATCH",
                "/webhooks/{application_id}/{interaction_token}/messages/{message_ref}",
                self.edit_webhook_message,
                auth=False,
                global_exempt=True,
            ),
            s(
                "DELETE",
                "/webhooks/{application_id}/{interaction_token}/messages/{message_ref}",
                self.delete_webhook_message,
                auth=False,
                global_exempt=True,
            ),
        ]

    # ------------------------------------------------------------------ plumbing
    async def handle_unknown(self, request: web.Request) -> web.Response:
        return _json_response(404, not_found().body(), {})

    def _match(self, method: str, path: str) -> tuple[RouteSpec, dict[str, str]]:
        path_matched = False
        for spec in self.routes:
            match = spec.regex.match(path)
            if match is None:
                continue
            path_matched = True
            if spec.method == method:
                return spec, match.groupdict()
        raise method_not_allowed() if path_matched else not_found()

    async def _read_body(
        self, request: web.Request
    ) -> tuple[Any, list[UploadedFile], ApiError | None]:
        files: list[UploadedFile] = []
        if request.content_type.startswith("multipart/"):
            body: Json = {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "payload_json":
                    try:
                        body.update(json.loads(await part.text()))
                    except ValueError:
                        return None, files, error(INVALID_JSON)
                elif part.filename is not None:
                    data = bytes(await part.read(decode=False))
                    files.append(
                        UploadedFile(
                            part.name or "",
                            part.filename,
                            part.headers.get("Content-Type", "application/octet-stream"),
                            data,
                        )
                    )
                elif part.name:
                    body[part.name] = await part.text()
            return body, files, None
        raw = await request.read()
        if not raw:
            return None, files, None
        try:
            return json.loads(raw), files, None
        except ValueError:
            return None, files, error(INVALID_JSON)

    async def handle(self, request: web.Request) -> web.Response:
        fake = self.fake
        path = request.match_info["tail"]
        method = request.method
        body, files, body_error = await self._read_body(request)
        record = RecordedRequest(
            method=method,
            path=path,
            route=None,
            params={},
            query=dict(request.query),
            headers=dict(request.headers),
            json=body,
            files=files,
        )
        fake.requests.append(record)
        headers: dict[str, str] = {}
        try:
            spec, params = self._match(method, path)
            record.route, record.params = spec.template, params
            authorization = request.headers.get("Authorization", "")
            bearer: OAuthToken | None = None
            if spec.auth and authorization != f"Bot {fake.token}":
                if spec.oauth_scope is None or not authorization.lower().startswith("bearer "):
                    raise unauthorized()
                bearer = fake.oauth.bearer(authorization, spec.oauth_scope)  # or 401
            for forced in fake.forced_errors:
                if forced.matches(method, spec.template, path):
                    forced.count -= 1
                    raise forced.to_error()
            # A user's token has its own limits on Discord: keep it off the bot's buckets.
            if bearer is None:
                verdict = fake.limiter.check(
                    method,
                    spec.template,
                    path,
                    spec.major(params),
                    global_exempt=spec.global_exempt,
                )
                if not verdict.allowed:
                    record.status = 429
                    fake._notify()
                    if verdict.cloudflare:  # a Cloudflare ban: HTML, no Via header
                        return web.Response(
                            status=429, text="error code: 1015", content_type="text/html"
                        )
                    record.response = verdict.body()
                    return _json_response(429, verdict.body(), verdict.headers)
                headers = verdict.headers
            if body_error is not None:
                raise body_error
            status, payload = await spec.handler(Ctx(request, record, params, body, files, bearer))
        except ApiError as exc:
            status, payload = exc.status, exc.body()
        except Exception as exc:  # a bug in the fake itself
            fake.internal_errors.append(exc)
            # 503 rather than 500: discord.py retries 500s for ~25 s, 503 fails at once.
            status, payload = 503, {"message": f"fake Discord internal error: {exc!r}", "code": 0}
        record.status = 204 if status < 300 and payload is None else status
        record.response = payload
        fake._notify()
        return _json_response(status, payload, headers)

    # ------------------------------------------------------------------ lookups & checks
    def _channel(self, ctx: Ctx) -> FakeChannel:
        channel = self.fake.channels.get(ctx.id("channel_id"))
        if channel is None:
            raise error(UNKNOWN_CHANNEL)
        if channel.guild_id is not None:
            self._need(channel, Permissions.VIEW_CHANNEL, MISSING_ACCESS)
        return channel

    def _guild(self, ctx: Ctx) -> FakeGuild:
        guild = self.fake.guilds.get(ctx.id("guild_id"))
        if guild is None:
            raise error(UNKNOWN_GUILD)
        if self.fake.bot.id not in guild.members:
            raise error(MISSING_ACCESS)
        return guild

    def _need(self, channel: FakeChannel, permission: int, spec: tuple[int, int, str]) -> None:
        if channel.guild_id is None:
            return
        guild = self.fake.guilds[channel.guild_id]
        if not guild.channel_permissions(self.fake.bot.id, channel) & permission:
            raise error(spec)

    def _message(self, channel: FakeChannel, message_id: int) -> Json:
        msg = self.fake.get_message(message_id)
        # Ephemeral messages exist only for their recipient; channel routes can't see them.
        if (
            msg is None
            or int(msg["channel_id"]) != channel.id
            or int(msg.get("flags") or 0) & EPHEMERAL
        ):
            raise error(UNKNOWN_MESSAGE)
        return msg

    def _visible(self, msg: Json, channel: FakeChannel) -> Json:
        if not self.fake.privileged_intents & Intents.MESSAGE_CONTENT and (
            self.fake.content_is_privileged(msg, channel)
        ):
            return self.fake.strip_content(msg)
        return msg

    # ------------------------------------------------------------------ gateway & users
    async def get_gateway(self, ctx: Ctx) -> Reply:
        return 200, {"url": self.fake.gateway_url}

    async def get_gateway_bot(self, ctx: Ctx) -> Reply:
        return 200, {
            "url": self.fake.gateway_url,
            "shards": self.fake.shard_count,
            "session_start_limit": {
                "total": 1000,
                "remaining": max(0, 1000 - self.fake.identify_count),
                "reset_after": 86_400_000,
                "max_concurrency": 1,
            },
        }

    async def get_me(self, ctx: Ctx) -> Reply:
        if ctx.bearer is not None:  # a user's OAuth2 token (scope identify checked already)
            user = self.fake.users[ctx.bearer.user_id]
            return 200, self.fake.oauth.me_payload(user, ctx.bearer)
        return 200, self.fake.bot.to_self_payload()

    async def get_user(self, ctx: Ctx) -> Reply:
        user = self.fake.users.get(ctx.id("user_id"))
        if user is None:
            raise error(UNKNOWN_USER)
        return 200, user.to_payload()

    async def create_dm(self, ctx: Ctx) -> Reply:
        recipient = ctx.obj().get("recipient_id")
        try:
            user = self.fake.users[int(str(recipient))]
        except (KeyError, ValueError):
            raise error(INVALID_RECIPIENTS) from None
        # Opening the channel always works; closed DMs only fail on send.
        return 200, self.fake.dm_channel_for(user).to_payload()

    async def get_application(self, ctx: Ctx) -> Reply:
        fake = self.fake
        return 200, {
            "id": str(fake.application_id),
            "name": fake.bot.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "owner": fake.owner.to_payload(),
            "team": None,
            "flags": fake.application_flags,
            "bot": fake.bot.to_payload(),
            "redirect_uris": list(fake.redirect_uris),
            "rpc_origins": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "tags": [],
            "integration_types_config": {"0": {}},
            "approximate_guild_count": len(fake.guilds),
            "approximate_user_install_count": 0,
        }

    # ------------------------------------------------------------------ application commands
    def _scope(self, ctx: Ctx) -> int | None:
        if ctx.id("application_id") != self.fake.application_id:
            raise error(MISSING_ACCESS)
        if "guild_id" in ctx.params:
            return self._guild(ctx).id
        return None

    def _command_payload(
        self, body: Any, index: str, scope: int | None, existing: list[Json]
    ) -> Json:
        if not isinstance(body, dict):
            raise form_error(
                index, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType"
            )
        kind = int(body.get("type") or 1)
        name = body.get("name")
        prefix = f"{index}." if index else ""
        if kind == 1:
            if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
                raise form_error(
                    f"{prefix}name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            description = body.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 100:
                raise form_error(
                    f"{prefix}description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            _validate_options(f"{prefix}options", body.get("options") or [])
        elif not isinstance(name, str) or not 1 <= len(name) <= 32:
            raise form_error(
                f"{prefix}name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
            )
        previous = next((c for c in existing if c["name"] == name and c["type"] == kind), None)
        permissions = body.get("default_member_permissions")
        payload: Json = {
            # Discord keeps a command's id when it is overwritten under the same name.
            "id": previous["id"] if previous else str(self.fake.snowflake()),
            "application_id": str(self.fake.application_id),
            "version": str(self.fake.snowflake()),
            "default_member_permissions": None if permissions is None else str(permissions),
            "type": kind,
            "name": name,
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description", "") if kind == 1 else "",
            "description_localizations": body.get("description_localizations"),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types") or [0],
            "nsfw": bool(body.get("nsfw", False)),
        }
        if body.get("options"):
            payload["options"] = json_copy(body["options"])
        if scope is None:
            payload["dm_permission"] = body.get("dm_permission", True)
        else:
            payload["guild_id"] = str(scope)
        return payload

    async def list_commands(self, ctx: Ctx) -> Reply:
        return 200, self.fake.commands.get(self._scope(ctx), [])

    async def put_commands(self, ctx: Ctx) -> Reply:
        scope = self._scope(ctx)
        if not isinstance(ctx.body, list):
            raise form_error("", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        if len([c for c in ctx.body if isinstance(c, dict) and c.get("type", 1) == 1]) > 100:
            raise form_error("", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        existing = self.fake.commands.get(scope, [])
        result = [self._command_payload(c, str(i), scope, existing) for i, c in enumerate(ctx.body)]
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(result):
            key = (cmd["name"], cmd["type"])
            if key in seen:
                raise form_error(
                    f"{i}.name",
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique: {cmd['name']}",
                )
            seen.add(key)
        self.fake.commands[scope] = result
        return 200, result

    async def post_command(self, ctx: Ctx) -> Reply:
        scope = self._scope(ctx)
        existing = self.fake.commands.setdefault(scope, [])
        cmd = self._command_payload(ctx.obj(), "", scope, existing)
        for i, old in enumerate(existing):
            if old["id"] == cmd["id"]:
                existing[i] = cmd
                return 200, cmd
        existing.append(cmd)
        return 201, cmd

    def _find_command(self, ctx: Ctx) -> tuple[list[Json], Json]:
        commands = self.fake.commands.get(self._scope(ctx), [])
        for cmd in commands:
            if cmd["id"] == ctx.params["command_id"]:
                return commands, cmd
        raise error(UNKNOWN_COMMAND)

    async def get_command(self, ctx: Ctx) -> Reply:
        return 200, self._find_command(ctx)[1]

    async def delete_command(self, ctx: Ctx) -> Reply:
        commands, cmd = self._find_command(ctx)
        commands.remove(cmd)
        return 204, None

    # ------------------------------------------------------------------ channels & messages
    async def get_channel(self, ctx: Ctx) -> Reply:
        return 200, self._channel(ctx).to_payload()

    async def typing(self, ctx: Ctx) -> Reply:
        self._channel(ctx)
        return 204, None

    async def list_messages(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        self._need(channel, Permissions.READ_MESSAGE_HISTORY, MISSING_ACCESS)
        limit = max(1, min(100, int(ctx.query.get("limit", 50))))
        visible = [
            m for m in self.fake.messages[channel.id] if not int(m.get("flags") or 0) & EPHEMERAL
        ]
        if "before" in ctx.query:
            visible = [m for m in visible if int(m["id"]) < int(ctx.query["before"])]
        if "after" in ctx.query:
            after = [m for m in visible if int(m["id"]) > int(ctx.query["after"])]
            return 200, [self._visible(m, channel) for m in reversed(after[:limit])]
        return 200, [self._visible(m, channel) for m in reversed(visible[-limit:])]

    async def create_message(self, ctx: Ctx) -> Reply:
        fake = self.fake
        channel = self._channel(ctx)
        body = ctx.obj()
        if channel.is_dm:
            assert channel.recipient is not None
            fake.check_dm_allowed(channel.recipient)
        else:
            self._need(channel, Permissions.SEND_MESSAGES, MISSING_PERMISSIONS)
            if ctx.files:
                self._need(channel, Permissions.ATTACH_FILES, MISSING_PERMISSIONS)
        validate_body(body)
        nonce = _nonce(body)
        if nonce is not None and body.get("enforce_nonce") in (True, *_TRUE):
            # Discord: a message by the same author with this nonce in the past few
            # minutes is returned as is, and no new message is created.
            existing = fake.message_by_nonce(channel, fake.bot, nonce)
            if existing is not None:
                fake.nonce_replays.append(int(existing["id"]))
                return 200, existing
        reference = body.get("message_reference")
        msg = fake.build_message(
            channel,
            fake.bot,
            body,
            ctx.files,
            flags_mask=SETTABLE_FLAGS,
            msg_type=19 if reference else 0,
        )
        if reference:
            referenced = fake.get_message(int(reference.get("message_id") or 0))
            if referenced is None and reference.get("fail_if_not_exists", True):
                raise form_error(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
            msg["message_reference"] = {
                "type": 0,
                "channel_id": str(channel.id),
                "message_id": str(reference.get("message_id")),
                **({"guild_id": str(channel.guild_id)} if channel.guild_id else {}),
            }
            msg["referenced_message"] = json_copy(referenced)
        require_not_empty(msg)
        fake.store_message(msg)
        fake.remember_nonce(msg)
        await fake.dispatch_message("MESSAGE_CREATE", msg)
        return 200, msg

    async def get_message(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        self._need(channel, Permissions.READ_MESSAGE_HISTORY, MISSING_ACCESS)
        return 200, self._visible(self._message(channel, ctx.id("message_id")), channel)

    async def edit_message(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        msg = self._message(channel, ctx.id("message_id"))
        if int(msg["author"]["id"]) != self.fake.bot.id:
            raise error(CANNOT_EDIT_OTHERS)
        self.apply_edit(msg, ctx.obj(), ctx.files, settable=SETTABLE_FLAGS)
        await self.fake.dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg

    async def delete_message(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        msg = self._message(channel, ctx.id("message_id"))
        if int(msg["author"]["id"]) != self.fake.bot.id:
            self._need(channel, Permissions.MANAGE_MESSAGES, MISSING_PERMISSIONS)
        await self._delete(msg, channel)
        return 204, None

    async def _delete(self, msg: Json, channel: FakeChannel) -> None:
        self.fake.remove_message(msg)
        if int(msg.get("flags") or 0) & EPHEMERAL:
            return
        data: Json = {"id": msg["id"], "channel_id": msg["channel_id"]}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        await self.fake.gateway.dispatch("MESSAGE_DELETE", data, guild_id=channel.guild_id)

    def apply_edit(
        self,
        msg: Json,
        body: Json,
        files: list[UploadedFile],
        *,
        settable: int,
        mark_edited: bool = True,
        clear_flags: int = 0,
    ) -> None:
        """PATCH semantics: only keys present change; the result may not be empty."""
        fake = self.fake
        validate_body(body)
        channel = fake.channels[int(msg["channel_id"])]
        updated = json_copy(msg)
        if "content" in body:
            updated["content"] = body["content"] or ""
        if "embeds" in body:
            updated["embeds"] = normalize_embeds(body["embeds"] or [])
        if "components" in body:
            updated["components"] = number_components(body["components"] or [])
        if body.get("flags") is not None:
            old = int(updated.get("flags") or 0)
            updated["flags"] = (old & ~settable) | (int(body["flags"]) & settable)
        ephemeral = bool(int(updated.get("flags") or 0) & EPHEMERAL)
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            kept = [a for a in updated["attachments"] if a["id"] in keep]
            updated["attachments"] = kept + fake.make_attachments(channel, body, files, ephemeral)
        elif files:
            updated["attachments"] += fake.make_attachments(channel, body, files, ephemeral)
        if "content" in body:
            fake._set_mentions(updated, channel, body)
        require_not_empty(updated)
        if mark_edited:
            updated["edited_timestamp"] = iso_now()
        updated["flags"] = int(updated.get("flags") or 0) & ~clear_flags
        msg.clear()
        msg.update(updated)  # in place: every holder of this dict sees the edit
        fake.log_edit(msg)

    # ------------------------------------------------------------------ pins
    def _pin_target(self, ctx: Ctx) -> tuple[FakeChannel, Json]:
        channel = self._channel(ctx)
        self._need(channel, Permissions.MANAGE_MESSAGES, MISSING_PERMISSIONS)
        return channel, self._message(channel, ctx.id("message_id"))

    async def pin(self, ctx: Ctx) -> Reply:
        channel, msg = self._pin_target(ctx)
        if not msg["pinned"]:
            msg["pinned"] = True
            channel.pinned_ids.insert(0, int(msg["id"]))
            self.fake.pinned_at[int(msg["id"])] = iso_now()
            await self._pins_update(channel)
        return 204, None

    async def unpin(self, ctx: Ctx) -> Reply:
        channel, msg = self._pin_target(ctx)
        if msg["pinned"]:
            msg["pinned"] = False
            channel.pinned_ids.remove(int(msg["id"]))
            await self._pins_update(channel)
        return 204, None

    async def _pins_update(self, channel: FakeChannel) -> None:
        self.fake._notify()
        last = self.fake.pinned_at.get(channel.pinned_ids[0]) if channel.pinned_ids else None
        data: Json = {"channel_id": str(channel.id), "last_pin_timestamp": last}
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
        await self.fake.gateway.dispatch("CHANNEL_PINS_UPDATE", data, guild_id=channel.guild_id)

    async def list_pins(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        items = [
            {"pinned_at": self.fake.pinned_at[mid], "message": self.fake.get_message(mid)}
            for mid in channel.pinned_ids
        ]
        return 200, {"items": items, "has_more": False}

    async def list_pins_legacy(self, ctx: Ctx) -> Reply:
        channel = self._channel(ctx)
        return 200, [self.fake.get_message(mid) for mid in channel.pinned_ids]

    # ------------------------------------------------------------------ guilds
    async def get_guild(self, ctx: Ctx) -> Reply:
        guild = self._guild(ctx)
        payload = guild.to_payload(members=[])
        for key in (
            "joined_at",
            "large",
            "unavailable",
            "member_count",
            "voice_states",
            "members",
            "channels",
            "threads",
            "presences",
            "stage_instances",
            "guild_scheduled_events",
            "soundboard_sounds",
            "lazy",
        ):
            payload.pop(key)
        if ctx.query.get("with_counts") in _TRUE:
            payload["approximate_member_count"] = len(guild.members)
            payload["approximate_presence_count"] = 0
        return 200, payload

    async def get_guild_channels(self, ctx: Ctx) -> Reply:
        return 200, [c.to_payload() for c in self._guild(ctx).channels.values()]

    async def get_guild_roles(self, ctx: Ctx) -> Reply:
        return 200, [r.to_payload() for r in self._guild(ctx).roles.values()]

    async def get_member(self, ctx: Ctx) -> Reply:
        member = self._guild(ctx).members.get(ctx.id("user_id"))
        if member is None:
            raise error(UNKNOWN_MEMBER)
        return 200, member.to_payload()

    # ------------------------------------------------------------------ interactions
    async def interaction_callback(self, ctx: Ctx) -> Reply:
        fake = self.fake
        body = ctx.obj()
        kind = int(body.get("type") or 0)
        data = body.get("data") or {}
        attempt = InteractionResponseRecord(ctx.id("interaction_id"), kind, data, status=0)
        try:
            status, payload = await self._callback(ctx, kind, data)
        except ApiError as exc:
            attempt.status = exc.status
            raise
        else:
            attempt.status = status
            return status, payload
        finally:
            fake.interaction_responses.append(attempt)
            fake._notify()

    async def _callback(self, ctx: Ctx, kind: int, data: Json) -> Reply:
        fake = self.fake
        interaction = fake.interactions.get(ctx.id("interaction_id"))
        if interaction is None:
            raise error(UNKNOWN_INTERACTION)
        if interaction.token != ctx.params["interaction_token"]:
            raise error(INVALID_WEBHOOK_TOKEN)
        if interaction.acknowledged:
            raise error(ALREADY_ACKNOWLEDGED)
        # Discord forgets unanswered interactions after 3 seconds.
        if time.monotonic() - interaction.created_at > fake.interaction_ack_timeout:
            raise error(UNKNOWN_INTERACTION)
        if kind not in ALLOWED_CALLBACKS.get(interaction.type, set()):
            raise form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        channel = fake.channels[interaction.channel_id]
        resource: Json | None = None
        if kind == 4:
            validate_body(data)
            msg_type = 20 if interaction.type == 2 else 0
            msg = fake.build_message(
                channel,
                fake.bot,
                data,
                ctx.files,
                flags_mask=INTERACTION_SETTABLE_FLAGS,
                msg_type=msg_type,
            )
            self._stamp_interaction(msg, interaction)
            require_not_empty(msg)
            self._ack(interaction, kind, data)
            interaction.original = fake.store_message(msg)
            await fake.dispatch_message("MESSAGE_CREATE", msg)
            resource = msg
        elif kind == 5:
            # The "Bot is thinking..." placeholder: empty, LOADING, maybe ephemeral.
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            msg = fake.build_message(
                channel,
                fake.bot,
                {},
                [],
                flags_mask=0,
                extra_flags=flags,
                msg_type=20 if interaction.type == 2 else 0,
            )
            self._stamp_interaction(msg, interaction)
            self._ack(interaction, kind, data)
            interaction.original = fake.store_message(msg)
            interaction.original_loading = True
            await fake.dispatch_message("MESSAGE_CREATE", msg)
            resource = msg
        elif kind == 6:
            self._ack(interaction, kind, data)
            interaction.original = fake.get_message(interaction.component_message_id or 0)
        elif kind == 7:
            target = fake.get_message(interaction.component_message_id or 0)
            if target is None:
                raise error(UNKNOWN_MESSAGE)
            self.apply_edit(target, data, ctx.files, settable=SETTABLE_FLAGS)
            self._ack(interaction, kind, data)
            interaction.original = target
            await fake.dispatch_message("MESSAGE_UPDATE", target)
            resource = target
        elif kind == 8:
            if len(data.get("choices") or []) > 25:
                raise form_error(
                    "data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            self._ack(interaction, kind, data)
        elif kind == 9:
            for key in ("custom_id", "title", "components"):
                if not data.get(key):
                    raise form_error(f"data.{key}", "BASE_TYPE_REQUIRED", "This field is required")
            self._ack(interaction, kind, data)
        else:
            self._ack(interaction, kind, data)

        if ctx.query.get("with_response") not in _TRUE:
            return 204, None
        original = interaction.original
        callback: Json = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "response_message_loading": interaction.original_loading,
                "response_message_ephemeral": bool(
                    original and int(original.get("flags") or 0) & EPHEMERAL
                ),
            }
        }
        if original is not None:
            callback["interaction"]["response_message_id"] = original["id"]
        if resource is not None:
            callback["resource"] = {"type": kind, "message": resource}
        return 200, callback

    @staticmethod
    def _ack(interaction: FakeInteraction, kind: int, data: Json) -> None:
        interaction.response_type = kind
        interaction.response_data = data

    def _stamp_interaction(self, msg: Json, interaction: FakeInteraction) -> None:
        """Messages created through an interaction token carry its metadata."""
        fake = self.fake
        user = fake.users[interaction.user_id].to_payload()
        msg["webhook_id"] = str(fake.application_id)
        msg["application_id"] = str(fake.application_id)
        metadata: Json = {
            "id": str(interaction.id),
            "type": interaction.type,
            "user": user,
            "authorizing_integration_owners": interaction.payload.get(
                "authorizing_integration_owners", {}
            ),
        }
        if interaction.type == 3 and interaction.component_message_id:
            metadata["interacted_message_id"] = str(interaction.component_message_id)
        if interaction.original is not None:
            metadata["original_response_message_id"] = interaction.original["id"]
        msg["interaction_metadata"] = metadata
        if interaction.type == 2:
            msg["interaction"] = {  # deprecated but still sent
                "id": str(interaction.id),
                "type": 2,
                "name": interaction.payload["data"]["name"],
                "user": user,
            }

    def _webhook_interaction(self, ctx: Ctx) -> FakeInteraction:
        fake = self.fake
        if ctx.id("application_id") != fake.application_id:
            raise error(UNKNOWN_WEBHOOK)
        interaction = fake.interactions_by_token.get(ctx.params["interaction_token"])
        if interaction is None:
            raise error(INVALID_WEBHOOK_TOKEN)
        if time.monotonic() - interaction.created_at > fake.interaction_token_ttl:
            raise error(INVALID_WEBHOOK_TOKEN)  # tokens live 15 minutes
        if not interaction.acknowledged:
            # Follow-ups before the initial callback hit a webhook that doesn't exist yet.
            raise error(UNKNOWN_WEBHOOK)
        return interaction

    def _webhook_message(self, ctx: Ctx, interaction: FakeInteraction) -> Json:
        ref = ctx.params["message_ref"]
        if ref == "@original":
            if interaction.original is None or interaction.deleted_original:
                raise error(UNKNOWN_MESSAGE)
            return interaction.original
        for msg in [interaction.original, *interaction.followups]:
            if msg is not None and msg["id"] == ref and self.fake.get_message(ref) is not None:
                return msg
        raise error(UNKNOWN_MESSAGE)

    async def execute_followup(self, ctx: Ctx) -> Reply:
        fake = self.fake
        interaction = self._webhook_interaction(ctx)
        body = ctx.obj()
        validate_body(body)
        channel = fake.channels[interaction.channel_id]
        original = interaction.original
        if interaction.response_type == 5 and interaction.original_loading and original is not None:
            # Discord quirk: the first follow-up after a deferred response *replaces* the
            # "thinking" message (same id) and keeps the defer's ephemerality, whatever
            # flags the follow-up itself asks for.
            self.apply_edit(
                original, body, ctx.files, settable=0, mark_edited=False, clear_flags=LOADING
            )
            interaction.original_loading = False
            interaction.followups.append(original)
            await fake.dispatch_message("MESSAGE_UPDATE", original)
            msg = original
        else:
            msg = fake.build_message(
                channel,
                fake.bot,
                body,
                ctx.files,
                flags_mask=INTERACTION_SETTABLE_FLAGS,
                msg_type=20 if interaction.type == 2 else 0,
            )
            self._stamp_interaction(msg, interaction)
            require_not_empty(msg)
            fake.store_message(msg)
            interaction.followups.append(msg)
            await fake.dispatch_message("MESSAGE_CREATE", msg)
        if ctx.query.get("wait") in _TRUE:
            return 200, msg
        return 204, None

    async def get_webhook_message(self, ctx: Ctx) -> Reply:
        interaction = self._webhook_interaction(ctx)
        return 200, self._webhook_message(ctx, interaction)

    async def edit_webhook_message(self, ctx: Ctx) -> Reply:
        interaction = self._webhook_interaction(ctx)
        msg = self._webhook_message(ctx, interaction)
        loading = msg is interaction.original and interaction.original_loading
        # Editing the deferred placeholder turns it into the real answer (not an "edit").
        self.apply_edit(
            msg,
            ctx.obj(),
            ctx.files,
            settable=SETTABLE_FLAGS,
            mark_edited=not loading,
            clear_flags=LOADING if loading else 0,
        )
        if loading:
            interaction.original_loading = False
        await self.fake.dispatch_message("MESSAGE_UPDATE", msg)
        return 200, msg

    async def delete_webhook_message(self, ctx: Ctx) -> Reply:
        interaction = self._webhook_interaction(ctx)
        msg = self._webhook_message(ctx, interaction)
        if msg is interaction.original:
            interaction.deleted_original = True
        await self._delete(msg, self.fake.channels[int(msg["channel_id"])])
        return 204, None


def _validate_options(path: str, options: Any) -> None:
    if not isinstance(options, list):
        raise form_error(path, "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
    if len(options) > 25:
        raise form_error(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for i, option in enumerate(options):
        here = f"{path}.{i}"
        name = option.get("name")
        if not isinstance(name, str) or not _COMMAND_NAME.match(name) or name != name.lower():
            raise form_error(
                f"{here}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
            )
        if name in names:
            raise form_error(
                f"{here}.name",
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            )
        names.add(name)
        description = option.get("description")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            raise form_error(
                f"{here}.description",
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            )
        if option.get("type") in (1, 2):
            _validate_options(f"{here}.options", option.get("options") or [])
            continue
        if option.get("required"):
            if seen_optional:
                raise form_error(
                    f"{here}.required",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            seen_optional = True
        if len(option.get("choices") or []) > 25:
            raise form_error(
                f"{here}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
            )


def _nonce(body: Json) -> str | int | None:
    """A message nonce: an integer or a string of at most 25 characters."""
    nonce = body.get("nonce")
    if nonce is None or (isinstance(nonce, int) and not isinstance(nonce, bool)):
        return nonce
    if not isinstance(nonce, str):
        raise form_error("nonce", "STRING_TYPE_CONVERT", "Could not interpret value as string.")
    if len(nonce) > 25:
        raise form_error("nonce", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    return nonce
