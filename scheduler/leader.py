"""Exactly one scheduler leader per database.

PostgreSQL: a session-level advisory lock held on a dedicated connection; if the leader
process dies its connection closes, the lock is released, and a follower polling
``pg_try_advisory_lock`` takes over within ``poll_seconds``. SQLite serves one process,
which is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from commerce.storage.database import Database

log = logging.getLogger(__name__)
LOCK_KEY = 0x64726F70  # "drop": one advisory lock id for the scheduler role


class Leadership:
    def __init__(self, db: Database, *, poll_seconds: float = 2.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self.is_leader = False
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        if self.db.dialect == "sqlite":
            self.is_leader = True
            return True
        if self._conn is None:
            self._conn = await self.db.writer.connect()
            # Autocommit: the lock belongs to the session, not to a transaction.
            await self._conn.execution_options(isolation_level="AUTOCOMMIT")
        got = (
            await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
        ).scalar()
        self.is_leader = bool(got)
        return self.is_leader

    async def still_leader(self) -> bool:
        if self.db.dialect == "sqlite" or self._conn is None:
            return self.is_leader
        try:
            await self._conn.execute(text("SELECT 1"))
        except Exception:
            log.warning("lost the leader connection; stepping down")
            self.is_leader = False
            await self._drop_connection()
        return self.is_leader

    async def run(
        self,
        stop: asyncio.Event,
        on_elected: Callable[[], Awaitable[None]],
        on_deposed: Callable[[], Awaitable[None]],
    ) -> None:
        """Campaign until elected, serve while leader, step down on stop or lost lock."""
        while not stop.is_set():
            try:
                if not self.is_leader and await self.try_acquire():
                    log.info("this process is the scheduler leader")
                    await on_elected()
                elif self.is_leader and not await self.still_leader():
                    await on_deposed()
            except Exception:
                log.exception("leader election failed; retrying")
                await self._drop_connection()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_seconds)
        if self.is_leader:
            await on_deposed()
        await self.release()

    async def release(self) -> None:
        if self._conn is not None and self.is_leader:
            try:
                await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            except Exception:
                log.debug("unlock failed; closing the connection releases it anyway")
        self.is_leader = False
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except Exception:
                log.debug("closing the leader connection failed")
