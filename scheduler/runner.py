"""The scheduler process role: APScheduler 3.11 ``AsyncIOScheduler`` driving the drop
lifecycle. Jobs carry no state of their own: each run asks the database what is due, so a
restart loses nothing and a missed run is simply caught up by the next one."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from commerce.core import Commerce

log = logging.getLogger(__name__)


async def housekeeping(commerce: Commerce) -> None:
    """Open due drops, close ended ones, expire lapsed holds, re-send stranded events."""
    for step in (
        commerce.drops.open_due,
        commerce.drops.close_due,
        commerce.claims.expire_due,
        commerce.outbox.relay_pending,
    ):
        try:
            await step()
        except Exception:  # one failing step must not stop the others or the job
            log.exception("housekeeping step %s failed", step.__qualname__)


class LifecycleScheduler:
    def __init__(self, commerce: Commerce, *, interval_seconds: float, timezone: str) -> None:
        self.commerce = commerce
        self.scheduler = AsyncIOScheduler(timezone=timezone)
        self.scheduler.add_job(
            housekeeping,
            "interval",
            seconds=interval_seconds,
            args=[commerce],
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )

    def start(self) -> None:
        self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
