"""The creator's order desk: list and export orders, refund through the gateway, mark
orders shipped (one or a carrier's CSV) or picked up; and a pickup shop's list. The CLI,
the admin API and the dashboard all go through here, so they cannot disagree.

Money first: a refund asks the order's gateway (through checkout) to return the money (with
an idempotency key, so a retry never pays twice) before the order is recorded refunded; if
the gateway refuses, nothing changes here and the creator is told why.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.selectable import ScalarSelect

from commerce.domain.errors import DomainError, InvalidInput, OrderNotFound
from commerce.domain.model import DeskStatus, Fulfilment, Money, Order, OrderStatus
from commerce.domain.text import one_line
from commerce.services.checkout import CheckoutService
from commerce.services.orders import SETTLED, OrderService, order_from_row
from commerce.storage.database import Database
from commerce.storage.tables import customers, drop_stock, drops, holds, identities, orders
from commerce.views import iso

log = logging.getLogger(__name__)

PACKING_COLUMNS = (
    "order",
    "drop",
    "status",
    "name",
    "line1",
    "line2",
    "postal_code",
    "city",
    "region",
    "country",
    "sku",
    "qty",
    "pool",
    "pickup_code",
)
SHIP_CSV_COLUMNS = ("order", "carrier", "tracking")
MAX_SHIP_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class DeskLine:
    """One order as the desk shows it: who, what (SKU and units per part), where."""

    order: Order
    drop_title: str
    customer: str  # display name, else an identity, else "customer N"
    items: tuple[tuple[str, int], ...]  # (SKU, units): a bundle lists every part

    @property
    def status(self) -> DeskStatus:
        return self.order.desk_status

    def as_json(self) -> dict[str, Any]:
        """The order for the creator's own exports (admin API, ``orders --json``): the
        address is in it, so it goes nowhere else."""
        order = self.order
        return {
            "id": order.id,
            "drop_id": order.drop_id,
            "drop_title": self.drop_title,
            "customer_id": order.customer_id,
            "customer": self.customer,
            "status": self.status.value,
            "payment_status": order.status.value,
            "provider": order.provider,
            "provider_ref": order.provider_ref,
            "pool": order.pool,
            "qty": order.qty,
            "items": [{"sku": sku, "qty": qty} for sku, qty in self.items],
            "currency": order.amount.currency,
            "amount_minor": order.amount.amount_minor,
            "items_minor": order.items_amount.amount_minor,
            "shipping_minor": order.shipping.amount_minor if order.shipping else None,
            "amount": order.amount.format(),
            "ship_to": order.ship_to.as_dict() if order.ship_to else None,
            "pickup_code": order.pickup_code,
            "fulfilment": order.fulfilment.value if order.fulfilment else None,
            "carrier": order.carrier,
            "tracking": order.tracking,
            "refund_reason": order.refund_reason,
            "created_at": iso(order.created_at),
            "paid_at": iso(order.paid_at),
            "fulfilled_at": iso(order.fulfilled_at),
            "ended_at": iso(order.ended_at),
        }


def status_filter(status: DeskStatus) -> ColumnElement[bool]:
    """The orders a desk status names (payment state, or fulfilment once the goods left)."""
    settled = orders.c.status.in_(SETTLED)
    match status:
        case DeskStatus.SHIPPED | DeskStatus.PICKED_UP:
            return and_(settled, orders.c.fulfilment == status.value)
        case DeskStatus.PAID | DeskStatus.RESERVED:
            return and_(orders.c.status == status.value, orders.c.fulfilment.is_(None))
        case _:
            return orders.c.status == status.value


def buyer_identity() -> ScalarSelect[str]:
    """One identity of an order's buyer (to name them when the platform gave no name)."""
    return (
        select(func.min(identities.c.identity))
        .where(identities.c.customer_id == orders.c.customer_id)
        .scalar_subquery()
    )


