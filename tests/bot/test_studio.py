"""The studio chat over a real WebSocket: the same command layer as every platform."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.coalesce import SEPARATOR
from bot.commands import CommandHandler
from bot.hub import ChatHub
from bot.presenter import Presenter
from bot.studio.outlet import StudioOutlet
from tests.helpers import capsule_spec, links, live_drop


async def studio_client(commerce, thresholds=(3, 1), edit_interval=0.05):
    handler = CommandHandler(
        commerce, links(lambda d, who: f"https://x.test/c/{d}/{who}"), public_url="https://x.test"
    )
    outlet = StudioOutlet(handler)
    hub = ChatHub(
        commerce,
        Presenter(commerce, "https://x.test"),
        handler.issue_link,
        thresholds=list(thresholds),
        edit_interval=edit_interval,
    )
    hub.add_outlet(outlet)
    await hub.start()
    app = web.Application()
    app.router.add_routes(outlet.routes())
    client = TestClient(TestServer(app))
    await client.start_server()
    return client, hub


async def receive_until(ws, predicate, limit=40):
    seen = []
    for _ in range(limit):
        data = await asyncio.wait_for(ws.receive_json(), 5)
        seen.append(data)
        if predicate(data):
            return data, seen
    raise AssertionError(f"not seen: {seen}")


async def test_a_viewer_buys_in_the_studio_and_only_they_see_the_link(commerce):
    client, hub = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        page = await client.get("/studio")
        assert page.status == 200 and "studio" in await page.text()
        ann = await client.ws_connect("/studio/ws")
        bob = await client.ws_connect("/studio/ws")
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
        await hub.stop()
        await client.close()


async def test_studio_refuses_a_bad_name_and_creator_commands_from_viewers(commerce):
    client, hub = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(2))
        ws = await client.ws_connect("/studio/ws")
        await ws.send_json({"name": "no spaces allowed", "text": "!buy"})
        error, _ = await receive_until(ws, lambda d: d.get("op") == "error")
        assert "Pick a name" in error["text"]
        await ws.send_json({"name": "viewer", "text": f"!drop close {drop_id}"})
        refused, _ = await receive_until(ws, lambda d: d.get("kind") == "error")
        assert "Only the creator" in refused["text"]
        await ws.send_json({"name": "boss", "creator": True, "text": f"!drop close {drop_id}"})
        await receive_until(ws, lambda d: "is closed" in (d.get("text") or ""))
        assert (await commerce.drops.get(drop_id)).state == "closed"
        await ws.close()
    finally:
        await hub.stop()
        await client.close()


async def test_claim_outcomes_are_said_many_to_a_line_as_on_twitch(commerce):
    client, hub = await studio_client(commerce)
    try:
        drop_id = await live_drop(commerce, capsule_spec(1))
        tab = await client.ws_connect("/studio/ws")  # one tab speaking for three, as a rehearsal
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
        await hub.stop()
        await client.close()
