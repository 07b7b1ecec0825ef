"""Index generations record the largest segment id of the store they reflect.

Index files are checkpoints: a commit with few changes since the last file writes nothing and
readers catch up from the store (engine/indexes.py). With the store's largest segment id at
write time, `earmark check` tells a lagging checkpoint (ids added after it, or deleted after
it) from a damaged one (ids it should hold but lacks, ids the store never had).

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("index_generations") as batch:
        batch.add_column(sa.Column("store_max_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_generations") as batch:
        batch.drop_column("store_max_id")
