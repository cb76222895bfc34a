"""Read models the web needs that no service offers: plain SQL Core selects, read-only
(the cosmicpython "views" idea: reads may bypass the domain, writes never do)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from commerce.desk import buyer_identity
from commerce.domain.model import Fulfilment, Money, OrderStatus
from commerce.storage.database import Database
from commerce.storage.tables import customers, drops, holds, orders


@dataclass(frozen=True, slots=True)
class PickupLine:
    order_id: int
    drop_id: int
    drop_title: str
    customer: str
    item: str
    qty: int
    amount: str
    status: OrderStatus
    created_at: datetime
    paid_at: datetime | None
    handed_over_at: datetime | None = None  # picked up

    @property
    def handed_over(self) -> bool:
        return self.handed_over_at is not None

    @property
    def status_label(self) -> str:
        if self.handed_over:
            return "picked up"
        return "paid" if self.status is OrderStatus.PAID else "to pay at pickup"


async def pickup_orders(db: Database, pool: str) -> list[PickupLine]:
    """Orders of one pickup location: reserved (pay there) or paid, waiting or handed over
    (then ``handed_over_at`` is set). Never the pickup code: the shop checks the buyer's."""
    identity = buyer_identity()
    query = (
        select(
            orders.c.id,
            orders.c.drop_id,
            drops.c.title,
            customers.c.display_name,
            identity.label("identity"),
            holds.c.sku,
            orders.c.qty,
            orders.c.amount_minor,
            orders.c.currency,
            orders.c.status,
            orders.c.created_at,
            orders.c.paid_at,
            orders.c.customer_id,
            orders.c.fulfilment,
            orders.c.fulfilled_at,
        )
        .join(drops, drops.c.id == orders.c.drop_id)
        .join(holds, holds.c.id == orders.c.hold_id)
        .join(customers, customers.c.id == orders.c.customer_id)
        .where(orders.c.pool == pool, orders.c.status.in_((OrderStatus.RESERVED, OrderStatus.PAID)))
        .order_by(orders.c.drop_id, orders.c.created_at, orders.c.id)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [
        PickupLine(
            order_id=r.id,
            drop_id=r.drop_id,
            drop_title=r.title,
            customer=r.display_name or r.identity or f"customer {r.customer_id}",
            item=r.sku or "bundle",
            qty=r.qty,
            amount=Money(r.amount_minor, r.currency).format(),
            status=OrderStatus(r.status),
            created_at=r.created_at,
            paid_at=r.paid_at,
            handed_over_at=r.fulfilled_at if r.fulfilment == Fulfilment.PICKED_UP else None,
        )
        for r in rows
    ]
