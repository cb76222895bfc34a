"""The SQLite driver (commerce/storage/sqlite_driver.py): each statement one trip to
aiosqlite's thread, BEGIN riding with a transaction's first statement, and a connection
rolled back on its return only while a transaction is open. SQLite only: PostgreSQL runs
through asyncpg, which this does not touch."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite.core
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from commerce.storage.database import Database
from commerce.storage.tables import kv


@pytest.fixture
async def sqlite_db(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Database]:
    path = tmp_path / "dropcast.db"
    shutil.copyfile(sqlite_template, path)
    database = Database(f"sqlite+aiosqlite:///{path}")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each trip to aiosqlite's thread ran (its function's name)."""
    seen: list[str] = []
    original: Callable[..., Any] = aiosqlite.core.Connection._execute

    async def counted(
        self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return seen


async def warm(database: Database) -> None:
    """Both pools hold a connection already (opening one takes trips of its own)."""
    async with database.write() as conn:
        await conn.execute(select(1))
    await count(database)


async def count(database: Database) -> int:
    async with database.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(kv))).scalar_one())


async def test_a_write_is_one_trip_per_statement_and_one_to_commit(sqlite_db, trips):
    await warm(sqlite_db)
    trips.clear()
    async with sqlite_db.write() as conn:
        inserted = await conn.execute(
            insert(kv), [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
        )
        rows = (await conn.execute(select(kv.c.key).order_by(kv.c.key))).scalars().all()
    assert inserted.rowcount == 2 and rows == ["a", "b"]
    assert trips == ["_run", "_run", "commit"]
    assert await count(sqlite_db) == 2


async def test_a_transaction_that_ran_nothing_costs_no_trip(sqlite_db, trips):
    await warm(sqlite_db)
    trips.clear()
    async with sqlite_db.write():
        pass
    assert trips == []
    async with sqlite_db.write() as conn:  # the next one begins as it should
        await conn.execute(insert(kv).values(key="c", value="3"))
    assert await count(sqlite_db) == 1


async def test_a_failed_statement_rolls_the_whole_transaction_back(sqlite_db):
    with pytest.raises(IntegrityError):
        async with sqlite_db.write() as conn:
            await conn.execute(insert(kv).values(key="a", value="1"))
            await conn.execute(insert(kv).values(key="a", value="again"))
    assert await count(sqlite_db) == 0


async def test_a_streamed_first_statement_still_opens_the_transaction(sqlite_db):
    with pytest.raises(RuntimeError):
        async with sqlite_db.write() as conn:
            streamed = await conn.stream(insert(kv).values(key="a", value="1").returning(kv.c.key))
            assert [row.key async for row in streamed] == ["a"]
            raise RuntimeError("roll back")
    assert await count(sqlite_db) == 0


async def test_a_read_ends_its_snapshot_so_the_next_read_sees_new_writes(sqlite_db):
    assert await count(sqlite_db) == 0
    other = Database(sqlite_db.url)
    try:
        async with other.write() as conn:
            await conn.execute(insert(kv).values(key="a", value="1"))
    finally:
        await other.dispose()
    assert await count(sqlite_db) == 1  # the pooled connection's old snapshot was ended


async def test_begin_immediate_takes_the_write_lock_with_the_first_statement(sqlite_db, tmp_path):
    """Two engines on one file: the second writer waits for the first (busy timeout), and
    an error in the deferred BEGIN surfaces on the statement it rode with."""
    async with sqlite_db.write() as conn:
        await conn.execute(insert(kv).values(key="a", value="1"))
        # Another connection cannot write while this transaction holds the lock.
        raw = await aiosqlite.connect(str(sqlite_db.url).split("///", 1)[1], timeout=0.05)
        try:
            with pytest.raises(aiosqlite.OperationalError, match="locked"):
                await raw.execute("BEGIN IMMEDIATE")
        finally:
            await raw.close()
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
    try:
        with pytest.raises(OperationalError):
            async with broken.write() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await broken.dispose()
