"""Every Discord REST call waits for our own token buckets first.

discord.py already obeys Discord's rate-limit headers and retries 429s itself; these
buckets keep dropcast's own pace under the published limits so it rarely gets that far.
When a 429 does surface as an exception, the bucket is pushed back by ``retry_after``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import discord

from bot.ratelimit import RateLimiter

T = TypeVar("T")
_DEFAULT_RETRY_AFTER = 1.0


async def paced(limiter: RateLimiter, bucket: str | None, call: Callable[[], Awaitable[T]]) -> T:
    """Run one REST call through ``bucket`` (None: the global bucket only)."""
    await limiter.acquire(bucket)
    try:
        return await call()
    except discord.RateLimited as exc:
        _penalize(limiter, bucket, exc.retry_after)
        raise
    except discord.HTTPException as exc:
        if exc.status == 429:
            # A 429 that discord.py did not retry is Cloudflare's (no ``Via`` header): it
            # bans the whole IP, so everything pauses, not just this channel.
            _penalize(limiter, None, _retry_after(exc))
        raise


def _penalize(limiter: RateLimiter, bucket: str | None, retry_after: float) -> None:
    target = limiter.global_bucket if bucket is None else limiter.channel(bucket)
    target.penalize(retry_after)


def _retry_after(exc: discord.HTTPException) -> float:
    header = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        return float(header) if header else _DEFAULT_RETRY_AFTER
    except ValueError:
        return _DEFAULT_RETRY_AFTER
