"""Migrations build exactly the schema the tables declare, and carry old data forward."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from commerce.storage.database import Database
from commerce.storage.migrate import upgrade
from commerce.storage.tables import metadata
from tests.conftest import truncate_all


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_build_the_schema_the_tables_declare(db):
    async with db.read() as conn:
        assert await conn.run_sync(_differences) == []


@pytest.fixture(params=["sqlite", "postgresql"])
async def blank(request, tmp_path: Path):
    """A database with no tables at all, on each engine."""
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    else:
        database = Database(request.getfixturevalue("pg_url"))
        await truncate_all(database)
        async with database.write() as conn:
            for table in reversed(metadata.sorted_tables):
                await conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
            await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    try:
        yield database
    finally:
        if request.param == "postgresql":
            await _restore(database)
        await database.dispose()


async def _restore(database: Database) -> None:
    async with database.write() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await upgrade(database)


async def test_0004_copies_each_drops_catalogue_and_prices_its_holds(blank):
    await upgrade(blank, "0003")
    statements = [
        "INSERT INTO products (sku, title, price_minor, currency) VALUES "
        "('CHIPS', 'Chips', 500, 'EUR'), ('SALSA', 'Salsa', 450, 'EUR')",
        "INSERT INTO customers (id, created_at) VALUES (1, '2026-11-01 10:00:00')",
        "INSERT INTO drops (id, title, format, state, hold_seconds, per_customer_limit, "
        "created_at) VALUES (1, 'Capsule', 'capsule', 'live', 60, 1, '2026-11-01 10:00:00'), "
        "(2, 'Bundle', 'bundle', 'live', 60, 1, '2026-11-01 10:00:00')",
        "INSERT INTO drop_stock (drop_id, sku, pool, per_unit, position, total, sold, held) "
        "VALUES (1, 'CHIPS', 'ship', 1, 0, 5, 0, 1), (2, 'CHIPS', 'ship', 2, 0, 8, 0, 2), "
        "(2, 'SALSA', 'ship', 1, 1, 4, 0, 1)",
        "INSERT INTO holds (drop_id, customer_id, sku, pool, qty, status, claim_key, source, "
        "created_at, expires_at) VALUES "
        "(1, 1, 'CHIPS', 'ship', 1, 'active', 'a', 'link', '2026-11-01 10:00:00', "
        "'2026-11-01 10:01:00'), "
        "(2, 1, NULL, 'ship', 1, 'active', 'b', 'link', '2026-11-01 10:00:00', "
        "'2026-11-01 10:01:00')",
    ]
    async with blank.write() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await upgrade(blank)
    async with blank.read() as conn:
        catalogue = (
            await conn.execute(
                text("SELECT drop_id, sku, price_minor FROM drop_products ORDER BY 1, 2")
            )
        ).all()
        dropped = (
            await conn.execute(text("SELECT id, price_minor, currency FROM drops ORDER BY id"))
        ).all()
        held = (
            await conn.execute(text("SELECT drop_id, price_minor FROM holds ORDER BY id"))
        ).all()
    assert [tuple(r) for r in catalogue] == [
        (1, "CHIPS", 500),
        (2, "CHIPS", 500),
        (2, "SALSA", 450),
    ]
    # The bundle is priced as the sum of its parts: 2 x 5.00 + 4.50.
    assert [tuple(r) for r in dropped] == [(1, None, "EUR"), (2, 1450, "EUR")]
    assert [tuple(r) for r in held] == [(1, 500), (2, 1450)]
