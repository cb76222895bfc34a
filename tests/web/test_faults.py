"""Answers under faults: while the database cannot be reached, routes say 503 with
Retry-After and a plain message (not 500), sold-out answers the gate knows still come from
memory, and everything works again once the database is back.

PostgreSQL is cut off by a TCP proxy in front of the shared server, which the test closes
(open connections killed, new ones refused); the server itself is never touched. SQLite is
cut off by moving its directory away and closing the pool, so the next use must open the
file and cannot (a vanished volume, as the process sees it).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from commerce.storage.database import Database
from commerce.storage.tables import claims
from commerce.web.live import ViewCache
from tests.conftest import ENGINES, truncate_all
from tests.helpers import capsule_spec, eventually, live_drop

UNAVAILABLE = "the shop is briefly unavailable; try again in a few seconds"


class PgProxy:
    """A TCP proxy to PostgreSQL on a fixed local port that can be cut and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0  # chosen at the first start, then kept
        self._server: asyncio.Server | None = None
        self._streams: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()  # new connections are refused
        for writer in self._streams:
            writer.transport.abort()  # open ones die mid-conversation
        self._streams.clear()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._streams.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()
            self._streams.discard(writer)


class Outage:
    """The app's database and a switch that makes it unreachable and back."""

    def __init__(self, db: Database, proxy: PgProxy | None, volume: Path | None) -> None:
        self.db = db
        self._proxy = proxy
        self._volume = volume

    async def begin(self) -> None:
        if self._proxy is not None:
            await self._proxy.cut()
            return
        assert self._volume is not None
        self._volume.rename(self._volume.with_name("gone"))
        await self.db.writer.dispose()
        await self.db.reader.dispose()

    async def end(self) -> None:
        if self._proxy is not None:
            await self._proxy.start()
            return
        assert self._volume is not None
        self._volume.with_name("gone").rename(self._volume)


@pytest.fixture(params=ENGINES)
async def outage(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> AsyncIterator[Outage]:
    if request.param == "sqlite":
        volume = tmp_path / "volume"
        volume.mkdir()
        shutil.copyfile(sqlite_template, volume / "dropcast.db")
        result = Outage(Database(f"sqlite+aiosqlite:///{volume / 'dropcast.db'}"), None, volume)
    else:
        url = make_url(request.getfixturevalue("pg_url"))
        direct = Database(url.render_as_string(hide_password=False))
        await truncate_all(direct)
        await direct.dispose()
        proxy = PgProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        result = Outage(Database(proxied.render_as_string(hide_password=False)), proxy, None)
    try:
        yield result
    finally:
        await result.db.dispose()


@pytest.fixture
def db(outage: Outage) -> Database:
    """The app's database is the one behind the outage switch."""
    return outage.db


async def claims_logged(commerce, drop_id: int, outcome: str) -> int:
    async with commerce.db.read() as conn:
        query = select(func.count()).where(claims.c.drop_id == drop_id, claims.c.outcome == outcome)
        return int((await conn.execute(query.select_from(claims))).scalar())


async def test_an_unreachable_database_gets_503_then_everything_works_again(make_web, outage):
    site = await make_web()
    # The catalog (titles, prices) is cached for 30 s of real time; a busy machine must
    # not let it lapse mid-test, so this test keeps it for an hour.
    site.ctx.catalog = ViewCache(site.commerce.drops.view, site.clock, ttl=3600)
    drop_id = await live_drop(site.commerce, capsule_spec(1))
    await site.held_page(drop_id, "discord:1")  # the only unit is held
    known = site.token(drop_id, "discord:2")
    refused = await site.client.get(f"/c/{known}")
    assert refused.status == 409 and "Sold out" in await refused.text()
    await eventually(lambda: site.ctx.gate.armed(drop_id), what="the sold-out gate to arm")
    await site.commerce.customers.resolve("discord:3")  # a link from chat: a known viewer
    before = await claims_logged(site.commerce, drop_id, "sold_out")

    await outage.begin()
    site.ctx.states.forget(drop_id)  # the next read must ask the database
    api = await site.client.get(f"/api/drops/{drop_id}")
    assert api.status == 503 and int(api.headers["Retry-After"]) >= 1
    assert await api.json() == {"error": "UNAVAILABLE", "message": UNAVAILABLE}
    page = await site.client.get(f"/d/{drop_id}")
    assert page.status == 503 and page.headers["Content-Type"].startswith("text/html")
    assert "Retry-After" in page.headers and UNAVAILABLE in await page.text()
    spec = capsule_spec(3)
    admin = await site.client.post("/api/drops", json=spec, headers=site.admin)
    assert admin.status == 503
    # A drop the gate knows is sold out is still answered from memory, to anyone known.
    for identity in ("discord:2", "discord:3"):
        again = await site.client.get(f"/c/{site.token(drop_id, identity)}")
        assert again.status == 409 and "Sold out" in await again.text()

    await outage.end()

    async def drop_page_back() -> bool:
        site.ctx.states.forget(drop_id)
        return (await site.client.get(f"/api/drops/{drop_id}")).status == 200

    await eventually(drop_page_back, what="the API to answer again", interval=0.1)
    created = await site.client.post("/api/drops", json=spec, headers=site.admin)
    assert created.status == 201
    # The two answers from memory were kept and reach the claims log now.
    await site.commerce.tracker.flush()
    assert await claims_logged(site.commerce, drop_id, "sold_out") == before + 2
