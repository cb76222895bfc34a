"""Discord-style REST rate limiting: per-route buckets, a global limit, forced 429s.

Model (https://discord.com/developers/docs/topics/rate-limits):
* a route template (method + path with placeholders) maps to an opaque bucket hash
  (``X-RateLimit-Bucket``), and the bucket is split per *major parameter*
  (channel id, guild id, webhook id + token);
* fixed windows: ``limit`` requests per ``per`` seconds, counting down in
  ``X-RateLimit-Remaining`` and resetting ``X-RateLimit-Reset-After`` seconds later;
* a global per-bot limit (50 req/s by default) that interaction endpoints bypass;
* 429 bodies carry ``retry_after`` (float seconds) and ``global``; real 429s always
  come through Google's load balancer, hence ``Via: 1.1 google`` -- discord.py treats
  a 429 *without* ``Via`` as a Cloudflare ban and raises instead of retrying.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field

RATE_LIMITED_MESSAGE = "You are being rate limited."


@dataclass(frozen=True)
class RouteLimit:
    limit: int
    per: float


@dataclass
class _Window:
    limit: int
    per: float
    remaining: int
    reset_at: float


@dataclass
class ForcedRateLimit:
    method: str | None
    route: str  # template or concrete path
    count: int
    retry_after: float
    is_global: bool = False
    cloudflare: bool = False  # answer like a Cloudflare ban: HTML body, no Via header


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float = 0.0
    is_global: bool = False
    cloudflare: bool = False

    def body(self) -> dict[str, object]:
        return {
            "message": RATE_LIMITED_MESSAGE,
            "retry_after": round(self.retry_after, 3),
            "global": self.is_global,
        }


# Limits observed on the real API for routes a chat bot hammers; everything else
# falls back to ``default_limit``.
DEFAULT_ROUTE_LIMITS: dict[tuple[str, str], RouteLimit] = {
    ("POST", "/channels/{channel_id}/messages"): RouteLimit(5, 5.0),
    ("PATCH", "/channels/{channel_id}/messages/{message_id}"): RouteLimit(5, 5.0),
    ("DELETE", "/channels/{channel_id}/messages/{message_id}"): RouteLimit(5, 1.0),
    ("POST", "/webhooks/{application_id}/{interaction_token}"): RouteLimit(5, 2.0),
}


def bucket_hash(method: str, template: str) -> str:
    return hashlib.sha1(f"{method} {template}".encode()).hexdigest()[:32]


class RateLimiter:
    def __init__(
        self,
        *,
        global_limit: int = 50,
        global_per: float = 1.0,
        default_limit: RouteLimit = RouteLimit(50, 1.0),
    ) -> None:
        self.global_limit = global_limit
        self.global_per = global_per
        self.default_limit = default_limit
        self.route_limits: dict[tuple[str, str], RouteLimit] = dict(DEFAULT_ROUTE_LIMITS)
        self.forced: list[ForcedRateLimit] = []
        self.enabled = True
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._global_start = 0.0
        self._global_count = 0

    def reset(self) -> None:
        self._windows.clear()
        self._global_count = 0

    def set_route_limit(self, method: str, template: str, limit: int, per: float) -> None:
        key = (method.upper(), template)
        self.route_limits[key] = RouteLimit(limit, per)
        self._windows = {k: w for k, w in self._windows.items() if k[:2] != key}

    def force(self, forced: ForcedRateLimit) -> None:
        self.forced.append(forced)

    def _take_forced(self, method: str, template: str, path: str) -> ForcedRateLimit | None:
        for forced in self.forced:
            if forced.count <= 0:
                continue
            if forced.method is not None and forced.method.upper() != method:
                continue
            if forced.route not in (template, path):
                continue
            forced.count -= 1
            return forced
        return None

    def check(
        self, method: str, template: str, path: str, major: str, *, global_exempt: bool
    ) -> Verdict:
        now = time.monotonic()
        limit = self.route_limits.get((method, template), self.default_limit)
        bucket = bucket_hash(method, template)

        forced = self._take_forced(method, template, path)
        if forced is not None:
            return self._forced_verdict(forced, limit, bucket)
        if not self.enabled:
            return Verdict(True, self._headers(limit.limit, limit.limit - 1, limit.per, bucket))

        if not global_exempt:
            if now - self._global_start >= self.global_per:
                self._global_start, self._global_count = now, 0
            if self._global_count >= self.global_limit:
                retry = self._global_start + self.global_per - now
                return Verdict(False, _global_headers(retry), retry, is_global=True)
            self._global_count += 1

        key = (method, template, major)
        window = self._windows.get(key)
        if window is None or now >= window.reset_at or window.limit != limit.limit:
            window = _Window(limit.limit, limit.per, limit.limit, now + limit.per)
            self._windows[key] = window
        reset_after = max(window.reset_at - now, 0.0)
        if window.remaining <= 0:
            headers = self._headers(window.limit, 0, reset_after, bucket)
            headers["Retry-After"] = str(max(1, math.ceil(reset_after)))
            headers["X-RateLimit-Scope"] = "user"
            return Verdict(False, headers, reset_after)
        window.remaining -= 1
        return Verdict(True, self._headers(window.limit, window.remaining, reset_after, bucket))

    def _forced_verdict(self, forced: ForcedRateLimit, limit: RouteLimit, bucket: str) -> Verdict:
        if forced.is_global:
            headers = _global_headers(forced.retry_after)
        else:
            headers = self._headers(limit.limit, 0, forced.retry_after, bucket)
            headers["Retry-After"] = str(max(1, math.ceil(forced.retry_after)))
            headers["X-RateLimit-Scope"] = "user"
        return Verdict(
            False,
            headers,
            forced.retry_after,
            is_global=forced.is_global,
            cloudflare=forced.cloudflare,
        )

    @staticmethod
    def _headers(limit: int, remaining: int, reset_after: float, bucket: str) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": bucket,
        }


def _global_headers(retry_after: float) -> dict[str, str]:
    # Global 429s carry no bucket headers, only the global marker and scope.
    return {
        "Retry-After": str(max(1, math.ceil(retry_after))),
        "X-RateLimit-Global": "true",
        "X-RateLimit-Scope": "global",
    }
