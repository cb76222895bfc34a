"""After the sale: shipping rates per drop; address, shipping, fulfilment and pickup code per
order; customers that asked to be forgotten

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import commerce.storage.tables

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = commerce.storage.tables.UTCDateTime(timezone=True)
    with op.batch_alter_table("drops") as batch:
        batch.add_column(sa.Column("shipping", sa.JSON(), nullable=True))
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("forgotten_at", utc, nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("shipping_minor", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("ship_to", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("fulfilment", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("fulfilled_at", utc, nullable=True))
        batch.add_column(sa.Column("carrier", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("tracking", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("pickup_code", sa.String(length=12), nullable=True))
        batch.create_check_constraint(
            "fulfilment_known", "fulfilment IS NULL OR fulfilment IN ('shipped', 'picked_up')"
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint("ck_orders_fulfilment_known", type_="check")
        for column in (
            "pickup_code",
            "tracking",
            "carrier",
            "fulfilled_at",
            "fulfilment",
            "ship_to",
            "shipping_minor",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("forgotten_at")
    with op.batch_alter_table("drops") as batch:
        batch.drop_column("shipping")
