"""Real processes: a SIGKILL in the middle of a fan-out loses and doubles nothing; on
PostgreSQL a second process takes over from a dead scheduler leader."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from commerce.core import Commerce
from commerce.dropfile import validate_spec
from commerce.storage.database import Database
from commerce.storage.tables import notifications
from tests.e2e.processes import Inbox, free_port, kill, start_dropcast
from tests.e2e.test_demo import wait_healthy
from tests.helpers import capsule_spec, eventually

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


async def settled(database_url: str) -> bool:
    """No reminder is waiting or being sent: none can be (re)sent any more. (A lapsed
    lease would resend a row still "sending"; a sent row is final.)"""
    rows = await sent_rows(database_url)
    return not rows.get("pending") and not rows.get("sending")


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
        inbox.hold()  # mid fan-out: it cannot finish before the kill
        kill(first)
        await first.wait()
        got_before_restart = len(inbox.unique_per_recipient())
        assert got_before_restart < SUBSCRIBERS, "the fan-out finished before the kill"
        inbox.release()

        second = await start_dropcast(database_url, free_port(), tmp_path / "second.log", **FAST)
        processes.append(second)
        done = await inbox.wait_until(lambda: len(inbox.unique_per_recipient()) >= SUBSCRIBERS, 60)
        assert done, (tmp_path / "second.log").read_text()[-3000:]
        # Leases the killed process held lapse, and their rows are sent again: wait until
        # every row is final, so that any resend has happened before we count.
        await eventually(lambda: settled(database_url), timeout=60, interval=0.2)
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
        inbox.hold()  # the leader cannot finish the fan-out before it dies
        port = free_port()
        follower = await start_dropcast(database_url, port, tmp_path / "b.log", **FAST)
        processes.append(follower)
        await wait_healthy(f"http://127.0.0.1:{port}")  # the follower is up and campaigning
        kill(leader)
        await leader.wait()
        assert len(inbox.unique_per_recipient()) < SUBSCRIBERS
        inbox.release()
        done = await inbox.wait_until(lambda: len(inbox.unique_per_recipient()) >= SUBSCRIBERS, 60)
        assert done, (tmp_path / "b.log").read_text()[-3000:]
        await eventually(lambda: settled(database_url), timeout=60, interval=0.2)
        assert_exactly_once(inbox)
        assert "scheduler leader" in (tmp_path / "b.log").read_text()
    finally:
        for process in processes:
            kill(process)
            await process.wait()
        await inbox.stop()
