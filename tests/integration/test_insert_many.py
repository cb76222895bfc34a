"""``Database.insert_many`` stores exactly what an executemany of the same rows stores,
on both engines: JSON details (a dict, an empty one, none), UTC times, NULLs and text
that looks like a number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, text

from commerce.core import Commerce
from commerce.storage.tables import activity, claims
from tests.helpers import capsule_spec, live_drop


def activity_rows(drop_id: int, customer_id: int, at: datetime) -> list[dict[str, Any]]:
    details: list[Any] = [{"tag": "reminder:5m"}, {"tag": None}, {}, None, {"n": 3, "é": "ü"}]
    return [
        {
            "drop_id": drop_id,
            "customer_id": customer_id if i % 2 else None,
            "kind": "link_opened",
            "at": at + timedelta(microseconds=i),
            "detail": detail,
        }
        for i, detail in enumerate(details)
    ]


def claim_rows(drop_id: int, customer_id: int, at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "drop_id": drop_id,
            "customer_id": customer_id,
            "source": source,
            "arrived_at": at,
            "decided_at": at + timedelta(seconds=1),
            "outcome": "sold_out",
            "hold_id": None,
        }
        for source in ("web", "123", "discord")
    ]


@pytest.mark.parametrize("table, make", [(activity, activity_rows), (claims, claim_rows)])
async def test_insert_many_stores_what_an_executemany_stores(commerce: Commerce, table, make):
    drop_id = await live_drop(commerce, capsule_spec(3))
    customer_id = await commerce.customers.resolve("web:bulk@example.com")
    at = datetime(2026, 11, 29, 23, 30, 1, 250_000, tzinfo=UTC)
    rows = make(drop_id, customer_id, at)
    db = commerce.db
    async with db.write() as conn:
        await conn.execute(insert(table), rows)
        await db.insert_many(conn, table, rows)
        await db.insert_many(conn, table, [])  # nothing to write: no statement
    async with db.read() as conn:
        stored = [
            {k: v for k, v in row._mapping.items() if k != "id"}
            for row in await conn.execute(select(table).order_by(table.c.id))
        ]
        # As the driver returns them (JSON as text, SQLite's times as text): the same too.
        raw = [
            tuple(row)[1:]
            for row in await conn.execute(text(f"SELECT * FROM {table.name} ORDER BY id"))
        ]
    assert len(stored) == 2 * len(rows)
    assert stored[: len(rows)] == stored[len(rows) :] == rows
    assert raw[: len(rows)] == raw[len(rows) :]
