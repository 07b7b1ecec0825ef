"""A library's active codebook: vocabulary × encoder × sparsity (× adapter) → concept codes.

Codes are computed when segments are stored (in the same transaction as their vectors) and
kept in SQLite. The codebook remembers the audio mean it centres with, so codes stay
reproducible as the library grows; changing vocabulary or λ makes a new codebook and
recomputes codes from the stored vectors, without re-embedding audio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import scipy.sparse as sp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..index.store import Code, Codebook, Concept, Segment, Vocabulary as VocabularyRow
from ..vocabularies import Vocabulary, load_vocabulary
from .concepts.decompose import DEFAULT_LAM, ConceptCodes, decompose
from .concepts.dictionary import ConceptDictionary, build_dictionary

if TYPE_CHECKING:
    from .concepts.adapter import Adapter
    from .encoders import Encoder

DEFAULT_VOCABULARY = "pruned"
CODE_BATCH = 512  # segments per transaction when (re)computing codes


@dataclass
class ActiveCodebook:
    """Everything needed to compute and read codes under one codebook."""

    id: int
    vocabulary: Vocabulary
    dictionary: ConceptDictionary
    lam: float | None
    target_l0: int | None
    adapter: "Adapter | None" = None  # the paper's fine-tuned d×d map, applied to audio only

    @property
    def concepts(self) -> tuple[str, ...]:
        return self.vocabulary.concepts

    def decompose(self, vectors: np.ndarray, audio: bool = True) -> ConceptCodes:
        """Codes of ``vectors``; audio embeddings go through the adapter first when there is one."""
        lam = None if self.target_l0 else (self.lam if self.lam is not None else DEFAULT_LAM)
        x = self.adapter.apply(vectors) if (audio and self.adapter is not None) else vectors
        return decompose(x, self.dictionary, lam=lam, target_l0=self.target_l0)


def register_vocabulary(s: Session, vocab: Vocabulary) -> int:
    """The vocabulary's row id, inserting it and its concepts if new."""
    row = s.scalar(select(VocabularyRow).where(VocabularyRow.hash == vocab.hash))
    if row is None:
        row = VocabularyRow(name=vocab.name, hash=vocab.hash, method=vocab.header.get("method"),
                            header=dict(vocab.header), size=len(vocab))
        s.add(row)
        s.flush()
        s.add_all(Concept(vocabulary_id=row.id, position=i, text=c) for i, c in enumerate(vocab.concepts))
    return row.id


def vocabulary_from_store(s: Session, vocabulary_id: int) -> Vocabulary:
    row = s.get(VocabularyRow, vocabulary_id)
    concepts = tuple(s.scalars(select(Concept.text).where(Concept.vocabulary_id == vocabulary_id).order_by(Concept.position)))
    return Vocabulary(name=row.name, concepts=concepts, header=dict(row.header or {}))


def library_audio_mean(s: Session, dim: int, transform=None) -> np.ndarray | None:
    """Mean of all stored segment vectors (through ``transform``, e.g. an adapter), or None if empty."""
    total = np.zeros(dim, np.float64)
    n = 0
    batch: list[np.ndarray] = []

    def flush() -> None:
        nonlocal total
        x = np.stack(batch)
        total += (transform(x) if transform is not None else x).sum(axis=0)
        batch.clear()

    for (blob,) in s.execute(select(Segment.embedding)).yield_per(4096):
        batch.append(np.frombuffer(blob, np.float32))
        n += 1
        if len(batch) == 4096:
            flush()
    if batch:
        flush()
    return (total / n).astype(np.float32) if n else None


def create_codebook(s: Session, vocab: Vocabulary, encoder_id: int, audio_mean: np.ndarray,
                    lam: float | None, target_l0: int | None, adapter_hash: str | None = None) -> int:
    vid = register_vocabulary(s, vocab)
    cb = Codebook(vocabulary_id=vid, encoder_id=encoder_id, lam=lam, target_l0=target_l0,
                  adapter_hash=adapter_hash, audio_mean=np.asarray(audio_mean, np.float32).tobytes())
    s.add(cb)
    s.flush()
    return cb.id


