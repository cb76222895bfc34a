"""Subscriptions: superfans who asked to hear about drops, one drop, or restocks of a SKU.

Delivery goes by the first private channel the customer's identities reach (in the order
the platforms registered them); a channel that needs consent only when the viewer opted in;
a webhook as a configured fallback. Ending a subscription takes effect at once: the
dispatcher checks it again right before sending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.engine import Row

from commerce.domain.errors import InvalidInput
from commerce.domain.identities import SCHEMES
from commerce.domain.model import SubscriptionStatus, validate_sku
from commerce.storage.rows import record
from commerce.storage.tables import identities, subscriptions
from commerce.storage.unit_of_work import UnitOfWork

SCOPES = ("creator", "drop", "sku")


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    customer_id: int
    scope: str
    target: str
    channel: str
    address: str
    timezone: str
    quiet_start: int | None
    quiet_end: int | None
    active: bool


def _row(row: Row[Any]) -> Subscription:
    return record(Subscription, row, active=row._mapping["status"] == SubscriptionStatus.ACTIVE)


class SubscriptionService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._insert = uow.db.insert

    async def subscribe(
        self,
        customer_id: int,
        scope: str,
        target: str = "*",
        *,
        webhook: str | None = None,
        opt_in: bool = False,
        timezone: str = "UTC",
        quiet_hours: tuple[int, int] | None = None,
    ) -> Subscription:
        """Start (or restart) a subscription; asking again updates its settings.
        ``opt_in``: the customer consents to channels that need it."""
        if scope not in SCOPES:
            raise InvalidInput("scope", f"must be one of {', '.join(SCOPES)}")
        if scope == "drop" and not target.isdigit():
            raise InvalidInput("target", "a drop subscription names the drop id")
        if scope == "sku":
            target = validate_sku(target, "target")
        if scope == "creator":
            target = "*"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("timezone", f"unknown time zone {timezone!r}") from None
        if quiet_hours is not None and not all(0 <= h <= 23 for h in quiet_hours):
            raise InvalidInput("quiet_hours", "hours are 0 to 23")
        channel, address = await self._route(customer_id, webhook, opt_in)
        values = {
            "channel": channel,
            "address": address,
            "timezone": timezone,
            "quiet_start": quiet_hours[0] if quiet_hours else None,
            "quiet_end": quiet_hours[1] if quiet_hours else None,
            "status": SubscriptionStatus.ACTIVE,
            "ended_at": None,
        }
        async with self.uow.write() as tx:
            await tx.conn.execute(
                self._insert(subscriptions)
                .values(
                    customer_id=customer_id, scope=scope, target=target, created_at=tx.now, **values
                )
                .on_conflict_do_update(
                    index_elements=["customer_id", "scope", "target"], set_=values
                )
            )
            row = (
                await tx.conn.execute(
                    select(subscriptions).where(
                        subscriptions.c.customer_id == customer_id,
                        subscriptions.c.scope == scope,
                        subscriptions.c.target == target,
                    )
                )
            ).one()
        return _row(row)

    async def unsubscribe(
        self, customer_id: int, scope: str | None = None, target: str | None = None
    ) -> int:
        """End subscriptions (all of them when no scope is given); returns how many ended."""
        conditions = [
            subscriptions.c.customer_id == customer_id,
            subscriptions.c.status == SubscriptionStatus.ACTIVE,
        ]
        if scope is not None:
            conditions.append(subscriptions.c.scope == scope)
        if target is not None:
            conditions.append(subscriptions.c.target == target)
        async with self.uow.write() as tx:
            result = await tx.conn.execute(
                update(subscriptions)
                .where(*conditions)
                .values(status=SubscriptionStatus.ENDED, ended_at=tx.now)
            )
        return int(result.rowcount)

    async def by_ids(self, ids: list[int]) -> dict[int, Subscription]:
        """Several subscriptions at once (the dispatcher re-checks each before sending)."""
        if not ids:
            return {}
        async with self.uow.read() as conn:
            rows = await conn.execute(select(subscriptions).where(subscriptions.c.id.in_(ids)))
            return {r.id: _row(r) for r in rows}

    async def of(self, customer_id: int) -> list[Subscription]:
        async with self.uow.read() as conn:
            rows = await conn.execute(
                select(subscriptions)
                .where(subscriptions.c.customer_id == customer_id)
                .order_by(subscriptions.c.id)
            )
            return [_row(r) for r in rows]

    async def _route(self, customer_id: int, webhook: str | None, opt_in: bool) -> tuple[str, str]:
        """The channel (named after its identity scheme) and address messages go to."""
        if webhook is not None:
            if not webhook.startswith(("https://", "http://")):
                raise InvalidInput("webhook", "must be an http(s) URL")
            return "webhook", webhook
        async with self.uow.read() as conn:
            known = list(
                (
                    await conn.execute(
                        select(identities.c.identity).where(identities.c.customer_id == customer_id)
                    )
                ).scalars()
            )
        address = SCHEMES.reach(known, opted_in=opt_in)
        if address is not None:
            return address.split(":", 1)[0], address
        with_consent = SCHEMES.reach(known, opted_in=True)  # a channel that needs it
        scheme = SCHEMES.scheme_of(with_consent) if with_consent else None
        if scheme is not None and scheme.private is not None:
            instead = f"{scheme.private.instead}, or " if scheme.private.instead else ""
            raise InvalidInput("channel", f"{instead}opt in to {scheme.private.described}")
        raise InvalidInput("channel", "no way to reach this customer privately")
