"""``DropService.current()``, the drop every chat command talks about, is one ordered query:
live (the latest opened), else scheduled (the soonest to open), else the newest. Checked
step by step against the rule written out over the whole list, on both engines."""

from __future__ import annotations

from typing import Any

from commerce.clock import ManualClock
from commerce.core import Commerce
from commerce.domain.model import Drop, DropState
from commerce.dropfile import validate_spec
from tests.helpers import capsule_spec


def by_the_rule(drops: list[Drop]) -> Drop | None:
    live = [d for d in drops if d.state is DropState.LIVE]
    if live:
        return max(live, key=lambda d: (d.opened_at or d.created_at, d.id))
    scheduled = [d for d in drops if d.state is DropState.SCHEDULED and d.opens_at]
    if scheduled:
        return min(scheduled, key=lambda d: (d.opens_at or d.created_at, d.id))
    return drops[-1] if drops else None


async def test_the_current_drop_follows_the_rule_through_a_creators_week(
    commerce: Commerce, clock: ManualClock
) -> None:
    drops = commerce.drops

    async def create(**header: Any) -> int:
        return await drops.create(validate_spec(capsule_spec(**header)))

    async def current_id() -> int | None:
        expected = by_the_rule(await drops.list())
        found = await drops.current()
        assert (found and found.id) == (expected and expected.id)
        return found.id if found else None

    assert await current_id() is None
    draft = await create()
    assert await current_id() == draft
    later = await create(opens_at="+2h")
    soon = await create(opens_at="+1h")
    same_time = await create(opens_at="+1h")
    assert await current_id() == soon  # the soonest; on a tie, the one made first
    await drops.open(later)
    assert await current_id() == later
    clock.advance(60)
    await drops.open(same_time)
    assert await current_id() == same_time  # the latest opened
    await drops.close(same_time)
    assert await current_id() == later
    await drops.close(later)
    assert await current_id() == soon
    await drops.open(soon)
    await drops.close(soon)
    assert await current_id() == same_time  # nothing live or scheduled: the newest
