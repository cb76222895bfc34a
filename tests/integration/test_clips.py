"""Clips kept with a drop (neutral data, both engines), the best one for the replay, and
whether a restock of a closed drop is planned."""

from __future__ import annotations

from datetime import timedelta

import pytest

from commerce.domain.errors import InvalidInput
from commerce.domain.model import ClipReason, ClipStatus
from commerce.dropfile import validate_spec
from tests.helpers import capsule_spec, live_drop


async def test_a_clip_is_pending_until_the_platform_serves_it(commerce, clock):
    drop_id = await live_drop(commerce, capsule_spec(3))
    pending = await commerce.clips.started(drop_id, "twitch", "Clip-1", ClipReason.OPENED)
    assert (pending.status, pending.url, pending.ready_at) == (ClipStatus.PENDING, None, None)
    again = await commerce.clips.started(drop_id, "twitch", "Clip-1", ClipReason.OPENED)
    assert again.id == pending.id  # the same platform clip is kept once
    clock.advance(5)
    ready = await commerce.clips.ready(
        "twitch", "Clip-1", "https://clips.twitch.tv/Clip-1", "https://img.test/1.jpg"
    )
    assert ready is not None
    assert (ready.status, ready.url, ready.thumbnail_url) == (
        ClipStatus.READY,
        "https://clips.twitch.tv/Clip-1",
        "https://img.test/1.jpg",
    )
    assert ready.ready_at == clock.now()
    # A late "failed" never undoes a ready clip.
    assert (await commerce.clips.failed("twitch", "Clip-1")).status is ClipStatus.READY
    assert await commerce.clips.ready("twitch", "unknown", "https://x.test/u") is None


async def test_bad_clip_data_is_refused_and_changes_nothing(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    with pytest.raises(InvalidInput, match="clip_id"):
        await commerce.clips.started(drop_id, "twitch", "", ClipReason.OPENED)
    await commerce.clips.started(drop_id, "twitch", "C", ClipReason.OPENED)
    with pytest.raises(InvalidInput, match="url"):
        await commerce.clips.ready("twitch", "C", "javascript:alert(1)")
    assert [c.status for c in await commerce.clips.for_drop(drop_id)] == [ClipStatus.PENDING]


async def test_the_best_clip_is_the_ready_sell_out_then_the_opening_then_a_command(commerce):
    drop_id = await live_drop(commerce, capsule_spec(3))
    other = await live_drop(commerce, capsule_spec(3))
    assert await commerce.clips.best(drop_id) is None
    for clip_id, reason in [
        ("cmd", ClipReason.COMMAND),
        ("open", ClipReason.OPENED),
        ("sold", ClipReason.SOLD_OUT),
    ]:
        await commerce.clips.started(drop_id, "twitch", clip_id, reason)
    await commerce.clips.started(other, "twitch", "elsewhere", ClipReason.SOLD_OUT)
    await commerce.clips.ready("twitch", "elsewhere", "https://clips.test/elsewhere")
    assert await commerce.clips.best(drop_id) is None  # none of its own is ready
    await commerce.clips.ready("twitch", "cmd", "https://clips.test/cmd")
    assert (await commerce.clips.best(drop_id)).clip_id == "cmd"
    await commerce.clips.ready("twitch", "open", "https://clips.test/open")
    assert (await commerce.clips.best(drop_id)).clip_id == "open"
    await commerce.clips.failed("twitch", "sold")
    assert (await commerce.clips.best(drop_id)).clip_id == "open"  # a failed one never
    await commerce.clips.started(drop_id, "twitch", "sold-2", ClipReason.SOLD_OUT)
    await commerce.clips.ready("twitch", "sold-2", "https://clips.test/sold-2")
    assert (await commerce.clips.best(drop_id)).clip_id == "sold-2"
    by_drop = await commerce.clips.for_drops([drop_id, other])
    assert [c.clip_id for c in by_drop[drop_id]] == ["cmd", "open", "sold", "sold-2"]
    assert [c.clip_id for c in by_drop[other]] == ["elsewhere"]


async def test_a_restock_is_planned_when_a_later_drop_sells_the_same_sku(commerce):
    drop_id = await live_drop(commerce, capsule_spec(1))
    await commerce.drops.close(drop_id)
    assert not await commerce.clips.restock_planned(drop_id)
    other_sku = capsule_spec(2, opens_at="+1d")
    other_sku["products"][0]["sku"] = other_sku["items"][0]["sku"] = "SALSA"
    await commerce.drops.create(validate_spec(other_sku))
    assert not await commerce.clips.restock_planned(drop_id)
    draft = await commerce.drops.create(validate_spec(capsule_spec(2)))  # no time: no plan
    assert not await commerce.clips.restock_planned(drop_id)
    await commerce.drops.create(validate_spec(capsule_spec(2, opens_at="+1d")))
    assert await commerce.clips.restock_planned(drop_id)
    assert draft


async def test_a_restock_is_planned_for_a_drop_of_an_active_recurring_template(commerce, clock):
    spec = capsule_spec(2)
    template = await commerce.templates.add(
        "weekly", spec, "0 18 * * fri", "Europe/Berlin", timedelta(days=1)
    )
    drop_id = await commerce.templates.materialize(template, clock.now() + timedelta(hours=2))
    assert drop_id is not None
    await commerce.drops.open(drop_id)
    await commerce.drops.close(drop_id)
    assert await commerce.clips.restock_planned(drop_id)


async def test_closed_between_lists_drops_closed_in_the_window(commerce, clock):
    first = await live_drop(commerce, capsule_spec(1))
    second = await live_drop(commerce, capsule_spec(1))
    start = clock.now()
    await commerce.drops.close(first)
    clock.advance(60)
    await commerce.drops.close(second)
    found = await commerce.clips.closed_between(start, start + timedelta(seconds=30))
    assert found == [(first, start)]
    everything = await commerce.clips.closed_between(start, clock.now())
    assert [d for d, _ in everything] == [first, second]
