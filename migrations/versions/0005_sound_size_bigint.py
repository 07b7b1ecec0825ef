"""Sound sizes as 64-bit integers on database servers (a WAV over 2 GiB overflows PostgreSQL's INTEGER).

SQLite's INTEGER is already 64-bit: nothing changes there.

Revision ID: 0005
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("sounds", "size", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("sounds", "size", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
