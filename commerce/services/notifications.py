"""The notification outbox: fan-out inserts one row per (kind, drop, customer) before any
send; a dispatcher leases rows, sends, and records the outcome.

Fan-out is one INSERT … SELECT … ON CONFLICT DO NOTHING per audience, so a job that runs
twice (a restart, a second process) inserts nothing new, and each row is sent by whoever
holds its lease. A lease that lapses (the sender died mid-send) is taken again and sent
with the same idempotency key, which the platform uses to drop the repeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, or_, select, update
from sqlalchemy.engine import Row

from commerce.domain.identities import SCHEMES
from commerce.domain.model import NotificationStatus, OrderStatus, SubscriptionStatus
from commerce.storage.rows import record
from commerce.storage.tables import (
    UTCDateTime,
    claims,
    identities,
    notifications,
    orders,
    subscriptions,
)
from commerce.storage.unit_of_work import UnitOfWork

FINAL = (
    NotificationStatus.SENT,
    NotificationStatus.UNREACHABLE,
    NotificationStatus.FAILED,
    NotificationStatus.UNSUBSCRIBED,
    NotificationStatus.SKIPPED,
)


class DeliveryStatus(StrEnum):
    """How one send went, as a sender reports it (the first three are also final)."""

    SENT = "sent"
    UNREACHABLE = "unreachable"  # the person cannot be messaged there (DMs closed, 410)
    RETRY = "retry"  # try again later (429, 5xx, network)
    FAILED = "failed"  # a permanent error


@dataclass(frozen=True, slots=True)
class Delivery:
    """A sender's answer to the dispatcher, which records it on the notification."""

    status: DeliveryStatus
    retry_after: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    dedupe_key: str
    customer_id: int
    drop_id: int | None
    subscription_id: int | None
    kind: str
    channel: str
    address: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    not_before: datetime


def _notification(row: Row[Any]) -> Notification:
    return record(Notification, row)


