"""A surge through HTTP: 1000 distinct links at once for 10 units, on both engines."""

from __future__ import annotations

import asyncio
import collections

import aiohttp

from tests.helpers import assert_consistent, capsule_spec, live_drop

BUYERS = 1000
UNITS = 10


async def test_1000_links_at_once_for_10_units_make_exactly_10_holds(site):
    drop_id = await live_drop(site.commerce, capsule_spec(UNITS))
    tokens = [site.token(drop_id, f"discord:{i}") for i in range(BUYERS)]
    base = str(site.client.make_url("")).rstrip("/")
    connector = aiohttp.TCPConnector(limit=BUYERS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def buy(token: str) -> int:
            async with session.get(f"{base}/c/{token}") as response:
                await response.read()
                return response.status

        async with asyncio.timeout(60):
            statuses = await asyncio.gather(*(buy(t) for t in tokens))
    counts = collections.Counter(statuses)
    assert counts == {200: UNITS, 409: BUYERS - UNITS}, counts
    view = await site.commerce.drops.view(drop_id)
    assert (view.stock[0].held, view.stock[0].sold) == (UNITS, 0)
    assert_consistent(view)
