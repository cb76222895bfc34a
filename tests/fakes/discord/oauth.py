"""OAuth2 authorization code grant of the fake Discord: the consent page and the token endpoint.

* ``GET /oauth2/authorize`` (discord.com's page; also under ``/api/v10``) shows a plain HTML
  consent page (no JavaScript, no external resources) whose form POSTs back to the same path.
* ``POST /api/v10/oauth2/token`` (also ``/api/oauth2/token``) exchanges a code or a refresh
  token. Discord's token errors are those of the Authlib library (RFC 6749 bodies such as
  ``{"error": "invalid_grant", "error_description": "Invalid \\"code\\" in request."}``), so the
  fake follows Authlib's order of checks and its PKCE (RFC 7636) wording.
* Bearer tokens issued here are accepted by ``GET /users/@me`` (scope ``identify``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from aiohttp import web

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
from .models import FakeUser, Json
from .records import RecordedRequest, method_not_allowed, unauthorized

if TYPE_CHECKING:
    from .server import FakeDiscord

# Discord's OAuth2 scopes (developer docs, "OAuth2 Scopes").
SCOPES = frozenset(
    {
        "activities.invites.write",
        "activities.read",
        "activities.write",
        "applications.builds.read",
        "applications.builds.upload",
        "applications.commands",
        "applications.commands.permissions.update",
        "applications.commands.update",
        "applications.entitlements",
        "applications.store.update",
        "bot",
        "connections",
        "dm_channels.read",
        "email",
        "gdm.join",
        "guilds",
        "guilds.join",
        "guilds.members.read",
        "identify",
        "messages.read",
        "openid",
        "relationships.read",
        "role_connections.write",
        "rpc",
        "rpc.activities.write",
        "rpc.notifications.read",
        "rpc.voice.read",
        "rpc.voice.write",
        "voice",
        "webhook.incoming",
    }
)
# Scopes whose consent page picks a guild or channel: not modelled by this fake.
GUILD_INSTALL_SCOPES = frozenset({"bot", "webhook.incoming"})

ACCESS_TOKEN_TTL = 604_800  # Discord's access tokens last 7 days
ACCESS_DENIED_DESCRIPTION = "The resource owner or authorization server denied the request"
INVALID_SCOPE_DESCRIPTION = "The requested scope is invalid, unknown, or malformed."
INVALID_REDIRECT_URI = "Invalid OAuth2 redirect_uri"
UNKNOWN_APPLICATION = "Unknown Application"
# RFC 7636 section 4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_CODE_VERIFIER = re.compile(r"^[a-zA-Z0-9\-._~]{43,128}$")
_ALNUM = string.ascii_letters + string.digits


def _random(length: int = 30) -> str:
    # Discord's codes and tokens are 30 alphanumerics.
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def s256_challenge(code_verifier: str) -> str:
    """PKCE S256: ``BASE64URL(SHA256(code_verifier))`` without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


@dataclass
class OAuthCode:
    """An authorization code: single use, short-lived, bound to the authorize request."""

    code: str
    user_id: int
    scopes: list[str]
    redirect_uri: str
    expires_at: float  # epoch seconds
    code_challenge: str | None = None
    code_challenge_method: str | None = None

    def valid(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires_at


@dataclass
class OAuthToken:
    """A user's OAuth2 access token (``Authorization: Bearer <access_token>``)."""

    access_token: str
    refresh_token: str
    user_id: int
    scopes: list[str]
    expires_at: float  # epoch seconds
    revoked: bool = False
    created_at: float = field(default_factory=time.time)

    def valid(self, now: float | None = None) -> bool:
        return not self.revoked and (time.time() if now is None else now) < self.expires_at

    def has(self, scope: str) -> bool:
        return scope in self.scopes


class TokenError(Exception):
    """An RFC 6749 error of the token endpoint, as Authlib renders it."""

    def __init__(self, status: int, error: str, description: str | None = None):
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> Json:
        data: Json = {"error": self.error}
        if self.description is not None:
            data["error_description"] = self.description
        return data


def _token_response(status: int, body: Json) -> web.Response:
    # RFC 6749 5.1: token responses must not be cached.
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Cache-Control": "no-store",
            "Pragma": "no-cache",
        },
    )


