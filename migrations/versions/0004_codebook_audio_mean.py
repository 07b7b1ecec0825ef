"""Codebooks keep the audio mean they centre with (codes stay reproducible as a library grows).

Revision ID: 0004
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing codebooks get NULL: earmark recomputes their mean from the library on first use.
    with op.batch_alter_table("codebooks") as batch:
        batch.add_column(sa.Column("audio_mean", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("codebooks") as batch:
        batch.drop_column("audio_mean")
