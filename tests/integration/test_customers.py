"""Identities → customers: created once under concurrency, linked into one person."""

from __future__ import annotations

import asyncio

from sqlalchemy import event, func, select

from commerce.core import Commerce
from commerce.storage.tables import customers, identities


async def test_a_surge_of_new_and_repeated_identities_creates_each_customer_once(commerce):
    names = [f"web:fan{i % 150}@example.com" for i in range(600)]
    ids = await asyncio.gather(*(commerce.customers.resolve(n) for n in names))
    by_name: dict[str, set[int]] = {}
    for name, customer in zip(names, ids, strict=True):
        by_name.setdefault(name, set()).add(customer)
    assert all(len(v) == 1 for v in by_name.values())
    assert len({next(iter(v)) for v in by_name.values()}) == 150
    async with commerce.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(identities))).scalar() == 150


async def test_first_time_buyers_of_a_surge_are_created_in_one_insert_each_named_right(commerce):
    """A batch of new identities costs one INSERT of customers (it was one per buyer on
    SQLite: a thread hop each), and each identity still gets its own customer, with its
    own display name."""
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO customers"):
            seen.append(statement)

    engine = commerce.db.writer.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        first = await commerce.customers.resolve("web:warmup@example.com", "Warm")
        people = [(f"twitch:{i}", f"Viewer {i}") for i in range(300)]
        ids = await asyncio.gather(*(commerce.customers.resolve(i, n) for i, n in people))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(set(ids)) == 300 and first not in ids
    assert len(seen) <= 3, f"{len(seen)} INSERTs for 301 new customers"
    for (identity, name), customer_id in zip(people, ids, strict=True):
        person = await commerce.customers.get(customer_id)
        assert (person.identities, person.display_name) == ((identity,), name), identity


async def test_two_processes_racing_on_one_identity_agree(db, clock):
    # Two cores with separate caches stand in for two processes on one database.
    a, b = Commerce.build(db, clock), Commerce.build(db, clock)
    first, second = await asyncio.gather(
        a.customers.resolve("discord:77"), b.customers.resolve("discord:77")
    )
    assert first == second


async def test_linking_folds_identities_into_one_customer_and_updates_the_cache(commerce):
    twitch = await commerce.customers.resolve("twitch:5")
    discord = await commerce.customers.resolve("discord:9")
    kept = await commerce.customers.link("discord:9", "twitch:5")
    assert kept == discord
    assert await commerce.customers.resolve("twitch:5") == discord
    person = await commerce.customers.get(discord)
    assert person.identities == ("discord:9", "twitch:5")
    async with commerce.db.read() as conn:
        merged = (
            await conn.execute(select(customers.c.merged_into).where(customers.c.id == twitch))
        ).scalar()
    assert merged == discord
