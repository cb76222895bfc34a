"""Live surfaces: the SSE stream (events, ids, resume, heartbeats, latency) and the
in-memory sold-out gate."""

from __future__ import annotations

import asyncio
import json
import time

from sqlalchemy import func, select

from commerce.domain.events import StockChanged
from commerce.storage.tables import claims
from tests.helpers import capsule_spec, live_drop


class Stream:
    """A tiny SSE reader over an aiohttp client response."""

    def __init__(self, response):
        self.response = response

    async def next(self, wait: float = 2.0) -> dict:
        event: dict = {"data": ""}
        async with asyncio.timeout(wait):
            while True:
                line = (await self.response.content.readline()).decode()
                if line in ("\n", ""):
                    if len(event) > 1 or event["data"] or line == "":
                        if event["data"]:
                            event["data"] = json.loads(event["data"])
                        event["received"] = time.perf_counter()
                        return event
                    continue
                key, _, value = line.rstrip("\n").partition(": ")
                if key == "data":
                    event["data"] += value
                elif key in ("id", "event", "retry"):
                    event[key] = value

    async def until(self, name: str, wait: float = 2.0) -> dict:
        while True:
            event = await self.next(wait)
            if event.get("event") == name:
                return event


async def open_stream(site, drop_id, **headers) -> Stream:
    response = await site.client.get(f"/api/drops/{drop_id}/stream", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    return Stream(response)


async def claim_count(commerce) -> int:
    async with commerce.db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(claims))).scalar())


async def test_a_new_client_gets_a_countdown_and_a_stock_snapshot(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    stream = await open_stream(site, drop_id)
    first = await stream.next()
    assert first["retry"] == "2000"
    countdown = await stream.until("countdown")
    assert countdown["data"]["state"] == "live" and countdown["data"]["server_time"]
    stock = await stream.until("stock")
    assert stock["data"]["available"] == 3 and stock["id"].startswith(site.ctx.hub.epoch)


async def test_a_sale_reaches_connected_clients_within_100_ms(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    streams = [await open_stream(site, drop_id) for _ in range(20)]
    for stream in streams:
        await stream.until("stock")
    published: list[float] = []

    async def stamp(event):
        published.append(time.perf_counter())

    site.commerce.bus.subscribe(stamp, StockChanged)
    token, page = await site.held_page(drop_id)
    await site.pay(token, page)
    for stream in streams:
        held = await stream.until("stock")
        sold = await stream.until("stock")
        assert held["data"]["held"] == 1 and sold["data"]["sold"] == 1
        assert sold["received"] - published[-1] < 0.1


async def test_sold_out_restocked_and_closed_events(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    stream = await open_stream(site, drop_id)
    await stream.until("stock")
    await site.held_page(drop_id)
    assert (await stream.until("sold_out"))["data"]["drop_id"] == drop_id
    await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 2}, headers=site.admin
    )
    restocked = await stream.until("restocked")
    assert restocked["data"]["added"] == 2 and restocked["data"]["pool"] == "ship"
    await site.client.post(f"/api/drops/{drop_id}/close", headers=site.admin)
    assert (await stream.until("closed"))["data"]["reason"] == "manual"


async def test_a_client_resumes_from_last_event_id_without_losing_events(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    stream = await open_stream(site, drop_id)
    snapshot = await stream.until("stock")
    stream.response.close()
    await site.held_page(drop_id, "discord:1")
    await site.held_page(drop_id, "discord:2")
    resumed = await open_stream(site, drop_id, **{"Last-Event-ID": snapshot["id"]})
    first = await resumed.until("stock")
    second = await resumed.until("stock")
    assert [first["data"]["held"], second["data"]["held"]] == [1, 2]
    assert int(second["id"].split("-")[1]) == int(first["id"].split("-")[1]) + 1


async def test_an_id_from_another_process_gets_a_fresh_snapshot(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    stream = await open_stream(site, drop_id, **{"Last-Event-ID": "deadbeef-42"})
    assert (await stream.until("countdown"))["data"]["state"] == "live"
    assert (await stream.until("stock"))["data"]["available"] == 5


async def test_quiet_streams_get_heartbeats(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    site.ctx.heartbeat_seconds = 0.05
    stream = await open_stream(site, drop_id)
    await stream.until("stock")
    beat = await stream.until("countdown", wait=1)
    assert "id" not in beat and beat["data"]["server_time"]


async def test_shutdown_ends_open_streams(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    stream = await open_stream(site, drop_id)
    await stream.until("stock")
    site.ctx.hub.close()
    async with asyncio.timeout(2):
        assert await stream.response.content.read() == b""


async def test_sold_out_with_nothing_pending_is_answered_without_the_database(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    token, page = await site.held_page(drop_id)
    await site.pay(token, page)
    before = await claim_count(site.commerce)
    for i in range(5):
        response = await site.client.get(f"/c/{site.token(drop_id, f'discord:{i + 10}')}")
        assert response.status == 409 and "Sold out" in await response.text()
    assert await claim_count(site.commerce) == before
    assert site.ctx.metrics.gated._value.get() == 5
    # The buyer reloading their own link still sees their order.
    mine = await site.client.get(f"/c/{token}")
    assert mine.status == 200 and "It&#39;s yours!" in await mine.text()
    # A restock opens the gate at once.
    await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 1}, headers=site.admin
    )
    again = await site.client.get(f"/c/{site.token(drop_id, 'discord:99')}")
    assert again.status == 200


async def test_the_gate_lets_claims_through_once_a_pending_hold_can_expire(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1, hold_seconds=30))
    token, _ = await site.held_page(drop_id, "discord:1")
    gated = await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    assert gated.status == 409 and site.ctx.metrics.gated._value.get() == 1
    winner = await site.client.get(f"/c/{token}")  # the holder is never gated
    assert winner.status == 200
    site.clock.advance(31)
    late = await site.client.get(f"/c/{site.token(drop_id, 'discord:3')}")
    assert late.status == 200  # the expired hold's unit, through the database
