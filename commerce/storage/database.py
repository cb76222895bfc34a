"""The Database: engines, write/read connections and engine-specific locking.

SQLite (embedded default): WAL, a busy timeout, and every write transaction opened with
``BEGIN IMMEDIATE`` so that two writers never deadlock upgrading a read lock. Inside one
process writes also queue on an asyncio lock, which keeps them in arrival order (FIFO)
instead of racing in SQLite's busy handler.

PostgreSQL: READ COMMITTED through asyncpg. Claims serialise per drop on the drop row
(``FOR NO KEY UPDATE``, which does not block foreign-key checks), so the conditional insert
that follows sees every hold committed before it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    any_,
    bindparam,
    event,
    exc,
    func,
    insert,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState
from sqlalchemy.sql.dml import Insert

from commerce.storage.sqlite_driver import one_trip_dbapi
from commerce.storage.tables import drops

SQLITE_BUSY_TIMEOUT_MS = 10_000
_Processors = list[Callable[[Any], Any] | None]  # a column type's bind processing, each

# What a lost or refused database connection looks like, wrapped by SQLAlchemy or raw from
# the driver's connect (asyncpg raises OSError itself; SQLite "unable to open database file"
# is an OperationalError). Not InterfaceError as such: SQLite uses it for a bad parameter.
_UNREACHABLE = (
    exc.OperationalError,
    exc.TimeoutError,  # no pooled connection came free in time
    asyncpg.PostgresConnectionError,  # also "connection does not exist"
    asyncpg.CannotConnectNowError,  # the server is starting or shutting down
    OSError,  # ConnectionRefusedError, ConnectionResetError, no route to host
    TimeoutError,  # connect timeout
)


def database_unreachable(error: BaseException) -> bool:
    """Whether ``error`` (or what it came from) says the database cannot be reached right
    now, unlike a failed query or a bug: the same request may well work in a moment."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _UNREACHABLE):
            return True
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return False


# The engine's own INSERT, the one with ``on_conflict_do_nothing`` / ``on_conflict_do_update``.
UpsertInsert = postgresql.Insert | sqlite.Insert


