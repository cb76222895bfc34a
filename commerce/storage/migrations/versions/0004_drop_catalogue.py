"""A drop's catalogue is fixed when it is created; a hold carries the price it was placed at

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "drop_products",
        sa.Column("drop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.CheckConstraint("price_minor >= 0", name=op.f("ck_drop_products_price_not_negative")),
        sa.ForeignKeyConstraint(
            ["drop_id"], ["drops.id"], name=op.f("fk_drop_products_drop_id_drops")
        ),
        sa.ForeignKeyConstraint(
            ["sku"], ["products.sku"], name=op.f("fk_drop_products_sku_products")
        ),
        sa.PrimaryKeyConstraint("drop_id", "sku", name=op.f("pk_drop_products")),
    )
    # Existing drops keep the catalogue they show today.
    op.execute(
        """
        INSERT INTO drop_products (drop_id, sku, title, price_minor, currency, image_url)
        SELECT DISTINCT s.drop_id, p.sku, p.title, p.price_minor, p.currency, p.image_url
        FROM drop_stock s JOIN products p ON p.sku = s.sku
        """
    )
    # Every drop gets its currency; a bundle its price (the sum of its parts unless set).
    op.execute(
        """
        UPDATE drops SET currency = (
            SELECT MIN(dp.currency) FROM drop_products dp WHERE dp.drop_id = drops.id
        ) WHERE currency IS NULL
        """
    )
    op.execute(
        """
        UPDATE drops SET price_minor = (
            SELECT SUM(dp.price_minor * s.per_unit) FROM drop_stock s
            JOIN drop_products dp ON dp.drop_id = s.drop_id AND dp.sku = s.sku
            WHERE s.drop_id = drops.id AND s.pool = (
                SELECT MIN(s2.pool) FROM drop_stock s2 WHERE s2.drop_id = drops.id
            )
        ) WHERE format = 'bundle' AND price_minor IS NULL
        """
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_minor", sa.BigInteger(), nullable=True))
    op.execute(
        """
        UPDATE holds SET price_minor = COALESCE(
            (SELECT dp.price_minor FROM drop_products dp
             WHERE dp.drop_id = holds.drop_id AND dp.sku = holds.sku),
            (SELECT d.price_minor FROM drops d WHERE d.id = holds.drop_id),
            0
        )
        """
    )
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.alter_column("price_minor", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("holds", schema=None) as batch_op:
        batch_op.drop_column("price_minor")
    op.drop_table("drop_products")
