"""Orders: hold → order → paid / reserved / refunded, idempotent at every step.

- ``checkout`` makes at most one order per hold (the hold id is unique on orders).
- ``confirm_payment`` is keyed by the provider's payment id: a retried webhook returns the
  same order. The pending→paid transition is a conditional UPDATE, so two deliveries racing
  cannot both convert. A payment for a hold that already expired is refused and marked for
  refund — its units may belong to someone else by now, and we never oversell.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, null, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.domain.errors import (
    HoldNotActive,
    HoldNotFound,
    InvalidInput,
    InvalidState,
    OrderNotFound,
)
from commerce.domain.events import OrderFulfilled, OrderPaid, OrderRefunded
from commerce.domain.model import (
    PICKUP_PREFIX,
    SHIP_POOL,
    Address,
    DropState,
    Fulfilment,
    HoldStatus,
    Money,
    Order,
    OrderStatus,
)
from commerce.domain.payments import PaymentOutcome, PaymentResult
from commerce.fresh import BatchedLookup
from commerce.services.claims import ClaimService
from commerce.services.drops import DropService
from commerce.services.notifications import NotificationService
from commerce.services.stock import ShapeCache, active_hold_filter, move_held
from commerce.storage.rows import record
from commerce.storage.tables import drop_stock, drops, holds, orders
from commerce.storage.unit_of_work import Tx, UnitOfWork

log = logging.getLogger(__name__)


# Pickup codes: short, read aloud at a shop counter, no look-alikes (0/O, 1/I/L, 2/Z, 5/S, 8/B).
PICKUP_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
PICKUP_CODE_LENGTH = 6
_CARRIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .&'-]{0,63}$")
_TRACKING = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{0,127}$")
SETTLED = (OrderStatus.PAID, OrderStatus.RESERVED)
ENDED = (OrderStatus.REFUNDED, OrderStatus.CANCELLED)


def new_pickup_code() -> str:
    return "".join(secrets.choice(PICKUP_ALPHABET) for _ in range(PICKUP_CODE_LENGTH))


def order_paid(order: Order) -> OrderPaid:
    return OrderPaid(
        order.drop_id,
        order.id,
        order.hold_id,
        order.customer_id,
        order.amount.amount_minor,
        order.amount.currency,
    )


def order_from_row(row: Row[tuple[object, ...]]) -> Order:
    m = row._mapping
    shipping_minor, ship_to = m["shipping_minor"], m["ship_to"]
    return record(
        Order,
        row,
        amount=Money(m["amount_minor"], m["currency"]),
        shipping=Money(shipping_minor, m["currency"]) if shipping_minor is not None else None,
        ship_to=Address.from_dict(ship_to) if ship_to else None,
    )


def has_address() -> ColumnElement[bool]:
    """Orders that still carry a shipping address."""
    return orders.c.ship_to.is_not(None)


async def erase_addresses(conn: AsyncConnection, *conditions: ColumnElement[bool]) -> int:
    """Erase the shipping address of the orders matching ``conditions``, in the caller's
    transaction; how many were erased (already erased ones are not counted again)."""
    erased = await conn.execute(
        update(orders).where(has_address(), *conditions).values(ship_to=null())
    )
    return int(erased.rowcount or 0)


def shipment_of(carrier: str, tracking: str) -> tuple[str, str]:
    """A carrier name and tracking code as a label and a carrier's site accept them."""
    carrier, tracking = " ".join(carrier.split()), " ".join(tracking.split())
    if not _CARRIER.match(carrier):
        raise InvalidInput("carrier", "give the carrier's name (letters, digits, up to 64)")
    if not _TRACKING.match(tracking):
        raise InvalidInput("tracking", "give the tracking code (letters, digits, up to 128)")
    return carrier, tracking


