"""Alembic environment. dropcast runs migrations in-process (``commerce.storage.migrate``),
handing a live connection in ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context

from commerce.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - offline use is not supported
    raise RuntimeError("run migrations through `dropcast db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
