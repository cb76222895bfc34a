"""Real processes: a SIGKILL in the middle of a fan-out loses and doubles nothing; on
PostgreSQL a second process takes over from a dead scheduler leader."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from commerce.core import Commerce
from commerce.dropfile import validate_spec
from commerce.storage.database import Database
from commerce.storage.tables import notifications
from tests.e2e.processes import Inbox, free_port, kill, start_dropcast
from tests.helpers import capsule_spec

SUBSCRIBERS = 200
FAST = {
    "DROPCAST_SCHEDULER__REMINDER_OFFSETS": "[900]",  # already due: opens in 10 min
    "DROPCAST_SCHEDULER__LEASE_SECONDS": "2",
    "DROPCAST_SCHEDULER__SWEEP_INTERVAL_SECONDS": "0.5",
    "DROPCAST_SCHEDULER__LEADER_POLL_SECONDS": "0.5",
    "DROPCAST_SCHEDULER__DISPATCH_CONCURRENCY": "5",
}

pytestmark = pytest.mark.timeout(120)


async def prepare(database_url: str, inbox: Inbox) -> int:
    db = Database(database_url)
    try:
        commerce = Commerce.build(db)
        drop_id = await commerce.drops.create(validate_spec(capsule_spec(5, opens_at="+10m")))
        for i in range(SUBSCRIBERS):
            customer = await commerce.customers.resolve(f"web:fan{i}@example.com")
            await commerce.subscriptions.subscribe(
                customer, "creator", webhook=inbox.url(f"fan{i}")
            )
        return drop_id
    finally:
        await db.dispose()


async def sent_rows(database_url: str) -> dict[str, int]:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            rows = await conn.execute(
                select(notifications.c.status, func.count()).group_by(notifications.c.status)
            )
            return {status: int(n) for status, n in rows}
    finally:
        await db.dispose()


def assert_exactly_once(inbox: Inbox) -> None:
    per_recipient = inbox.unique_per_recipient()
    assert len(per_recipient) == SUBSCRIBERS, "someone got no reminder"
    assert all(len(keys) == 1 for keys in per_recipient.values()), "someone got two reminders"
    # Raw repeats can only be the few in flight at the kill, resent with the same key.
    assert len(inbox.deliveries) - SUBSCRIBERS <= 10


async def test_sigkill_mid_fan_out_then_restart_sends_every_reminder_exactly_once(
    database_url, tmp_path
):
    inbox = Inbox(delay=0.02)
    await inbox.start()
    processes = []
    try:
        await prepare(database_url, inbox)
        first = await start_dropcast(database_url, free_port(), tmp_path / "first.log", **FAST)
        processes.append(first)
        assert await inbox.wait_until(lambda: len(inbox.deliveries) >= 40, 45), (
            tmp_path / "first.log"
        ).read_text()[-3000:]
        kill(first)
        await first.wait()
        got_before_restart = len(inbox.unique_per_recipient())
        assert got_before_restart < SUBSCRIBERS, "the fan-out finished before the kill"

        second = await start_dropcast(database_url, free_port(), tmp_path / "second.log", **FAST)
        processes.append(second)
        done = await inbox.wait_until(lambda: len(inbox.unique_per_recipient()) >= SUBSCRIBERS, 60)
        assert done, (tmp_path / "second.log").read_text()[-3000:]
        await asyncio.sleep(3)  # a lapsed lease would resend now: give it the chance
        assert_exactly_once(inbox)
        assert (await sent_rows(database_url)).get("sent") == SUBSCRIBERS
    finally:
        for process in processes:
            kill(process)
            await process.wait()
        await inbox.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_follower_takes_over_when_the_leader_dies(database_url, tmp_path):
    inbox = Inbox(delay=0.02)
    await inbox.start()
    processes = []
    try:
        await prepare(database_url, inbox)
        leader = await start_dropcast(database_url, free_port(), tmp_path / "a.log", **FAST)
        processes.append(leader)
        assert await inbox.wait_until(lambda: len(inbox.deliveries) >= 20, 45)
        follower = await start_dropcast(database_url, free_port(), tmp_path / "b.log", **FAST)
        processes.append(follower)
        await asyncio.sleep(1.5)  # the follower is up and campaigning
        kill(leader)
        await leader.wait()
        assert len(inbox.unique_per_recipient()) < SUBSCRIBERS
        done = await inbox.wait_until(lambda: len(inbox.unique_per_recipient()) >= SUBSCRIBERS, 60)
        assert done, (tmp_path / "b.log").read_text()[-3000:]
        await asyncio.sleep(3)
        assert_exactly_once(inbox)
        assert "scheduler leader" in (tmp_path / "b.log").read_text()
    finally:
        for process in processes:
            kill(process)
            await process.wait()
        await inbox.stop()