class OrderService:
    def __init__(
        self,
        uow: UnitOfWork,
        shapes: ShapeCache,
        claims: ClaimService,
        drops: DropService,
        notifications: NotificationService,
    ) -> None:
        self.uow = uow
        self.shapes = shapes
        self.claims = claims
        self.drops = drops
        self.notifications = notifications
        # Every ship hold's page asks: a surge of them costs one read per batch.
        self._last_addresses = BatchedLookup(self._load_last_addresses)
        self._last_addresses_of = (
            select(orders.c.customer_id, orders.c.ship_to)
            .where(uow.db.one_of(orders.c.customer_id, "customers"), has_address())
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
        )
        self._insert = uow.db.insert

    async def checkout(
        self,
        hold_id: int,
        customer_id: int,
        provider: str,
        idempotency_key: str | None = None,
        *,
        ship_to: Address | None = None,
        shipping: Money | None = None,
    ) -> Order:
        """The order for an active hold; asking twice returns the same order.

        ``shipping`` (a ship-pool order) is added to the amount; ``ship_to`` is where it
        goes (None when the provider collects the address, as Stripe does). While the
        order is still pending, asking again with another destination re-prices it.
        """
        async with self.uow.read() as conn:
            hold = (
                await conn.execute(
                    select(holds, drops.c.currency)
                    .join(drops, drops.c.id == holds.c.drop_id)
                    .where(holds.c.id == hold_id)
                )
            ).first()
        if hold is None or hold.customer_id != customer_id:
            raise HoldNotFound(f"hold {hold_id} does not exist", hold_id=hold_id)
        items = Money(hold.price_minor, hold.currency) * hold.qty  # the price the buyer saw
        if shipping is not None and shipping.currency != items.currency:
            raise InvalidInput("shipping", f"must be in {items.currency}, the drop's currency")
        if shipping is not None and hold.pool != SHIP_POOL:
            raise InvalidInput("shipping", "a pickup order has nothing to ship")
        amount = items + shipping if shipping is not None else items
        destination = {
            "ship_to": ship_to.as_dict() if ship_to else None,
            "shipping_minor": shipping.amount_minor if shipping else None,
            "amount_minor": amount.amount_minor,
        }
        async with self.uow.write() as tx:
            existing = await self._by_hold(tx, hold_id)
            if existing is not None:
                if existing.status is OrderStatus.PENDING and (
                    existing.amount != amount or existing.ship_to != ship_to
                ):
                    await tx.conn.execute(
                        update(orders)
                        .where(orders.c.id == existing.id, orders.c.status == OrderStatus.PENDING)
                        .values(**destination)
                    )
                    return await self._get(tx, existing.id)
                return existing
            active = (
                await tx.conn.execute(
                    select(holds.c.id).where(holds.c.id == hold_id, active_hold_filter(tx.now))
                )
            ).first()
            if active is None:
                raise HoldNotActive(f"hold {hold_id} has expired", hold_id=hold_id)
            await tx.conn.execute(
                self._insert(orders)
                .values(
                    drop_id=hold.drop_id,
                    hold_id=hold_id,
                    customer_id=customer_id,
                    status=OrderStatus.PENDING,
                    qty=hold.qty,
                    currency=amount.currency,
                    provider=provider,
                    idempotency_key=idempotency_key or f"hold:{hold_id}:{uuid.uuid4().hex}",
                    pool=hold.pool,
                    created_at=tx.now,
                    pickup_code=(
                        new_pickup_code() if hold.pool.startswith(PICKUP_PREFIX) else None
                    ),
                    **destination,
                )
                .on_conflict_do_nothing(index_elements=["hold_id"])
            )
            order = await self._by_hold(tx, hold_id)
            assert order is not None
            return order

    async def confirm_payment(
        self, order_id: int, provider_ref: str, *, ship_to: Address | None = None
    ) -> PaymentResult:
        """Record a successful payment from the provider (idempotent by ``provider_ref``);
        ``ship_to``: the address the provider collected."""
        if not provider_ref or len(provider_ref) > 200:
            raise InvalidInput("provider_ref", "must be 1 to 200 characters")
        try:
            result = await self._settle(order_id, provider_ref, OrderStatus.PAID, ship_to)
        except IntegrityError:
            # A concurrent delivery of the same payment won the unique provider_ref.
            result = await self._replay(order_id, provider_ref)
        order = result.order
        log.info(
            "payment %s: order %s hold %s",
            result.outcome.value,
            order.id,
            order.hold_id,
            extra={
                "order_id": order.id,
                "hold_id": order.hold_id,
                "drop_id": order.drop_id,
                "outcome": result.outcome.value,
            },
        )
        return result

    async def reserve(self, order_id: int) -> PaymentResult:
        """Manual payment (pickup / invoice): commit the units now, collect the money later."""
        return await self._settle(order_id, None, OrderStatus.RESERVED)

    async def mark_paid(self, order_id: int, provider_ref: str) -> PaymentResult:
        """A reserved (manual) order was paid at pickup."""
        async with self.uow.write() as tx:
            order = await self._get(tx, order_id)
            if order.status is OrderStatus.PAID:
                return PaymentResult(PaymentOutcome.REPLAYED, order)
            if order.status is not OrderStatus.RESERVED:
                raise InvalidState(f"order {order_id} is {order.status}, not reserved")
            return await self._paid_at_pickup(tx, order, provider_ref)

    async def refund(self, order_id: int, reason: str = "requested") -> Order:
        """Refund a paid or reserved order or cancel a pending one. While the drop is live
        its units go back on sale, the waitlist first; a drop that had closed because it
        sold out opens again for them (as a restock would, within its window); a drop
        closed by hand or by its window keeps them sold (the sale happened; the refund is
        counted apart). Units already shipped or picked up never go back on sale: they
        have left, and selling them again would sell what is not there. The money side is
        the provider's (``commerce.desk``): this records the refund, idempotently."""
        async with self.uow.write() as tx:
            order = await self._get(tx, order_id)
            if order.status in (OrderStatus.REFUNDED, OrderStatus.CANCELLED):
                return order
            await self.uow.db.lock_drop(tx.conn, order.drop_id)
            shape = await self.shapes.get(tx.conn, order.drop_id)
            if order.status is OrderStatus.PENDING:
                await tx.conn.execute(
                    update(orders)
                    .where(orders.c.id == order_id, orders.c.status == OrderStatus.PENDING)
                    .values(
                        status=OrderStatus.CANCELLED, ended_at=tx.now, refund_reason=reason[:64]
                    )
                )
                released = await tx.conn.execute(
                    update(holds)
                    .where(holds.c.id == order.hold_id, holds.c.status == HoldStatus.ACTIVE)
                    .values(status=HoldStatus.CANCELLED, ended_at=tx.now)
                )
                if released.rowcount == 1:
                    hold = await self._hold(tx, order.hold_id)
                    await move_held(
                        tx.conn,
                        drop_id=hold.drop_id,
                        sku=hold.sku,
                        pool=hold.pool,
                        qty=hold.qty,
                        sign=-1,
                    )
            else:
                changed = await tx.conn.execute(
                    update(orders)
                    .where(orders.c.id == order_id, orders.c.status.in_(SETTLED))
                    .values(status=OrderStatus.REFUNDED, ended_at=tx.now, refund_reason=reason[:64])
                )
                drop = await self.drops.load(tx.conn, order.drop_id)
                on_hand = order.fulfilment is None  # the goods have not left
                live = on_hand and drop.state is DropState.LIVE
                if changed.rowcount == 1 and on_hand and not live:
                    live = await self.drops.reopen_sold_out(tx, drop)
                if changed.rowcount == 1:
                    tx.emit(OrderRefunded(order.drop_id, order.id, order.customer_id, reason))
                    await self._message(tx, order, "refunded", f"refunded:{order.id}")
                if changed.rowcount == 1 and live:
                    hold = await self._hold(tx, order.hold_id)
                    await tx.conn.execute(
                        update(holds)
                        .where(holds.c.id == order.hold_id)
                        .values(status=HoldStatus.CANCELLED, ended_at=tx.now)
                    )
                    await tx.conn.execute(
                        update(drop_stock)
                        .where(self._lines_of(hold))
                        .values(sold=drop_stock.c.sold - drop_stock.c.per_unit * hold.qty)
                    )
            await self.claims.offer_waitlist(tx, shape)
            await self.claims.emit_stock(tx, shape)
            return await self._get(tx, order_id)

    async def ship(self, order_id: int, carrier: str, tracking: str) -> tuple[Order, bool]:
        """Mark a ship order shipped and message the buyer with the tracking. The same
        carrier and code again change nothing (False); a corrected code replaces the old
        one and the buyer hears the new one."""
        carrier, tracking = shipment_of(carrier, tracking)
        async with self.uow.write() as tx:
            order = await self._get(tx, order_id)
            if order.pool != SHIP_POOL:
                raise InvalidState(f"order {order_id} is picked up, not shipped")
            if order.status.value not in SETTLED:
                raise InvalidState(f"order {order_id} is {order.status.value}: it cannot ship")
            if order.fulfilment is Fulfilment.SHIPPED and (order.carrier, order.tracking) == (
                carrier,
                tracking,
            ):
                return order, False
            changed = await tx.conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status.in_(SETTLED))
                .values(
                    fulfilment=Fulfilment.SHIPPED.value,
                    fulfilled_at=func.coalesce(orders.c.fulfilled_at, tx.now),
                    carrier=carrier,
                    tracking=tracking,
                )
            )
            if changed.rowcount != 1:
                raise InvalidState(f"order {order_id} changed meanwhile; try again")
            tx.emit(
                OrderFulfilled(
                    order.drop_id, order.id, order.customer_id, "shipped", carrier, tracking
                )
            )
            await self._message(tx, order, "shipped", f"shipped:{order.id}:{tracking}")
            return await self._get(tx, order_id), True

    async def picked_up(self, order_id: int, code: str | None = None) -> tuple[Order, bool]:
        """The buyer collected a pickup order; ``code`` (what they show the shop) must be
        the order's when given. A pay-at-pickup order is paid at the counter now."""
        async with self.uow.write() as tx:
            order = await self._get(tx, order_id)
            if not order.pool.startswith(PICKUP_PREFIX):
                raise InvalidState(f"order {order_id} ships; it is not picked up")
            if code is not None and code.strip().upper() != (order.pickup_code or ""):
                raise InvalidInput("code", "does not match this order's pickup code")
            if order.fulfilment is Fulfilment.PICKED_UP:
                return order, False
            if order.status.value not in SETTLED:
                raise InvalidState(
                    f"order {order_id} is {order.status.value}: nothing to hand over"
                )
            if order.status is OrderStatus.RESERVED:
                await self._paid_at_pickup(tx, order, f"pickup_{order.id}")
            changed = await tx.conn.execute(
                update(orders)
                .where(
                    orders.c.id == order_id,
                    orders.c.status.in_(SETTLED),
                    orders.c.fulfilment.is_(None),
                )
                .values(fulfilment=Fulfilment.PICKED_UP.value, fulfilled_at=tx.now)
            )
            if changed.rowcount != 1:
                return await self._get(tx, order_id), False
            tx.emit(
                OrderFulfilled(order.drop_id, order.id, order.customer_id, "picked_up", None, None)
            )
            return await self._get(tx, order_id), True

    async def get(self, order_id: int) -> Order:
        async with self.uow.read() as conn:
            row = (await conn.execute(select(orders).where(orders.c.id == order_id))).first()
        if row is None:
            raise OrderNotFound(f"order {order_id} does not exist", order_id=order_id)
        return order_from_row(row)

    async def hold_expires_at(self, order: Order) -> datetime:
        """When the hold behind ``order`` runs out: what a payment page may count down to."""
        async with self.uow.read() as conn:
            expires: datetime = (
                await conn.execute(select(holds.c.expires_at).where(holds.c.id == order.hold_id))
            ).scalar_one()  # an order always has its hold
        return expires

    async def ordered_sku(self, order: Order) -> str | None:
        """The product an order is for (its hold's SKU); None for a bundle."""
        async with self.uow.read() as conn:
            sku: str | None = await conn.scalar(
                select(holds.c.sku).where(holds.c.id == order.hold_id)
            )
        return sku

    async def settled_of(self, drop_id: int, customer_id: int) -> list[Order]:
        """This customer's settled (paid or reserved) orders on the drop, oldest first."""
        async with self.uow.read() as conn:
            rows = await conn.execute(
                select(orders)
                .where(
                    orders.c.drop_id == drop_id,
                    orders.c.customer_id == customer_id,
                    orders.c.status.in_(SETTLED),
                )
                .order_by(orders.c.id)
            )
            return [order_from_row(row) for row in rows]

    async def last_address(self, customer_id: int) -> Address | None:
        """The address of this customer's latest ship order (their next checkout is
        pre-filled with it; nobody else's ever is)."""
        return await self._last_addresses.get(customer_id)

    async def _load_last_addresses(self, customer_ids: list[int]) -> dict[int, Address | None]:
        async with self.uow.read() as conn:
            rows = await conn.execute(
                self._last_addresses_of, {"customers": self.uow.db.listed(customer_ids)}
            )
            latest: dict[int, Address | None] = {}
            for row in rows:
                address = Address.from_dict(row.ship_to) if row.ship_to else None
                latest.setdefault(row.customer_id, address)
        return {customer_id: latest.get(customer_id) for customer_id in customer_ids}

    async def for_hold(self, hold_id: int) -> Order | None:
        async with self.uow.read() as conn:
            row = (await conn.execute(select(orders).where(orders.c.hold_id == hold_id))).first()
        return order_from_row(row) if row else None

    async def erase_old_addresses(self, before: datetime) -> int:
        """Retention: erase the shipping address of every order whose goods left (shipped,
        picked up) or that ended (refunded, cancelled) before ``before``. Amounts, SKUs and
        statuses stay. Returns how many addresses were erased; a rerun erases none."""
        done = or_(
            and_(orders.c.fulfilment.is_not(None), orders.c.fulfilled_at < before),
            and_(orders.c.status.in_(ENDED), orders.c.ended_at < before),
        )
        async with self.uow.write() as tx:
            return await erase_addresses(tx.conn, done)

    # -- internals ------------------------------------------------------------------------

    async def _settle(
        self,
        order_id: int,
        provider_ref: str | None,
        target: OrderStatus,
        ship_to: Address | None = None,
    ) -> PaymentResult:
        async with self.uow.write() as tx:
            if provider_ref is not None:
                seen = (
                    await tx.conn.execute(
                        select(orders).where(orders.c.provider_ref == provider_ref)
                    )
                ).first()
                if seen is not None:
                    if seen.id != order_id:
                        raise InvalidInput("provider_ref", "already used for another order")
                    return PaymentResult(PaymentOutcome.REPLAYED, order_from_row(seen))
            settled: dict[str, object] = {
                "status": target.value,
                "provider_ref": provider_ref,
                "paid_at": tx.now if target is OrderStatus.PAID else None,
            }
            if ship_to is not None:
                settled["ship_to"] = ship_to.as_dict()
            changed = await tx.conn.execute(
                update(orders)
                .where(orders.c.id == order_id, orders.c.status == OrderStatus.PENDING)
                .values(**settled)
            )
            if changed.rowcount != 1:
                order = await self._get(tx, order_id)  # raises when unknown
                if provider_ref is not None and order.provider_ref == provider_ref:
                    return PaymentResult(PaymentOutcome.REPLAYED, order)  # lost a race to it
                if order.status in (OrderStatus.PAID, OrderStatus.RESERVED) and provider_ref:
                    if order.status is OrderStatus.RESERVED:
                        return await self._paid_at_pickup(tx, order, provider_ref)
                    return PaymentResult(PaymentOutcome.DUPLICATE, order)
                if order.status in (OrderStatus.CANCELLED, OrderStatus.REFUNDED) and provider_ref:
                    return PaymentResult(PaymentOutcome.REFUND_DUE, order)
                raise InvalidState(f"order {order_id} is {order.status}")
            order = await self._get(tx, order_id)
            if not await self._commit_units(tx, order):
                await tx.conn.execute(
                    update(orders)
                    .where(orders.c.id == order_id)
                    .values(
                        status=OrderStatus.REFUNDED,
                        paid_at=None,
                        ended_at=tx.now,
                        refund_reason="hold_expired",
                    )
                )
                tx.emit(OrderRefunded(order.drop_id, order.id, order.customer_id, "hold_expired"))
                return PaymentResult(PaymentOutcome.REFUND_DUE, await self._get(tx, order_id))
            if target is OrderStatus.PAID:
                tx.emit(order_paid(order))
            await self._message(tx, order, "receipt", f"receipt:{order.id}")
            shape = await self.shapes.get(tx.conn, order.drop_id)
            await self.claims.emit_stock(tx, shape)
            await self.drops.close_if_sold_through(tx, order.drop_id)
            outcome = PaymentOutcome.PAID if target is OrderStatus.PAID else PaymentOutcome.RESERVED
            return PaymentResult(outcome, order)

    async def _paid_at_pickup(self, tx: Tx, order: Order, provider_ref: str) -> PaymentResult:
        changed = await tx.conn.execute(
            update(orders)
            .where(orders.c.id == order.id, orders.c.status == OrderStatus.RESERVED)
            .values(status=OrderStatus.PAID, provider_ref=provider_ref, paid_at=tx.now)
        )
        if changed.rowcount != 1:  # someone marked it first: same answer, no second event
            return PaymentResult(PaymentOutcome.REPLAYED, await self._get(tx, order.id))
        tx.emit(order_paid(order))
        return PaymentResult(PaymentOutcome.PAID, await self._get(tx, order.id))

    async def _commit_units(self, tx: Tx, order: Order) -> bool:
        """Turn the order's hold into sold units, only while the hold is still live."""
        converted = await tx.conn.execute(
            update(holds)
            .where(holds.c.id == order.hold_id, active_hold_filter(tx.now))
            .values(status=HoldStatus.CONVERTED, ended_at=tx.now)
        )
        if converted.rowcount != 1:
            return False
        hold = await self._hold(tx, order.hold_id)
        # Held → sold in one statement. The CHECKs (sold <= total, held >= 0) are the
        # backstop should anything upstream be wrong.
        units = drop_stock.c.per_unit * hold.qty
        await tx.conn.execute(
            update(drop_stock)
            .where(self._lines_of(hold))
            .values(sold=drop_stock.c.sold + units, held=drop_stock.c.held - units)
        )
        return True

    @staticmethod
    def _lines_of(hold: Row[tuple[object, ...]]) -> ColumnElement[bool]:
        """The stock lines a hold took from: one SKU, or every part of a bundle's pool."""
        conditions = [drop_stock.c.drop_id == hold.drop_id, drop_stock.c.pool == hold.pool]
        if hold.sku is not None:
            conditions.append(drop_stock.c.sku == hold.sku)
        return and_(*conditions)

    async def _replay(self, order_id: int, provider_ref: str) -> PaymentResult:
        async with self.uow.read() as conn:
            row = (
                await conn.execute(select(orders).where(orders.c.provider_ref == provider_ref))
            ).first()
        if row is None or row.id != order_id:
            raise InvalidInput("provider_ref", "already used for another order")
        return PaymentResult(PaymentOutcome.REPLAYED, order_from_row(row))

    async def _message(self, tx: Tx, order: Order, kind: str, key: str) -> None:
        """Queue the buyer's private message about ``order`` in this transaction."""
        await self.notifications.personal(
            tx.conn,
            kind=kind,
            key=key,
            customer_id=order.customer_id,
            drop_id=order.drop_id,
            payload={"order_id": order.id},
            now=tx.now,
        )

    async def _hold(self, tx: Tx, hold_id: int) -> Row[tuple[object, ...]]:
        return (await tx.conn.execute(select(holds).where(holds.c.id == hold_id))).one()

    async def _by_hold(self, tx: Tx, hold_id: int) -> Order | None:
        row = (await tx.conn.execute(select(orders).where(orders.c.hold_id == hold_id))).first()
        return order_from_row(row) if row else None

    async def _get(self, tx: Tx, order_id: int) -> Order:
        row = (await tx.conn.execute(select(orders).where(orders.c.id == order_id))).first()
        if row is None:
            raise OrderNotFound(f"order {order_id} does not exist", order_id=order_id)
        return order_from_row(row)
