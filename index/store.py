"""SQLAlchemy 2.x models of a library's metadata store (``earmark.db``).

The store (SQLite by default, or PostgreSQL) is the source of truth: every vector and concept
code lives here; FAISS and sparse index files, or a Milvus collection, are derived from it and
can always be rebuilt. The Alembic revisions under
``migrations/`` create exactly these tables (a test compares them).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Setting(Base):
    """Key/value settings of a library (active encoder, hop, data version, ...)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Root(Base):
    """A directory whose sounds the library indexes; sound paths are relative to it."""

    __tablename__ = "roots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True)
    include: Mapped[list] = mapped_column(JSON, default=list)
    exclude: Mapped[list] = mapped_column(JSON, default=list)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EncoderRecord(Base):
    """An encoder a library has used; vectors of different fingerprints never mix."""

    __tablename__ = "encoders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    dim: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    sample_rate: Mapped[int] = mapped_column(Integer)
    window_seconds: Mapped[float] = mapped_column(Float)
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Sound(Base):
    """One audio file. ``status`` is 'indexed', 'pending' (its vectors were dropped when the
    library moved to another encoder; `earmark reembed` embeds it again), 'failed' (see
    ``error``) or 'removed'."""

    __tablename__ = "sounds"
    __table_args__ = (
        UniqueConstraint("root_id", "path", name="uq_sounds_root_path"),
        Index("ix_sounds_content_hash", "content_hash"),
        Index("ix_sounds_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # relative to the root, POSIX separators
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))  # bytes
    mtime: Mapped[float] = mapped_column(Float)  # seconds since the epoch
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)  # seconds
    sample_rate: Mapped[int | None] = mapped_column(Integer, nullable=True)  # Hz, as stored
    channels: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    encoder_id: Mapped[int | None] = mapped_column(ForeignKey("encoders.id"), nullable=True)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    root: Mapped[Root] = relationship()
    segments: Mapped[list["Segment"]] = relationship(
        back_populates="sound", cascade="all, delete-orphan", passive_deletes=True
    )


class Segment(Base):
    """One window of a sound: the unit of the indexes. ``id`` is the vector id in FAISS."""

    __tablename__ = "segments"
    # AUTOINCREMENT: a deleted segment's id (= its FAISS id) is never handed out again.
    __table_args__ = (Index("ix_segments_sound", "sound_id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sound_id: Mapped[int] = mapped_column(ForeignKey("sounds.id", ondelete="CASCADE"))
    start: Mapped[float] = mapped_column(Float)  # seconds
    end: Mapped[float] = mapped_column(Float)  # seconds (of real audio, before padding)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32[dim], unit norm
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id"))
    # Mean power of the window's samples (padding included): search by example weights an
    # indexed file's windows by it, as a fresh file's are. NULL for rows indexed before 0007.
    power: Mapped[float | None] = mapped_column(Float, nullable=True)

    sound: Mapped[Sound] = relationship(back_populates="segments")


class Vocabulary(Base):
    """An ordered list of concept strings with provenance."""

    __tablename__ = "vocabularies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)
    header: Mapped[dict] = mapped_column(JSON, default=dict)
    size: Mapped[int] = mapped_column(Integer)


class Concept(Base):
    __tablename__ = "concepts"
    __table_args__ = (UniqueConstraint("vocabulary_id", "position", name="uq_concepts_position"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vocabulary_id: Mapped[int] = mapped_column(ForeignKey("vocabularies.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)


class Codebook(Base):
    """One way of computing concept codes: vocabulary × encoder × sparsity × adapter."""

    __tablename__ = "codebooks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vocabulary_id: Mapped[int] = mapped_column(ForeignKey("vocabularies.id"))
    encoder_id: Mapped[int] = mapped_column(ForeignKey("encoders.id"))
    lam: Mapped[float | None] = mapped_column(Float, nullable=True)
    target_l0: Mapped[int | None] = mapped_column(Integer, nullable=True)
    adapter_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    audio_mean: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32[dim]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Code(Base):
    """Sparse non-negative concept code of one segment under one codebook."""

    __tablename__ = "codes"
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    codebook_id: Mapped[int] = mapped_column(
        ForeignKey("codebooks.id", ondelete="CASCADE"), primary_key=True
    )
    concept_ids: Mapped[bytes] = mapped_column(LargeBinary)  # int32 positions in the vocabulary
    weights: Mapped[bytes] = mapped_column(LargeBinary)  # float32, > 0
    l0: Mapped[int] = mapped_column(Integer)
    fidelity: Mapped[float] = mapped_column(Float)  # cosine(recomposed, original)


class IndexGeneration(Base):
    """A committed index file: which data version of the store it reflects."""

    __tablename__ = "index_generations"
    __table_args__ = (UniqueConstraint("kind", "generation", name="uq_index_generation"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # 'dense', 'concept', 'postings'
    generation: Mapped[int] = mapped_column(Integer)
    file: Mapped[str] = mapped_column(Text)
    factory: Mapped[str | None] = mapped_column(Text, nullable=True)
    n_vectors: Mapped[int] = mapped_column(Integer)
    data_version: Mapped[int] = mapped_column(Integer)
    codebook_id: Mapped[int | None] = mapped_column(ForeignKey("codebooks.id"), nullable=True)
    # Largest segment id in the store when the file was written (None: written before 0006).
    store_max_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    committed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
