"""An identity proven by signing in (OAuth) carries when it was proven

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import commerce.storage.tables

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.add_column(
            sa.Column(
                "verified_at", commerce.storage.tables.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("verified_at")
