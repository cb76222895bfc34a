"""The studio chat over a real WebSocket: the same command layer as every platform."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.coalesce import SEPARATOR
from bot.commands import CommandHandler
from bot.hub import ChatHub
from bot.presenter import Presenter
from bot.studio.outlet import StudioOutlet
from commerce.domain.payments import PaymentGateways
from commerce.links import LinkSigner
from tests.helpers import PATIENCE, capsule_spec, customers, eventually, links, live_drop
from tests.web.conftest import ADMIN, SECRET, make_settings, web_app


@dataclass
class Studio:
    """The studio in the real web app (sessions, dashboard sign-in), on a real port."""

    client: TestClient[web.Request, web.Application]
    hub: ChatHub
    outlet: StudioOutlet
    gateways: PaymentGateways
    browsers: list[aiohttp.ClientSession] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    def browser(self) -> aiohttp.ClientSession:
        """Another browser: its own cookies, so its own session."""
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.browsers.append(http)
        return http

    async def tab(
        self,
        http: aiohttp.ClientSession | None = None,
        *,
        admin: bool = False,
        creator: bool | None = None,
        **headers: str,
    ) -> aiohttp.ClientWebSocketResponse:
        """Open the studio page (it gives the browser its session) and connect a tab; with
        ``admin``, sign in at the dashboard first, as the creator does. ``creator``: what
        the studio must say this tab is (default: ``admin``)."""
        http = http or self.client.session
        if admin:
            async with http.get(self.url(f"/dashboard?token={ADMIN}")) as response:
                assert response.status == 200
        async with http.get(self.url("/studio")) as page:
            assert page.status == 200 and "studio" in await page.text()
        ws = await http.ws_connect(self.url("/studio/ws"), headers=headers)
        hello = await asyncio.wait_for(ws.receive_json(), 5)
        expected = admin if creator is None else creator
        assert hello == {"op": "hello", "creator": expected, "signin": "/dashboard"}
        return ws

    async def close(self) -> None:
        await self.hub.stop()
        for http in self.browsers:
            await http.close()
        await self.client.close()
        await self.gateways.close()


async def studio_client(
    commerce, thresholds=(3, 1), edit_interval=0.05, web_settings=None, **outlet: Any
) -> Studio:
    """``outlet``: StudioOutlet's options (rate limits off unless given)."""
    handler = CommandHandler(
        commerce, links(lambda d, who: f"https://x.test/c/{d}/{who}"), public_url="https://x.test"
    )
    studio = StudioOutlet(handler, **{"per_ip": 0, "per_session": 0, **outlet})
    hub = ChatHub(
        commerce,
        Presenter(commerce, "https://x.test"),
        handler.issue_link,
        thresholds=list(thresholds),
        edit_interval=edit_interval,
    )
    hub.add_outlet(studio)
    await hub.start()
    settings = make_settings(web=web_settings or {})
    signer = LinkSigner(SECRET, commerce.clock, settings.security.link_ttl_seconds)
    app, gateways = web_app(commerce, settings, signer, studio.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    return Studio(client, hub, studio, gateways)


async def receive_until(ws, predicate, limit=40):
    seen = []
    for _ in range(limit):
        data = await asyncio.wait_for(ws.receive_json(), 5)
        seen.append(data)
        if predicate(data):
            return data, seen
    raise AssertionError(f"not seen: {seen}")


async def test_a_viewer_buys_in_the_studio_and_only_they_see_the_link(commerce):
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        ann = await studio.tab()
        bob = await studio.tab(studio.browser())
        await ann.send_json({"name": "ann", "text": "!buy"})
        held, _ = await receive_until(ann, lambda d: d.get("kind") == "held")
        assert held["private"] and held["link"] == f"https://x.test/c/{drop_id}/local:ann"
        # Bob sees ann's chat line and the stock tick, never her link.
        _, bob_saw = await receive_until(bob, lambda d: d.get("op") == "chat")
        await ann.send_json({"name": "ann", "text": "!stock"})
        stock, more = await receive_until(bob, lambda d: d.get("kind") == "stock")
        assert "1 of 2 left" in stock["text"]
        assert all(d.get("link") is None for d in bob_saw + more)
        await ann.close()
        await bob.close()
    finally:
        await studio.close()


async def test_a_tab_s_upgrade_carries_the_edge_s_headers(commerce):
    """The upgrade to a WebSocket sends its own headers from inside the handler: they carry
    the security headers and the request id, as every other answer does."""
    upgrades = []

    async def on_request_end(session, context, params) -> None:
        if params.response.status == 101:
            upgrades.append(params.response.headers)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    studio = await studio_client(commerce)
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), trace_configs=[trace])
    studio.browsers.append(http)
    try:
        tab = await studio.tab(http)
        await tab.close()
        [headers] = upgrades
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert len(headers["X-Request-Id"]) == 16
    finally:
        await studio.close()


