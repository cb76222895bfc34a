"""Live surfaces: the SSE stream (events, ids, resume, heartbeats) and the
in-memory sold-out gate."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import func, select

from commerce.domain.model import ClaimOutcome, Drop, DropFormat, DropState, DropView
from commerce.storage.tables import claims
from tests.helpers import PATIENCE, capsule_spec, eventually, live_drop


class Stream:
    """A tiny SSE reader over an aiohttp client response."""

    def __init__(self, response):
        self.response = response

    async def next(self, wait: float = PATIENCE) -> dict:
        event: dict = {"data": ""}
        async with asyncio.timeout(wait):
            while True:
                line = (await self.response.content.readline()).decode()
                if line in ("\n", ""):
                    if len(event) > 1 or event["data"] or line == "":
                        if event["data"]:
                            event["data"] = json.loads(event["data"])
                        return event
                    continue
                key, _, value = line.rstrip("\n").partition(": ")
                if key == "data":
                    event["data"] += value
                elif key in ("id", "event", "retry"):
                    event[key] = value

    async def until(self, name: str, wait: float = PATIENCE) -> dict:
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


async def test_a_sale_reaches_every_connected_client(site):
    drop_id = await live_drop(site.commerce, capsule_spec(3))
    streams = [await open_stream(site, drop_id) for _ in range(20)]
    for stream in streams:
        await stream.until("stock")
    token, page = await site.held_page(drop_id)
    await site.pay(token, page)
    for stream in streams:
        held = await stream.until("stock")
        sold = await stream.until("stock")
        assert held["data"]["held"] == 1 and sold["data"]["sold"] == 1


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
    replayed: list[dict[str, Any]] = []  # every event after the snapshot, in order, none missing
    while [e["event"] for e in replayed].count("stock") < 2:
        event = await resumed.next()
        if "id" in event:
            replayed.append(event)
    seqs = [int(e["id"].split("-")[1]) for e in replayed]
    assert seqs == list(range(int(snapshot["id"].split("-")[1]) + 1, seqs[-1] + 1))
    assert [e["data"]["held"] for e in replayed if e["event"] == "stock"] == [1, 2]


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
    beat = await stream.until("countdown")
    assert "id" not in beat and beat["data"]["server_time"]


async def test_shutdown_ends_open_streams(site):
    drop_id = await live_drop(site.commerce, capsule_spec(5))
    stream = await open_stream(site, drop_id)
    await stream.until("status")  # the end of the snapshot
    site.ctx.hub.close()
    async with asyncio.timeout(PATIENCE):
        assert await stream.response.content.read() == b""


async def test_a_sold_out_closed_drop_is_answered_from_memory_and_logged(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    token, page = await site.held_page(drop_id)
    await site.pay(token, page)  # the last unit: the drop closes as sold out
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")
    before = await claim_count(site.commerce)
    for i in range(5):
        response = await site.client.get(f"/c/{site.token(drop_id, f'discord:{i + 10}')}")
        assert response.status == 410 and "Sold out" in await response.text()
    assert site.ctx.metrics.gated._value.get() == 5
    # Answered from memory, yet each one is in the claims log (the fairness audit).
    await site.commerce.tracker.flush()
    assert await claim_count(site.commerce) == before + 5
    # The buyer reloading their own link still sees their order.
    mine = await site.client.get(f"/c/{token}")
    assert mine.status == 200 and "It&#39;s yours!" in await mine.text()
    # A restock reopens the drop and the gate at once.
    await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 1}, headers=site.admin
    )
    again = await site.client.get(f"/c/{site.token(drop_id, 'discord:99')}")
    assert again.status == 200


async def test_the_gate_lets_claims_through_once_a_pending_hold_can_expire(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1, hold_seconds=30))
    token, _ = await site.held_page(drop_id, "discord:1")
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")
    gated = await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    assert gated.status == 409 and site.ctx.metrics.gated._value.get() == 1
    winner = await site.client.get(f"/c/{token}")  # the holder is never gated
    assert winner.status == 200
    site.clock.advance(31)
    late = await site.client.get(f"/c/{site.token(drop_id, 'discord:3')}")
    assert late.status == 200  # the expired hold's unit, through the database


async def test_a_holder_reaches_their_hold_from_every_link_of_theirs_at_sell_out(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2, hold_seconds=60))
    # One hold from chat (no web request ever saw it), one through a link.
    chat_holder = await site.commerce.customers.resolve("discord:7")
    held = await site.commerce.claims.claim(drop_id, chat_holder, claim_key="chat:msg-1")
    assert held.outcome is ClaimOutcome.HELD
    await site.held_page(drop_id, "discord:8")
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")
    stranger = await site.client.get(f"/c/{site.token(drop_id, 'discord:9')}")
    assert stranger.status == 409
    for identity in ("discord:7", "discord:8"):
        fresh = await site.client.get(f"/c/{site.token(drop_id, identity)}")  # a new nonce
        assert fresh.status == 200 and "Pay" in await fresh.text(), identity
    assert site.ctx.metrics.gated._value.get() == 1


async def test_a_holder_is_never_gated_after_a_payment_while_sold_out(site):
    drop_id = await live_drop(site.commerce, capsule_spec(2, hold_seconds=60))
    first_token, first_page = await site.held_page(drop_id, "discord:1")
    await site.held_page(drop_id, "discord:2")
    await site.pay(first_token, first_page)  # sold out still: one hold is pending
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to re-arm")
    again = await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    assert again.status == 200 and "Pay" in await again.text()


async def test_a_linked_identity_of_a_holder_passes_the_gate(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1, hold_seconds=60))
    await site.held_page(drop_id, "discord:1")
    await site.commerce.customers.link("discord:1", "twitch:5")
    site.ctx.gate.disarm(drop_id)
    site.ctx.gate.arm(drop_id)
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")
    linked = await site.client.get(f"/c/{site.token(drop_id, 'twitch:5')}")
    assert linked.status == 200


async def test_a_snapshot_taken_while_stock_moved_never_arms_the_gate(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1, hold_seconds=60))
    release = asyncio.Event()
    real = site.commerce.claims.refusal_snapshot

    async def slow(drop: int):
        snapshot = await real(drop)
        await release.wait()
        return snapshot

    site.ctx.gate._snapshot = slow
    await site.held_page(drop_id, "discord:1")  # sold out: the gate starts arming
    await site.client.post(
        f"/api/drops/{drop_id}/restock", json={"sku": "CHIPS-SPICY", "units": 1}, headers=site.admin
    )
    release.set()
    await eventually(lambda: not site.ctx.gate._arming, what="arming to finish")
    assert not site.ctx.gate.armed(drop_id)
    newcomer = await site.client.get(f"/c/{site.token(drop_id, 'discord:2')}")
    assert newcomer.status == 200


async def test_events_lost_between_processes_disarm_the_gate(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1, hold_seconds=60))
    await site.held_page(drop_id, "discord:1")
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")
    site.commerce.bus.gap()  # the event listener reconnected: what happened meanwhile is unknown
    assert not site.ctx.gate.armed(drop_id)


async def test_a_drop_that_stays_closed_is_gated_without_a_gap_past_the_ttl(site):
    """The snapshot is renewed while it still answers: no claim of a surge reaches the
    database because the gate's snapshot grew old (each such gap let a crowd through)."""
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    token, page = await site.held_page(drop_id)
    await site.pay(token, page)  # sold out and closed
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")
    ttl = site.ctx.gate._ttl.total_seconds()
    for step in range(1, 5):  # 0.6, 1.2, 1.8, 2.4 ttl: past the first snapshot's end
        site.clock.advance(ttl * 0.6)
        response = await site.client.get(f"/c/{site.token(drop_id, f'discord:{step + 10}')}")
        assert response.status == 410, step
        assert site.ctx.metrics.gated._value.get() == step, f"claim {step} reached the database"
        await eventually(lambda: not site.ctx.gate._arming, what="the renewal to finish")