def parse_status(value: str | None) -> DeskStatus | None:
    if value is None or value == "":
        return None
    try:
        return DeskStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in DeskStatus)
        raise InvalidInput("status", f"{value!r} is not an order status; use {known}") from None


@dataclass(frozen=True, slots=True)
class ShipRow:
    line: int  # in the file, the header being line 1
    order_id: int
    carrier: str
    tracking: str


@dataclass
class ShipReport:
    """What a bulk shipment did, row by row."""

    shipped: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    refused: list[tuple[int, int, str]] = field(default_factory=list)  # (line, order, why)

    def as_dict(self) -> dict[str, object]:
        return {
            "shipped": self.shipped,
            "unchanged": self.unchanged,
            "refused": [{"line": ln, "order": o, "problem": p} for ln, o, p in self.refused],
        }


def parse_ship_csv(text: str) -> list[ShipRow]:
    """A carrier's export: a header naming ``order``, ``carrier`` and ``tracking`` (other
    columns ignored, order free). Every row is checked before any is applied. Any line
    ending goes (``newline=""``, as the csv module asks); what it still cannot read (a field
    over its size limit, a quote left open) is InvalidInput naming the line."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        return _ship_rows(reader)
    except csv.Error as exc:
        raise InvalidInput("csv", f"line {reader.line_num}: {exc}") from None


def _ship_rows(reader: Iterator[list[str]]) -> list[ShipRow]:
    header = [h.strip().lower() for h in next(reader, [])]
    aliases = {"order_id": "order", "order id": "order", "tracking_number": "tracking"}
    header = [aliases.get(h, h) for h in header]
    missing = [c for c in SHIP_CSV_COLUMNS if c not in header]
    if missing:
        raise InvalidInput("csv", f"line 1: the header needs the column(s) {', '.join(missing)}")
    where = {c: header.index(c) for c in SHIP_CSV_COLUMNS}
    rows: list[ShipRow] = []
    for number, record in enumerate(reader, start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) >= MAX_SHIP_ROWS:
            raise InvalidInput("csv", f"more than {MAX_SHIP_ROWS} rows; split the file")
        cells = {c: (record[i].strip() if i < len(record) else "") for c, i in where.items()}
        order = cells["order"].lstrip("#")
        if not order.isdigit() or len(order) > 18:
            raise InvalidInput("csv", f"line {number}: order {cells['order']!r} is not a number")
        for column in ("carrier", "tracking"):
            if not cells[column]:
                raise InvalidInput("csv", f"line {number}: {column} is empty")
        rows.append(ShipRow(number, int(order), cells["carrier"], cells["tracking"]))
    if not rows:
        raise InvalidInput("csv", "has no rows under its header")
    return rows


def packing_csv(lines: Iterable[DeskLine]) -> str:
    """The packing list: one row per order and SKU, with the address to ship to."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PACKING_COLUMNS)
    for line in lines:
        order = line.order
        address = order.ship_to.as_dict() if order.ship_to else {}
        for sku, qty in line.items:
            writer.writerow(
                [
                    order.id,
                    order.drop_id,
                    line.status.value,
                    address.get("name") or line.customer,
                    address.get("line1", ""),
                    address.get("line2", ""),
                    address.get("postal_code", ""),
                    address.get("city", ""),
                    address.get("region", ""),
                    address.get("country", ""),
                    sku,
                    qty,
                    order.pool,
                    order.pickup_code or "",
                ]
            )
    return buffer.getvalue()


def _reason(reason: str) -> str:
    text = one_line(reason, "reason", 64, required=False)
    if not text:
        raise InvalidInput("reason", "say why, in a few words")
    return text


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


