"""The Tracker writes funnel steps and viewer samples with server time; bad input writes
nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from commerce.analytics.tracking import ActivityKind, Tracker
from commerce.domain.errors import InvalidInput
from commerce.storage.tables import activity
from tests.helpers import capsule_spec, customers, live_drop


async def rows(commerce):
    async with commerce.db.read() as conn:
        result = await conn.execute(
            select(
                activity.c.drop_id,
                activity.c.customer_id,
                activity.c.kind,
                activity.c.at,
                activity.c.detail,
            ).order_by(activity.c.id)
        )
        return [tuple(r) for r in result]


async def test_a_step_is_recorded_with_server_time_and_json_detail(commerce, clock):
    tracker = Tracker(commerce.uow)
    drop_id = await live_drop(commerce, capsule_spec(3))
    (viewer,) = await customers(commerce, 1)
    clock.advance(7)
    await tracker.record(drop_id, ActivityKind.LINK_OPENED, viewer, tag="reminder:5m")
    await tracker.record_viewers(drop_id, 412, "twitch")
    assert await rows(commerce) == [
        (drop_id, viewer, "link_opened", clock.now(), {"tag": "reminder:5m"}),
        (drop_id, None, "viewers", clock.now(), {"count": 412, "platform": "twitch"}),
    ]


async def test_a_step_recorded_in_a_transaction_rolls_back_with_it(commerce):
    tracker = Tracker(commerce.uow)
    drop_id = await live_drop(commerce, capsule_spec(3))
    with pytest.raises(RuntimeError):
        async with commerce.uow.write() as tx:
            await tracker.record_in(tx, drop_id, ActivityKind.WAITLIST_OFFERED)
            raise RuntimeError("the change failed")
    async with commerce.uow.write() as tx:
        await tracker.record_in(tx, drop_id, "custom_step", note="kept, not counted")
    assert [(r[2], r[4]) for r in await rows(commerce)] == [
        ("custom_step", {"note": "kept, not counted"})
    ]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t, d: t.record(d, "Link Opened"), "kind"),
        (lambda t, d: t.record(d, "x" * 33), "kind"),
        (lambda t, d: t.record(d, "link_opened", when=object()), "detail"),
        (lambda t, d: t.record(d, "link_opened", ratio=float("nan")), "detail"),
        (lambda t, d: t.record_viewers(d, -1, "twitch"), "viewers"),
        (lambda t, d: t.record_viewers(d, 2.5, "twitch"), "viewers"),
        (lambda t, d: t.record_viewers(d, 10, "Twitch TV"), "platform"),
        (lambda t, d: t.record(d + 1000, "link_opened"), "activity"),
        (lambda t, d: t.record(d, "link_opened", 424242), "activity"),
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(commerce, call, field):
    tracker = Tracker(commerce.uow)
    drop_id = await live_drop(commerce, capsule_spec(3))
    with pytest.raises(InvalidInput) as caught:
        await call(tracker, drop_id)
    assert caught.value.field == field
    assert await rows(commerce) == []


async def test_following_the_bus_records_restocks(commerce, clock):
    tracker = Tracker(commerce.uow)
    tracker.follow(commerce.bus)
    drop_id = await live_drop(commerce, capsule_spec(3))
    clock.advance(30)
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 2)
    assert await rows(commerce) == [
        (
            drop_id,
            None,
            "restocked",
            clock.now(),
            {"sku": "CHIPS-SPICY", "pool": "ship", "added": 2},
        )
    ]
