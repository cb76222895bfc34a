"""The replay after close: ``scheduler.replay_after_minutes`` after a drop closes, when its
products are on sale again later, subscribers and non-buyers get the best clip with the
drop page; rebuilt from the tables after a restart, never sent twice, never sent empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from commerce.domain.model import ClipReason
from commerce.dropfile import validate_spec
from commerce.links import drop_page_url
from commerce.storage.tables import notifications
from config.settings import SchedulerSettings
from scheduler.outbox import Dispatcher
from scheduler.runner import SchedulerRole
from tests.helpers import capsule_spec, eventually, live_drop
from tests.scheduler.test_retention import FakeSender, renderer, subscribers

AFTER = 10  # minutes


@pytest.fixture
async def role(commerce, clock) -> AsyncIterator[SchedulerRole]:
    # Scheduler jobs run on real time: the commerce clock starts at real now, so a replay
    # due in ten minutes is not run by APScheduler while the test looks at it.
    clock.set(datetime.now(UTC))
    role = SchedulerRole(commerce, SchedulerSettings(replay_after_minutes=AFTER))
    await role._elected()
    try:
        yield role
    finally:
        await role._deposed()


async def closed_with_a_clip(commerce, *, clip: bool = True) -> int:
    """A drop that sold out (a buyer) with a non-buyer who claimed too late, and its
    sell-out clip ready."""
    drop_id = await live_drop(commerce, capsule_spec(1))
    buyer = await commerce.customers.resolve("local:buyer")
    held = await commerce.claims.claim(drop_id, buyer)
    if clip:
        await commerce.clips.started(drop_id, "twitch", f"Sold-{drop_id}", ClipReason.SOLD_OUT)
        await commerce.clips.ready("twitch", f"Sold-{drop_id}", f"https://clips.test/{drop_id}")
    late = await commerce.customers.resolve("local:late")
    await commerce.claims.claim(drop_id, late)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")
    assert (await commerce.drops.get(drop_id)).closed_at is not None
    return drop_id


async def restock_planned(commerce) -> int:
    """The same SKU goes on sale again tomorrow."""
    return await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+1d")))


async def replays_queued(commerce, drop_id) -> int:
    async with commerce.db.read() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count()).where(
                        notifications.c.drop_id == drop_id, notifications.c.kind == "replay"
                    )
                )
            ).scalar_one()
        )


def replay_job(role, drop_id):
    assert role.scheduler is not None
    return role.scheduler.get_job(f"replay:{drop_id}")


async def test_the_replay_is_scheduled_after_close_and_links_the_clip_and_the_page(commerce, role):
    await restock_planned(commerce)
    await subscribers(commerce, 2)
    drop_id = await closed_with_a_clip(commerce)
    job = await eventually(lambda: replay_job(role, drop_id), what="the replay job")
    closed_at = (await commerce.drops.get(drop_id)).closed_at
    assert job.trigger.run_date == closed_at + timedelta(minutes=AFTER)
    assert await job.func(*job.args) == 3  # two subscribers and the late non-buyer
    assert await job.func(*job.args) == 0  # never twice
    sender = FakeSender()
    await Dispatcher(commerce, renderer(commerce), {"local": sender}).run_once()
    replays = {a: m for a, m, _ in sender.sent if m.kind == "replay"}
    assert sorted(replays) == ["local:fan0", "local:fan1", "local:late"]
    text = replays["local:late"].text
    assert f"https://clips.test/{drop_id}" in text and "sell-out" in text
    assert drop_page_url("https://x.test", drop_id) in text


async def test_no_replay_after_close_without_a_planned_restock(commerce, role):
    await subscribers(commerce, 2)
    drop_id = await closed_with_a_clip(commerce)
    job = await eventually(lambda: replay_job(role, drop_id), what="the replay job")
    assert await job.func(*job.args) == 0
    assert await replays_queued(commerce, drop_id) == 0
    # Planned later, before the job ran: the replay goes out.
    await restock_planned(commerce)
    assert await job.func(*job.args) == 3


async def test_with_nothing_to_show_nobody_is_queued_and_a_later_replay_reaches_them(
    commerce, role
):
    await restock_planned(commerce)
    await subscribers(commerce, 1)
    drop_id = await closed_with_a_clip(commerce, clip=False)
    assert await role.replay_after_close(drop_id) == 0
    assert await replays_queued(commerce, drop_id) == 0
    await commerce.drops.set_replay(drop_id, "https://vods.test/1")  # `drop replay ID URL`
    await eventually(lambda: replays_queued(commerce, drop_id), what="the replay queued")
    assert await replays_queued(commerce, drop_id) == 2  # the subscriber, the non-buyer
    assert await role.replay_after_close(drop_id) == 0


async def test_a_drop_live_again_after_a_restock_gets_no_replay(commerce, role):
    await restock_planned(commerce)
    await subscribers(commerce, 1)
    drop_id = await closed_with_a_clip(commerce)
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 2)  # reopens the sold-out drop
    assert await role.replay_after_close(drop_id) == 0


async def test_off_when_replay_after_minutes_is_zero(commerce, clock):
    clock.set(datetime.now(UTC))
    role = SchedulerRole(commerce, SchedulerSettings(replay_after_minutes=0))
    await role._elected()
    try:
        await restock_planned(commerce)
        drop_id = await closed_with_a_clip(commerce)
        await role.reconcile()
        assert replay_job(role, drop_id) is None
    finally:
        await role._deposed()


async def test_a_restarted_leader_sends_missed_replays_and_schedules_the_rest(commerce, clock):
    clock.set(datetime.now(UTC))
    await restock_planned(commerce)
    await subscribers(commerce, 1)
    missed = await closed_with_a_clip(commerce)  # closed while no leader ran
    clock.advance((AFTER + 1) * 60)
    ahead = await closed_with_a_clip(commerce)
    role = SchedulerRole(commerce, SchedulerSettings(replay_after_minutes=AFTER))
    await role._elected()  # reconciles
    try:
        assert await replays_queued(commerce, missed) == 2  # the subscriber, the non-buyer
        assert replay_job(role, missed) is None
        assert await replays_queued(commerce, ahead) == 0
        closed_at = (await commerce.drops.get(ahead)).closed_at
        assert replay_job(role, ahead).trigger.run_date == closed_at + timedelta(minutes=AFTER)
    finally:
        await role._deposed()
