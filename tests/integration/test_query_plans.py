"""A lookup planned while its table was empty keeps using the index once the table has grown.

PostgreSQL caches a generic plan for a prepared statement after five runs. asyncpg prepares
every statement, so a server started on an empty database planned the identity lookup of a
surge's first buyers as a scan of the (then empty) table, and kept that plan while the table
grew (until an ANALYZE, which autovacuum may not run in time, or at all): with 60,000
identities a lookup took 100-280 ms and sold-out answers for new buyers fell from 2.3k to
0.9k per second. dropcast's connections plan each statement for its parameters instead
(``plan_cache_mode = force_custom_plan``)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from sqlalchemy import text

from commerce.core import Commerce
from tests.helpers import capsule_spec, live_drop

GROWN = 20_000
BATCH = 100  # buyers arriving together: one lookup


async def grow_identities(commerce: Commerce) -> None:
    async with commerce.db.writer.begin() as conn:
        if commerce.db.dialect == "postgresql":
            await conn.execute(
                text(
                    "WITH made AS (INSERT INTO customers (display_name, created_at) "
                    "SELECT 'grown' || g, now() FROM generate_series(1, :n) g RETURNING id) "
                    "INSERT INTO identities (identity, customer_id, created_at) "
                    "SELECT 'web:grown' || id || '@x.test', id, now() FROM made"
                ),
                {"n": GROWN},
            )
        else:
            await conn.execute(
                text(
                    "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :n) "
                    "INSERT INTO customers (display_name, created_at) "
                    "SELECT 'grown' || n, '2026-01-01 00:00:00.000000' FROM g"
                ),
                {"n": GROWN},
            )
            await conn.execute(
                text(
                    "INSERT INTO identities (identity, customer_id, created_at) "
                    "SELECT 'web:grown' || id || '@x.test', id, created_at FROM customers"
                )
            )


async def test_the_identity_lookup_reads_the_index_after_its_table_grew(commerce):
    customers = commerce.customers
    for batch in range(8):  # planned (and on PostgreSQL cached) while the table is small
        await asyncio.gather(
            *(customers.resolve(f"web:early{batch}-{i}@x.test") for i in range(BATCH))
        )
    await grow_identities(commerce)
    assert await customers.resolve("web:grown1000@x.test") == 1000  # found, not created

    db = commerce.db
    async with db.reader.connect() as conn:
        if db.dialect == "postgresql":
            # The lookup as this connection has it prepared, explained with its cached plan.
            wanted = ", ".join(f"'web:grown{i}@x.test'" for i in range(2000, 2010))
            row = (
                await conn.execute(
                    text(
                        "SELECT name FROM pg_prepared_statements WHERE statement LIKE"
                        " '%FROM identities%= ANY%' AND statement NOT LIKE '%pg_prepared%'"
                    )
                )
            ).one()
            plan = "\n".join(
                line
                for (line,) in await conn.execute(
                    text(f"EXPLAIN EXECUTE {row.name}(ARRAY[{wanted}])")
                )
            )
        else:
            sql = str(customers._known.compile(dialect=conn.dialect))
            plan = "\n".join(
                str(r[-1])
                for r in await conn.exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {sql}", ('["web:grown7@x.test"]',)
                )
            )
    assert "Index" in plan or "INDEX" in plan, plan
    assert "Seq Scan" not in plan and "SCAN identities" not in plan, plan


HOLDS = 2_000  # placed by surges, on tables without statistics (autovacuum off or behind)


async def surges(commerce: Commerce, drop_id: int) -> None:
    """``HOLDS`` holds on the drop, placed as a surge places them: batches of claims."""
    for batch in range(HOLDS // 200):
        buyers = await asyncio.gather(
            *(commerce.customers.resolve(f"web:s{batch}-{i}@x.test") for i in range(200))
        )
        await asyncio.gather(*(commerce.claims.claim(drop_id, b) for b in buyers))


def holds_lookups(plan: object) -> list[tuple[str, str]]:
    """(index or scan, condition) of every read of the holds table in a JSON plan."""
    found: list[tuple[str, str]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            index = str(node.get("Index Name", ""))
            reads = node.get("Node Type") != "ModifyTable"  # the INSERT itself
            if reads and ("holds" in index or node.get("Relation Name") == "holds"):
                kind = index or str(node.get("Node Type"))
                found.append((kind, str(node.get("Index Cond", node.get("Recheck Cond", "")))))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(plan)
    return found


async def test_a_batch_reads_each_claims_own_holds_not_every_hold_of_the_drop(commerce):
    """The batch statement checks, per claim, the hold its key made and what its buyer
    holds. On a drop with thousands of holds and no table statistics, PostgreSQL served
    both from an index leading with the drop alone, reading every hold of the drop for
    every claim (70-190 ms a batch at 15,000 holds). Each lookup now has an index only it
    can use."""
    drop_id = await live_drop(commerce, capsule_spec(100_000))
    await surges(commerce, drop_id)
    buyers = [await commerce.customers.resolve(f"web:new{i}@x.test") for i in range(50)]
    claims = commerce.claims
    db = commerce.db
    async with db.read() as conn:
        shape = await claims.shapes.get(conn, drop_id)
    hold_sku, pool, lines = shape.target(None, None)
    statement = claims._sql.place_batch(shape, hold_sku, pool, lines)
    params = claims._sql.batch_params([(b, f"key-{b}", "web") for b in buyers])
    now = commerce.clock.now()
    params.update(qty=1, now=now, expires_at=now + timedelta(minutes=10))
    async with db.writer.connect() as conn:
        compiled = statement.compile(dialect=conn.dialect)
        values = compiled.construct_params(params)
        processors = compiled._bind_processors
        args = tuple(
            processors[key](values[key]) if key in processors else values[key]
            for key in compiled.positiontup or ()
        )
        if db.dialect == "postgresql":
            [(plan,)] = (
                await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled.string}", args)
            ).all()
            lookups = holds_lookups(json.loads(plan) if isinstance(plan, str) else plan)
        else:
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", args)
            lookups = [(str(r[-1]), str(r[-1])) for r in rows if "holds" in str(r[-1])]
    assert lookups
    for index, condition in lookups:
        assert "Seq Scan" not in index and not index.startswith("SCAN holds"), lookups
        # Every read of holds is narrowed past the drop: by key, buyer, status or expiry.
        narrowed = ("claim_key", "customer_id", "status", "expires_at")
        assert any(column in condition for column in narrowed), lookups
