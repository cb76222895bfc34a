"""The loop of a delivery worker (retention messages, webhooks): pass after pass until
stopped; straight on after a pass that found work, else asleep until woken or idle."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_passes(
    run_once: Callable[[], Awaitable[int]],
    wake: asyncio.Event,
    stop: asyncio.Event,
    idle_seconds: float,
    what: str,
) -> None:
    """Call ``run_once`` (how many items it handled) until ``stop`` is set. ``wake`` is
    cleared before each pass, so a wake-up that comes during a pass starts the next one at
    once instead of being lost. A failed pass is logged and counts as idle."""
    while not stop.is_set():
        wake.clear()
        try:
            done = await run_once()
        except Exception:
            log.exception("%s pass failed", what)
            done = 0
        if done == 0:
            waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
