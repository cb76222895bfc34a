"""The scheduler role: APScheduler 3.11 ``AsyncIOScheduler`` driving drops and the
retention loop, run only by the leader (see leader.py).

Jobs carry ids, never state: each run asks the database what is due, and every fan-out is
idempotent (dedupe keys), so a restart loses nothing and repeats nothing. There is one job
per drop moment — a countdown offset, a reminder offset, the opening — never one per
recipient; the dispatcher fans each moment out through the notification outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from commerce.core import Commerce
from commerce.domain.events import (
    DropClosed,
    DropOpened,
    DropScheduled,
    Event,
    ReplayPosted,
    Restocked,
)
from commerce.domain.model import Drop, DropState
from config.settings import PrivacySettings, SchedulerSettings
from scheduler.leader import Leadership
from scheduler.outbox import Dispatcher
from scheduler.recurring import materialize_due
from scheduler.webhooks import WebhookWorker

log = logging.getLogger(__name__)
RECONCILE_SECONDS = 30
RETENTION_HOURS = 24  # how often shipping addresses past their retention are erased
REPLAY_CATCH_UP = timedelta(hours=24)  # a replay after close missed while down, sent late


class Countdown(Protocol):
    async def countdown(self, drop_id: int, seconds_left: int) -> None: ...


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


async def erase_old_addresses(commerce: Commerce, retention_days: int) -> int:
    """Privacy: erase the shipping addresses of orders shipped, picked up, refunded or
    cancelled more than ``retention_days`` ago (``privacy.address_retention_days``)."""
    before = commerce.clock.now() - timedelta(days=retention_days)
    try:
        erased = await commerce.orders.erase_old_addresses(before)
    except Exception:  # the next run tries again; the job must not die
        log.exception("erasing old shipping addresses failed")
        return 0
    if erased:
        log.info("erased the shipping addresses of %d orders done before %s", erased, before)
    return erased


class SchedulerRole:
    def __init__(
        self,
        commerce: Commerce,
        settings: SchedulerSettings,
        *,
        hub: Countdown | None = None,
        dispatcher: Dispatcher[Any] | None = None,
        leadership: Leadership | None = None,
        privacy: PrivacySettings | None = None,
        webhooks: WebhookWorker | None = None,
    ) -> None:
        self.commerce = commerce
        self.settings = settings
        self.privacy = privacy or PrivacySettings()
        self.hub = hub
        self.dispatcher = dispatcher
        self.webhooks = webhooks
        self.leadership = leadership or Leadership(commerce.db)
        self.scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._dispatch_stop = asyncio.Event()
        commerce.bus.subscribe(
            self._on_event, DropScheduled, DropOpened, ReplayPosted, Restocked, DropClosed
        )

    @property
    def leading(self) -> bool:
        return self.scheduler is not None and self.scheduler.running

    async def start(self) -> None:
        if not self.settings.enabled:
            return
        self._tasks.append(
            asyncio.create_task(self.leadership.run(self._stop, self._elected, self._deposed))
        )

    async def shutdown(self) -> None:
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 10)
        await self._deposed()
        if self.webhooks is not None:
            await self.webhooks.close()

    async def _elected(self) -> None:
        scheduler = AsyncIOScheduler(timezone=self.settings.timezone)
        scheduler.add_job(
            housekeeping,
            "interval",
            seconds=self.settings.sweep_interval_seconds,
            args=[self.commerce],
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        # Reconcile also materializes recurring drops (one job, so two never race).
        scheduler.add_job(
            self.reconcile,
            "interval",
            seconds=RECONCILE_SECONDS,
            id="reconcile",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        # Daily, and once soon after election: a leader that restarts more often than
        # daily must still get to it.
        scheduler.add_job(
            erase_old_addresses,
            "interval",
            hours=RETENTION_HOURS,
            args=[self.commerce, self.privacy.address_retention_days],
            id="address_retention",
            next_run_time=datetime.now(UTC) + timedelta(seconds=RECONCILE_SECONDS),
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        self.scheduler = scheduler
        self._dispatch_stop = asyncio.Event()
        if self.dispatcher is not None:
            self._tasks.append(asyncio.create_task(self.dispatcher.run(self._dispatch_stop)))
        if self.webhooks is not None:  # the creator's signed webhooks, from the leader too
            self._tasks.append(asyncio.create_task(self.webhooks.run(self._dispatch_stop)))
        await self.reconcile()

    async def _deposed(self) -> None:
        self._dispatch_stop.set()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self.scheduler = None

    async def reconcile(self) -> None:
        """Rebuild jobs from the tables, and catch up on moments missed while down.

        Fan-outs are idempotent, so re-running one that already happened adds nothing; a
        reminder that became due while no leader ran is queued now and rendered late with a
        note, or skipped by the renderer if the drop is already over.
        """
        now = self.commerce.clock.now()
        await materialize_due(self.commerce, self.commerce.templates)
        for drop in await self.commerce.drops.list((DropState.SCHEDULED, DropState.LIVE)):
            if drop.state is DropState.SCHEDULED:
                self.schedule_drop(drop)
                for offset in self.settings.reminder_offsets:
                    if drop.opens_at and drop.opens_at - timedelta(seconds=offset) <= now:
                        await self.fan_out(drop.id, f"reminder:{offset}")
            else:
                await self.fan_out(drop.id, "live")
            if drop.replay_url:
                await self.fan_out(drop.id, "replay")
        await self._reconcile_replays(now)

    async def _reconcile_replays(self, now: datetime) -> None:
        """Replays after close: a job for each one still ahead, the ones that fell due while
        no leader ran sent now (for up to a day)."""
        after = timedelta(minutes=self.settings.replay_after_minutes)
        if not after:
            return
        for drop_id, closed_at in await self.commerce.clips.closed_between(
            now - after - REPLAY_CATCH_UP, now
        ):
            if closed_at + after <= now:
                await self.replay_after_close(drop_id)
            else:
                self.schedule_replay(drop_id, closed_at)

    def schedule_replay(self, drop_id: int, closed_at: datetime) -> None:
        """One job: the replay ``scheduler.replay_after_minutes`` after the drop closed."""
        minutes = self.settings.replay_after_minutes
        if self.scheduler is None or not minutes:
            return
        self.scheduler.add_job(
            self.replay_after_close,
            "date",
            run_date=closed_at + timedelta(minutes=minutes),
            args=[drop_id],
            id=f"replay:{drop_id}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def replay_after_close(self, drop_id: int) -> int:
        """The automatic replay: to subscribers and non-buyers of a drop that is still
        closed, when a restock is planned (its products are on sale again later) and there
        is something to show (a ready clip, or the creator's replay link). Asked again, it
        adds nobody (the fan-out is idempotent); with nothing to show it queues nobody, so
        a later `drop replay` still reaches them."""
        drop = await self.commerce.drops.get(drop_id)
        if drop.state is not DropState.CLOSED:
            return 0  # sold out, then restocked: live again, the restock alert says it
        if not await self.commerce.clips.restock_planned(drop_id):
            return 0
        if not drop.replay_url and await self.commerce.clips.best(drop_id) is None:
            log.debug("drop %d closed with no clip ready: no replay after close", drop_id)
            return 0
        return await self.fan_out(drop_id, "replay")

    def schedule_drop(self, drop: Drop) -> None:
        """One job per moment: open, each countdown offset, each reminder offset."""
        scheduler = self.scheduler
        if scheduler is None or drop.opens_at is None or drop.state is not DropState.SCHEDULED:
            return
        now = self.commerce.clock.now()
        scheduler.add_job(
            housekeeping,
            "date",
            run_date=drop.opens_at,
            args=[self.commerce],
            id=f"open:{drop.id}",
            replace_existing=True,
            misfire_grace_time=None,
        )
        for offset in self.settings.reminder_offsets:
            when = drop.opens_at - timedelta(seconds=offset)
            if when > now:
                scheduler.add_job(
                    self.fan_out,
                    "date",
                    run_date=when,
                    args=[drop.id, f"reminder:{offset}"],
                    id=f"reminder:{drop.id}:{offset}",
                    replace_existing=True,
                    misfire_grace_time=None,
                )
        if self.hub is None:
            return
        for offset in self.settings.countdown_offsets:
            when = drop.opens_at - timedelta(seconds=offset)
            if when > now:  # a countdown post that is already late would only confuse
                scheduler.add_job(
                    self.hub.countdown,
                    "date",
                    run_date=when,
                    args=[drop.id, offset],
                    id=f"countdown:{drop.id}:{offset}",
                    replace_existing=True,
                    misfire_grace_time=30,
                )

    async def fan_out(self, drop_id: int, kind: str, sku: str | None = None) -> int:
        added = await self.commerce.notifications.fan_out(drop_id, kind, sku=sku)
        if added:
            log.info("queued %d %s notifications for drop %d", added, kind, drop_id)
            if self.dispatcher is not None:
                self.dispatcher.wake()
        return added

    async def _on_event(self, event: Event) -> None:
        if not self.leading:
            return
        match event:
            case DropScheduled():
                self.schedule_drop(await self.commerce.drops.get(event.drop_id))
            case DropOpened():
                await self.fan_out(event.drop_id, "live")
            case ReplayPosted():
                await self.fan_out(event.drop_id, "replay")
            case DropClosed():
                self.schedule_replay(event.drop_id, event.at)
            case Restocked():
                view = await self.commerce.drops.view(event.drop_id)
                total = sum(s.total for s in view.stock if s.sku == event.sku)
                await self.fan_out(event.drop_id, f"restock:{event.sku}:{total}", sku=event.sku)