async def test_a_renewal_that_finds_the_drop_claimable_disarms_at_once(site):
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    token, page = await site.held_page(drop_id)
    await site.pay(token, page)
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the gate to arm")

    async def claimable(drop: int) -> None:  # what a restock in another process, its event
        return None  # lost, would make the database say

    site.ctx.gate._snapshot = claimable
    site.clock.advance(site.ctx.gate._ttl.total_seconds() * 0.6)
    still = await site.client.get(f"/c/{site.token(drop_id, 'discord:20')}")
    assert still.status == 410  # answered by the snapshot it had, while renewing
    await eventually(lambda: not site.ctx.gate.armed(drop_id), what="the gate to disarm")


async def test_a_view_asked_for_after_a_change_never_comes_from_an_older_load(clock):
    from commerce.web.live import ViewCache

    release = asyncio.Event()
    loads: list[int] = []

    def view(title: str) -> DropView:
        drop = Drop(
            id=1,
            title=title,
            format=DropFormat.CAPSULE,
            state=DropState.LIVE,
            opens_at=None,
            closes_at=None,
            demo_seconds=None,
            hold_seconds=60,
            per_customer_limit=1,
            created_at=clock.now(),
        )
        return DropView(drop, products={}, stock=[])

    before, after = view("before"), view("after")

    async def load(drop_id: int) -> DropView:
        loads.append(drop_id)
        if len(loads) == 1:
            await release.wait()  # the first load read the database before the change
            return before
        return after

    views = ViewCache(load, clock, ttl=30.0)
    early = asyncio.create_task(views.get(1))
    await eventually(lambda: loads, what="the first load to start")
    views.forget(1)  # the change commits while that load is still under way
    late = asyncio.create_task(views.get(1))
    release.set()
    assert (await early, await late) == (before, after)
    assert await views.get(1) == after  # the older load was not cached either
