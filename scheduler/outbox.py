"""Delivery: the dispatcher leases due notifications, has each rendered as the message it
should be now, and sends it through the sender of its channel (given by the composition
root: the chat platforms' private messages, webhooks), paced by their rate limiters,
retried with backoff, with every outcome recorded (sent, unreachable — e.g. DMs closed —,
failed after retries, unsubscribed, skipped when it no longer makes sense). It knows no
platform and no wording: messages are opaque to it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar
from zoneinfo import ZoneInfo

from commerce.core import Commerce
from commerce.domain.model import NotificationStatus
from commerce.services.notifications import Delivery, DeliveryStatus, Notification
from commerce.services.subscriptions import Subscription
from scheduler.passes import run_passes

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 10.0


M = TypeVar("M")  # the message a renderer makes and a sender sends
M_contra = TypeVar("M_contra", contravariant=True)


class Sender(Protocol[M_contra]):
    async def send(self, address: str, message: M_contra, key: str) -> Delivery: ...


# None: the notification no longer makes sense (the drop is over); it is skipped.
Renderer = Callable[[Notification, datetime], Awaitable[M | None]]


def in_quiet_hours(now: datetime, zone: str, start: int | None, end: int | None) -> datetime | None:
    """If ``now`` falls in the subscriber's quiet hours, the UTC time they end."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(ZoneInfo(zone))
    hour = local.hour
    quiet = start <= hour < end if start < end else (hour >= start or hour < end)
    if not quiet:
        return None
    wake = local.replace(hour=end, minute=0, second=0, microsecond=0)
    if wake <= local:
        wake += timedelta(days=1)
    # Re-attach the zone after the day arithmetic so a DST change lands on the local hour.
    wake = datetime(wake.year, wake.month, wake.day, end, tzinfo=ZoneInfo(zone))
    return wake.astimezone(now.tzinfo)


class Dispatcher(Generic[M]):
    def __init__(
        self,
        commerce: Commerce,
        render: Renderer[M],
        senders: Mapping[str, Sender[M]],
        *,
        batch: int = 100,
        concurrency: int = 10,
        lease_seconds: float = 60,
        max_attempts: int = 5,
        backoff_seconds: float = 2.0,
    ) -> None:
        self.commerce = commerce
        self.render = render
        self.senders = senders
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._reported = time.monotonic()
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        await run_passes(self.run_once, self._wake, stop, idle_seconds, "dispatcher")

    async def run_once(self) -> int:
        """Lease one batch and deliver it; returns how many rows were handled."""
        leased = await self.commerce.notifications.lease(self.batch, self.lease_seconds)
        if not leased:
            return 0
        subs = await self.commerce.subscriptions.by_ids(
            [n.subscription_id for n in leased if n.subscription_id is not None]
        )
        await asyncio.gather(*(self._deliver(n, subs.get(n.subscription_id or 0)) for n in leased))
        now = time.monotonic()
        if now - self._reported >= PROGRESS_SECONDS:  # progress on a timer, not per batch
            self._reported = now
            pending = await self.commerce.notifications.pending()
            log.info("fan-out progress: %d sent so far, %d still queued", self.sent, pending)
        return len(leased)

    async def _deliver(self, item: Notification, sub: Subscription | None) -> None:
        # The whole delivery holds a slot, recording included: at most ``concurrency``
        # messages are ever "sent but not yet recorded" — the most a crash can repeat, and
        # each repeat carries the same idempotency key.
        async with self._slots:
            await self._deliver_one(item, sub)

    async def _deliver_one(self, item: Notification, sub: Subscription | None) -> None:
        notes = self.commerce.notifications
        now = self.commerce.clock.now()
        if sub is not None and not sub.active:
            await notes.settle(item.id, NotificationStatus.UNSUBSCRIBED)
            return
        if sub is not None:
            wake = in_quiet_hours(now, sub.timezone, sub.quiet_start, sub.quiet_end)
            if wake is not None:
                await notes.settle(item.id, NotificationStatus.PENDING, retry_at=wake)
                return
        sender = self.senders.get(item.channel)
        if sender is None:
            await notes.settle(
                item.id, NotificationStatus.FAILED, error=f"no sender for {item.channel}"
            )
            return
        message = await self.render(item, now)
        if message is None:
            await notes.settle(item.id, NotificationStatus.SKIPPED)
            return
        result = await sender.send(item.address, message, item.dedupe_key)
        if result.status is DeliveryStatus.RETRY:
            if item.attempts >= self.max_attempts:
                await notes.settle(
                    item.id, NotificationStatus.FAILED, error=result.error or "gave up"
                )
                return
            delay = result.retry_after or self.backoff_seconds * 2 ** (item.attempts - 1)
            await notes.settle(
                item.id,
                NotificationStatus.PENDING,
                error=result.error,
                retry_at=now + timedelta(seconds=delay),
            )
            return
        if result.status is DeliveryStatus.SENT:
            self.sent += 1
            if item.drop_id is not None and item.kind.startswith("reminder"):
                self.commerce.tracker.note(
                    item.drop_id, "reminder_sent", item.customer_id, tag=item.kind
                )
        await notes.settle(item.id, NotificationStatus(result.status.value), error=result.error)
