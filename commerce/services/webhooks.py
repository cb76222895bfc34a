"""Signed outbound webhooks: the creator's endpoints, and one delivery row per (event, endpoint).

Nothing is lost: ``stage`` runs inside the transaction that produced the events (the unit
of work calls it before COMMIT), so the delivery rows commit or roll back with the change
itself, and a crash after the commit leaves them pending for the worker. Event ids come
from the facts (``order.paid:42``, ``stock.low:7:10``) and (endpoint, event id) is unique,
so an event staged twice adds nothing. A row's ``Idempotency-Key``, ``<event id>/<endpoint
id>``, and its body are fixed at insert: a retry, or a resend after a crash, carries the
same key and the same bytes.

The worker (``scheduler/webhooks.py``) leases due rows, commits, POSTs, and reports here:
2xx is sent; a timeout, a connection error, 429 or 5xx is retried with exponential backoff
until ``max_age`` after the event, then dead; any other answer has failed for good.
``disable_after`` failed or dead deliveries in a row disable the endpoint, with the reason;
one success resets the count.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.analytics.results import DropKpis, DropSummary
from commerce.domain.errors import InvalidInput, InvalidState, NotFound
from commerce.domain.events import (
    DropClosed,
    DropOpened,
    Event,
    OrderPaid,
    SoldOut,
    StockChanged,
)
from commerce.domain.model import DropFormat, DropState, WebhookStatus, currency_exponent
from commerce.services.claims import summarize
from commerce.services.stock import stock_lines
from commerce.storage.rows import record
from commerce.storage.tables import (
    drops,
    holds,
    orders,
    webhook_deliveries,
    webhook_endpoints,
)
from commerce.storage.unit_of_work import UnitOfWork
from commerce.views import iso

DROP_OPENED = "drop.opened"
STOCK_LOW = "stock.low"
DROP_SOLD_OUT = "drop.sold_out"
ORDER_PAID = "order.paid"
DROP_CLOSED = "drop.closed"
RECAP_READY = "recap.ready"
EVENTS = (DROP_OPENED, STOCK_LOW, DROP_SOLD_OUT, ORDER_PAID, DROP_CLOSED, RECAP_READY)
TEST_EVENT = "webhook.test"  # `dropcast webhook test`: to one endpoint, whatever it chose
SIGNATURE_HEADER = "Dropcast-Signature"
# The recap waits for the last hold placed before the close to be paid or lapse (a closed
# drop still takes payment for them), plus this, for the tracker's buffered steps to land.
RECAP_SETTLE = timedelta(seconds=5)
MAX_URL = 2000


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Dropcast-Signature`` header: ``t=<unix time>,v1=<hex HMAC-SHA256 of "t.body">``,
    as Stripe signs its webhooks, so a receiver can also refuse an old replay by ``t``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class EndpointNotFound(NotFound):
    code = "WEBHOOK_NOT_FOUND"

    def __init__(self, endpoint_id: int) -> None:
        super().__init__(f"webhook {endpoint_id} does not exist", endpoint_id=endpoint_id)


def validate_url(url: str) -> str:
    """An absolute http(s) URL with a host, or InvalidInput naming ``url``."""
    url = url.strip()
    if not url:
        raise InvalidInput("url", "is required")
    if len(url) > MAX_URL or any(c.isspace() for c in url):
        raise InvalidInput("url", f"must be one URL without spaces, at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number
    except ValueError:
        raise InvalidInput("url", f"{url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url", f"{url!r} is not an http:// or https:// URL with a host")
    if port == 0:
        raise InvalidInput("url", f"{url!r} has no usable port")
    return url


def validate_events(names: Iterable[str]) -> tuple[str, ...]:
    """Event names from the catalogue (order kept, repeats dropped), or InvalidInput."""
    chosen = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    known = ", ".join(EVENTS)
    if not chosen:
        raise InvalidInput("events", f"name at least one of: {known}")
    unknown = [n for n in chosen if n not in EVENTS]
    if unknown:
        raise InvalidInput("events", f"unknown event {', '.join(unknown)}; known: {known}")
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """How deliveries are retried and when an endpoint is given up on (``[webhooks]``)."""

    low_stock: int = 3  # stock.low: claimable units left, at or below
    first_retry: timedelta = timedelta(seconds=10)
    max_retry: timedelta = timedelta(hours=1)
    max_age: timedelta = timedelta(hours=24)  # retried until this long after the event
    disable_after: int = 5  # failed or dead deliveries in a row
    lease: timedelta = timedelta(seconds=60)  # longer than a send's timeout

    def retry_delay(self, attempts: int, retry_after: float | None = None) -> timedelta:
        """Exponential, no jitter: first_retry · 2^(attempts-1), at most max_retry; a
        server's Retry-After is honoured when longer (within max_retry too)."""
        delay: timedelta = self.first_retry * int(2 ** min(max(attempts - 1, 0), 30))
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=retry_after))
        return min(delay, self.max_retry)


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    events: tuple[str, ...]
    created_at: datetime
    consecutive_failures: int
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @property
    def status(self) -> str:
        return "disabled" if self.disabled_at is not None else "active"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "status": self.status,
            "created_at": iso(self.created_at),
            "consecutive_failures": self.consecutive_failures,
            "disabled_at": iso(self.disabled_at),
            "disabled_reason": self.disabled_reason,
        }


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """An endpoint and how its deliveries stand (counts per status)."""

    endpoint: Endpoint
    deliveries: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {**self.endpoint.as_json(), "deliveries": dict(self.deliveries)}


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """A new endpoint and its secret: shown this once, never listed again."""

    endpoint: Endpoint
    secret: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A leased delivery with what sending it needs (its endpoint's URL and secret)."""

    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    body: str
    status: WebhookStatus
    attempts: int
    created_at: datetime
    url: str = ""
    secret: str = ""
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.event_id}/{self.endpoint_id}"


