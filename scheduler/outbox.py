"""Delivery: the dispatcher leases due notifications and sends them through the platform
senders, paced by their rate limiters, retried with backoff, with every outcome recorded
(sent, unreachable — e.g. Discord 50007 DMs closed —, failed after retries, unsubscribed,
skipped when it no longer makes sense)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

import aiohttp

from bot.hub import Outlet
from bot.messages import Message
from bot.presenter import count, receipt, refunded, shipped
from commerce.core import Commerce
from commerce.domain.model import DropState
from commerce.money_format import format_money
from commerce.services.notifications import Notification
from commerce.services.subscriptions import Subscription

log = logging.getLogger(__name__)
PROGRESS_SECONDS = 10.0


class DeliveryStatus(StrEnum):
    SENT = "sent"
    UNREACHABLE = "unreachable"  # the person cannot be messaged there (DMs closed, 410)
    RETRY = "retry"  # try again later (429, 5xx, network)
    FAILED = "failed"  # a permanent error


@dataclass(frozen=True, slots=True)
class Delivery:
    status: DeliveryStatus
    retry_after: float | None = None
    error: str | None = None


class Sender(Protocol):
    async def send(self, address: str, message: Message, key: str) -> Delivery: ...


class OutletSender:
    """Private messages through a chat outlet (Discord DM, studio session)."""

    def __init__(self, outlet: Outlet) -> None:
        self.outlet = outlet

    async def send(self, address: str, message: Message, key: str) -> Delivery:
        try:
            reached = await self.outlet.send_private(address, message, key)
        except Exception as exc:  # network trouble: the dispatcher backs off and retries
            return Delivery(DeliveryStatus.RETRY, error=f"{type(exc).__name__}: {exc}")
        if reached:
            return Delivery(DeliveryStatus.SENT)
        reason = f"{self.outlet.platform} will not deliver privately (e.g. DMs closed, 50007)"
        return Delivery(DeliveryStatus.UNREACHABLE, error=reason)


class WebhookSender:
    """POSTs JSON to the subscriber's URL with an Idempotency-Key, so a resend after a crash
    is recognisable as the same notification."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, address: str, message: Message, key: str) -> Delivery:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        body = {
            "kind": message.kind,
            "drop_id": message.drop_id,
            "text": message.text,
            "at": message.at.isoformat() if message.at else None,
            "link": message.personal_link or message.public_link,
        }
        try:
            async with self._session.post(
                address, json=body, headers={"Idempotency-Key": key}
            ) as response:
                if response.status < 300:
                    return Delivery(DeliveryStatus.SENT)
                if response.status in (404, 410):
                    return Delivery(DeliveryStatus.UNREACHABLE, error=f"HTTP {response.status}")
                if response.status == 429 or response.status >= 500:
                    retry = float(response.headers.get("Retry-After", "0") or 0) or None
                    return Delivery(DeliveryStatus.RETRY, retry, f"HTTP {response.status}")
                return Delivery(DeliveryStatus.FAILED, error=f"HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return Delivery(DeliveryStatus.RETRY, error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


Renderer = Callable[[Notification, datetime], Awaitable[Message | None]]


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


class Dispatcher:
    def __init__(
        self,
        commerce: Commerce,
        render: Renderer,
        senders: dict[str, Sender],
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
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:
                log.exception("dispatcher pass failed")
                done = 0
            if done == 0:
                self._wake.clear()
                waiters = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                await asyncio.wait(
                    waiters, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waiters:
                    waiter.cancel()

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
            await notes.settle(item.id, "unsubscribed")
            return
        if sub is not None:
            wake = in_quiet_hours(now, sub.timezone, sub.quiet_start, sub.quiet_end)
            if wake is not None:
                await notes.settle(item.id, "pending", retry_at=wake)
                return
        sender = self.senders.get(item.channel)
        if sender is None:
            await notes.settle(item.id, "failed", error=f"no sender for {item.channel}")
            return
        message = await self.render(item, now)
        if message is None:
            await notes.settle(item.id, "skipped")
            return
        result = await sender.send(item.address, message, item.dedupe_key)
        if result.status is DeliveryStatus.RETRY:
            if item.attempts >= self.max_attempts:
                await notes.settle(item.id, "failed", error=result.error or "gave up")
                return
            delay = result.retry_after or self.backoff_seconds * 2 ** (item.attempts - 1)
            await notes.settle(
                item.id, "pending", error=result.error, retry_at=now + timedelta(seconds=delay)
            )
            return
        if result.status is DeliveryStatus.SENT:
            self.sent += 1
            if item.drop_id is not None and item.kind.startswith("reminder"):
                self.commerce.tracker.note(
                    item.drop_id, "reminder_sent", item.customer_id, tag=item.kind
                )
        await notes.settle(item.id, result.status.value, error=result.error)


class RetentionRenderer:
    """Turns a notification into the message it should be *now* — or None when it no longer
    makes sense (the drop is over) — with a fresh personal link tagged for attribution."""

    def __init__(
        self,
        commerce: Commerce,
        issue_link: Callable[[int, str, str | None], Awaitable[str]],
        unsubscribe_url: Callable[[int], str],
        public_url: str,
        locale: str | None = None,
    ) -> None:
        self.commerce = commerce
        self.issue_link = issue_link
        self.unsubscribe_url = unsubscribe_url
        self.public_url = public_url.rstrip("/")
        self.locale = locale  # money in these messages; None: the process default

    async def __call__(self, item: Notification, now: datetime) -> Message | None:
        if item.drop_id is None:
            return None
        view = await self.commerce.drops.view(item.drop_id, now)
        if item.kind in ("receipt", "shipped", "refunded"):  # about one order, to its buyer
            order = await self.commerce.orders.get(int(item.payload["order_id"]))
            if item.kind == "receipt":
                return receipt(view, order, self.locale)
            if item.kind == "refunded":
                return refunded(view, order, self.locale)
            return shipped(view, order)
        drop = view.drop
        identity = item.address if item.channel != "webhook" else await self._identity(item)
        tag = item.kind.split(":", 1)[0] if item.kind.startswith("restock") else item.kind
        link = await self.issue_link(drop.id, identity, tag) if identity else None
        page = f"{self.public_url}/d/{drop.id}"
        stop = f" Stop these: {self.unsubscribe_url(item.customer_id)} or reply !unsubscribe."
        counts = view.counts()  # claim units: whole bundles for a bundle drop
        left = f"{counts.available} of {count(counts.total, view.unit_word)} left"
        late = now - item.created_at > timedelta(minutes=2)
        if item.kind.startswith("reminder"):
            if drop.state is DropState.CLOSED:
                return None
            starts = "{at}" if drop.opens_at is not None and drop.opens_at > now else "any moment"
            if drop.state is DropState.LIVE:
                text = f"{drop.title} is live now — {left}."
                text += " (This reminder is late: we were offline.)" if late else ""
            else:
                price = format_money(view.unit_price, self.locale)
                text = (
                    f"{drop.title} starts {starts}: {count(counts.total, view.unit_word)} at "
                    f"{price}."
                )
            return Message(
                text + stop,
                kind=item.kind,
                drop_id=drop.id,
                at=drop.opens_at if "{at}" in text else None,
                personal_link=link,
                public_link=page,
                private=True,
            )
        if item.kind == "live":
            if drop.state is not DropState.LIVE:
                return None
            return Message(
                f"{drop.title} is LIVE — {left}. Your link:{stop}",
                kind="live",
                drop_id=drop.id,
                personal_link=link,
                public_link=page,
                private=True,
            )
        if item.kind == "replay":
            if not drop.replay_url:
                return None
            return Message(
                f"The replay of {drop.title} is up: {drop.replay_url}{stop}",
                kind="replay",
                drop_id=drop.id,
                public_link=drop.replay_url,
                private=True,
            )
        if item.kind.startswith("restock"):
            if drop.state is not DropState.LIVE or counts.available == 0:
                return None
            return Message(
                f"{drop.title} was restocked — {count(counts.available, view.unit_word)} "
                f"available now.{stop}",
                kind="restock",
                drop_id=drop.id,
                personal_link=link,
                public_link=page,
                private=True,
            )
        return None

    async def _identity(self, item: Notification) -> str | None:
        customer = await self.commerce.customers.get(item.customer_id)
        return customer.identities[0] if customer.identities else None
