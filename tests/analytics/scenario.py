"""A hand-built drop with known answers, driven through the real services by a ManualClock.

Times are seconds from ``start`` (the clock's time when the scenario begins), which is when
drop A opens. Every KPI of drop A can be worked out by hand from the timeline below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from commerce.analytics.tracking import ActivityKind, Tracker
from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.model import ClaimOutcome
from commerce.dropfile import validate_spec
from tests.helpers import capsule_spec, customers, live_drop

DAY = 86400


@dataclass
class Scenario:
    start: datetime
    drop_a: int
    later_drops: list[int]
    people: list[int]  # c1..c6 are people[0..5]; c7 is the discord identity linked to c2
    tracker: Tracker


async def buy(commerce: Commerce, hold_id: int, customer_id: int) -> None:
    order = await commerce.orders.checkout(hold_id, customer_id, "test")
    result = await commerce.orders.confirm_payment(order.id, f"pi_{hold_id}")
    assert result.outcome == "paid"


async def claim_and_buy(commerce: Commerce, drop_id: int, customer_id: int) -> None:
    result = await commerce.claims.claim(drop_id, customer_id)
    assert result.outcome is ClaimOutcome.HELD and result.hold is not None
    await buy(commerce, result.hold.id, customer_id)


async def build(commerce: Commerce, clock: ManualClock) -> Scenario:
    start = clock.now()
    tracker = Tracker(commerce.uow)

    def at(seconds: float) -> None:
        clock.set(start + timedelta(seconds=seconds))

    at(-4000)
    spec = capsule_spec(3, hold_seconds=60, objective={"metric": "units_first_10m", "target": 4})
    drop_a = await commerce.drops.create(validate_spec(spec))
    c1, c2, c3, c4, c5, c6 = await customers(commerce, 6)

    at(-3600)
    await tracker.record(drop_a, ActivityKind.REMINDER_SENT, c5, tag="reminder:1h")
    at(-3500)
    await tracker.record(drop_a, ActivityKind.REMINDER_OPENED, c5, tag="reminder:1h")
    at(-300)
    for c in (c1, c2, c4):
        await tracker.record(drop_a, ActivityKind.REMINDER_SENT, c, tag="reminder:5m")
    at(-250)
    await tracker.record(drop_a, ActivityKind.REMINDER_OPENED, c1, tag="reminder:5m")
    at(-240)
    await tracker.record(drop_a, ActivityKind.REMINDER_OPENED, c4, tag="reminder:5m")
    at(-30)
    await tracker.record_viewers(drop_a, 5000, "twitch")  # before opening: not counted

    at(0)
    await commerce.drops.open(drop_a)
    await tracker.record_viewers(drop_a, 100, "twitch")
    at(5)
    await tracker.record(drop_a, ActivityKind.LINK_ISSUED, c1)
    at(6)
    await tracker.record(drop_a, ActivityKind.LINK_OPENED, c1)
    h1 = (await commerce.claims.claim(drop_a, c1, source="link")).hold
    at(10)
    await tracker.record(drop_a, ActivityKind.LINK_ISSUED, c2)
    at(12)
    await tracker.record(drop_a, ActivityKind.LINK_OPENED, c2)
    h2 = (await commerce.claims.claim(drop_a, c2, source="link")).hold
    at(15)
    assert (await commerce.claims.claim(drop_a, c3)).outcome is ClaimOutcome.HELD  # chat
    at(16)
    assert (await commerce.claims.claim(drop_a, c5)).outcome is ClaimOutcome.SOLD_OUT
    await commerce.claims.join_waitlist(drop_a, c5)
    at(17)
    await commerce.claims.join_waitlist(drop_a, c6)
    at(20)
    assert h1 is not None and h2 is not None
    await buy(commerce, h1.id, c1)
    at(30)
    await tracker.record_viewers(drop_a, 300, "twitch")
    await tracker.record_viewers(drop_a, 50, "discord")
    at(40)
    await buy(commerce, h2.id, c2)
    at(45)
    await tracker.record(drop_a, ActivityKind.LINK_ISSUED, c4)
    at(46)
    await tracker.record(drop_a, ActivityKind.LINK_ISSUED, c6)
    at(50)
    await tracker.record(drop_a, ActivityKind.LINK_OPENED, c4)
    at(60)
    await tracker.record_viewers(drop_a, 200, "twitch")
    at(80)  # c3's hold lapsed at 75; the sweeper offers the unit to c5, first in the queue
    assert await commerce.claims.expire_due() == 1
    offer = await commerce.claims.join_waitlist(drop_a, c5)
    assert offer.hold is not None and offer.hold.source == "waitlist"
    at(95)  # the last unit sells: the drop closes, sold out
    await buy(commerce, offer.hold.id, c5)
    at(200)
    await tracker.record_viewers(drop_a, 999, "twitch")  # after the close: not counted

    later = []
    at(3 * DAY)  # c1 comes back within 7 days
    later.append(await live_drop(commerce, capsule_spec(5)))
    await claim_and_buy(commerce, later[-1], c1)
    at(20 * DAY)  # c2, under another identity, comes back within 30 days
    later.append(await live_drop(commerce, capsule_spec(5)))
    c7 = await commerce.customers.resolve("discord:42")
    await claim_and_buy(commerce, later[-1], c7)
    # Linking folds c2 (the drop-A buyer) into c7: one person across both identities.
    await commerce.customers.link("discord:42", "web:buyer1@example.com")
    at(45 * DAY)  # c5 comes back, but too late for the 30-day window
    later.append(await live_drop(commerce, capsule_spec(5)))
    await claim_and_buy(commerce, later[-1], c5)
    at(60 * DAY)
    return Scenario(start, drop_a, later, [c1, c2, c3, c4, c5, c6, c7], tracker)