class Outcome(StrEnum):
    SENT = "sent"  # 2xx
    RETRY = "retry"  # timeout, connection error, 429, 5xx
    FAILED = "failed"  # anything else: the receiver refuses it


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one POST went, as the worker saw it."""

    outcome: Outcome
    http_status: int | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class _Wanted:
    type: str
    drop_id: int
    event: Event


def _endpoint(row: Row[Any]) -> Endpoint:
    return record(Endpoint, row, events=tuple(row._mapping["events"]))


def _body(envelope: dict[str, Any]) -> str:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


def _decimal(amount_minor: int, currency: str) -> str:
    exponent = currency_exponent(currency)
    if exponent == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{whole}.{part:0{exponent}d}"


def recap_figures(kpis: DropKpis) -> dict[str, Any]:
    """The final KPI figures a ``recap.ready`` carries (``docs/webhooks/recap.ready``)."""
    summary = DropSummary.of(kpis)
    objective = kpis.objective
    revenue = kpis.revenue
    return {
        "as_of": iso(kpis.as_of),
        "units_sold": kpis.units_sold,
        "capacity": kpis.capacity,
        "sell_through_pct": kpis.sell_through_pct,
        "sold_out_after_s": kpis.sold_out_after_s,
        "revenue_minor": revenue.amount_minor if revenue else 0,
        "revenue": _decimal(revenue.amount_minor, revenue.currency) if revenue else None,
        "currency": revenue.currency if revenue else None,
        "checkout_p50_s": summary.checkout_p50_s,
        "viewer_peak": summary.viewer_peak,
        "units_per_1k_viewers": summary.units_per_1k_avg,
        "claims": kpis.claims.total,
        "holds_expired": kpis.holds.expired,
        "objective": None
        if objective is None
        else {
            "metric": objective.metric,
            "target": objective.target,
            "actual": objective.actual,
            "met": objective.met,
        },
    }


class WebhookService:
    def __init__(
        self,
        uow: UnitOfWork,
        kpis: Callable[[int], Awaitable[DropKpis]],
        policy: WebhookPolicy | None = None,
    ) -> None:
        self.uow = uow
        self.kpis = kpis
        self.policy = policy or WebhookPolicy()
        self.drop_url: Callable[[int], str] | None = None  # the composition root knows the base
        self._queued: list[Callable[[], None]] = []
        uow.stages.append(self)

    def on_queued(self, callback: Callable[[], None]) -> None:
        """``callback`` after this process queued a delivery outside any domain event (a
        test): the worker wakes. Domain events wake it through the bus."""
        self._queued.append(callback)

    # -- endpoints ----------------------------------------------------------------------------

    async def add(self, url: str, events: Iterable[str]) -> NewEndpoint:
        url, chosen = validate_url(url), validate_events(events)
        secret = new_secret()
        async with self.uow.write() as tx:
            row = (
                await tx.conn.execute(
                    webhook_endpoints.insert()
                    .values(
                        url=url,
                        events=list(chosen),
                        secret=secret,
                        created_at=tx.now,
                        consecutive_failures=0,
                    )
                    .returning(*webhook_endpoints.c)
                )
            ).one()
        return NewEndpoint(_endpoint(row), secret)

    async def get(self, endpoint_id: int) -> Endpoint:
        async with self.uow.read() as conn:
            row = (
                await conn.execute(
                    select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
                )
            ).first()
        if row is None:
            raise EndpointNotFound(endpoint_id)
        return _endpoint(row)

    async def endpoints(self) -> list[EndpointInfo]:
        """Every endpoint, oldest first, with its deliveries counted per status."""
        async with self.uow.read() as conn:
            rows = (
                await conn.execute(select(webhook_endpoints).order_by(webhook_endpoints.c.id))
            ).all()
            counts = await conn.execute(
                select(
                    webhook_deliveries.c.endpoint_id, webhook_deliveries.c.status, func.count()
                ).group_by(webhook_deliveries.c.endpoint_id, webhook_deliveries.c.status)
            )
            per: dict[int, dict[str, int]] = {}
            for endpoint_id, status, n in counts:
                per.setdefault(endpoint_id, {})[status] = int(n)
        return [EndpointInfo(_endpoint(r), per.get(r.id, {})) for r in rows]

    async def remove(self, endpoint_id: int) -> None:
        """Delete the endpoint and its deliveries: nothing more is sent to it."""
        async with self.uow.write() as tx:
            await tx.conn.execute(
                delete(webhook_deliveries).where(webhook_deliveries.c.endpoint_id == endpoint_id)
            )
            gone = await tx.conn.execute(
                delete(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
            )
            if not gone.rowcount:
                raise EndpointNotFound(endpoint_id)

    async def enable(self, endpoint_id: int) -> Endpoint:
        """Turn a disabled endpoint back on (its failure count starts again at 0)."""
        async with self.uow.write() as tx:
            row = (
                await tx.conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.id == endpoint_id)
                    .values(disabled_at=None, disabled_reason=None, consecutive_failures=0)
                    .returning(*webhook_endpoints.c)
                )
            ).first()
        if row is None:
            raise EndpointNotFound(endpoint_id)
        return _endpoint(row)

    async def queue_test(self, endpoint_id: int) -> WebhookDelivery:
        """A ``webhook.test`` event to this endpoint, through the same path as any event
        (refused while the endpoint is disabled: it would wait unsent)."""
        async with self.uow.write() as tx:
            endpoint = (
                await tx.conn.execute(
                    select(
                        webhook_endpoints.c.disabled_reason, webhook_endpoints.c.disabled_at
                    ).where(webhook_endpoints.c.id == endpoint_id)
                )
            ).first()
            if endpoint is None:
                raise EndpointNotFound(endpoint_id)
            if endpoint.disabled_at is not None:
                raise InvalidState(
                    f"webhook {endpoint_id} is disabled ({endpoint.disabled_reason}); "
                    "enable it before testing"
                )
            event_id = f"{TEST_EVENT}:{secrets.token_hex(8)}"
            envelope = {
                "id": event_id,
                "type": TEST_EVENT,
                "created_at": iso(tx.now),
                "data": {
                    "endpoint_id": endpoint_id,
                    "message": "A test from dropcast: this endpoint receives signed events.",
                },
            }
            row = (
                await tx.conn.execute(
                    webhook_deliveries.insert()
                    .values(self._row(endpoint_id, event_id, TEST_EVENT, envelope, tx.now, tx.now))
                    .returning(*webhook_deliveries.c)
                )
            ).one()
        for callback in self._queued:
            callback()
        return record(WebhookDelivery, row)

    async def delivery(self, delivery_id: int) -> WebhookDelivery | None:
        async with self.uow.read() as conn:
            row = (
                await conn.execute(
                    select(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id)
                )
            ).first()
        return record(WebhookDelivery, row) if row is not None else None

    # -- inside the transaction that made the events -------------------------------------------

    async def stage(self, conn: AsyncConnection, events: Sequence[Event]) -> None:
        """Queue a delivery per subscribed endpoint for each webhook event in ``events``."""
        wanted = self._wanted(events)
        if not wanted:
            return  # most transactions (claims above the low mark): no query at all
        rows = await conn.execute(
            select(webhook_endpoints).where(webhook_endpoints.c.disabled_at.is_(None))
        )
        endpoints = [_endpoint(r) for r in rows]
        wanted = [w for w in wanted if any(w.type in e.events for e in endpoints)]
        if not wanted:
            return
        now = self.uow.clock.now()
        drops_seen: dict[int, tuple[Row[Any], dict[str, Any]]] = {}
        values: list[dict[str, Any]] = []
        for want in wanted:
            if want.drop_id not in drops_seen:
                drops_seen[want.drop_id] = await self._drop(conn, want.drop_id)
            drop, data = drops_seen[want.drop_id]
            made = await self._envelope(conn, want, drop, data, now)
            if made is None:
                continue
            envelope, due = made
            for endpoint in endpoints:
                if want.type in endpoint.events:
                    values.append(
                        self._row(endpoint.id, envelope["id"], want.type, envelope, now, due)
                    )
        if values:
            await conn.execute(
                self.uow.db.insert(webhook_deliveries).on_conflict_do_nothing(
                    index_elements=["endpoint_id", "event_id"]
                ),
                values,
            )

    def _wanted(self, events: Sequence[Event]) -> list[_Wanted]:
        wanted: list[_Wanted] = []
        low: dict[int, StockChanged] = {}
        for event in events:
            match event:
                case DropOpened():
                    wanted.append(_Wanted(DROP_OPENED, event.drop_id, event))
                case DropClosed():
                    wanted.append(_Wanted(DROP_CLOSED, event.drop_id, event))
                    wanted.append(_Wanted(RECAP_READY, event.drop_id, event))
                case SoldOut():
                    wanted.append(_Wanted(DROP_SOLD_OUT, event.drop_id, event))
                case OrderPaid():
                    wanted.append(_Wanted(ORDER_PAID, event.drop_id, event))
                case StockChanged():
                    low[event.drop_id] = event  # the last count of the transaction
        for drop_id, change in low.items():
            if 0 < change.available <= self.policy.low_stock:
                wanted.append(_Wanted(STOCK_LOW, drop_id, change))
        return wanted

    async def _drop(self, conn: AsyncConnection, drop_id: int) -> tuple[Row[Any], dict[str, Any]]:
        row = (await conn.execute(select(drops).where(drops.c.id == drop_id))).one()
        lines = await stock_lines(conn, drop_id, self.uow.clock.now())
        available, held, sold, total = summarize(lines, DropFormat(row.format))
        data = {
            "id": drop_id,
            "title": row.title,
            "format": row.format,
            "state": row.state,
            "url": self.drop_url(drop_id) if self.drop_url is not None else None,
            "stock": {"available": available, "held": held, "sold": sold, "total": total},
        }
        return row, data

    async def _envelope(
        self,
        conn: AsyncConnection,
        want: _Wanted,
        drop: Row[Any],
        data: dict[str, Any],
        now: datetime,
    ) -> tuple[dict[str, Any], datetime] | None:
        """The event's envelope and when it is due; None when it does not apply."""
        total = data["stock"]["total"]
        due = now
        body: dict[str, Any] = {"drop": data}
        event = want.event
        match want.type:
            case "drop.opened":
                key = f"{want.drop_id}"
                body["opened_at"] = iso(drop.opened_at)
            case "drop.closed":
                key = f"{want.drop_id}"
                body["reason"] = drop.close_reason
                body["closed_at"] = iso(drop.closed_at)
            case "recap.ready":
                if drop.opened_at is None:
                    return None  # closed before it ever opened: nothing to recap
                key = f"{want.drop_id}"
                body["kpis"] = None  # the worker fills it in when due
                due = now + timedelta(seconds=drop.hold_seconds) + RECAP_SETTLE
            case "drop.sold_out":
                key = f"{want.drop_id}:{total}"  # a restock can sell out again
            case "stock.low":
                if drop.state != DropState.LIVE:
                    return None
                key = f"{want.drop_id}:{total}"  # once per drop, again after a restock
                body["threshold"] = self.policy.low_stock
            case _:
                assert isinstance(event, OrderPaid)
                key = f"{event.order_id}"
                line = (
                    await conn.execute(
                        select(orders.c.qty, holds.c.sku)
                        .join(holds, holds.c.id == orders.c.hold_id)
                        .where(orders.c.id == event.order_id)
                    )
                ).one()
                body["order"] = {
                    "id": event.order_id,
                    "amount_minor": event.amount_minor,
                    "amount": _decimal(event.amount_minor, event.currency),
                    "currency": event.currency,
                    "quantity": line.qty,
                    "sku": line.sku,
                }
        envelope = {
            "id": f"{want.type}:{key}",
            "type": want.type,
            "created_at": iso(now),
            "data": body,
        }
        return envelope, due

    @staticmethod
    def _row(
        endpoint_id: int,
        event_id: str,
        event_type: str,
        envelope: dict[str, Any],
        now: datetime,
        due: datetime,
    ) -> dict[str, Any]:
        return {
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event_type": event_type,
            "body": _body(envelope),
            "status": WebhookStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": due,
            "created_at": now,
        }

    # -- the worker's side ----------------------------------------------------------------------

    async def lease(self, limit: int) -> list[WebhookDelivery]:
        """Take up to ``limit`` due deliveries of enabled endpoints (pending and due, or
        sending with a lapsed lease), each with its endpoint's URL and secret."""
        now = self.uow.clock.now()
        d, e = webhook_deliveries, webhook_endpoints
        due = (
            select(d.c.id)
            .join(e, e.c.id == d.c.endpoint_id)
            .where(
                e.c.disabled_at.is_(None),
                or_(
                    (d.c.status == WebhookStatus.PENDING) & (d.c.next_attempt_at <= now),
                    (d.c.status == WebhookStatus.SENDING) & (d.c.lease_until < now),
                ),
            )
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(limit)
            .with_for_update(of=d, skip_locked=True)
        )
        async with self.uow.write() as tx:
            rows = (
                await tx.conn.execute(
                    update(d)
                    .where(d.c.id.in_(due.scalar_subquery()))
                    .values(
                        status=WebhookStatus.SENDING,
                        lease_until=now + self.policy.lease,
                        attempts=d.c.attempts + 1,
                    )
                    .returning(*d.c)
                )
            ).all()
            if not rows:
                return []
            targets = {
                r.id: (r.url, r.secret)
                for r in await tx.conn.execute(
                    select(e.c.id, e.c.url, e.c.secret).where(
                        e.c.id.in_({r.endpoint_id for r in rows})
                    )
                )
            }
        leased = [
            record(
                WebhookDelivery,
                r,
                url=targets[r.endpoint_id][0],
                secret=targets[r.endpoint_id][1],
            )
            for r in rows
            if r.endpoint_id in targets
        ]
        return sorted(leased, key=lambda x: x.id)

    async def complete(self, delivery: WebhookDelivery) -> WebhookDelivery:
        """A ``recap.ready`` gets its final KPI figures the first time it is sent; every
        endpoint's copy gets the same ones, kept for retries."""
        if delivery.event_type != RECAP_READY:
            return delivery
        envelope = json.loads(delivery.body)
        if envelope["data"].get("kpis") is not None:
            return delivery
        kpis = await self.kpis(envelope["data"]["drop"]["id"])
        envelope["data"]["kpis"] = recap_figures(kpis)
        d = webhook_deliveries
        async with self.uow.write() as tx:
            await tx.conn.execute(
                update(d)
                .where(d.c.event_id == delivery.event_id, d.c.body == delivery.body)
                .values(body=_body(envelope))
            )
            body = (await tx.conn.execute(select(d.c.body).where(d.c.id == delivery.id))).scalar()
        return replace(delivery, body=body or _body(envelope))

    async def record(self, delivery: WebhookDelivery, attempt: Attempt) -> WebhookStatus | None:
        """Record how a leased delivery went; returns its new status (None: the row is gone
        or another worker took it over after this one's lease lapsed)."""
        now = self.uow.clock.now()
        d, e = webhook_deliveries, webhook_endpoints
        values: dict[str, Any] = {
            "lease_until": None,
            "last_status": attempt.http_status,
            "last_error": attempt.error[:300] if attempt.error else None,
        }
        failed = False
        if attempt.outcome is Outcome.SENT:
            status = WebhookStatus.SENT
            values["delivered_at"] = now
        elif attempt.outcome is Outcome.RETRY:
            retry_at = now + self.policy.retry_delay(delivery.attempts, attempt.retry_after)
            if retry_at > delivery.created_at + self.policy.max_age:
                status, failed = WebhookStatus.DEAD, True
            else:
                status = WebhookStatus.PENDING
                values["next_attempt_at"] = retry_at
        else:
            status, failed = WebhookStatus.FAILED, True
        values["status"] = status
        async with self.uow.write() as tx:
            mine = await tx.conn.execute(
                update(d)
                .where(
                    d.c.id == delivery.id,
                    d.c.status == WebhookStatus.SENDING,
                    d.c.attempts == delivery.attempts,
                )
                .values(**values)
            )
            if not mine.rowcount:
                return None
            if status is WebhookStatus.SENT:
                await tx.conn.execute(
                    update(e).where(e.c.id == delivery.endpoint_id).values(consecutive_failures=0)
                )
            elif failed:
                await self._count_failure(tx.conn, delivery.endpoint_id, attempt, now)
        return status

    async def _count_failure(
        self, conn: AsyncConnection, endpoint_id: int, attempt: Attempt, now: datetime
    ) -> None:
        e, d = webhook_endpoints, webhook_deliveries
        failures = (
            await conn.execute(
                update(e)
                .where(e.c.id == endpoint_id)
                .values(consecutive_failures=e.c.consecutive_failures + 1)
                .returning(e.c.consecutive_failures, e.c.disabled_at)
            )
        ).first()
        if failures is None or failures.disabled_at is not None:
            return
        if failures.consecutive_failures < self.policy.disable_after:
            return
        last = attempt.error or (f"HTTP {attempt.http_status}" if attempt.http_status else "?")
        reason = (
            f"{failures.consecutive_failures} deliveries in a row failed (last: {last}); "
            f"fix the receiver, then `dropcast webhook enable {endpoint_id}`"
        )
        await conn.execute(
            update(e).where(e.c.id == endpoint_id).values(disabled_at=now, disabled_reason=reason)
        )
        await conn.execute(
            update(d)
            .where(d.c.endpoint_id == endpoint_id, d.c.status == WebhookStatus.PENDING)
            .values(status=WebhookStatus.DEAD, last_error="endpoint disabled")
        )
