"""Subscriptions, fan-out and delivery: never lost, never doubled, nobody messaged after
unsubscribing, no retry storm for closed DMs."""

from __future__ import annotations

from collections.abc import Set
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.messages import Message
from bot.presenter.retention import RetentionRenderer
from commerce.domain.errors import InvalidInput
from commerce.dropfile import validate_spec
from commerce.services.notifications import Delivery, DeliveryStatus
from commerce.storage.tables import notifications
from scheduler.outbox import Dispatcher, in_quiet_hours
from tests.helpers import capsule_spec, links


class FakeSender:
    def __init__(self, *, closed: Set[str] = frozenset(), flaky: int = 0) -> None:
        self.sent: list[tuple[str, Message, str]] = []
        self.closed = closed
        self.flaky = flaky
        self.calls = 0

    async def send(self, address: str, message: Message, key: str) -> Delivery:
        self.calls += 1
        if self.flaky:
            self.flaky -= 1
            return Delivery(DeliveryStatus.RETRY, error="HTTP 503")
        if address in self.closed:
            return Delivery(DeliveryStatus.UNREACHABLE, error="50007 Cannot send messages")
        self.sent.append((address, message, key))
        return Delivery(DeliveryStatus.SENT)


def renderer(commerce):
    return RetentionRenderer(
        commerce,
        links(lambda d, who, tag: f"https://x.test/c/{d}/{who}?tag={tag}"),
        lambda c: f"https://x.test/u/{c}",
        "https://x.test",
    )


async def scheduled_drop(commerce, minutes=10):
    return await commerce.drops.create(validate_spec(capsule_spec(5, opens_at=f"+{minutes}m")))


async def subscribers(commerce, count, scope="creator", target="*", prefix="local:fan"):
    ids = []
    for i in range(count):
        customer = await commerce.customers.resolve(f"{prefix}{i}")
        await commerce.subscriptions.subscribe(customer, scope, target)
        ids.append(customer)
    return ids


async def statuses(commerce):
    async with commerce.db.read() as conn:
        rows = await conn.execute(select(notifications.c.address, notifications.c.status))
        return dict(rows.all())


async def test_fan_out_is_idempotent_and_reaches_creator_and_drop_subscribers(commerce):
    drop_id = await scheduled_drop(commerce)
    other = await scheduled_drop(commerce)
    await subscribers(commerce, 3)
    await subscribers(commerce, 2, scope="drop", target=str(drop_id), prefix="local:one")
    await subscribers(commerce, 2, scope="drop", target=str(other), prefix="local:two")
    assert await commerce.notifications.fan_out(drop_id, "reminder:300") == 5
    assert await commerce.notifications.fan_out(drop_id, "reminder:300") == 0  # a rerun
    assert await commerce.notifications.fan_out(drop_id, "reminder:60") == 5  # another moment


async def test_dispatch_sends_each_once_with_a_tagged_personal_link(commerce):
    drop_id = await scheduled_drop(commerce)
    await subscribers(commerce, 4)
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    sender = FakeSender()
    dispatcher = Dispatcher(commerce, renderer(commerce), {"local": sender})
    assert await dispatcher.run_once() == 4
    assert await dispatcher.run_once() == 0
    assert len(sender.sent) == 4
    address, message, key = sender.sent[0]
    assert message.personal_link == f"https://x.test/c/{drop_id}/{address}?tag=reminder:300"
    assert "unsubscribe" in message.text.lower() and key.startswith("reminder:300:")
    assert set((await statuses(commerce)).values()) == {"sent"}


async def test_closed_dms_are_recorded_and_never_retried(commerce):
    drop_id = await scheduled_drop(commerce)
    await subscribers(commerce, 3)
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    sender = FakeSender(closed={"local:fan1"})
    dispatcher = Dispatcher(commerce, renderer(commerce), {"local": sender})
    await dispatcher.run_once()
    await dispatcher.run_once()
    assert sender.calls == 3
    assert (await statuses(commerce))["local:fan1"] == "unreachable"


async def test_nobody_is_messaged_after_unsubscribing(commerce):
    drop_id = await scheduled_drop(commerce)
    fans = await subscribers(commerce, 3)
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    assert await commerce.subscriptions.unsubscribe(fans[0]) == 1
    sender = FakeSender()
    await Dispatcher(commerce, renderer(commerce), {"local": sender}).run_once()
    assert sorted(a for a, _, _ in sender.sent) == ["local:fan1", "local:fan2"]
    assert (await statuses(commerce))["local:fan0"] == "unsubscribed"
    # and a later moment does not even queue them
    assert await commerce.notifications.fan_out(drop_id, "live") == 2


async def test_transient_failures_back_off_then_give_up(commerce, clock):
    drop_id = await scheduled_drop(commerce)
    await subscribers(commerce, 1)
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    sender = FakeSender(flaky=10)
    dispatcher = Dispatcher(
        commerce, renderer(commerce), {"local": sender}, max_attempts=3, backoff_seconds=5
    )
    assert await dispatcher.run_once() == 1
    assert await dispatcher.run_once() == 0  # backing off: not due yet
    for _ in range(3):
        clock.advance(60)
        await dispatcher.run_once()
    assert sender.calls == 3
    assert (await statuses(commerce))["local:fan0"] == "failed"


