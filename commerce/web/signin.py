"""Sign in with Twitch and with Discord: the OAuth 2.0 authorization-code flow.

``GET /signin/{platform}`` sends the browser to the platform's consent page with a fresh
``state`` and a PKCE challenge (both kept in a short-lived signed cookie, never on the
server); the platform sends it back to ``/signin/{platform}/callback`` with a code, which is
exchanged for a token that is used once, to learn who the viewer is, and dropped. The
viewer's platform identity (``twitch:<user id>``, ``discord:<user id>``) joins the browser
session; signing in with both links them into one customer, as the ``/link`` code does.
Only the least scope is asked for: none on Twitch (Helix reads one's own public user without
one), ``identify`` on Discord.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from commerce.domain.errors import DomainError, InvalidInput
from commerce.domain.model import PICKUP_PREFIX, Order
from commerce.money_format import format_money
from commerce.web.context import CONTEXT, WebContext
from commerce.web.openapi import operation, read_query
from commerce.web.render import READER_LOCALE
from commerce.web.schemas import Me, MeQuery
from commerce.web.sessions import Session, Signed
from config.settings import Settings

log = logging.getLogger(__name__)
FLOW_COOKIE = "dc_oauth"
FLOW_SECONDS = 600  # the consent page may be left open a while, not for a day
TIMEOUT = aiohttp.ClientTimeout(total=10)


class SignInFailed(DomainError):
    code = "SIGNIN_FAILED"


@dataclass(frozen=True, slots=True)
class Provider:
    """One platform's OAuth endpoints and client."""

    platform: str
    label: str
    authorize_url: str
    token_url: str
    user_url: str
    client_id: str
    client_secret: str
    scope: str

    def redirect_uri(self, base_url: str) -> str:
        return f"{base_url}/signin/{self.platform}/callback"


def providers(settings: Settings) -> dict[str, Provider]:
    """The sign-in platforms the settings enable, in the order the page offers them."""
    found: dict[str, Provider] = {}
    twitch = settings.twitch
    if twitch.signin and twitch.client_id and twitch.client_secret:
        id_base = str(twitch.id_base).rstrip("/")
        found["twitch"] = Provider(
            "twitch",
            "Twitch",
            f"{id_base}/oauth2/authorize",
            f"{id_base}/oauth2/token",
            str(twitch.api_base).rstrip("/") + "/users",
            twitch.client_id,
            twitch.client_secret.get_secret_value(),
            "",
        )
    discord = settings.discord
    if discord.signin and discord.client_id and discord.client_secret:
        api = str(discord.api_base).rstrip("/")
        found["discord"] = Provider(
            "discord",
            "Discord",
            discord.authorize_url,
            f"{api}/oauth2/token",
            f"{api}/users/@me",
            discord.client_id,
            discord.client_secret.get_secret_value(),
            "identify",
        )
    return found


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def local_path(value: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 33 for c in value) or len(value) > 500:
        return "/"
    return value


