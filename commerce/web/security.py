"""Request-level protection: CSRF tokens, client addresses behind proxies, token-bucket
rate limits, throttled admin bearer tokens, stream slots per address, link-preview bot
detection and which websites may read the public drop state (CORS for the widget)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import TypeVar

from aiohttp import web

from commerce.web.errors import AdminDisabled, RateLimited, Unauthorized

log = logging.getLogger(__name__)
Network = IPv4Network | IPv6Network
V = TypeVar("V")

# Chat and social apps fetch posted links to draw a preview; such a fetch must never claim.
PREVIEW_BOTS = re.compile(
    r"discordbot|twitterbot|slackbot|slack-imgproxy|facebookexternalhit|facebookcatalog|"
    r"telegrambot|whatsapp|linkedinbot|skypeuripreview|redditbot|embedly|pinterest|"
    r"mastodon|iframely|vkshare|applebot|googlebot|bingbot|bot\.html",
    re.IGNORECASE,
)


def is_link_preview(request: web.BaseRequest) -> bool:
    """HEAD requests and known preview fetchers get an Open Graph card, never a claim."""
    if request.method == "HEAD":
        return True
    return bool(PREVIEW_BOTS.search(request.headers.get("User-Agent", "")))


class Csrf:
    """Stateless synchronizer tokens: an HMAC over what the form is bound to."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"dropcast.csrf\0" + secret.encode()).digest()

    def token(self, *parts: object) -> str:
        message = "\x1f".join(str(p) for p in parts).encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def check(self, token: object, *parts: object) -> bool:
        """True when ``token`` (a form field: text, or anything a client sent) is ours."""
        return (
            isinstance(token, str)
            and bool(token)
            and hmac.compare_digest(token, self.token(*parts))
        )


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: web.BaseRequest, trusted: tuple[Network, ...]) -> str:
    """The buyer's address: X-Forwarded-For is believed only when the peer is a trusted proxy,
    and then only up to the first hop that is not one (the rightmost untrusted address)."""
    peer = request.remote or "unknown"
    if not trusted or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", ()) for h in v.split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


class RateLimiter:
    """Token buckets per key: ``rate`` tokens per second, bursts up to ``burst`` (default
    ``max(1, rate)``).

    A rate of 0 turns the limiter off. Keys are kept in LRU order and bounded in number.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        max_keys: int = 100_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._max_keys = max_keys
        self._now = now
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def hit(self, key: str) -> float:
        """Take a token; returns 0 when allowed, else the seconds to wait for one."""
        if self.rate <= 0:
            return 0.0
        now = self._now()
        tokens, last = self._buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        _keep_recent(self._buckets, key, (tokens, now), self._max_keys)
        return wait


def _keep_recent(entries: OrderedDict[str, V], key: str, value: V, max_keys: int) -> None:
    """Store ``value`` as the most recent entry; past ``max_keys`` the oldest goes."""
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > max_keys:
        entries.popitem(last=False)


def retry_after_header(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


class AuthThrottle:
    """Failed authentications per client address, in a sliding window: after ``limit``
    failures within ``window`` seconds the address is refused, even with the right secret,
    until its oldest failure ages out, so guessing a token costs a minute per ten tries
    while everyone else signs in as usual. Addresses are kept in LRU order, bounded."""

    def __init__(
        self,
        trusted: tuple[Network, ...],
        *,
        limit: int = 10,
        window: float = 60.0,
        max_keys: int = 100_000,
        now: Callable[[], float] = time.monotonic,
        what: str = "admin sign-in",
    ) -> None:
        self.limit = limit
        self.what = what
        self.window = window
        self._trusted = trusted
        self._max_keys = max_keys
        self._now = now
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def admit(self, request: web.BaseRequest) -> str:
        """The client's address; RateLimited while it is refused."""
        ip = client_ip(request, self._trusted)
        failures = self._failures.get(ip)
        if failures is None:
            return ip
        now = self._now()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if len(failures) >= self.limit:
            raise RateLimited(failures[0] + self.window - now)
        return ip

    def failed(self, ip: str) -> None:
        failures = self._failures.get(ip) or deque(maxlen=self.limit)
        failures.append(self._now())
        _keep_recent(self._failures, ip, failures, self._max_keys)
        if len(failures) == self.limit:
            log.warning("%s refused for %s for a while: too many failures", self.what, ip)


def bearer_token(request: web.BaseRequest) -> str | None:
    """The token of ``Authorization: Bearer …``; None when the request sends none."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return given.strip() if scheme.lower() == "bearer" else None


def same_secret(given: str | None, secret: str) -> bool:
    """Constant time whatever was sent: equal-length digests are compared."""
    if given is None:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(secret.encode()).digest())


def require_bearer(
    request: web.BaseRequest, secret: str, throttle: AuthThrottle | None, what: str
) -> None:
    """The bearer token of a machine client (admin API, Prometheus). Such a client always
    sends its token, so a request without the right one counts as a failure."""
    ip = throttle.admit(request) if throttle is not None else ""
    if not same_secret(bearer_token(request), secret):
        if throttle is not None:
            throttle.failed(ip)
        raise Unauthorized(f"send Authorization: Bearer <{what}>")


def require_admin(
    request: web.BaseRequest, admin_token: str | None, throttle: AuthThrottle | None = None
) -> None:
    """Bearer-token check for the admin API (constant time), failures throttled per
    address when ``throttle`` is given (every web route gives ``ctx.auth_throttle``)."""
    if not admin_token:
        raise AdminDisabled(
            "the admin API is disabled: set security.admin_token (DROPCAST_SECURITY__ADMIN_TOKEN)"
        )
    require_bearer(request, admin_token, throttle, "admin token")


class EmbedPolicy:
    """CORS for what the embeddable widget reads across origins: its script, the drop's
    JSON and its event stream, all public and read-only (no credentials, so no cookie).
    No origins configured: any website may embed (``*``). Otherwise only those origins get
    the header (and caches keep one answer per ``Origin``); a browser on any other site
    refuses the script, so the widget does not load there."""

    ANY: Mapping[str, str] = {"Access-Control-Allow-Origin": "*"}
    VARY: Mapping[str, str] = {"Vary": "Origin"}

    def __init__(self, origins: Iterable[str] = ()) -> None:
        self._origins = frozenset(origins)

    def headers(self, request: web.BaseRequest) -> Mapping[str, str]:
        if not self._origins:
            return self.ANY
        origin = request.headers.get("Origin")
        if origin in self._origins:
            return {"Access-Control-Allow-Origin": origin, **self.VARY}
        return self.VARY


class StreamSlots:
    """Long-lived streams per client address: at most ``per_key`` open at once, so one
    address cannot tie up the server's connections. ``release`` frees a slot when the
    stream ends; an address without open streams takes no memory."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}

    def take(self, key: str, retry_after: float) -> None:
        """Take one of ``key``'s slots, or RateLimited (``retry_after``) when none is free."""
        count = self._open.get(key, 0)
        if count >= self.per_key:
            raise RateLimited(retry_after)
        self._open[key] = count + 1

    def release(self, key: str) -> None:
        left = self._open.pop(key, 1) - 1
        if left > 0:
            self._open[key] = left

    def open(self, key: str) -> int:
        return self._open.get(key, 0)