async def test_studio_refuses_a_bad_name_and_creator_commands_unless_signed_in(commerce):
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        ws = await studio.tab()
        await ws.send_json({"name": "no spaces allowed", "text": "!buy"})
        error, _ = await receive_until(ws, lambda d: d.get("op") == "error")
        assert "Pick a name" in error["text"]
        # The page's "creator" box is no proof: only the dashboard sign-in is.
        await ws.send_json({"name": "boss", "creator": True, "text": f"!drop close {drop_id}"})
        refused, _ = await receive_until(ws, lambda d: d.get("op") == "error")
        assert "need the dashboard sign-in" in refused["text"]
        assert refused["link"] == "/dashboard"
        assert (await commerce.drops.get(drop_id)).state == "live"

        admin = await studio.tab(studio.browser(), admin=True)
        await admin.send_json({"name": "host", "creator": True, "text": f"!drop close {drop_id}"})
        said, _ = await receive_until(admin, lambda d: d.get("op") == "chat")
        assert said["creator"] is True
        await receive_until(admin, lambda d: "is closed" in (d.get("text") or ""))
        assert (await commerce.drops.get(drop_id)).state == "closed"
        await ws.close()
        await admin.close()
    finally:
        await studio.close()


async def test_claim_outcomes_are_said_many_to_a_line_as_on_twitch(commerce):
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(1))
        tab = await studio.tab()  # one tab speaking for three, as a rehearsal
        for name in ("ann", "bo", "cy"):
            await tab.send_json({"name": name, "text": "!buy"})
        line, seen = await receive_until(tab, lambda d: d.get("kind") == "outcomes")
        said = {
            brief: sorted(names.split())
            for names, brief in (
                segment.split(": ", 1) for segment in line["text"].split(SEPARATOR)
            )
        }
        assert said == {
            "you hold a unit — your pay link is shown to you": ["@ann"],  # first in line
            "sold out — type !waitlist to be next": ["@bo", "@cy"],
        }
        [private] = [d for d in seen if d.get("private")]
        assert private["to"] == "ann" and private["link"] == f"https://x.test/c/{drop_id}/local:ann"
        assert sum(d.get("kind") == "outcomes" for d in seen) == 1  # one line for all three
        await tab.close()
    finally:
        await studio.close()


async def test_a_studio_buy_keeps_its_place_in_line_while_its_line_is_echoed(commerce):
    """A ``!buy`` line's place in line is the moment it came in: a claim that arrives
    elsewhere while the studio still echoes the line to every tab goes after it."""
    commerce.claims.line.patience = PATIENCE  # the echo is held up on purpose below
    studio = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(1))
        [later_buyer] = await customers(commerce, 1, "web:later")
        echoing, release = asyncio.Event(), asyncio.Event()
        broadcast = studio.outlet._broadcast

        async def held_up_echo(data: dict[str, Any]) -> None:
            if data.get("op") == "chat":
                echoing.set()
                await release.wait()
            await broadcast(data)

        studio.outlet._broadcast = held_up_echo  # type: ignore[method-assign]
        ann = await studio.tab()
        await ann.send_json({"name": "ann", "text": "!buy"})
        await asyncio.wait_for(echoing.wait(), PATIENCE)
        later = asyncio.ensure_future(
            commerce.claims.claim(drop_id, later_buyer, arrival=commerce.claims.arrival())
        )
        # Queued behind ann's line (or, were that line not in line yet, already decided).
        await eventually(lambda: commerce.claims.queued(drop_id) == 1 or later.done())
        release.set()
        # Her own pay link ("held"), or the line of outcomes that tells her "sold out".
        answer, _ = await receive_until(ann, lambda d: d.get("kind") in ("held", "outcomes"))
        assert answer["kind"] == "held", answer
        assert (await later).outcome.value == "sold_out"
        await ann.close()
    finally:
        await studio.close()
