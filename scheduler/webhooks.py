"""Webhook delivery on the scheduler leader: lease due deliveries (a committed lease, so two
processes never send one row at once), POST each signed, then record how it went. No
transaction is open while a request is in flight.

A row leased and then lost with its process (SIGKILL mid-request) is taken again once its
lease lapses and sent with the same body and ``Idempotency-Key``: at least once, and the
receiver can tell a repeat. The worker wakes on the bus after each commit that can make a
delivery (this process's events, and on PostgreSQL every process's), so a sale reaches its
webhooks at once; otherwise it polls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import aiohttp

from commerce.core import Commerce
from commerce.domain.events import DropClosed, DropOpened, Event, OrderPaid, SoldOut, StockChanged
from commerce.services.webhooks import SIGNATURE_HEADER, Attempt, Outcome, WebhookDelivery, sign
from scheduler.passes import run_passes

log = logging.getLogger(__name__)
USER_AGENT = "dropcast-webhooks/1"


class WebhookWorker:
    def __init__(
        self,
        commerce: Commerce,
        *,
        timeout: float = 10.0,
        concurrency: int = 4,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.webhooks = commerce.webhooks
        self.timeout = timeout
        # A pass leases only what it can send at once: every leased row is then answered
        # (or timed out) well within its lease, however slow the receivers.
        self.batch = concurrency
        self.wall = wall  # the signature's timestamp: real time, for the receiver's tolerance
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        commerce.bus.subscribe(
            self._on_event, DropOpened, DropClosed, SoldOut, OrderPaid, StockChanged
        )
        commerce.webhooks.on_queued(self.wake)

    async def _on_event(self, _event: Event) -> None:
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        await run_passes(self.run_once, self._wake, stop, idle_seconds, "webhook delivery")

    async def run_once(self) -> int:
        """Lease one batch and deliver it; returns how many deliveries were attempted."""
        leased = await self.webhooks.lease(self.batch)
        if leased:
            await asyncio.gather(*(self._deliver(d) for d in leased))
        return len(leased)

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        async with self._slots:
            try:
                delivery = await self.webhooks.complete(delivery)
            except Exception as exc:  # the figures could not be read: try again later
                log.exception("completing webhook delivery %s failed", delivery.id)
                await self.webhooks.record(
                    delivery, Attempt(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}")
                )
                return
            attempt = await self.send(delivery)
            status = await self.webhooks.record(delivery, attempt)
            log.info(
                "webhook %s to endpoint %s: %s (%s)",
                delivery.event_id,
                delivery.endpoint_id,
                attempt.http_status or attempt.error,
                status.value if status else "taken over",
            )

    async def send(self, delivery: WebhookDelivery) -> Attempt:
        """One signed POST of the delivery's stored body."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(delivery.secret, int(self.wall()), body),
            "Idempotency-Key": delivery.idempotency_key,
            "User-Agent": USER_AGENT,
        }
        try:
            async with self._session.post(
                delivery.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = _seconds(response.headers.get("Retry-After"))
        except TimeoutError:
            return Attempt(Outcome.RETRY, error=f"no answer within {self.timeout:g} s")
        except aiohttp.ClientError as exc:
            return Attempt(Outcome.RETRY, error=f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Attempt(Outcome.SENT, status)
        if status == 429 or status >= 500:
            return Attempt(Outcome.RETRY, status, f"HTTP {status}", retry_after)
        # 3xx too: a webhook is not redirected (the body and its signature would not follow).
        return Attempt(Outcome.FAILED, status, f"HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _seconds(value: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is ignored: backoff applies)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
