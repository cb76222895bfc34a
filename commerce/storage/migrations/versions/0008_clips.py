"""Clips of the stream kept with each drop (the shoppable replay)

Revision ID: 0008_clips
Revises: 0007_webhooks
Create Date: 2026-11-29 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import commerce.storage.tables

revision = "0008_clips"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ident = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    utc = commerce.storage.tables.UTCDateTime(timezone=True)
    op.create_table(
        "clips",
        sa.Column("id", ident, autoincrement=True, nullable=False),
        sa.Column("drop_id", ident, nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("clip_id", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("thumbnail_url", sa.Text(), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.Column("ready_at", utc, nullable=True),
        sa.CheckConstraint(
            "reason IN ('opened', 'sold_out', 'command')", name=op.f("ck_clips_reason_known")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'ready', 'failed')", name=op.f("ck_clips_status_known")
        ),
        sa.ForeignKeyConstraint(["drop_id"], ["drops.id"], name=op.f("fk_clips_drop_id_drops")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clips")),
        sa.UniqueConstraint("platform", "clip_id", name="uq_clips_platform_clip"),
    )
    with op.batch_alter_table("clips") as batch:
        batch.create_index("ix_clips_drop", ["drop_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clips") as batch:
        batch.drop_index("ix_clips_drop")
    op.drop_table("clips")
