"""SQLAlchemy's aiosqlite driver with each statement in one trip to aiosqlite's thread.

aiosqlite runs sqlite3 on a thread of its own and each call is a round trip to it: a queue
put, the thread's work, then a wake-up of the event loop through its self-pipe. SQLAlchemy's
adapter makes three or four per statement (open a cursor, execute, fetch the rows, close),
and on a machine where system calls are dear those trips cost the loop more CPU than the
statement (measured: an empty write transaction took ~1 ms of the loop's CPU). This cursor
does the four in one trip; the results come back with it. Everything else (connections,
commit, rollback, errors, the pool) is SQLAlchemy's aiosqlite dialect unchanged.

Use: ``create_async_engine(url, module=one_trip_dbapi())``.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# (description, rows, rowcount, lastrowid) of one statement
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(
    connection: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> _Outcome:
    """On aiosqlite's thread: the transaction's BEGIN if this is its first statement, then
    the whole statement, rows and all."""
    cursor = connection.cursor()
    try:
        if begin is not None:
            cursor.execute(begin)
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statements each take one trip to aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor is opened here: each statement opens and closes its own.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        return None  # nothing stays open between trips

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            return await_(self._trip(operation, parameters, many=False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> Any:
        try:
            return await_(self._trip(operation, seq_of_parameters, many=True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    async def _trip(self, operation: str, parameters: Any, *, many: bool) -> None:
        connection: aiosqlite.Connection = self._connection  # type: ignore[assignment]
        adapted: OneTripConnection = self._adapt_connection  # type: ignore[assignment]
        async with adapted._execute_mutex:
            begin, adapted._begin = adapted._begin, None
            outcome: _Outcome = await connection._execute(  # type: ignore[no-untyped-call]
                _run, connection._conn, begin, operation, parameters, many
            )
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """A connection whose BEGIN rides with the transaction's first statement: a transaction
    costs one trip per statement and one for its end, and one without a statement none."""

    __slots__ = ("_begin",)
    _cursor_cls = OneTripCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin: str | None = None

    def begin_with_next_statement(self, sql: str) -> None:
        """Open a transaction with ``sql`` (``BEGIN`` or ``BEGIN IMMEDIATE``) when the next
        statement runs, in its trip. SQLite takes a deferred transaction's snapshot, and an
        immediate one's write lock, before that statement either way."""
        self._begin = sql

    def cursor(self, server_side: bool = False) -> Any:
        if server_side and self._begin is not None:
            # A streaming cursor makes trips of its own: its transaction begins first.
            begin, self._begin = self._begin, None
            OneTripCursor(self).execute(begin)
        return super().cursor(server_side)

    @property
    def in_transaction(self) -> bool:
        """A transaction open or about to be (read from sqlite3, no trip to the thread)."""
        return self._begin is not None or bool(self._connection.in_transaction)

    def commit(self) -> None:
        if self._begin is not None:  # no statement ran: nothing began, nothing to commit
            self._begin = None
            return
        super().commit()

    def rollback(self) -> None:
        if self._begin is not None:
            self._begin = None
            return
        super().rollback()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def one_trip_dbapi() -> OneTripDBAPI:
    """The DBAPI module for ``create_async_engine(..., module=...)``."""
    return OneTripDBAPI(aiosqlite, sqlite3)
