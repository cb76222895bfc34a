"""drop_stock.held: a counter of SKU units in active holds

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drop_stock", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held", sa.Integer(), nullable=False, server_default="0"))
        batch_op.create_check_constraint(op.f("ck_drop_stock_held_not_negative"), "held >= 0")
    # Existing active holds: fill the counter from the rows it summarises.
    op.execute(
        """
        UPDATE drop_stock SET held = drop_stock.per_unit * COALESCE((
            SELECT SUM(h.qty) FROM holds h
            WHERE h.drop_id = drop_stock.drop_id AND h.pool = drop_stock.pool
              AND (h.sku IS NULL OR h.sku = drop_stock.sku) AND h.status = 'active'
        ), 0)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("drop_stock", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_drop_stock_held_not_negative"), type_="check")
        batch_op.drop_column("held")
