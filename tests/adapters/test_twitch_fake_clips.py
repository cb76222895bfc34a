"""FakeTwitch's Create Clip and Get Clips answer as Twitch does: checked over plain HTTP
(every status and shape) and with twitchio's own models parsing what it returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import twitchio

from tests.fakes.twitch import BOT_SCOPES, FakeTwitch

pytestmark = pytest.mark.timeout(30)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeTwitch]:
    async with FakeTwitch() as server:
        yield server


async def call(
    fake: FakeTwitch, method: str, query: dict[str, str], token: str
) -> tuple[int, Any, dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}", "Client-Id": fake.client_id}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{fake.helix_base}clips", params=query, headers=headers) as r,
    ):
        return r.status, await r.json(), dict(r.headers)


async def test_create_clip_needs_a_live_broadcaster_and_a_user_token_with_clips_edit(fake):
    owner, bot = fake.add_user("dropshop"), fake.add_user("dropcastbot")
    ok = fake.add_user_token(bot, [*BOT_SCOPES, "clips:edit"]).access_token
    without = fake.add_user_token(fake.add_user("other"), BOT_SCOPES).access_token
    app = fake.issue_app_token().access_token
    where = {"broadcaster_id": owner.id}

    status, body, _ = await call(fake, "POST", where, ok)
    assert status == 404 and "live" in body["message"]  # offline
    fake.set_stream(owner)
    assert (await call(fake, "POST", where, app))[:2] == (
        401,
        {
            "error": "Unauthorized",
            "status": 401,
            "message": "The Authorization header must contain a user access token.",
        },
    )
    status, body, _ = await call(fake, "POST", where, without)
    assert (status, body["message"]) == (401, "Missing scope: clips:edit")
    assert (await call(fake, "POST", {}, ok))[0] == 400
    assert (await call(fake, "POST", {"broadcaster_id": "1"}, ok))[0] == 400
    assert (await call(fake, "POST", {**where, "duration": "61"}, ok))[0] == 400
    status, body, headers = await call(fake, "POST", where, ok)
    assert status == 202 and set(headers) >= {"Ratelimit-Limit", "Ratelimit-Remaining"}
    (created,) = body["data"]
    assert set(created) == {"id", "edit_url"}
    assert created["edit_url"] == f"https://clips.twitch.tv/{created['id']}/edit"
    assert fake.clips[created["id"]].creator.id == bot.id


async def test_get_clips_returns_a_clip_once_twitch_has_made_it(fake):
    owner, bot = fake.add_user("dropshop"), fake.add_user("dropcastbot")
    token = fake.add_user_token(bot, ["clips:edit"]).access_token
    fake.set_stream(owner, game_id="509658", title="Chips unboxing")
    ids = []
    for _ in range(3):
        _, body, _ = await call(fake, "POST", {"broadcaster_id": owner.id}, token)
        ids.append(body["data"][0]["id"])
    first, second, third = ids

    assert (await call(fake, "GET", {}, token))[0] == 400  # one of id, broadcaster, game
    both = {"id": first, "broadcaster_id": owner.id}
    assert (await call(fake, "GET", both, token))[0] == 400
    assert (await call(fake, "GET", {"id": first}, token))[1] == {"data": [], "pagination": {}}
    (clip,) = (await call(fake, "GET", {"id": first}, token))[1]["data"]  # 2nd poll: made
    assert clip["id"] == first and clip["url"] == f"https://clips.twitch.tv/{first}"
    assert (clip["broadcaster_id"], clip["creator_id"]) == (owner.id, bot.id)
    assert (clip["game_id"], clip["title"], clip["duration"]) == ("509658", "Chips unboxing", 30.0)
    parsed = twitchio.Clip(clip, http=None)  # type: ignore[arg-type]  # what twitchio reads
    assert parsed.url == clip["url"] and parsed.thumbnail.url == clip["thumbnail_url"]

    fake.lose_clip(second)
    for _ in range(5):
        assert (await call(fake, "GET", {"id": second}, token))[1]["data"] == []
    fake.finish_clip(third)
    by_owner = (await call(fake, "GET", {"broadcaster_id": owner.id}, token))[1]["data"]
    assert sorted(c["id"] for c in by_owner) == sorted([first, third])


async def test_an_empty_bucket_answers_429_with_the_reset(fake):
    owner, bot = fake.add_user("dropshop"), fake.add_user("dropcastbot")
    token = fake.add_user_token(bot, ["clips:edit"])
    fake.set_stream(owner)
    fake.set_helix_rate_limit(5, window=30.0)
    fake.bucket(fake.client_id, bot.id).drain()
    status, body, headers = await call(
        fake, "POST", {"broadcaster_id": owner.id}, token.access_token
    )
    assert (status, body["status"]) == (429, 429)
    assert headers["Ratelimit-Limit"] == "5" and headers["Ratelimit-Remaining"] == "0"
    assert int(headers["Ratelimit-Reset"]) > 0 and fake.clips == {}
