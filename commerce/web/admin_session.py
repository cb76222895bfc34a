"""The creator's browser session: who may see the dashboard, the order desk, a pickup list's
admin view and the studio's creator commands.

A browser cannot send a bearer header, so ``/dashboard?token=…`` signs in once: the cookie
is an itsdangerous timestamp signature (timed by the injected clock) under a key derived
from the server secret *and* the admin token, so changing either ends every session, and
the token itself never travels in the cookie. HttpOnly, SameSite=Strict, Secure on https.
"""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web
from itsdangerous import BadSignature, TimestampSigner

from commerce.clock import Clock
from commerce.web.context import CONTEXT, WebContext
from commerce.web.errors import Unauthorized
from commerce.web.security import bearer_token, require_admin

COOKIE = "dc_admin"
SESSION = timedelta(days=7)
_SIGNED = "dashboard"  # what the cookie signs: the key and the time carry the meaning
_MAX_COOKIE = 256  # ours is ~40 characters; anything longer is not worth a signature check


class ClockSigner(TimestampSigner):
    """A TimestampSigner that reads the time from our clock, so tests can age a session."""

    def __init__(self, key: str, clock: Clock) -> None:
        super().__init__(key, salt="dropcast.dashboard")
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())


def _signer(ctx: WebContext) -> ClockSigner:
    assert ctx.admin_token
    # An HMAC of the admin token under the secret: a key only this secret and token make.
    key = ctx.require_csrf().token("dashboard", ctx.admin_token)
    return ClockSigner(key, ctx.commerce.clock)


def session_value(ctx: WebContext) -> str:
    """A new session cookie's value, valid for SESSION from now."""
    return _signer(ctx).sign(_SIGNED).decode()


def valid_session(ctx: WebContext, value: str) -> bool:
    """True for a cookie we made under the current secret and admin token, not yet expired."""
    if not ctx.admin_token or len(value) > _MAX_COOKIE:
        return False
    try:
        signed = _signer(ctx).unsign(value, max_age=int(SESSION.total_seconds()))
    except BadSignature:  # also SignatureExpired: forged, altered, or older than SESSION
        return False
    return signed == _SIGNED.encode()


def start_session(response: web.StreamResponse, request: web.Request, ctx: WebContext) -> None:
    """Set the session cookie on ``response`` (the admin has just shown the token)."""
    response.set_cookie(
        COOKIE,
        session_value(ctx),
        max_age=int(SESSION.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure or ctx.base_url.startswith("https://"),
    )


def require_dashboard(request: web.Request) -> WebContext:
    """Bearer token or the dashboard cookie; AdminDisabled (403) / Unauthorized (401) /
    RateLimited (429) while the address has failed too often. A wrong token or a cookie
    we did not make counts as a failure; a browser that sends neither is only being
    asked to sign in."""
    ctx = request.app[CONTEXT]
    if not ctx.admin_token or bearer_token(request) is not None:
        require_admin(request, ctx.admin_token, ctx.auth_throttle)
        return ctx
    ip = ctx.auth_throttle.admit(request)
    cookie = request.cookies.get(COOKIE)
    if cookie is None or not valid_session(ctx, cookie):
        if cookie is not None:
            ctx.auth_throttle.failed(ip)
        raise Unauthorized(
            "send Authorization: Bearer <admin token>, or log in at /dashboard?token=…"
        )
    return ctx
