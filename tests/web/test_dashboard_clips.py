"""The dashboard lists each drop's clips: the current drop's with their moment and state,
and the ready ones of past drops in their row. Both engines."""

from __future__ import annotations

import html as htmllib

from commerce.domain.model import ClipReason
from tests.helpers import capsule_spec, live_drop


async def test_the_dashboard_lists_clips_per_drop(site):
    clips = site.commerce.clips
    earlier = await live_drop(site.commerce, capsule_spec(2))
    await clips.started(earlier, "twitch", "Sold-1", ClipReason.SOLD_OUT)
    await clips.ready("twitch", "Sold-1", "https://clips.twitch.tv/Sold-1")
    await clips.started(earlier, "twitch", "Lost-1", ClipReason.OPENED)
    await clips.failed("twitch", "Lost-1")
    await site.commerce.drops.close(earlier)
    site.clock.advance(3600)
    current = await live_drop(site.commerce, capsule_spec(5))
    await clips.started(current, "twitch", "Open-2", ClipReason.OPENED)
    await clips.ready("twitch", "Open-2", "https://clips.twitch.tv/Open-2")
    await clips.started(current, "twitch", "Cmd-2", ClipReason.COMMAND)

    page = htmllib.unescape(await (await site.client.get("/dashboard", headers=site.admin)).text())
    section = page[page.index("<h2>Clips</h2>") : page.index("Past drops")]
    assert "Went live" in section and 'href="https://clips.twitch.tv/Open-2"' in section
    assert "Clipped on command" in section and "being made…" in section
    assert "Sold-1" not in section  # another drop's
    past = page[page.index("Past drops") :]
    assert 'href="https://clips.twitch.tv/Sold-1"' in past and ">Sold out</a>" in past
    assert "Lost-1" not in page  # never made: not a link anywhere

    earlier_page = htmllib.unescape(
        await (await site.client.get(f"/dashboard?drop={earlier}", headers=site.admin)).text()
    )
    section = earlier_page[earlier_page.index("<h2>Clips</h2>") : earlier_page.index("Past drops")]
    assert "Sold-1" in section and "not made (twitch never served it)" in section


async def test_a_drop_without_clips_says_how_they_come(site):
    await live_drop(site.commerce, capsule_spec(5))
    page = await (await site.client.get("/dashboard", headers=site.admin)).text()
    assert "No clips yet" in page and "!clip" in page