class SignIn:
    """The flow's two steps and the token exchange, for every enabled platform."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.providers = providers(ctx.settings)
        self._flows: URLSafeTimedSerializer | None = None
        self._http: aiohttp.ClientSession | None = None

    def key(self, secret: str) -> None:
        """Keyed at start-up, like the other signed values (the key may live in the database)."""
        self._flows = URLSafeTimedSerializer(secret, salt="dropcast.oauth")

    @property
    def flows(self) -> URLSafeTimedSerializer:
        assert self._flows is not None, "app not started"
        return self._flows

    def provider(self, request: web.Request) -> Provider:
        name = request.match_info["platform"]
        found = self.providers.get(name)
        if found is None:
            raise InvalidInput(
                "platform",
                f"signing in with {name} is not set up here"
                + (f" (try {', '.join(self.providers)})" if self.providers else ""),
            )
        return found

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=TIMEOUT)
        return self._http

    # -- step 1: off to the platform ---------------------------------------------------------

    def start(self, request: web.Request) -> web.Response:
        provider = self.provider(request)
        state = secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        params = {
            "client_id": provider.client_id,
            "redirect_uri": provider.redirect_uri(self.ctx.base_url),
            "response_type": "code",
            "scope": provider.scope,
            "state": state,
            "code_challenge": pkce_challenge(verifier),
            "code_challenge_method": "S256",
        }
        flow = self.flows.dumps(
            {
                "p": provider.platform,
                "s": state,
                "v": verifier,
                "n": local_path(request.query.get("next")),
            }
        )
        response = web.Response(
            status=302,
            headers={
                "Location": f"{provider.authorize_url}?{urlencode(params)}",
                "Cache-Control": "no-store",
            },
        )
        response.set_cookie(
            FLOW_COOKIE,
            flow,
            max_age=FLOW_SECONDS,
            path="/signin/",
            httponly=True,
            samesite="Lax",  # sent on the platform's top-level redirect back to us
            secure=self.ctx.base_url.startswith("https://"),
        )
        return response

    # -- step 2: back from the platform ------------------------------------------------------

    def _flow(self, request: web.Request, provider: Provider) -> dict[str, str]:
        try:
            flow = self.flows.loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_SECONDS)
        except BadSignature:
            raise SignInFailed(
                "this sign-in was not started here or took too long; start again"
            ) from None
        state = request.query.get("state", "")
        if (
            not isinstance(flow, dict)
            or flow.get("p") != provider.platform
            or not hmac.compare_digest(str(flow.get("s", "")).encode(), state.encode())
        ):
            raise SignInFailed("this sign-in does not match the one started here; start again")
        return {k: str(v) for k, v in flow.items()}

    async def finish(self, request: web.Request) -> tuple[Signed, str]:
        """The proven identity and where to go next. Raises SignInFailed (nothing changes)."""
        provider = self.provider(request)
        flow = self._flow(request, provider)
        if "error" in request.query:
            if request.query["error"] == "access_denied":
                raise SignInFailed(f"you did not allow {provider.label} sign-in; nothing changed")
            raise SignInFailed(f"{provider.label} refused the sign-in ({request.query['error']})")
        code = request.query.get("code", "")
        if not code or len(code) > 512:
            raise SignInFailed(f"{provider.label} sent no sign-in code; start again")
        token = await self._exchange(provider, code, flow["v"])
        user = await self._user(provider, token)
        return user, flow["n"]

    async def _exchange(self, provider: Provider, code: str, verifier: str) -> str:
        form = {
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": provider.redirect_uri(self.ctx.base_url),
            "code_verifier": verifier,
        }
        body = await self._call("POST", provider, provider.token_url, data=form)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise SignInFailed(f"{provider.label} sent no token; try again")
        return token

    async def _user(self, provider: Provider, token: str) -> Signed:
        headers = {"Authorization": f"Bearer {token}"}
        if provider.platform == "twitch":
            headers["Client-Id"] = provider.client_id
        body = await self._call("GET", provider, provider.user_url, headers=headers)
        if provider.platform == "twitch":
            rows = body.get("data")
            user = rows[0] if isinstance(rows, list) and rows else {}
            user_id, name = user.get("id"), user.get("display_name") or user.get("login")
        else:
            user_id, name = body.get("id"), body.get("global_name") or body.get("username")
        if not isinstance(user_id, str) or not user_id.isdigit():
            raise SignInFailed(f"{provider.label} did not say who you are; try again")
        return Signed(f"{provider.platform}:{user_id}", str(name or user_id)[:100])

    async def _call(
        self, method: str, provider: Provider, url: str, **kwargs: Any
    ) -> dict[str, Any]:
        try:
            async with self.http().request(method, url, **kwargs) as response:
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = None
                if response.status >= 400 or not isinstance(body, dict):
                    detail = _platform_error(body)
                    log.warning(
                        "sign-in with %s: %s %s -> %s %s",
                        provider.platform,
                        method,
                        url,
                        response.status,
                        detail,
                    )
                    raise SignInFailed(
                        f"{provider.label} did not accept the sign-in ({detail}); start again"
                    )
                return body
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("sign-in with %s: %s unreachable: %r", provider.platform, url, exc)
            raise SignInFailed(f"{provider.label} could not be reached; try again") from None


def _platform_error(body: object) -> str:
    """The platform's own words: Discord ``error_description``, Twitch ``message``."""
    if isinstance(body, dict):
        for key in ("error_description", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:200]
    return "no reason given"


