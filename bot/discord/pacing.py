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


def discord_limiter() -> RateLimiter:
    # Discord allows 50 requests/s globally and ~5 messages per 5 s per channel. A bucket
    # of 50 tokens could let ~100 through in one second (a full bucket plus refill), and
    # every 429 counts towards Discord's invalid-request ban; 49/s with a burst of 2 measured
    # 97% of the limit with no 429s in bench/fanout.py.
    return RateLimiter(global_rate=49, global_capacity=2, channel_rate=1, channel_capacity=5)


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