class Database:
    """Owns the engines. Use ``write()`` for any change and ``read()`` for queries."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r}")
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self._bulk_inserts: dict[tuple[str, tuple[str, ...]], tuple[Insert, _Processors]] = {}
        if self.dialect == "sqlite":
            if parsed.database in (None, "", ":memory:"):
                raise ValueError("SQLite needs a file path (WAL does not work in memory)")
            self.writer = self._sqlite_engine(url, echo=echo, immediate=True, pool_size=1)
            self.reader = self._sqlite_engine(url, echo=echo, immediate=False, pool_size=4)
        else:
            engine = create_async_engine(
                url,
                echo=echo,
                hide_parameters=True,  # values may be secrets (kv), never in a log line
                pool_size=pool_size,
                max_overflow=pool_size * 2,
                pool_pre_ping=False,
                # asyncpg prepares every statement, and PostgreSQL then caches a generic
                # plan: one made while a table was empty (a new shop) scanned it whole
                # ever after, as it grew (a surge's identity lookups took 100-280 ms).
                # Planning each run for its parameters costs far less than that.
                connect_args={"server_settings": {"plan_cache_mode": "force_custom_plan"}},
            )
            self.writer = self.reader = engine

    def insert(self, table: Table) -> UpsertInsert:
        """An INSERT in this engine's dialect: the one place that picks it, so every upsert
        (``on_conflict_do_*``) reads the same on SQLite and PostgreSQL."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def one_of(self, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
        """``column`` is in the list of text or numbers bound as ``name`` (``listed``): one
        parameter however long the list, so the statement is compiled once and nothing is
        rewritten per call, as an expanding ``IN (…)`` is (its parameters processed one by
        one: most of a batch's lookup). ``= ANY(array)`` on PostgreSQL; SQLite reads a
        JSON array with ``json_each``."""
        if self.dialect == "postgresql":
            return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
        listed = func.json_each(bindparam(name, type_=String)).table_valued("value")
        return column.in_(select(listed.c.value))

    async def insert_many(
        self, conn: AsyncConnection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """INSERT ``rows`` (dicts with the same keys) as one statement bound with one
        parameter per column (PostgreSQL unnests arrays) or one in all (SQLite reads a JSON
        array of rows). An executemany processes each row's parameters one by one, which
        was most of the cost of a surge's claims-log and funnel writes. Every value still
        goes through its column type's bind processing, so the rows stored are the same."""
        if not rows:
            return
        columns = tuple(rows[0])
        stmt, processors = self._bulk_insert(table, columns)
        params: dict[str, object]
        if self.dialect == "postgresql":  # the array types process their items
            params = {f"c{i}": [row[name] for row in rows] for i, name in enumerate(columns)}
        else:
            params = {
                "rows": json.dumps(
                    [
                        [
                            row[name] if process is None else process(row[name])
                            for name, process in zip(columns, processors, strict=True)
                        ]
                        for row in rows
                    ]
                )
            }
        await conn.execute(stmt, params)

    def _bulk_insert(self, table: Table, columns: tuple[str, ...]) -> tuple[Insert, _Processors]:
        """The statement of ``insert_many`` for these columns, built once."""
        key = (table.name, columns)
        built = self._bulk_inserts.get(key)
        if built is None:
            types = [table.c[name].type for name in columns]
            if self.dialect == "postgresql":
                rows = (
                    func.unnest(
                        *(
                            bindparam(f"c{i}", type_=postgresql.ARRAY(type_))
                            for i, type_ in enumerate(types)
                        )
                    )
                    .table_valued(*columns)
                    .render_derived("bulk")
                )
                source = select(*(rows.c[name] for name in columns))
                processors: _Processors = []
            else:
                listed = func.json_each(bindparam("rows", type_=String)).table_valued(
                    "key", "value"
                )
                source = select(
                    *(func.json_extract(listed.c.value, f"$[{i}]") for i in range(len(columns)))
                ).order_by(listed.c.key)
                processors = [type_.bind_processor(self.writer.dialect) for type_ in types]
            stmt = insert(table).from_select(list(columns), source)
            built = self._bulk_inserts[key] = (stmt, processors)
        return built

    def listed(self, values: Sequence[str | int | None]) -> object:
        """``values`` bound as one parameter in this engine: for ``one_of``, and for
        SQLite's ``json_each`` (a JSON array; an array on PostgreSQL)."""
        return list(values) if self.dialect == "postgresql" else json.dumps(list(values))

    @staticmethod
    def _sqlite_engine(url: str, *, echo: bool, immediate: bool, pool_size: int) -> AsyncEngine:
        engine = create_async_engine(
            url,
            echo=echo,
            hide_parameters=True,  # as above
            pool_size=pool_size,
            max_overflow=0,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            module=one_trip_dbapi(),  # a statement is one trip to aiosqlite's thread, not four
            pool_reset_on_return=None,  # see _on_reset
        )
        begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            # Take over BEGIN from the driver (see SQLAlchemy's "sqlite_transactions" docs).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes in WAL
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.connection.dbapi_connection.begin_with_next_statement(begin_sql)

        @event.listens_for(engine.sync_engine, "reset")
        def _on_reset(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
            # The pool's own reset rolls back on every return, a trip to aiosqlite's thread
            # even after a COMMIT: roll back only a transaction still open.
            if state.asyncio_safe and dbapi_connection.in_transaction:
                dbapi_connection.rollback()

        return engine

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on success, rolled back on any exception."""
        if self._write_lock is not None:
            async with self._write_lock, self.writer.begin() as conn:
                yield conn
        else:
            async with self.writer.begin() as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (a consistent snapshot on both engines)."""
        async with self.reader.connect() as conn:
            yield conn

    async def lock_drop(self, conn: AsyncConnection, drop_id: int) -> bool:
        """Serialise stock-taking writes on one drop; returns False if the drop is unknown.

        SQLite needs nothing: BEGIN IMMEDIATE already holds the database's write lock.
        """
        if self.dialect == "sqlite":
            return True
        # key_share=True renders FOR NO KEY UPDATE on PostgreSQL.
        stmt = select(drops.c.id).where(drops.c.id == drop_id).with_for_update(key_share=True)
        return (await conn.execute(stmt)).first() is not None

    async def ping(self) -> None:
        async with self.read() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()