SIGNIN: web.AppKey[SignIn] = web.AppKey("dropcast.signin", SignIn)


# -- handlers -----------------------------------------------------------------------------------


async def signin_start(request: web.Request) -> web.Response:
    """GET /signin/{platform}?next=/d/7: off to the platform's consent page."""
    return request.app[SIGNIN].start(request)


async def signin_callback(request: web.Request) -> web.Response:
    """GET /signin/{platform}/callback: prove who the viewer is, join (and link) the session,
    then back where they were."""
    ctx = request.app[CONTEXT]
    sessions = ctx.require_sessions()
    signed, next_path = await request.app[SIGNIN].finish(request)
    session = sessions.get(request)
    await remember(ctx, signed, session.identities)
    response = web.Response(
        status=303, headers={"Location": next_path, "Cache-Control": "no-store"}
    )
    sessions.save(response, session.with_signed(signed))
    response.del_cookie(FLOW_COOKIE, path="/signin/")
    return response


async def remember(ctx: WebContext, signed: Signed, others: tuple[str, ...]) -> None:
    """The customer proved ``signed``: mark it verified and fold in the identities this
    browser proved before (signing in with Twitch and then Discord links the two)."""
    customers = ctx.commerce.customers
    await customers.verify(signed.identity, signed.name)
    for other in others:
        if other != signed.identity:
            await customers.link(other, signed.identity)


async def signout(request: web.Request) -> web.Response:
    """POST /signout: forget the signed-in identities (the session id stays)."""
    ctx = request.app[CONTEXT]
    sessions = ctx.require_sessions()
    session = sessions.get(request)
    form = await request.post()
    if not ctx.require_csrf().check(form.get("csrf"), "signout", session.sid):
        raise InvalidInput("csrf", "reload the page and sign out again")
    response = web.Response(
        status=303,
        headers={"Location": local_path(str(form.get("next", "/"))), "Cache-Control": "no-store"},
    )
    sessions.save(response, Session(session.sid))
    return response


@operation("Who this browser is signed in as", tag="viewers", query=MeQuery, reply=Me)
async def me(request: web.Request) -> web.Response:
    """GET /api/me?drop=7: who this browser signed in as, its hold on that drop with the
    pay link and its orders there (the drop page's "your holds" panel: the receipt for a
    buyer who came from chat). Never cached: it is one person's."""
    ctx = request.app[CONTEXT]
    session = ctx.require_sessions().peek(request)
    body: dict[str, Any] = {"signed_in": False, "names": [], "holds": [], "orders": []}
    if session is not None and session.identity is not None:
        body["signed_in"] = True
        body["names"] = [{"platform": s.platform, "name": s.name} for s in session.signed]
        body["signout_csrf"] = ctx.require_csrf().token("signout", session.sid)
        drop = read_query(request, MeQuery).drop or ""
        if drop.isdigit() and len(drop) <= 18:
            customer_id = await ctx.commerce.customers.resolve(session.identity)
            body["holds"] = await _holds(ctx, int(drop), customer_id, session.identity)
            body["orders"] = [
                _receipt(o) for o in await ctx.commerce.orders.settled_of(int(drop), customer_id)
            ]
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def _receipt(order: Order) -> dict[str, Any]:
    """One order as the panel shows it: number, state, total (and the pickup code, which
    this signed-in person shows at the shop)."""
    total = format_money(order.amount, READER_LOCALE.get())
    state = order.desk_status.value.replace("_", " ")
    code = order.pickup_code if order.pool.startswith(PICKUP_PREFIX) else None
    text = f"Your order #{order.id}: {state}, {total}."
    if code:
        text += f" Show this code at the shop: {code}."
    return {
        "order_id": order.id,
        "status": order.desk_status.value,
        "total": total,
        "pickup_code": code,
        "text": text,
    }


async def _holds(
    ctx: WebContext, drop_id: int, customer_id: int, identity: str
) -> list[dict[str, Any]]:
    hold = await ctx.commerce.claims.holding(drop_id, customer_id)
    if hold is None:
        return []
    return [
        {
            "hold_id": hold.id,
            "drop_id": drop_id,
            "expires_at": hold.expires_at.isoformat(),
            "link": ctx.hold_link(drop_id, identity),
        }
    ]
