"""What `earmark status` reports: counts, settings, indexes, evidence decoder and disk use.

Read from the store and the library directory only: no encoder, no torch, so it stays quick on
a library of any size and works while another process indexes.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from ..index import db as store_db
from ..index.store import Code, Codebook, IndexGeneration, Root, Segment, Sound, Vocabulary
from .concepts.sparsity import DEFAULT_LAM
from .library_evidence import decoder_source

if TYPE_CHECKING:
    from .library import Library

# The library's own parts on disk, by the names the README's "A library on disk" uses.
DISK_PARTS = {"database": ("earmark.db", "earmark.db-wal", "earmark.db-shm"), "indexes": ("indexes",),
              "models": ("models",), "cache": ("cache",), "evidence": ("evidence",)}


@dataclass
class LibraryStatus:
    """Counts and settings of a library (``earmark status``)."""

    path: str
    encoder: str
    encoder_fingerprint: str
    schema_revision: str
    roots: list[str]
    sounds_indexed: int
    sounds_pending: int  # waiting to be embedded again (`earmark reembed`)
    sounds_failed: int
    sounds_removed: int
    segments: int
    hours_indexed: float
    data_version: int
    last_indexed: str | None = None  # ISO time the most recent sound was indexed (UTC)
    vocabulary: str | None = None  # None until the library has vectors (no codebook yet)
    concepts: int | None = None
    lam: float | None = None
    target_l0: int | None = None
    adapter: str | None = None  # hash of the concept adapter codes go through, if any
    codes: int = 0  # segments coded under the active codebook
    mean_l0: float | None = None
    mean_fidelity: float | None = None
    index_backend: str = "faiss"
    faiss_factory: str = "auto"  # as chosen; "auto" = Flat up to 20k vectors, IVF above
    indexes: dict[str, dict] = field(default_factory=dict)  # kind → generation, factory, vectors
    evidence_decoder: str = "none"  # library | shipped | none (gradient saliency), as evidence results say
    disk_bytes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def tree_bytes(path: Path) -> int:
    """Bytes under ``path`` (a file or a folder; 0 when it is missing)."""
    try:
        if path.is_file():
            return path.stat().st_size
        total = 0
        for entry in os.scandir(path):
            total += tree_bytes(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else entry.stat().st_size
        return total
    except OSError:  # removed while we walked, or not there at all
        return 0


def disk_bytes(root: Path) -> dict[str, int]:
    """Bytes of each part of the library directory, and their total."""
    out = {part: sum(tree_bytes(root / name) for name in names) for part, names in DISK_PARTS.items()}
    out["total"] = sum(out.values())
    return out


def _utc_iso(t: datetime | None) -> str | None:
    """ISO time in UTC, without offset (SQLite gives naive UTC, PostgreSQL the session's zone)."""
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc).replace(tzinfo=None)
    return t.isoformat(timespec="seconds")


def _codebook_fields(book: Codebook | None, vocab: Vocabulary | None, name: str | None) -> dict:
    """The active codebook's settings as status fields (none before the library has one)."""
    if book is None:
        return {}
    # No λ and no target L0 stored: the codebook codes at the default λ.
    lam = DEFAULT_LAM if book.lam is None and not book.target_l0 else book.lam
    return {"vocabulary": name, "concepts": vocab.size if vocab is not None else None, "lam": lam,
            "target_l0": book.target_l0, "adapter": book.adapter_hash}


def library_status(lib: "Library") -> LibraryStatus:
    """Everything `earmark status` shows, in one read snapshot of the store."""
    rec = lib.encoder_record()
    cb_id = lib.active_codebook_id()
    with lib.session() as s:
        counts = dict(s.execute(select(Sound.status, func.count()).group_by(Sound.status)).all())
        n_seg = s.scalar(select(func.count()).select_from(Segment)) or 0
        hours = (s.scalar(select(func.sum(Sound.duration)).where(Sound.status == "indexed")) or 0.0) / 3600
        roots = list(s.scalars(select(Root.path).order_by(Root.id)))
        last = s.scalar(select(func.max(Sound.indexed_at)))
        book = s.get(Codebook, cb_id) if cb_id else None
        vocab = s.get(Vocabulary, book.vocabulary_id) if book is not None else None
        n_codes, mean_l0, mean_fid = s.execute(
            select(func.count(), func.avg(Code.l0), func.avg(Code.fidelity)).where(Code.codebook_id == cb_id)
        ).one() if cb_id else (0, None, None)
        latest = {}
        for gen in s.scalars(select(IndexGeneration).order_by(IndexGeneration.generation)):
            latest[gen.kind] = {"generation": gen.generation, "factory": gen.factory, "vectors": gen.n_vectors}
        revision = store_db.current_revision(lib._sessions.kw["bind"]) or ""
    return LibraryStatus(
        path=str(lib.path), encoder=rec.name, encoder_fingerprint=rec.fingerprint, schema_revision=revision,
        roots=roots, sounds_indexed=counts.get("indexed", 0), sounds_pending=counts.get("pending", 0),
        sounds_failed=counts.get("failed", 0), sounds_removed=counts.get("removed", 0), segments=n_seg,
        hours_indexed=hours, data_version=lib.data_version,
        last_indexed=_utc_iso(last),
        **_codebook_fields(book, vocab, lib.setting("vocabulary")),
        codes=int(n_codes), mean_l0=None if mean_l0 is None else round(float(mean_l0), 2),
        mean_fidelity=None if mean_fid is None else round(float(mean_fid), 4),
        index_backend=lib.backend, faiss_factory=lib.setting("faiss_factory") or "auto",
        indexes=latest if lib.backend == "faiss" else {},
        evidence_decoder=decoder_source(lib), disk_bytes=disk_bytes(lib.path),
    )
