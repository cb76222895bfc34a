"""The leader erases shipping addresses past `privacy.address_retention_days`: a daily job
that also runs soon after election, on both engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commerce.domain.model import Address, Money
from config.settings import PrivacySettings, SchedulerSettings
from scheduler.runner import RETENTION_HOURS, SchedulerRole
from tests.helpers import capsule_spec, live_drop

HOME = Address("Ann Lee", "1 Main St", "Springfield", "12345", "US")


async def shipped_order(commerce, drop_id, identity):
    customer = await commerce.customers.resolve(identity)
    held = await commerce.claims.claim(drop_id, customer)
    order = await commerce.orders.checkout(
        held.hold.id, customer, "test", ship_to=HOME, shipping=Money(500, "USD")
    )
    await commerce.orders.confirm_payment(order.id, f"pi_{order.id}")
    shipped, _ = await commerce.orders.ship(order.id, "UPS", f"1Z{order.id}")
    return shipped


async def test_the_leader_runs_the_retention_job_with_the_configured_days(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(5))
    old = await shipped_order(commerce, drop_id, "discord:1")
    clock.advance(6 * 86400)
    recent = await shipped_order(commerce, drop_id, "discord:2")
    clock.advance(2 * 86400)  # old: shipped 8 days ago, recent: 2 days ago
    role = SchedulerRole(
        commerce,
        SchedulerSettings(),
        privacy=PrivacySettings(address_retention_days=7),
    )
    await role._elected()
    try:
        assert role.scheduler is not None
        job = role.scheduler.get_job("address_retention")
        assert job is not None
        assert job.trigger.interval == timedelta(hours=RETENTION_HOURS)
        assert job.next_run_time - datetime.now(UTC) < timedelta(minutes=1)  # soon, not in a day
        assert job.args == (commerce, 7)

        assert await job.func(*job.args) == 1
        assert await job.func(*job.args) == 0
    finally:
        await role._deposed()
    assert (await commerce.orders.get(old.id)).ship_to is None
    assert (await commerce.orders.get(recent.id)).ship_to == HOME


async def test_retention_defaults_to_180_days(commerce):
    role = SchedulerRole(commerce, SchedulerSettings())
    await role._elected()
    try:
        assert role.scheduler is not None
        assert role.scheduler.get_job("address_retention").args == (commerce, 180)
    finally:
        await role._deposed()
