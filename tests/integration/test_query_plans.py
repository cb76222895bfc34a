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

from sqlalchemy import text

from commerce.core import Commerce

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
