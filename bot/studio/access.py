"""Who may do what in the studio (issue 12): the studio belongs to the creator.

- A tab connects only from a page of our own site (``Origin`` is ``web.public_url``'s), so
  no other site a visitor opens can drive the studio with their cookies. Browsers always
  send ``Origin`` on a WebSocket handshake; a client without one is no browser, and so
  cannot ride anyone's cookies: it is let in.
- Each tab belongs to a browser session (``commerce.web.sessions``, set by ``GET /studio``).
  A name belongs to the first session that speaks as it: the pay links and private answers
  for ``local:<name>`` go to that session's tabs only.
- Creator commands need the admin (the dashboard's sign-in cookie, or the bearer admin
  token of a non-browser client), decided once when the tab connects.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

from aiohttp import web
from yarl import URL

from commerce.web.admin_session import require_dashboard
from commerce.web.errors import AdminDisabled, RateLimited, Unauthorized

MAX_NAMES = 100_000


def origin_allowed(request: web.BaseRequest, public_url: str) -> bool:
    """No ``Origin`` (not a browser), or exactly the scheme://host[:port] of ``public_url``."""
    given = request.headers.get("Origin")
    if given is None:
        return True
    try:
        origin = URL(given)
        return origin.is_absolute() and origin.origin() == URL(public_url).origin()
    except ValueError:  # not a URL at all
        return False


def is_admin(request: web.Request) -> bool:
    """Signed in at the dashboard (its cookie), or the admin token as a bearer header; the
    dashboard's own check, so a wrong token counts against the address as it does there."""
    try:
        require_dashboard(request)
    except (AdminDisabled, Unauthorized, RateLimited):
        return False
    return True


class NameBook:
    """Which session owns each studio identity: the first one to speak as it.

    Bounded: when full, the name used least recently by a session with no open tab is
    forgotten (and may be taken again); when every owner has a tab open, no new name is
    given out until one leaves. Kept in memory: after a restart every name is free again.
    """

    def __init__(self, limit: int = MAX_NAMES) -> None:
        self.limit = limit
        self._owners: OrderedDict[str, str] = OrderedDict()  # identity -> session id

    def owner(self, identity: str) -> str | None:
        return self._owners.get(identity)

    def take(self, identity: str, sid: str, present: Collection[str]) -> bool:
        """Let ``sid`` speak as ``identity``; False when another session owns it, or when the
        book is full (then ``owner`` is None). ``present``: the sessions with a tab open,
        whose names are kept."""
        owner = self._owners.get(identity)
        if owner is not None:
            if owner != sid:
                return False
            self._owners.move_to_end(identity)
            return True
        if len(self._owners) >= self.limit:
            idle = next((n for n, s in self._owners.items() if s not in present), None)
            if idle is None:
                return False
            del self._owners[idle]
        self._owners[identity] = sid
        return True
