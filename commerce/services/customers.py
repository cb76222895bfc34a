"""Customers and their platform identities (``discord:…``, ``twitch:…``, ``web:…``)."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from commerce.domain.errors import InvalidInput
from commerce.domain.model import Customer, normalize_identity
from commerce.services.unit_of_work import UnitOfWork
from commerce.storage.tables import customers, identities


class _LostRace(Exception):
    """Another request created the same identity first; roll back and read theirs."""


class CustomerService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._insert = postgresql.insert if uow.db.dialect == "postgresql" else sqlite.insert

    async def resolve(self, identity: str, display_name: str | None = None) -> int:
        """The customer id behind an identity, created on first sight."""
        identity = normalize_identity(identity)
        found = await self.find(identity)
        if found is not None:
            return found
        try:
            async with self.uow.write() as tx:
                customer_id = (
                    await tx.conn.execute(
                        insert(customers)
                        .values(display_name=display_name, created_at=tx.now)
                        .returning(customers.c.id)
                    )
                ).scalar_one()
                linked = (
                    await tx.conn.execute(
                        self._insert(identities)
                        .values(identity=identity, customer_id=customer_id, created_at=tx.now)
                        .on_conflict_do_nothing(index_elements=["identity"])
                        .returning(identities.c.customer_id)
                    )
                ).scalar()
                if linked is None:
                    raise _LostRace
                return int(customer_id)
        except _LostRace:
            found = await self.find(identity)
            assert found is not None
            return found

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
        """Fold ``other``'s customer into ``keep``'s; both identities then name one customer."""
        keep_id = await self.resolve(keep)
        other_id = await self.resolve(other)
        if keep_id == other_id:
            return keep_id
        async with self.uow.write() as tx:
            moved = await tx.conn.execute(
                update(identities)
                .where(identities.c.customer_id == other_id)
                .values(customer_id=keep_id)
            )
            if moved.rowcount == 0:
                raise InvalidInput("customer", f"{other} is not known")
            await tx.conn.execute(
                update(customers).where(customers.c.id == other_id).values(merged_into=keep_id)
            )
            await tx.conn.execute(
                update(customers)
                .where(customers.c.merged_into == other_id)
                .values(merged_into=keep_id)
            )
        return keep_id

    async def get(self, customer_id: int) -> Customer:
        async with self.uow.read() as conn:
            row = (
                await conn.execute(select(customers).where(customers.c.id == customer_id))
            ).first()
            if row is None:
                raise InvalidInput("customer", f"customer {customer_id} does not exist")
            names = (
                await conn.execute(
                    select(identities.c.identity)
                    .where(identities.c.customer_id == customer_id)
                    .order_by(identities.c.identity)
                )
            ).scalars()
            return Customer(customer_id, tuple(names), row.display_name)
