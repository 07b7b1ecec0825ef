"""Concept codes: vocabularies, their concepts, codebooks and per-segment codes.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vocabularies",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("method", sa.String(32), nullable=True),
        sa.Column("header", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
    )
    op.create_table(
        "concepts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "vocabulary_id", sa.Integer(), sa.ForeignKey("vocabularies.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.UniqueConstraint("vocabulary_id", "position", name="uq_concepts_position"),
    )
    op.create_table(
        "codebooks",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("vocabulary_id", sa.Integer(), sa.ForeignKey("vocabularies.id"), nullable=False),
        sa.Column("encoder_id", sa.Integer(), sa.ForeignKey("encoders.id"), nullable=False),
        sa.Column("lam", sa.Float(), nullable=True),
        sa.Column("target_l0", sa.Integer(), nullable=True),
        sa.Column("adapter_hash", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "codes",
        sa.Column(
            "segment_id", sa.Integer(), sa.ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column(
            "codebook_id", sa.Integer(), sa.ForeignKey("codebooks.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("concept_ids", sa.LargeBinary(), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("l0", sa.Integer(), nullable=False),
        sa.Column("fidelity", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("codes")
    op.drop_table("codebooks")
    op.drop_table("concepts")
    op.drop_table("vocabularies")
