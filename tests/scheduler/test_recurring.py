"""Recurring capsule drops: one drop per occurrence, at the local time across DST."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from commerce.core import Commerce
from commerce.domain.errors import InvalidInput
from commerce.domain.events import DropClosed, DropScheduled
from commerce.storage.tables import template_runs
from scheduler.recurring import materialize_due, next_occurrence
from tests.helpers import EventLog, capsule_spec


async def test_weekly_drop_keeps_its_local_time_across_dst(commerce, clock):
    template = await commerce.templates.add(
        "friday-capsule", capsule_spec(6), "0 18 * * fri", "Europe/Berlin", timedelta(days=1)
    )
    # Berlin switches to summer time on Sunday 2026-03-29.
    before = next_occurrence(template, datetime(2026, 3, 23, tzinfo=UTC))
    after = next_occurrence(template, datetime(2026, 3, 30, tzinfo=UTC))
    assert before == datetime(2026, 3, 27, 17, 0, tzinfo=UTC)  # 18:00 CET
    assert after == datetime(2026, 4, 3, 16, 0, tzinfo=UTC)  # 18:00 CEST


async def test_each_occurrence_becomes_one_drop_once_within_the_lead(commerce, clock):
    await commerce.templates.add(
        "friday-capsule", capsule_spec(6), "0 18 * * fri", "Europe/Berlin", timedelta(hours=12)
    )
    clock.set(datetime(2026, 3, 26, 12, 0, tzinfo=UTC))  # Thursday: > 12 h before
    assert await materialize_due(commerce, commerce.templates) == []
    clock.set(datetime(2026, 3, 27, 8, 0, tzinfo=UTC))  # Friday morning: within lead
    (drop_id,) = await materialize_due(commerce, commerce.templates)
    assert await materialize_due(commerce, commerce.templates) == []  # never twice
    drop = await commerce.drops.get(drop_id)
    assert drop.state == "scheduled"
    assert drop.opens_at == datetime(2026, 3, 27, 17, 0, tzinfo=UTC)


async def test_bad_templates_are_refused(commerce):
    with pytest.raises(InvalidInput, match="cron"):
        await commerce.templates.add("x", capsule_spec(), "daily", "UTC", timedelta(hours=1))
    with pytest.raises(InvalidInput, match="time zone"):
        await commerce.templates.add(
            "x", capsule_spec(), "0 18 * * *", "Mars/Base", timedelta(hours=1)
        )
    with pytest.raises(InvalidInput, match="opens_at"):
        await commerce.templates.add(
            "x", capsule_spec(opens_at="+1m"), "0 18 * * *", "UTC", timedelta(hours=1)
        )


async def runs(commerce: Commerce) -> list[tuple[datetime, int]]:
    async with commerce.uow.read() as conn:
        rows = await conn.execute(
            select(template_runs.c.occurrence, template_runs.c.drop_id).order_by("occurrence")
        )
        return [(r.occurrence, r.drop_id) for r in rows]


async def assert_one_drop_per_occurrence(commerce: Commerce, created: list[int], logs) -> None:
    """Every occurrence has one drop, and nothing else exists or was ever announced."""
    drops = await commerce.drops.list()
    assert [d.id for d in drops] == sorted(created)
    assert all(d.state == "scheduled" for d in drops)
    assert sorted(drop_id for _, drop_id in await runs(commerce)) == sorted(created)
    scheduled = [e.drop_id for log in logs for e in log.of(DropScheduled)]
    assert sorted(scheduled) == sorted(created)
    assert not any(log.of(DropClosed) for log in logs)


async def test_materializations_racing_in_one_process_create_one_drop(commerce, clock):
    # `dropcast run` materializes from two jobs (reconcile and recurring) that fire together.
    log = EventLog(commerce)
    await commerce.templates.add(
        "minutely", capsule_spec(6), "* * * * *", "Europe/Berlin", timedelta(seconds=90)
    )
    clock.set(datetime(2026, 3, 27, 8, 0, 30, tzinfo=UTC))
    results = await asyncio.gather(
        *(materialize_due(commerce, commerce.templates) for _ in range(4))
    )
    created = [drop_id for result in results for drop_id in result]
    assert len(created) == 1
    await assert_one_drop_per_occurrence(commerce, created, [log])
    (drop,) = await commerce.drops.list()
    assert drop.opens_at == datetime(2026, 3, 27, 8, 1, tzinfo=UTC)


async def test_schedulers_racing_for_the_same_occurrences_create_one_drop_each(db, clock):
    # Four cores on one database, as four processes would be: only the database decides.
    racers = [Commerce.build(db, clock=clock) for _ in range(4)]
    logs = [EventLog(c) for c in racers]
    template = await racers[0].templates.add(
        "minutely", capsule_spec(6), "* * * * *", "Europe/Berlin", timedelta(seconds=90)
    )
    start = datetime(2026, 3, 27, 8, 1, tzinfo=UTC)
    occurrences = [start + timedelta(minutes=i) for i in range(5)]
    results = await asyncio.gather(
        *(c.templates.materialize(template, when) for when in occurrences for c in racers)
    )
    created = [drop_id for drop_id in results if drop_id is not None]
    assert len(created) == len(occurrences)
    await assert_one_drop_per_occurrence(racers[0], created, logs)
    assert [when for when, _ in await runs(racers[0])] == occurrences
