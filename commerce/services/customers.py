"""Customers and their identities (``<scheme>:<id>``: a chat platform's, or ``web:…``).

Personal data lives in a few places only: identities (which hold the email of a ``web:``
customer), customers' display names, orders' shipping addresses, and the address
(identity or webhook URL) of subscriptions and queued notifications. ``forget`` erases all
of them for one person; everything else refers to a customer by number.
"""

from __future__ import annotations

import logging

from sqlalchemy import String, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.domain.errors import InvalidInput
from commerce.domain.model import (
    Customer,
    NotificationStatus,
    SubscriptionStatus,
    WaitlistStatus,
    normalize_identity,
)
from commerce.fresh import BatchedLookup
from commerce.services.orders import erase_addresses
from commerce.storage.tables import (
    customers,
    holds,
    identities,
    notifications,
    orders,
    subscriptions,
    waitlist,
)
from commerce.storage.unit_of_work import Tx, UnitOfWork

log = logging.getLogger(__name__)
# What stands where a forgotten person's address was (subscriptions, notifications).
FORGOTTEN = "forgotten"


class CustomerService:
    """Identities → customers. Known identities are answered from memory; new ones are
    created in batches (one transaction for everyone who showed up at once), because a
    surge of first-time buyers must not cost one write transaction each."""

    def __init__(self, uow: UnitOfWork, *, cache_size: int = 200_000) -> None:
        self.uow = uow
        self._insert = uow.db.insert
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size
        self._names: dict[str, str | None] = {}  # display names of identities being created
        self._lookup = BatchedLookup(self._find_or_create)
        db = uow.db
        self._known = select(identities.c.identity, identities.c.customer_id).where(
            db.one_of(identities.c.identity, "identities")
        )
        # SQLite: every new customer of a batch from one INSERT … SELECT over a JSON array
        # of their names, in order (one statement, compiled once, whatever the batch size).
        names = func.json_each(bindparam("names", type_=String)).table_valued("key", "value")
        self._sqlite_new = (
            insert(customers)
            .from_select(
                ["display_name", "created_at"],
                select(names.c.value, bindparam("now", type_=customers.c.created_at.type))
                .select_from(names)
                .order_by(names.c.key),
            )
            .returning(customers.c.id)
        )

    async def resolve(self, identity: str, display_name: str | None = None) -> int:
        """The customer id behind an identity, created on first sight."""
        identity = normalize_identity(identity)
        known = self._cache.get(identity)
        if known is not None:
            return known
        self._names.setdefault(identity, display_name)
        customer_id = await self._lookup.get(identity)
        self._remember(identity, customer_id)
        return customer_id

    def _remember(self, identity: str, customer_id: int) -> None:
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))  # oldest first: dicts keep order
        self._cache[identity] = customer_id

    async def _find_or_create(self, identities_wanted: list[str]) -> dict[str, int]:
        wanted = {i: self._names.pop(i, None) for i in identities_wanted}
        listed = self.uow.db.listed
        async with self.uow.read() as conn:
            rows = await conn.execute(self._known, {"identities": listed(list(wanted))})
            found = {r.identity: int(r.customer_id) for r in rows}
        missing = [identity for identity in wanted if identity not in found]
        if not missing:
            return found
        async with self.uow.write() as tx:
            new_ids = await self._new_customers(tx, [wanted[i] for i in missing])
            linked = await tx.conn.execute(
                self._insert(identities)
                .on_conflict_do_nothing(index_elements=["identity"])
                .returning(identities.c.identity, identities.c.customer_id),
                [
                    {"identity": i, "customer_id": c, "created_at": tx.now}
                    for i, c in zip(missing, new_ids, strict=True)
                ],
            )
            found.update({r.identity: int(r.customer_id) for r in linked})
            lost = [i for i in missing if i not in found]
            if lost:  # another process created these first: use theirs
                rows = await tx.conn.execute(self._known, {"identities": listed(lost)})
                found.update({r.identity: int(r.customer_id) for r in rows})
        return found

    async def _new_customers(self, tx: Tx, names: list[str | None]) -> list[int]:
        """The ids of new customers, one per display name, in the order given."""
        if self.uow.db.dialect != "sqlite":
            result = await tx.conn.execute(
                insert(customers).returning(customers.c.id, sort_by_parameter_order=True),
                [{"display_name": name, "created_at": tx.now} for name in names],
            )
            return list(result.scalars())
        # SQLAlchemy can only learn SQLite's ids in order one INSERT per row (a thread hop
        # each: most of a first-time buyer's cost in a surge). One INSERT … SELECT instead:
        # its RETURNING has no set order, but under BEGIN IMMEDIATE no one else inserts, and
        # SQLite numbers the rows of one INSERT upward in the order its SELECT gives them, so
        # the sorted ids are the rows' ids in order.
        result = await tx.conn.execute(
            self._sqlite_new, {"names": self.uow.db.listed(names), "now": tx.now}
        )
        return sorted(result.scalars())

    async def find(self, identity: str) -> int | None:
        async with self.uow.read() as conn:
            value = (
                await conn.execute(
                    select(identities.c.customer_id).where(
                        identities.c.identity == normalize_identity(identity)
                    )
                )
            ).scalar()
        return int(value) if value is not None else None

    async def link(self, keep: str, other: str) -> int:
        """Fold ``other``'s customer into ``keep``'s; both identities then name one customer.

        What ``other`` holds, bought and queued for becomes ``keep``'s, so one person's limit
        counts every hold of theirs and they can pay a hold from either identity. The claims
        log, activity and subscriptions keep their rows (KPIs fold ``merged_into``)."""
        keep_id = await self.resolve(keep)
        other_id = await self.resolve(other)
        if keep_id == other_id:
            return keep_id
        async with self.uow.write() as tx:
            moved = list(
                (
                    await tx.conn.execute(
                        update(identities)
                        .where(identities.c.customer_id == other_id)
                        .values(customer_id=keep_id)
                        .returning(identities.c.identity)
                    )
                ).scalars()
            )
            if not moved:
                raise InvalidInput("customer", f"{other} is not known")
            await tx.conn.execute(
                update(customers).where(customers.c.id == other_id).values(merged_into=keep_id)
            )
            await tx.conn.execute(
                update(customers)
                .where(customers.c.merged_into == other_id)
                .values(merged_into=keep_id)
            )
            # Waitlist: one entry per person and drop; where both queued, keep's stays.
            await tx.conn.execute(
                delete(waitlist).where(
                    waitlist.c.customer_id == other_id,
                    waitlist.c.drop_id.in_(
                        select(waitlist.c.drop_id).where(waitlist.c.customer_id == keep_id)
                    ),
                )
            )
            for table in (holds, orders, waitlist):
                await tx.conn.execute(
                    update(table).where(table.c.customer_id == other_id).values(customer_id=keep_id)
                )
        for identity in moved:
            self._remember(identity, keep_id)
        return keep_id

    async def verify(self, identity: str, display_name: str | None = None) -> int:
        """``identity``'s owner proved it (signed in on the web): mark it so, and keep the
        name the platform gave. Returns the customer id."""
        identity = normalize_identity(identity)
        customer_id = await self.resolve(identity, display_name)
        async with self.uow.write() as tx:
            await tx.conn.execute(
                update(identities)
                .where(identities.c.identity == identity, identities.c.verified_at.is_(None))
                .values(verified_at=tx.now)
            )
            if display_name:
                await tx.conn.execute(
                    update(customers)
                    .where(customers.c.id == customer_id, customers.c.display_name.is_(None))
                    .values(display_name=display_name)
                )
        return customer_id

    async def forget(self, identity: str) -> dict[str, int]:
        """Erase a person (``customer forget``): every identity of theirs, their display
        name, their orders' shipping addresses, and the address of their subscriptions
        (ended) and messages (those not yet sent are skipped); their waitlist places lapse.
        Across every customer record linked to theirs, in one transaction. Orders keep
        amounts, SKUs and statuses.

        Returns what was erased, counted. The identity is gone afterwards, so asking again
        is refused as unknown and changes nothing."""
        identity = normalize_identity(identity)
        async with self.uow.write() as tx:
            found = await tx.conn.scalar(
                select(identities.c.customer_id).where(identities.c.identity == identity)
            )
            if found is None:
                raise InvalidInput(
                    "identity", f"{identity} is not known here (never seen, or already forgotten)"
                )
            people = await self._linked(tx.conn, int(found))
            gone = list(
                (
                    await tx.conn.execute(
                        delete(identities)
                        .where(identities.c.customer_id.in_(people))
                        .returning(identities.c.identity)
                    )
                ).scalars()
            )
            names = await tx.conn.execute(
                update(customers)
                .where(customers.c.id.in_(people), customers.c.display_name.is_not(None))
                .values(display_name=None)
            )
            await tx.conn.execute(
                update(customers)
                .where(customers.c.id.in_(people))
                .values(forgotten_at=func.coalesce(customers.c.forgotten_at, tx.now))
            )
            addresses = await erase_addresses(tx.conn, orders.c.customer_id.in_(people))
            subscribed = await tx.conn.execute(
                update(subscriptions)
                .where(
                    subscriptions.c.customer_id.in_(people),
                    or_(
                        subscriptions.c.address != FORGOTTEN,
                        subscriptions.c.status != SubscriptionStatus.ENDED,
                    ),
                )
                .values(
                    address=FORGOTTEN,
                    status=SubscriptionStatus.ENDED,
                    ended_at=func.coalesce(subscriptions.c.ended_at, tx.now),
                )
            )
            # Nobody is left to offer a freed unit to: their places in queues lapse.
            queued = await tx.conn.execute(
                update(waitlist)
                .where(
                    waitlist.c.customer_id.in_(people), waitlist.c.status == WaitlistStatus.WAITING
                )
                .values(status=WaitlistStatus.LAPSED)
            )
            unsent = await tx.conn.execute(
                update(notifications)
                .where(
                    notifications.c.customer_id.in_(people),
                    notifications.c.status.in_(
                        (NotificationStatus.PENDING, NotificationStatus.SENDING)
                    ),
                )
                .values(status=NotificationStatus.SKIPPED, lease_until=None)
            )
            # A delivery error may quote the address it failed to reach: it goes too.
            messages = await tx.conn.execute(
                update(notifications)
                .where(
                    notifications.c.customer_id.in_(people),
                    or_(notifications.c.address != FORGOTTEN, notifications.c.error.is_not(None)),
                )
                .values(address=FORGOTTEN, error=None)
            )
        for gone_identity in gone:
            self._cache.pop(gone_identity, None)
        erased = {
            "customers": len(people),
            "identities": len(gone),
            "display_names": int(names.rowcount or 0),
            "addresses": addresses,
            "subscriptions": int(subscribed.rowcount or 0),
            "messages": int(messages.rowcount or 0),
            "unsent_messages": int(unsent.rowcount or 0),
            "waitlist_places": int(queued.rowcount or 0),
        }
        # Customer numbers only: what was erased never reaches a log.
        log.info("forgot customer(s) %s: %s", sorted(people), erased)
        return erased

    async def _linked(self, conn: AsyncConnection, customer_id: int) -> list[int]:
        """``customer_id`` and every customer record folded into it, or it into (``link``)."""
        people = {customer_id}
        while True:
            rows = (
                await conn.execute(
                    select(customers.c.id, customers.c.merged_into).where(
                        or_(customers.c.id.in_(people), customers.c.merged_into.in_(people))
                    )
                )
            ).all()
            found = {int(r.id) for r in rows} | {int(r.merged_into) for r in rows if r.merged_into}
            if found <= people:
                return sorted(people)
            people |= found

    async def get(self, customer_id: int) -> Customer:
        async with self.uow.read() as conn:
            row = (
                await conn.execute(select(customers).where(customers.c.id == customer_id))
            ).first()
            if row is None:
                raise InvalidInput("customer", f"customer {customer_id} does not exist")
            rows = (
                await conn.execute(
                    select(identities.c.identity, identities.c.verified_at)
                    .where(identities.c.customer_id == customer_id)
                    .order_by(identities.c.identity)
                )
            ).all()
            return Customer(
                customer_id,
                tuple(r.identity for r in rows),
                row.display_name,
                verified=tuple(r.identity for r in rows if r.verified_at is not None),
            )
