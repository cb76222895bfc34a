"""Recurring capsule drops: one drop per occurrence, at the local time across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commerce.domain.errors import InvalidInput
from scheduler.recurring import materialize_due, next_occurrence
from tests.helpers import capsule_spec


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
