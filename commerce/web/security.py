"""Request-level protection: CSRF tokens, client addresses behind proxies, token-bucket
rate limits, admin bearer tokens and link-preview bot detection."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from aiohttp import web

from commerce.web.errors import AdminDisabled, Unauthorized

Network = IPv4Network | IPv6Network

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
    """Token buckets per key: ``rate`` tokens per second, bursts up to ``max(1, rate)``.

    A rate of 0 turns the limiter off. Keys are kept in LRU order and bounded in number.
    """

    def __init__(
        self,
        rate: float,
        *,
        max_keys: int = 100_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
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
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def retry_after_header(wait: float) -> str:
    return str(max(1, math.ceil(wait)))


def require_admin(request: web.BaseRequest, admin_token: str | None) -> None:
    """Bearer-token check for the admin API (constant-time comparison)."""
    if not admin_token:
        raise AdminDisabled(
            "the admin API is disabled: set security.admin_token (DROPCAST_SECURITY__ADMIN_TOKEN)"
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), admin_token.encode()
    ):
        raise Unauthorized("send Authorization: Bearer <admin token>")
