"""Hold indexes that only the lookup they serve can use

A claim batch looks up, per claim, the hold its key made (drop, claim key) and what its
buyer holds (buyer, drop). Without fresh statistics (a new shop, or autovacuum behind a
surge) PostgreSQL often served both from any index leading with the drop, reading every
hold of the drop per claim. The drop's index now covers active holds only (partial: the
expiry queries it serves all ask for active holds), and the buyer's index leads with the
buyer, so only the right index matches each lookup.

Revision ID: 0009_hold_lookup_indexes
Revises: 0008_clips
Create Date: 2026-11-29 23:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_hold_lookup_indexes"
down_revision = "0008_clips"
branch_labels = None
depends_on = None

ACTIVE = sa.text("status = 'active'")


def upgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_drop_status_expiry")
        batch_op.drop_index("ix_holds_drop_customer")
        batch_op.create_index(
            "ix_holds_drop_active",
            ["drop_id", "expires_at"],
            unique=False,
            sqlite_where=ACTIVE,
            postgresql_where=ACTIVE,
        )
        batch_op.create_index("ix_holds_customer_drop", ["customer_id", "drop_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_index("ix_holds_customer_drop")
        batch_op.drop_index("ix_holds_drop_active")
        batch_op.create_index("ix_holds_drop_customer", ["drop_id", "customer_id"], unique=False)
        batch_op.create_index(
            "ix_holds_drop_status_expiry", ["drop_id", "status", "expires_at"], unique=False
        )
