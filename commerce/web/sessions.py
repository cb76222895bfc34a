"""Browser sessions: one signed cookie (itsdangerous) says who this browser is.

A session carries a random id (stable for the browser, so the studio can bind chat names
to it) and the platform identities its owner proved by signing in (``twitch:<id>``,
``discord:<id>``). Nothing is kept on the server: the cookie is the session, and only a
holder of the secret can make one. HttpOnly, SameSite=Lax (the OAuth callback is a
top-level navigation back from the platform), Secure when the site is served over https.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "dc_session"
MAX_AGE = 30 * 24 * 3600  # a month: a superfan signs in once for a season of drops
MAX_IDENTITIES = 4


@dataclass(frozen=True, slots=True)
class Signed:
    """One identity the session's owner proved, with the name the platform gave it."""

    identity: str
    name: str

    @property
    def platform(self) -> str:
        return self.identity.partition(":")[0]


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    signed: tuple[Signed, ...] = field(default=())
    fresh: bool = False  # made for this request: the cookie must be set

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(s.identity for s in self.signed)

    @property
    def identity(self) -> str | None:
        """The identity claims are made as (the first one signed in with)."""
        return self.signed[0].identity if self.signed else None

    def with_signed(self, signed: Signed) -> Session:
        kept = tuple(s for s in self.signed if s.identity != signed.identity)
        return replace(self, signed=(*kept, signed)[-MAX_IDENTITIES:], fresh=True)


class Sessions:
    """Reads and writes the session cookie."""

    def __init__(self, secret: str, *, secure: bool, max_age: int = MAX_AGE) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="dropcast.session")
        self.secure = secure
        self.max_age = max_age

    def peek(self, request: web.BaseRequest) -> Session | None:
        """The request's session, or None when it carries no valid one."""
        raw = request.cookies.get(COOKIE)
        if not raw or len(raw) > 4096:
            return None
        try:
            data = self._serializer.loads(raw, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired: a forged, altered or old cookie
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        signed = tuple(
            Signed(str(item[0]), str(item[1]))
            for item in data.get("ids", ())
            if isinstance(item, list) and len(item) == 2
        )
        return Session(data["sid"], signed)

    def get(self, request: web.BaseRequest) -> Session:
        """The request's session, or a new anonymous one (``fresh``: remember to ``save``)."""
        return self.peek(request) or Session(secrets.token_urlsafe(16), fresh=True)

    def value(self, session: Session) -> str:
        """The cookie's signed value."""
        return str(
            self._serializer.dumps(
                {"sid": session.sid, "ids": [[s.identity, s.name] for s in session.signed]}
            )
        )

    def save(self, response: web.StreamResponse, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            self.value(session),
            max_age=self.max_age,
            path="/",
            httponly=True,
            samesite="Lax",
            secure=self.secure,
        )

    def clear(self, response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")
