"""The studio belongs to the creator (issue 12): no other site can drive it, only the admin
steers, a name belongs to the browser session that used it first, lines are rate-limited
per session and address, and outside the demo it is off unless switched on."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from bot.studio.access import NameBook, origin_allowed
from commerce.dropfile import validate_spec
from config.settings import Settings
from tests.bot.test_studio import receive_until, studio_client
from tests.e2e.processes import free_port
from tests.helpers import capsule_spec, live_drop, serving
from tests.web.conftest import ADMIN

EVIL = "http://evil.example"
MENTION = re.compile(r"@([\w.-]+)")
LIMITS = {"per_ip": 20, "per_session": 2, "now": lambda: 0.0}  # the defaults; time stands still


async def answers(ws: aiohttp.ClientWebSocketResponse, names: list[str]) -> tuple[int, set[str]]:
    """Read until each of ``names`` (said one line each) is answered: told to slow down, or
    named in an outcome line. Returns (slowed down, named)."""
    slowed, named = 0, set()

    def done(data: dict) -> bool:
        nonlocal slowed
        if data.get("op") == "error" and data["text"].startswith("Slow down"):
            slowed += 1
        if data.get("kind") == "outcomes":
            named.update(set(MENTION.findall(data["text"])) & set(names))
        return slowed + len(named) == len(names)

    await receive_until(ws, done, limit=10 * len(names) + 10)
    return slowed, named


async def say_buy(ws: aiohttp.ClientWebSocketResponse, names: list[str]) -> None:
    for name in names:
        await ws.send_json({"name": name, "text": "!buy"})


async def held(commerce, drop_id: int) -> int:
    return (await commerce.drops.view(drop_id)).stock[0].held


async def test_a_page_of_another_site_cannot_open_the_studio_even_for_the_admin(commerce):
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        http = studio.client.session
        async with http.get(studio.url(f"/dashboard?token={ADMIN}")) as signed_in:
            assert signed_in.status == 200  # a cross-site page would ride the admin's cookie
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(studio.url("/studio/ws"), headers={"Origin": EVIL})
        assert refused.value.status == 403
        assert (await commerce.drops.view(drop_id)).stock[0].total == 2

        # A page of the studio's own site (web.public_url) connects, as the admin.
        own = await studio.tab(admin=True, Origin="http://127.0.0.1:8080")
        await own.send_json({"name": "host", "creator": True, "text": "!drop"})
        await receive_until(own, lambda d: d.get("kind") == "status")
        await own.close()
    finally:
        await studio.close()


async def test_a_tab_without_a_studio_session_is_refused(commerce):
    studio = await studio_client(commerce)
    try:
        await live_drop(commerce, capsule_spec(2))
        ws = await studio.browser().ws_connect(studio.url("/studio/ws"))  # never got the page
        refused = await asyncio.wait_for(ws.receive_json(), 5)
        assert refused["op"] == "error" and refused["fatal"]
        assert "no studio session" in refused["text"]
        closing = await asyncio.wait_for(ws.receive(), 5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    finally:
        await studio.close()


async def test_a_viewer_cannot_restock_close_or_start_a_drop_and_is_told_why(commerce):
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        later = await commerce.drops.create(validate_spec(capsule_spec(1)))
        ws = await studio.tab()
        for line in (
            f"!drop restock {drop_id} CHIPS-SPICY 1000000",
            f"!drop close {drop_id}",
            f"!drop start {later}",
        ):
            await ws.send_json({"name": "mallory", "creator": True, "text": line})
            refused, seen = await receive_until(ws, lambda d: d.get("op") == "error")
            assert "Creator commands need the dashboard sign-in" in refused["text"]
            assert not any(d.get("op") == "chat" for d in seen)  # nothing was run
        assert (await commerce.drops.get(drop_id)).state == "live"
        assert (await commerce.drops.view(drop_id)).stock[0].total == 2
        assert (await commerce.drops.get(later)).state == "draft"
        await ws.close()
    finally:
        await studio.close()


async def test_a_name_belongs_to_the_session_that_spoke_as_it_first(commerce):
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        ann = await studio.tab()
        await ann.send_json({"name": "ann", "text": "!drop"})
        await receive_until(ann, lambda d: d.get("kind") == "status")

        impostor = await studio.tab(studio.browser())
        await impostor.send_json({"name": "ann", "text": "!buy"})
        taken, _ = await receive_until(impostor, lambda d: d.get("op") == "error")
        assert taken["text"] == "That name is taken in this studio; pick another."
        assert await held(commerce, drop_id) == 0  # nothing was run

        await ann.send_json({"name": "ann", "text": "!buy"})
        mine, _ = await receive_until(ann, lambda d: d.get("kind") == "held")
        assert mine["link"] == f"https://x.test/c/{drop_id}/local:ann"
        _, impostor_saw = await receive_until(impostor, lambda d: d.get("kind") == "outcomes")
        assert not any(d.get("private") or d.get("link") for d in impostor_saw)
        await ann.close()
        await impostor.close()
    finally:
        await studio.close()


async def test_one_tab_typing_buy_as_150_names_holds_only_one_sessions_share(commerce):
    studio = await studio_client(commerce, **LIMITS)
    try:
        drop_id = await live_drop(commerce, capsule_spec(150))
        tab = await studio.tab()
        names = [f"hoard{i}" for i in range(150)]
        await say_buy(tab, names)
        slowed, named = await answers(tab, names)
        assert (slowed, len(named)) == (148, 2)  # the session's burst: 2 lines
        assert await held(commerce, drop_id) == 2
        await tab.close()
    finally:
        await studio.close()


async def test_many_sessions_from_one_address_share_its_rate(commerce):
    studio = await studio_client(commerce, **LIMITS)
    try:
        drop_id = await live_drop(commerce, capsule_spec(150))
        tabs = [await studio.tab(studio.browser()) for _ in range(15)]
        names = [[f"s{t}n{i}" for i in range(2)] for t in range(15)]
        for tab, mine in zip(tabs, names, strict=True):
            await say_buy(tab, mine)
        results = await asyncio.gather(*(answers(t, n) for t, n in zip(tabs, names, strict=True)))
        assert sum(slowed for slowed, _ in results) == 10
        assert sum(len(named) for _, named in results) == 20  # the address's burst
        assert await held(commerce, drop_id) == 20
        for tab in tabs:
            await tab.close()
    finally:
        await studio.close()


@pytest.mark.parametrize("who", ["dashboard", "bearer", "demo"])
async def test_the_admin_and_a_rehearsal_on_this_machine_in_the_demo_are_not_limited(commerce, who):
    studio = await studio_client(commerce, **LIMITS, local_rehearsals=who == "demo")
    try:
        drop_id = await live_drop(commerce, capsule_spec(40))
        if who == "bearer":  # a non-browser client with the admin token
            tab = await studio.tab(creator=True, Authorization=f"Bearer {ADMIN}")
        else:
            tab = await studio.tab(admin=who == "dashboard")
        names = [f"v{i}" for i in range(40)]
        await say_buy(tab, names)
        slowed, named = await answers(tab, names)
        assert (slowed, len(named)) == (0, 40)
        assert await held(commerce, drop_id) == 40
        await tab.close()
    finally:
        await studio.close()


async def test_in_the_demo_a_visitor_through_a_local_proxy_is_still_limited(commerce):
    studio = await studio_client(
        commerce,
        web_settings={"trusted_proxies": ["127.0.0.1/32"]},
        **LIMITS,
        local_rehearsals=True,
    )
    try:
        drop_id = await live_drop(commerce, capsule_spec(10))
        # Extra headers go in as keywords; this one's name is no identifier, hence a dict.
        forwarded: dict[str, Any] = {"X-Forwarded-For": "203.0.113.9"}
        tab = await studio.tab(**forwarded)
        names = [f"far{i}" for i in range(10)]
        await say_buy(tab, names)
        slowed, named = await answers(tab, names)
        assert (slowed, len(named)) == (8, 2)
        assert await held(commerce, drop_id) == 2
        await tab.close()
    finally:
        await studio.close()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # no browser: it cannot bring anyone's cookies
        ("http://127.0.0.1:8080", True),
        ("http://127.0.0.1:8081", False),
        ("http://localhost:8080", False),
        ("https://127.0.0.1:8080", False),
        (EVIL, False),
        ("null", False),
        ("http://[oops", False),
    ],
)
def test_only_pages_of_the_public_url_may_open_a_tab(origin, allowed):
    headers = {} if origin is None else {"Origin": origin}
    request = make_mocked_request("GET", "/studio/ws", headers=headers)
    assert origin_allowed(request, "http://127.0.0.1:8080") is allowed


def test_a_full_name_book_forgets_only_names_of_sessions_with_no_tab_open():
    book = NameBook(limit=2)
    assert book.take("local:a", "s1", present={"s1"})
    assert book.take("local:b", "s2", present={"s1", "s2"})
    assert not book.take("local:c", "s3", present={"s1", "s2"})  # both owners are here
    assert book.owner("local:c") is None
    assert book.take("local:a", "s1", present={"s1"})  # a used last: b is the idle one
    assert book.take("local:c", "s3", present={"s1"})
    assert (book.owner("local:a"), book.owner("local:b"), book.owner("local:c")) == (
        "s1",
        None,
        "s3",
    )


@pytest.mark.parametrize(
    ("demo", "studio", "status"), [(False, None, 404), (True, None, 200), (False, True, 200)]
)
async def test_the_studio_is_off_outside_the_demo_unless_switched_on(
    tmp_path, demo, studio, status
):
    port = free_port()
    chat = {} if studio is None else {"studio": studio}
    settings = Settings(
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'dropcast.db'}"},
        web={"port": port, "public_url": f"http://127.0.0.1:{port}"},
        chat=chat,
    )
    async with serving(settings, demo=demo) as (_, base), aiohttp.ClientSession() as http:
        async with http.get(f"{base}/studio") as response:
            assert response.status == status