class NotificationService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._insert = uow.db.insert

    async def fan_out(self, drop_id: int, kind: str, *, sku: str | None = None) -> int:
        """Queue ``kind`` for everyone who should hear it about this drop; returns rows added.

        reminder:<s> / live / replay → subscribers of the creator or of this drop;
        replay also → customers who claimed but did not buy; restock:… → SKU subscribers.
        """
        if kind.startswith("restock"):
            if sku is None:
                raise ValueError("a restock fan-out names its SKU")
            audience = and_(subscriptions.c.scope == "sku", subscriptions.c.target == sku)
        else:
            audience = or_(
                subscriptions.c.scope == "creator",
                and_(subscriptions.c.scope == "drop", subscriptions.c.target == str(drop_id)),
            )
        async with self.uow.write() as tx:
            prefix = f"{kind}:{drop_id}:"
            chosen = (
                select(
                    (literal(prefix) + cast(subscriptions.c.customer_id, String)).label("key"),
                    subscriptions.c.customer_id,
                    literal(drop_id).label("drop_id"),
                    subscriptions.c.id.label("subscription_id"),
                    literal(kind).label("kind"),
                    subscriptions.c.channel,
                    subscriptions.c.address,
                    literal({"kind": kind, "drop_id": drop_id}, notifications.c.payload.type),
                    literal(NotificationStatus.PENDING.value).label("status"),
                    literal(0).label("attempts"),
                    literal(tx.now, UTCDateTime).label("not_before"),
                    literal(tx.now, UTCDateTime).label("created_at"),
                )
                .where(subscriptions.c.status == SubscriptionStatus.ACTIVE, audience)
                .order_by(subscriptions.c.id)
            )
            stmt = (
                self._insert(notifications)
                .from_select(
                    [
                        "dedupe_key",
                        "customer_id",
                        "drop_id",
                        "subscription_id",
                        "kind",
                        "channel",
                        "address",
                        "payload",
                        "status",
                        "attempts",
                        "not_before",
                        "created_at",
                    ],
                    chosen,
                )
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
            )
            added = (await tx.conn.execute(stmt)).rowcount or 0
            if kind == "replay":
                added += await self._non_buyers(tx.conn, drop_id, kind, tx.now)
        return int(added)

    async def personal(
        self,
        conn: Any,
        *,
        kind: str,
        key: str,
        customer_id: int,
        drop_id: int,
        payload: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Queue one message to a customer about their order (a receipt, "shipped"), inside
        the caller's transaction so it is sent exactly when the change commits. It bypasses
        subscriptions: no quiet hours, no unsubscribe. False: no channel reaches them."""
        known = (
            await conn.execute(
                select(identities.c.identity).where(identities.c.customer_id == customer_id)
            )
        ).scalars()
        # No consent asked for an order's messages: a buyer whose platforms reach nobody
        # without it reads theirs on the drop page they signed in to.
        address = SCHEMES.reach(known, opted_in=False)
        if address is None:
            return False
        await conn.execute(
            self._insert(notifications)
            .values(
                dedupe_key=key,
                customer_id=customer_id,
                drop_id=drop_id,
                kind=kind,
                channel=address.split(":", 1)[0],
                address=address,
                payload={"kind": kind, "drop_id": drop_id, **payload},
                status=NotificationStatus.PENDING,
                attempts=0,
                not_before=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        return True

    async def _non_buyers(self, conn: Any, drop_id: int, kind: str, now: datetime) -> int:
        """Customers who claimed in this drop but never bought: they get the replay too, where
        a private channel reaches them without consent."""
        reachable = [
            identities.c.identity.like(f"{scheme.name}:%")
            for scheme in SCHEMES.private(opted_in=False)
        ]
        if not reachable:
            return 0
        bought = select(orders.c.customer_id).where(
            orders.c.drop_id == drop_id,
            orders.c.status.in_((OrderStatus.PAID, OrderStatus.RESERVED)),
        )
        rows = await conn.execute(
            select(claims.c.customer_id, func.min(identities.c.identity).label("identity"))
            .join(identities, identities.c.customer_id == claims.c.customer_id)
            .where(
                claims.c.drop_id == drop_id,
                claims.c.customer_id.not_in(bought),
                or_(*reachable),
            )
            .group_by(claims.c.customer_id)
        )
        values = [
            {
                "dedupe_key": f"{kind}:{drop_id}:{r.customer_id}",
                "customer_id": r.customer_id,
                "drop_id": drop_id,
                "kind": kind,
                "channel": r.identity.split(":", 1)[0],
                "address": r.identity,
                "payload": {"kind": kind, "drop_id": drop_id},
                "status": NotificationStatus.PENDING,
                "attempts": 0,
                "not_before": now,
                "created_at": now,
            }
            for r in rows
        ]
        if not values:
            return 0
        result = await conn.execute(
            self._insert(notifications).on_conflict_do_nothing(index_elements=["dedupe_key"]),
            values,
        )
        return int(result.rowcount or 0)

    async def lease(self, limit: int, lease_seconds: float) -> list[Notification]:
        """Take up to ``limit`` due rows (pending, or sending with a lapsed lease)."""
        now = self.uow.clock.now()
        due = (
            select(notifications.c.id)
            .where(
                or_(
                    and_(
                        notifications.c.status == NotificationStatus.PENDING,
                        notifications.c.not_before <= now,
                    ),
                    and_(
                        notifications.c.status == NotificationStatus.SENDING,
                        notifications.c.lease_until < now,
                    ),
                )
            )
            .order_by(notifications.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self.uow.write() as tx:
            rows = await tx.conn.execute(
                update(notifications)
                .where(notifications.c.id.in_(due.scalar_subquery()))
                .values(
                    status=NotificationStatus.SENDING,
                    lease_until=now + timedelta(seconds=lease_seconds),
                    attempts=notifications.c.attempts + 1,
                )
                .returning(*notifications.c)
            )
            leased = [_notification(r) for r in rows]
        return sorted(leased, key=lambda n: n.id)

    async def settle(
        self,
        notification_id: int,
        status: NotificationStatus,
        *,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        """Record the outcome; ``retry_at`` puts the row back to pending until then."""
        values: dict[str, Any] = {"error": error[:300] if error else None, "lease_until": None}
        if retry_at is not None:
            values.update(status=NotificationStatus.PENDING, not_before=retry_at)
        else:
            if status not in FINAL:
                raise ValueError(f"not a final status: {status}")
            values.update(status=status)
            if status is NotificationStatus.SENT:
                values["sent_at"] = self.uow.clock.now()
        async with self.uow.write() as tx:
            await tx.conn.execute(
                update(notifications).where(notifications.c.id == notification_id).values(**values)
            )

    async def counts(self, drop_id: int | None = None) -> dict[str, int]:
        query = select(notifications.c.status, func.count()).group_by(notifications.c.status)
        if drop_id is not None:
            query = query.where(notifications.c.drop_id == drop_id)
        async with self.uow.read() as conn:
            return {status: int(n) for status, n in await conn.execute(query)}

    async def pending(self) -> int:
        async with self.uow.read() as conn:
            value = (
                await conn.execute(
                    select(func.count()).where(
                        notifications.c.status.in_(
                            (NotificationStatus.PENDING, NotificationStatus.SENDING)
                        )
                    )
                )
            ).scalar()
        return int(value or 0)