class OrderDesk:
    def __init__(self, db: Database, orders: OrderService, checkout: CheckoutService) -> None:
        self.db = db
        self.orders = orders
        self.checkout = checkout

    # -- reading ----------------------------------------------------------------------

    async def lines(
        self, drop_id: int | None = None, status: DeskStatus | None = None
    ) -> list[DeskLine]:
        """Orders, oldest first, optionally of one drop and in one desk status."""
        conditions: list[ColumnElement[bool]] = []
        if drop_id is not None:
            conditions.append(orders.c.drop_id == drop_id)
        if status is not None:
            conditions.append(status_filter(status))
        return await self._lines(conditions)

    async def line(self, order_id: int) -> DeskLine:
        found = await self._lines([orders.c.id == order_id])
        if not found:
            raise OrderNotFound(f"order {order_id} does not exist", order_id=order_id)
        return found[0]

    async def pickup_list(self, pool: str) -> list[PickupLine]:
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
            .where(orders.c.pool == pool, orders.c.status.in_(SETTLED))
            .order_by(orders.c.drop_id, orders.c.created_at, orders.c.id)
        )
        async with self.db.read() as conn:
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

    async def _lines(self, conditions: Sequence[ColumnElement[bool]]) -> list[DeskLine]:
        identity = buyer_identity()
        query = (
            select(
                orders,
                drops.c.title.label("drop_title"),
                customers.c.display_name,
                identity.label("identity"),
                holds.c.sku,
            )
            .join(drops, drops.c.id == orders.c.drop_id)
            .join(holds, holds.c.id == orders.c.hold_id)
            .join(customers, customers.c.id == orders.c.customer_id)
            .where(*conditions)
            .order_by(orders.c.id)
        )
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
            bundles = {(r.drop_id, r.pool) for r in rows if r.sku is None}
            parts: dict[tuple[int, str], list[tuple[str, int]]] = {}
            for drop_id, pool in bundles:
                stock = await conn.execute(
                    select(drop_stock.c.sku, drop_stock.c.per_unit)
                    .where(drop_stock.c.drop_id == drop_id, drop_stock.c.pool == pool)
                    .order_by(drop_stock.c.position)
                )
                parts[(drop_id, pool)] = [(s.sku, s.per_unit) for s in stock]
        lines = []
        for r in rows:
            order = order_from_row(r)
            if r.sku is not None:
                items: tuple[tuple[str, int], ...] = ((r.sku, order.qty),)
            else:
                items = tuple((sku, n * order.qty) for sku, n in parts[(r.drop_id, r.pool)])
            who = r.display_name or r.identity or f"customer {order.customer_id}"
            lines.append(DeskLine(order, r.drop_title, who, items))
        return lines

    # -- acting -----------------------------------------------------------------------

    async def refund(self, order_id: int, reason: str = "requested") -> tuple[Order, bool]:
        """Give the money back through the order's gateway, then record the refund (a live
        drop's units go back on sale, waitlist first). False: it already was refunded."""
        reason = _reason(reason)
        order = await self.orders.get(order_id)
        if order.status in (OrderStatus.REFUNDED, OrderStatus.CANCELLED):
            return order, False
        if order.status is OrderStatus.PAID:
            await self.checkout.refund(order, reason)
        refunded = await self.orders.refund(order_id, reason)
        log.info(
            "order %s refunded (%s)",
            order_id,
            order.provider,
            extra={"order_id": order_id, "drop_id": order.drop_id},
        )
        return refunded, True

    async def ship(self, order_id: int, carrier: str, tracking: str) -> tuple[Order, bool]:
        return await self.orders.ship(order_id, carrier, tracking)

    async def ship_csv(self, text: str) -> ShipReport:
        """Mark every order of a carrier's export shipped. The same file twice changes
        nothing; a row that cannot ship is reported and the others still ship."""
        report = ShipReport()
        for row in parse_ship_csv(text):
            try:
                _, changed = await self.orders.ship(row.order_id, row.carrier, row.tracking)
            except DomainError as exc:
                report.refused.append((row.line, row.order_id, str(exc)))
                continue
            (report.shipped if changed else report.unchanged).append(row.order_id)
        return report

    async def picked_up(self, order_id: int, code: str | None = None) -> tuple[Order, bool]:
        return await self.orders.picked_up(order_id, code)