async def test_reminders_for_a_drop_that_is_over_are_skipped(commerce):
    drop_id = await scheduled_drop(commerce)
    await subscribers(commerce, 2)
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    await commerce.drops.open(drop_id)
    await commerce.drops.close(drop_id)
    sender = FakeSender()
    await Dispatcher(commerce, renderer(commerce), {"local": sender}).run_once()
    assert sender.sent == []
    assert set((await statuses(commerce)).values()) == {"skipped"}


async def test_a_late_reminder_for_a_live_drop_says_it_is_late(commerce, clock):
    drop_id = await scheduled_drop(commerce)
    await subscribers(commerce, 1)
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    clock.advance(15 * 60)
    await commerce.drops.open(drop_id)
    sender = FakeSender()
    await Dispatcher(commerce, renderer(commerce), {"local": sender}).run_once()
    ((_, message, _),) = sender.sent
    assert "live now" in message.text and "late" in message.text


async def test_quiet_hours_hold_a_reminder_until_they_end(commerce, clock):
    clock.set(datetime(2026, 3, 10, 23, 30, tzinfo=UTC))
    drop_id = await scheduled_drop(commerce, minutes=600)
    customer = await commerce.customers.resolve("local:sleepy")
    await commerce.subscriptions.subscribe(customer, "creator", quiet_hours=(22, 7))
    await commerce.notifications.fan_out(drop_id, "reminder:300")
    sender = FakeSender()
    dispatcher = Dispatcher(commerce, renderer(commerce), {"local": sender})
    await dispatcher.run_once()
    assert sender.sent == []
    clock.set(datetime(2026, 3, 11, 7, 0, 1, tzinfo=UTC))
    await dispatcher.run_once()
    assert len(sender.sent) == 1


def test_quiet_hours_end_at_the_intended_local_time_across_a_dst_change():
    # Berlin moves to summer time on 2026-03-29 at 02:00. Quiet 22:00-08:00 local.
    before = datetime(2026, 3, 28, 22, 30, tzinfo=UTC)  # 23:30 CET
    wake = in_quiet_hours(before, "Europe/Berlin", 22, 8)
    assert wake == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)  # 08:00 CEST, not 07:00 UTC
    assert in_quiet_hours(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), "Europe/Berlin", 22, 8) is None


async def test_twitch_only_viewers_need_discord_or_a_whisper_opt_in(commerce):
    customer = await commerce.customers.resolve("twitch:42")
    with pytest.raises(InvalidInput, match="Discord"):
        await commerce.subscriptions.subscribe(customer, "creator")
    sub = await commerce.subscriptions.subscribe(customer, "creator", opt_in=True)
    assert (sub.channel, sub.address) == ("twitch", "twitch:42")
    await commerce.customers.link("twitch:42", "discord:7")
    sub = await commerce.subscriptions.subscribe(customer, "creator")
    assert (sub.channel, sub.address) == ("discord", "discord:7")


async def test_replay_reaches_subscribers_and_non_buyers_who_claimed(commerce):
    from tests.helpers import live_drop

    drop_id = await live_drop(commerce, capsule_spec(1))
    buyer = await commerce.customers.resolve("local:buyer")
    missed = await commerce.customers.resolve("local:missed")
    held = await commerce.claims.claim(drop_id, buyer)
    order = await commerce.orders.checkout(held.hold.id, buyer, "test")
    await commerce.orders.confirm_payment(order.id, "pi_1")
    await commerce.claims.claim(drop_id, missed)
    await subscribers(commerce, 1)
    await commerce.drops.set_replay(drop_id, "https://clips.example/replay")
    assert await commerce.notifications.fan_out(drop_id, "replay") == 2
    sender = FakeSender()
    await Dispatcher(commerce, renderer(commerce), {"local": sender}).run_once()
    replays = [(a, m) for a, m, _ in sender.sent if m.kind == "replay"]
    assert sorted(a for a, _ in replays) == ["local:fan0", "local:missed"]
    assert "https://clips.example/replay" in replays[0][1].text
    # The buyer heard only of their purchase: its receipt, not the replay.
    assert [m.kind for a, m, _ in sender.sent if a == "local:buyer"] == ["receipt"]


async def test_restock_alerts_go_to_sku_subscribers(commerce):
    from tests.helpers import live_drop

    drop_id = await live_drop(commerce, capsule_spec(1))
    await subscribers(commerce, 2, scope="sku", target="CHIPS-SPICY")
    await subscribers(commerce, 1, scope="sku", target="OTHER", prefix="local:other")
    await commerce.drops.restock(drop_id, "CHIPS-SPICY", 2)
    assert (
        await commerce.notifications.fan_out(drop_id, "restock:CHIPS-SPICY:3", sku="CHIPS-SPICY")
        == 2
    )
    sender = FakeSender()
    await Dispatcher(commerce, renderer(commerce), {"local": sender}).run_once()
    assert len(sender.sent) == 2 and "restocked" in sender.sent[0][1].text


def test_in_quiet_hours_same_day_window():
    noon = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert in_quiet_hours(noon, "UTC", 12, 14) == noon + timedelta(hours=2)
    assert in_quiet_hours(noon, "UTC", 13, 14) is None
