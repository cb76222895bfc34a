"""The commerce core assembled: one object that adapters and the composition root share."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select

from commerce.analytics.kpis import DropAnalytics
from commerce.analytics.tracking import Tracker
from commerce.clock import Clock, SystemClock
from commerce.services.claims import ClaimService
from commerce.services.clips import ClipService
from commerce.services.customers import CustomerService
from commerce.services.drops import DropService
from commerce.services.notifications import NotificationService
from commerce.services.orders import OrderService
from commerce.services.stock import ShapeCache
from commerce.services.subscriptions import SubscriptionService
from commerce.services.templates import TemplateService
from commerce.services.webhooks import WebhookService
from commerce.storage.database import Database
from commerce.storage.tables import kv
from commerce.storage.unit_of_work import EventBus, OutboxRelay, UnitOfWork


@dataclass
class Commerce:
    db: Database
    clock: Clock
    bus: EventBus
    uow: UnitOfWork
    customers: CustomerService
    drops: DropService
    claims: ClaimService
    orders: OrderService
    outbox: OutboxRelay
    subscriptions: SubscriptionService
    notifications: NotificationService
    templates: TemplateService
    tracker: Tracker
    analytics: DropAnalytics
    webhooks: WebhookService
    clips: ClipService

    @classmethod
    def build(
        cls, db: Database, clock: Clock | None = None, bus: EventBus | None = None
    ) -> Commerce:
        clock = clock or SystemClock()
        bus = bus or EventBus()
        uow = UnitOfWork(db, bus, clock)
        shapes = ShapeCache()
        claims = ClaimService(uow, shapes)
        drops = DropService(uow, shapes, claims)
        notifications = NotificationService(uow)
        analytics = DropAnalytics(uow)
        return cls(
            db=db,
            clock=clock,
            bus=bus,
            uow=uow,
            customers=CustomerService(uow),
            drops=drops,
            claims=claims,
            orders=OrderService(uow, shapes, claims, drops, notifications),
            outbox=OutboxRelay(uow),
            subscriptions=SubscriptionService(uow),
            notifications=notifications,
            templates=TemplateService(uow, drops),
            tracker=Tracker(uow),
            analytics=analytics,
            webhooks=WebhookService(uow, analytics.kpis),
            clips=ClipService(uow),
        )

    async def secret_key(self) -> str:
        """The link-signing key kept in the database (made once) when none is configured."""
        async with self.db.read() as conn:
            value = (
                await conn.execute(select(kv.c.value).where(kv.c.key == "secret_key"))
            ).scalar()
        if value:
            return str(value)
        async with self.db.write() as conn:
            await conn.execute(
                self.db.insert(kv)
                .values(key="secret_key", value=secrets.token_urlsafe(32))
                .on_conflict_do_nothing(index_elements=["key"])
            )
            value = (
                await conn.execute(select(kv.c.value).where(kv.c.key == "secret_key"))
            ).scalar_one()
        return str(value)
