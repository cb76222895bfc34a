"""Recurring capsule drops (micro-subscriptions): a drop spec plus a schedule.

The core stores templates and turns one occurrence into one drop — idempotently, keyed by
(template, occurrence) — while the scheduler works out when occurrences fall (cron in the
creator's time zone; see scheduler/recurring.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from commerce.domain.errors import InvalidInput
from commerce.dropfile import validate_spec
from commerce.services.drops import DropService
from commerce.storage.tables import drop_templates, template_runs
from commerce.storage.unit_of_work import Tx, UnitOfWork


@dataclass(frozen=True, slots=True)
class DropTemplate:
    id: int
    name: str
    spec: dict[str, Any]
    cron: str
    timezone: str
    lead: timedelta
    active: bool


class TemplateService:
    def __init__(self, uow: UnitOfWork, drops: DropService) -> None:
        self.uow = uow
        self.drops = drops
        self._insert = uow.db.insert
        self._lock = asyncio.Lock()

    async def add(
        self, name: str, spec: dict[str, Any], cron: str, timezone: str, lead: timedelta
    ) -> DropTemplate:
        """Store a template; its spec must be a valid drop without fixed times."""
        validate_spec(spec)
        if spec.get("drop", {}).get("opens_at") or spec.get("drop", {}).get("closes_at"):
            raise InvalidInput("drop.opens_at", "a recurring drop gets its times from the schedule")
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("timezone", f"unknown time zone {timezone!r}") from None
        if len(cron.split()) != 5:
            raise InvalidInput("cron", "needs five fields: minute hour day month weekday")
        if not timedelta(minutes=1) <= lead <= timedelta(days=14):
            raise InvalidInput("lead", "must be between 1 minute and 14 days")
        async with self.uow.write() as tx:
            template_id = (
                await tx.conn.execute(
                    drop_templates.insert()
                    .values(
                        name=name,
                        spec=spec,
                        cron=cron,
                        timezone=timezone,
                        lead_seconds=int(lead.total_seconds()),
                        active=1,
                        created_at=tx.now,
                    )
                    .returning(drop_templates.c.id)
                )
            ).scalar_one()
        return DropTemplate(template_id, name, spec, cron, timezone, lead, True)

    async def active(self) -> list[DropTemplate]:
        async with self.uow.read() as conn:
            rows = await conn.execute(select(drop_templates).where(drop_templates.c.active == 1))
            return [
                DropTemplate(
                    r.id,
                    r.name,
                    r.spec,
                    r.cron,
                    r.timezone,
                    timedelta(seconds=r.lead_seconds),
                    bool(r.active),
                )
                for r in rows
            ]

    async def materialize(self, template: DropTemplate, occurrence: datetime) -> int | None:
        """Create the drop for one occurrence, once; returns its id (None if it existed).

        The occurrence is claimed in the drop's own transaction: the ``template_runs`` row
        (primary key: template, occurrence) goes in before the commit, so of two racing
        materializations (two jobs in one process, or two processes) the loser's insert
        conflicts and its whole transaction rolls back: no second drop, no announcement.
        The lock only spares this process the doomed attempt.
        """
        async with self._lock:
            async with self.uow.read() as conn:
                existing = (
                    await conn.execute(
                        select(template_runs.c.drop_id).where(
                            template_runs.c.template_id == template.id,
                            template_runs.c.occurrence == occurrence,
                        )
                    )
                ).scalar()
            if existing is not None:
                return None
            spec = {**template.spec, "drop": {**template.spec["drop"], "opens_at": occurrence}}

            async def claim(tx: Tx, drop_id: int) -> None:
                claimed = await tx.conn.execute(
                    self._insert(template_runs)
                    .values(template_id=template.id, occurrence=occurrence, drop_id=drop_id)
                    .on_conflict_do_nothing(index_elements=["template_id", "occurrence"])
                )
                if claimed.rowcount == 0:
                    raise _OccurrenceTaken

            try:
                return await self.drops.create(validate_spec(spec), then=claim)
            except _OccurrenceTaken:  # another process created it first
                return None


class _OccurrenceTaken(Exception):
    """Rolls back a drop whose occurrence another materialization claimed first."""