class OAuthApi:
    """The OAuth2 routes; the state (codes, tokens, redirect URIs) lives on ``FakeDiscord``."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    # ------------------------------------------------------------------ test-side helpers
    def click(self, authorize_url: str, action: str, user: FakeUser | None) -> str:
        parts = urlsplit(authorize_url)
        if not parts.path.endswith("/oauth2/authorize"):
            raise ValueError(f"not an /oauth2/authorize URL: {authorize_url!r}")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        answer = self.decide(params, action, user)
        if answer.location is None:
            raise AuthorizeRefused(answer.status, answer.message)
        return answer.location

    def issue(self, user_id: int, scopes: list[str]) -> OAuthToken:
        fake = self.fake
        token = OAuthToken(
            access_token=_random(),
            refresh_token=_random(),
            user_id=user_id,
            scopes=list(scopes),
            expires_at=time.time() + ACCESS_TOKEN_TTL,
        )
        fake.oauth_tokens[token.access_token] = token
        fake.oauth_grants.setdefault(user_id, set()).update(scopes)
        return token

    def bearer(self, authorization: str, scope: str) -> OAuthToken:
        """The valid token of an ``Authorization: Bearer`` header holding ``scope``, or 401."""
        scheme, _, value = authorization.partition(" ")
        token = self.fake.oauth_tokens.get(value.strip()) if scheme.lower() == "bearer" else None
        if token is None or not token.valid() or not token.has(scope):
            raise unauthorized()
        return token

    @staticmethod
    def me_payload(user: FakeUser, token: OAuthToken) -> Json:
        """``GET /users/@me`` for a bearer token: ``email``/``verified`` need scope ``email``."""
        data = user.to_self_payload()
        if not token.has("email"):
            data.pop("email", None)
            data.pop("verified", None)
        return data

    # ------------------------------------------------------------------ HTTP entry points
    def _record(
        self, request: web.Request, path: str, form: dict[str, str] | None
    ) -> RecordedRequest:
        record = RecordedRequest(
            method=request.method,
            path=path,
            route=path,
            params={},
            query=dict(request.query),
            headers=dict(request.headers),
            json=None,
            files=[],
            form=form,
        )
        self.fake.requests.append(record)
        return record

    @staticmethod
    async def _form(request: web.Request) -> dict[str, str] | None:
        if request.content_type != "application/x-www-form-urlencoded":
            return None
        return {k: str(v) for k, v in (await request.post()).items()}

    async def handle_authorize(self, request: web.Request) -> web.Response:
        form = await self._form(request) if request.method == "POST" else None
        record = self._record(request, "/oauth2/authorize", form)
        params = {**request.query, **(form or {})}
        if request.method == "GET":
            answer = self.page(params)
        elif request.method == "POST":
            answer = self.decide(params, params.get("action", ""), self._form_user(params))
        else:
            error = method_not_allowed()
            record.status, record.response = error.status, error.body()
            self.fake._notify()
            return _token_response(error.status, error.body())
        record.status = answer.status
        record.response = answer.location if answer.location is not None else answer.page
        self.fake._notify()
        return answer.response()

    async def handle_token(self, request: web.Request) -> web.Response:
        form = await self._form(request) if request.method == "POST" else None
        record = self._record(request, "/oauth2/token", form)
        status: int
        body: Json
        if request.method != "POST":
            error = method_not_allowed()
            status, body = error.status, error.body()
        else:
            try:
                status, body = 200, self.token(request.headers.get("Authorization", ""), form or {})
            except TokenError as exc:
                status, body = exc.status, exc.body()
        record.status, record.response = status, body
        self.fake._notify()
        return _token_response(status, body)

    # ------------------------------------------------------------------ authorize
    def _check(self, params: Mapping[str, str]) -> AuthorizeAnswer | None:
        """Checks shared by the page (GET) and the buttons (POST); an answer means stop."""
        fake = self.fake
        if params.get("client_id") != fake.oauth_client_id:
            return error_page("Discord", 400, UNKNOWN_APPLICATION)
        redirect_uri = params.get("redirect_uri", "")
        # Never redirect to an unregistered URI: the page shows the error itself.
        if redirect_uri not in fake.redirect_uris:
            return error_page("Discord", 400, INVALID_REDIRECT_URI)
        state = params.get("state")
        response_type = params.get("response_type", "")
        if response_type == "token":
            # Not Discord behaviour: Discord has the implicit grant, this fake does not.
            return error_page("Discord", 400, "FakeDiscord does not implement response_type=token")
        if response_type != "code":
            return error_page("Discord", 400, f"unsupported_response_type: {response_type!r}")
        scopes = params.get("scope", "").split()
        if not scopes or not set(scopes) <= SCOPES:
            return redirect(
                redirect_uri,
                {"error": "invalid_scope", "error_description": INVALID_SCOPE_DESCRIPTION},
                state,
            )
        if GUILD_INSTALL_SCOPES & set(scopes):
            # Not Discord behaviour: the guild/channel picker of bot/webhook installs is absent.
            return error_page(
                "Discord",
                400,
                "FakeDiscord does not implement the bot / webhook.incoming authorization",
            )
        challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
        if challenge or method:
            if not challenge:
                return self._invalid_request(redirect_uri, 'Missing "code_challenge"', state)
            if method != "S256":  # Discord supports S256 only (no "plain")
                return self._invalid_request(
                    redirect_uri, 'Unsupported "code_challenge_method"', state
                )
        return None

    def page(self, params: Mapping[str, str]) -> AuthorizeAnswer:
        """``GET /oauth2/authorize``: the consent page (or an error, or a redirect)."""
        stop = self._check(params)
        if stop is not None:
            return stop
        user = self.fake.browser_user
        scopes = params["scope"].split()
        granted = self.fake.oauth_grants.get(user.id, set()) if user is not None else set()
        if user is not None and params.get("prompt") == "none" and set(scopes) <= granted:
            # prompt=none: a user who already authorized these scopes skips the screen.
            return self.decide(params, "authorize", user)
        return AuthorizeAnswer(200, page=self._consent_html(params, scopes, user))

    def _form_user(self, params: Mapping[str, str]) -> FakeUser | None:
        """The form's ``user`` field (a user id), else the browser's user."""
        ref = params.get("user")
        if not ref:
            return self.fake.browser_user
        try:
            return self.fake.users.get(int(ref))
        except ValueError:
            return None

    def decide(
        self, params: Mapping[str, str], action: str, user: FakeUser | None
    ) -> AuthorizeAnswer:
        """The user clicked ``action`` ("authorize" or "cancel") on the consent page."""
        stop = self._check(params)
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
            return error_page("Discord", 400, f"unknown action {action!r} (FakeDiscord's form)")
        if user is None or user.bot:
            return error_page(
                "Discord", 400, "log in first: set FakeDiscord.browser_user or pick a user"
            )
        entry = OAuthCode(
            code=_random(),
            user_id=user.id,
            scopes=params["scope"].split(),
            redirect_uri=redirect_uri,
            expires_at=time.time() + self.fake.code_ttl,
            code_challenge=params.get("code_challenge") or None,
            code_challenge_method=params.get("code_challenge_method") or None,
        )
        self.fake.oauth_codes[entry.code] = entry
        return redirect(redirect_uri, {"code": entry.code}, state)

    def _invalid_request(
        self, redirect_uri: str, description: str, state: str | None
    ) -> AuthorizeAnswer:
        return redirect(
            redirect_uri, {"error": "invalid_request", "error_description": description}, state
        )

    def _consent_html(
        self, params: Mapping[str, str], scopes: list[str], user: FakeUser | None
    ) -> str:
        app = html.escape(self.fake.bot.username)
        keep = (
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "prompt",
            "code_challenge",
            "code_challenge_method",
        )
        signed_in = (
            ("Signed in as", user.global_name or user.username, user.username) if user else None
        )
        # nobody logged in: pick one of the fake's (human) users in the same form
        accounts = ((str(u.id), u.username) for u in self.fake.users.values() if not u.bot)
        body = (
            f"<h1>{app}</h1>\n<p>An external application wants to access your Discord "
            f"account</p>\n{who_html(signed_in, accounts)}"
            f"<p>This will allow <strong>{app}</strong> to:</p>\n{scope_list(scopes)}"
            f"{consent_form(params, keep)}"
        )
        return html_document(f"Discord | Authorize access to your account - {app}", body)

    def _client_authenticated(self, authorization: str, form: Mapping[str, str]) -> bool:
        """client_secret_basic, then client_secret_post (Authlib's order)."""
        fake = self.fake
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, _, secret = decoded.partition(":")
            # RFC 6749 2.3.1: both halves are form-urlencoded before base64.
            return (unquote(client_id), unquote(secret)) == (
                fake.oauth_client_id,
                fake.oauth_client_secret,
            )
        return (form.get("client_id"), form.get("client_secret")) == (
            fake.oauth_client_id,
            fake.oauth_client_secret,
        )

    def token(self, authorization: str, form: Mapping[str, str]) -> Json:
        """``POST /oauth2/token``: grant type first, then the client, then the grant."""
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials":
            # Not Discord behaviour: Discord issues the owner's token, this fake does not.
            raise TokenError(
                400,
                "unsupported_grant_type",
                "FakeDiscord does not implement the client_credentials grant",
            )
        if grant_type not in ("authorization_code", "refresh_token"):
            raise TokenError(400, "unsupported_grant_type")
        if not self._client_authenticated(authorization, form):
            raise TokenError(401, "invalid_client")
        if grant_type == "refresh_token":
            return self._refresh(form)
        return self._exchange(form)

    def _exchange(self, form: Mapping[str, str]) -> Json:
        fake = self.fake
        code = form.get("code")
        if code is None:
            raise TokenError(400, "invalid_request", 'Missing "code" in request.')
        entry = fake.oauth_codes.get(code)
        if entry is None or not entry.valid():
            raise TokenError(400, "invalid_grant", 'Invalid "code" in request.')
        if form.get("redirect_uri") != entry.redirect_uri:
            raise TokenError(400, "invalid_grant", 'Invalid "redirect_uri" in request.')
        self._check_verifier(entry, form.get("code_verifier"))
        del fake.oauth_codes[code]  # single use; a refused exchange does not burn it
        return self._token_body(self.issue(entry.user_id, entry.scopes))

    @staticmethod
    def _check_verifier(entry: OAuthCode, verifier: str | None) -> None:
        """RFC 7636 4.6 with Authlib's wording."""
        if not entry.code_challenge and not verifier:
            return  # a plain (non-PKCE) exchange
        if not verifier:
            raise TokenError(400, "invalid_request", 'Missing "code_verifier"')
        if not _CODE_VERIFIER.match(verifier):
            raise TokenError(400, "invalid_request", 'Invalid "code_verifier"')
        if entry.code_challenge is None or s256_challenge(verifier) != entry.code_challenge:
            raise TokenError(400, "invalid_grant", "Code challenge failed.")

    def _refresh(self, form: Mapping[str, str]) -> Json:
        fake = self.fake
        refresh = form.get("refresh_token")
        if refresh is None:
            raise TokenError(400, "invalid_request", 'Missing "refresh_token" in request.')
        old = next(
            (t for t in fake.oauth_tokens.values() if t.refresh_token == refresh and not t.revoked),
            None,
        )
        if old is None:
            raise TokenError(400, "invalid_grant", 'Invalid "refresh_token" in request.')
        old.revoked = True  # the new pair replaces the old one, refresh token included
        return self._token_body(self.issue(old.user_id, old.scopes))

    @staticmethod
    def _token_body(token: OAuthToken) -> Json:
        return {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "refresh_token": token.refresh_token,
            "scope": " ".join(token.scopes),
        }
