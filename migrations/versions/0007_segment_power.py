"""Segments record their window's mean power.

Search by example (`like:FILE`, `earmark similar`) pools a file's window embeddings weighted by
each window's mean power (engine/window_pooling.py). For a file that is not indexed the power
comes from its samples; for an indexed one, from this column, so both give the same vector.
Rows indexed before this revision hold NULL: the audio is not in the store, so it cannot be
filled in here, and search by example embeds such a file from its audio instead.

Revision ID: 0007
Revises: 0006
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("power", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.drop_column("power")
