"""`dropcast drop replay ID [URL]`: without URL the replay is the drop's best clip, and a
drop with no ready clip is refused (exit 2, one line, nothing queued). Both engines."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import select

from commerce.core import Commerce
from commerce.domain.model import ClipReason
from commerce.storage.database import Database
from commerce.storage.tables import outbox
from tests.cli.test_cli import GOOD_DROP, write

T = TypeVar("T")


def in_core(url: str, work: Callable[[Commerce], Awaitable[T]]) -> T:
    """Run ``work`` against the core on the CLI's database (as another process would)."""

    async def go() -> T:
        database = Database(url)
        try:
            return await work(Commerce.build(database))
        finally:
            await database.dispose()

    return asyncio.run(go())


def replays_posted(url: str) -> list[dict[str, Any]]:
    async def read(commerce: Commerce) -> list[dict[str, Any]]:
        async with commerce.db.read() as conn:
            rows = await conn.execute(
                select(outbox.c.payload).where(outbox.c.topic == "ReplayPosted")
            )
            return [dict(r.payload) for r in rows]

    return in_core(url, read)


def test_replay_without_url_sends_the_best_clip_and_refuses_without_one(dropcast, tmp_path):
    code, out, _ = dropcast("drop", "create", write(tmp_path, GOOD_DROP), "--json")
    drop_id = json.loads(out)["id"]
    assert dropcast("drop", "open", str(drop_id))[0] == 0

    code, out, err = dropcast("drop", "replay", str(drop_id))
    assert (code, out) == (2, "")
    assert len(err.strip().splitlines()) == 1 and "no ready clip" in err
    assert replays_posted(dropcast.url) == []

    async def clip(commerce: Commerce) -> None:
        await commerce.clips.started(drop_id, "twitch", "Opened-1", ClipReason.OPENED)
        await commerce.clips.ready("twitch", "Opened-1", "https://clips.twitch.tv/Opened-1")
        await commerce.clips.started(drop_id, "twitch", "Sold-1", ClipReason.SOLD_OUT)
        await commerce.clips.ready("twitch", "Sold-1", "https://clips.twitch.tv/Sold-1")

    in_core(dropcast.url, clip)
    code, out, err = dropcast("drop", "replay", str(drop_id))
    assert (code, err) == (0, "")
    assert "https://clips.twitch.tv/Sold-1" in out
    assert replays_posted(dropcast.url) == [
        {"drop_id": drop_id, "url": "https://clips.twitch.tv/Sold-1"}
    ]


def test_replay_of_an_unknown_drop_exits_2(dropcast):
    code, out, err = dropcast("drop", "replay", "999")
    assert (code, out) == (2, "") and "999" in err
