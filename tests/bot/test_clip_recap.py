"""The recap shows a drop's clips: those ready at close as a field of the recap, a clip
ready after close (the sell-out's, made as the last unit sold) in a post that follows it;
a clip ready while the drop is open waits for the recap."""

from __future__ import annotations

from commerce.domain.model import ClipReason
from tests.bot.test_hub import make_hub
from tests.helpers import capsule_spec, live_drop


async def test_the_recap_lists_ready_clips_and_a_late_clip_follows_it(commerce):
    hub, outlet = await make_hub(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    clips = commerce.clips
    await clips.started(drop_id, "twitch", "Open-1", ClipReason.OPENED)
    await clips.ready("twitch", "Open-1", "https://clips.twitch.tv/Open-1")
    await clips.started(drop_id, "twitch", "Sold-1", ClipReason.SOLD_OUT)
    await hub.drain()
    assert [m.kind for m in outlet.posts] == ["live"]  # a clip of an open drop: no post

    await commerce.drops.close(drop_id)
    await hub.drain()
    recap = outlet.posts[-1]
    assert recap.kind == "closed"
    assert dict(recap.fields)["Clips"] == "the drop going live: https://clips.twitch.tv/Open-1"

    await clips.ready("twitch", "Sold-1", "https://clips.twitch.tv/Sold-1")
    await clips.ready("twitch", "Sold-1", "https://clips.twitch.tv/Sold-1")  # reported twice
    await hub.drain()
    late = [m for m in outlet.posts if m.kind == "clip"]
    assert len(late) == 1
    assert "the sell-out" in late[0].text and "https://clips.twitch.tv/Sold-1" in late[0].text
    assert late[0].public_link == f"https://x.test/d/{drop_id}"
    await hub.stop()


async def test_a_recap_without_clips_has_no_clips_field(commerce):
    hub, outlet = await make_hub(commerce)
    drop_id = await live_drop(commerce, capsule_spec(2))
    await commerce.clips.started(drop_id, "twitch", "Never", ClipReason.OPENED)
    await commerce.clips.failed("twitch", "Never")
    await commerce.drops.close(drop_id)
    await hub.drain()
    assert "Clips" not in dict(outlet.posts[-1].fields)
    await hub.stop()