def adapter_file(models_dir: Path, adapter_hash: str) -> Path:
    return models_dir / f"adapter-{adapter_hash}.npz"


def load_codebook(s: Session, codebook_id: int, encoder: "Encoder", cache_dir: Path,
                  models_dir: Path | None = None) -> ActiveCodebook:
    from .concepts.adapter import Adapter

    cb = s.get(Codebook, codebook_id)
    vocab = vocabulary_from_store(s, cb.vocabulary_id)
    if cb.audio_mean is None:  # made before migration 0004: centre with the library's mean
        mean = library_audio_mean(s, encoder.dim)
    else:
        mean = np.frombuffer(cb.audio_mean, np.float32)
    dictionary = build_dictionary(encoder, vocab, audio_mean=mean, cache_dir=cache_dir)
    adapter = None
    if cb.adapter_hash:
        adapter = Adapter.load(adapter_file(models_dir or cache_dir.parent / "models", cb.adapter_hash))
    return ActiveCodebook(cb.id, vocab, dictionary, cb.lam, cb.target_l0, adapter)


def store_codes(s: Session, book: ActiveCodebook, segment_ids: list[int], vectors: np.ndarray) -> ConceptCodes:
    """Decompose ``vectors`` and insert one Code row per segment (caller's transaction)."""
    codes = book.decompose(vectors)
    w = codes.weights
    rows = []
    for i, seg in enumerate(segment_ids):
        a, b = w.indptr[i], w.indptr[i + 1]
        rows.append(Code(segment_id=int(seg), codebook_id=book.id,
                         concept_ids=w.indices[a:b].astype(np.int32).tobytes(),
                         weights=w.data[a:b].astype(np.float32).tobytes(),
                         l0=int(codes.l0[i]), fidelity=float(codes.fidelity[i])))
    s.add_all(rows)
    return codes


def segments_without_codes(s: Session, codebook_id: int, batch: int = CODE_BATCH) -> Iterator[tuple[list[int], np.ndarray]]:
    """(ids, vectors) batches of segments that have no code under ``codebook_id``."""
    have = select(Code.segment_id).where(Code.codebook_id == codebook_id)
    q = select(Segment.id, Segment.embedding).where(Segment.id.not_in(have)).order_by(Segment.id).limit(batch)
    while True:
        rows = s.execute(q).all()
        if not rows:
            return
        yield [r[0] for r in rows], np.stack([np.frombuffer(r[1], np.float32) for r in rows])


def read_codes(s: Session, codebook_id: int, segment_ids: list[int] | None, n_concepts: int) -> tuple[np.ndarray, sp.csr_matrix, np.ndarray]:
    """(segment ids, CSR codes, fidelity) for the given segments (all when None), in id order."""
    q = select(Code.segment_id, Code.concept_ids, Code.weights, Code.fidelity).where(Code.codebook_id == codebook_id)
    if segment_ids is not None:
        q = q.where(Code.segment_id.in_([int(i) for i in segment_ids]))
    rows = s.execute(q.order_by(Code.segment_id)).all()
    ids = np.array([r[0] for r in rows], np.int64)
    indptr = np.zeros(len(rows) + 1, np.int64)
    cols, vals = [], []
    for i, r in enumerate(rows):
        c = np.frombuffer(r[1], np.int32)
        cols.append(c)
        vals.append(np.frombuffer(r[2], np.float32))
        indptr[i + 1] = indptr[i] + c.size
    data = np.concatenate(vals) if vals else np.zeros(0, np.float32)
    indices = np.concatenate(cols) if cols else np.zeros(0, np.int32)
    mat = sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_concepts))
    return ids, mat, np.array([r[3] for r in rows], np.float32)


def code_count(s: Session, codebook_id: int) -> int:
    return s.scalar(select(func.count()).select_from(Code).where(Code.codebook_id == codebook_id)) or 0


def resolve_vocabulary(name_or_path: str | None) -> Vocabulary:
    return load_vocabulary(name_or_path or DEFAULT_VOCABULARY)
