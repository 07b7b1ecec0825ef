"""Concept postings: segment → concept weights and concept → segments, as scipy.sparse matrices.

Rows are segments, columns are vocabulary concepts, values are the non-negative concept weights
of each segment's code. A concept query ``q`` (dense over the vocabulary, negative entries for
``-concept``) scores a segment ``s`` as ``Σ_c q_c · w_{s,c}``, computed from the CSC column
slices of the query's non-zero concepts only, so its cost grows with the postings touched, not
with the library.

Incremental: :meth:`ConceptPostings.add` appends a small block (its own CSR and CSC) instead of
rebuilding the big matrices; removal clears a live flag. Blocks and dead rows are merged away by
:meth:`ConceptPostings.compact`, which runs by itself once there are more than
:attr:`ConceptPostings.MAX_BLOCKS` blocks or dead rows exceed :attr:`ConceptPostings.DEAD_FRACTION`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from earmark.index.dense import Neighbours
from earmark.index.files import IndexFileError, atomic_write, generation_name

FORMAT_VERSION = 1


class UnknownSegment(KeyError):
    """No live segment has this id in the postings."""


@dataclass(frozen=True)
class SegmentCode:
    """One segment's concept code: vocabulary positions (int32, ascending) and weights."""

    concept_ids: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class PostingsStats:
    n_live: int
    n_dead: int  # removed rows not yet compacted away
    n_concepts: int
    nnz: int  # stored weights, dead rows included
    n_blocks: int


class _Block:
    """Rows of the postings added together: ids, CSR (by segment), CSC (by concept), live flags."""

    def __init__(self, ids: np.ndarray, csr: sp.csr_matrix) -> None:
        self.ids = ids
        self.csr = csr
        self.csc = csr.tocsc()
        self.alive = np.ones(len(ids), dtype=bool)
        self._order: np.ndarray | None = None  # argsort of ids, built on the first lookup
        self._sorted: np.ndarray | None = None

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Live row numbers holding any of ``ids``, ascending.

        A binary search in the sorted ids (O(log n) per id) rather than a scan of the block:
        explanations look up one segment at a time in blocks of a million rows.
        """
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
            self._sorted = self.ids[self._order]
        want = np.asarray(ids, dtype=self._sorted.dtype).reshape(-1)
        if not len(self._sorted) or not len(want):
            return np.empty(0, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, want), len(self._sorted) - 1)
        rows = self._order[pos[self._sorted[pos] == want]]
        return np.sort(rows[self.alive[rows]])  # ids are unique within a block, so rows are too


def _as_codes(codes: sp.spmatrix | np.ndarray, n_rows: int, n_concepts: int) -> sp.csr_matrix:
    csr = sp.csr_matrix(codes, dtype=np.float32)
    if csr.shape != (n_rows, n_concepts):
        raise ValueError(f"codes must be [{n_rows}, {n_concepts}], got {csr.shape}")
    csr.eliminate_zeros()  # an explicit 0 is no posting
    csr.sort_indices()
    if csr.nnz and not np.isfinite(csr.data).all():
        raise ValueError("codes contain NaN or inf")
    return csr


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` by score, ties broken by smaller id (deterministic)."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        # Keep every candidate tied with the k-th score so the tie-break by id is exact.
        kth = scores[part].min()
        part = np.flatnonzero(scores >= kth)
        scores, ids = scores[part], ids[part]
    order = np.lexsort((ids, -scores))[:k]
    return scores[order], ids[order]


class ConceptPostings:
    """Sparse concept postings of a library's segments."""

    MAX_BLOCKS = 8
    DEAD_FRACTION = 0.2

    def __init__(self, n_concepts: int) -> None:
        if n_concepts <= 0:
            raise ValueError(f"n_concepts must be positive, got {n_concepts}")
        self.n_concepts = int(n_concepts)
        self._blocks: list[_Block] = []

    @classmethod
    def from_codes(
        cls, ids: np.ndarray, codes: sp.spmatrix | np.ndarray, n_concepts: int | None = None
    ) -> "ConceptPostings":
        """Postings of segments ``ids`` (int64[n]) with codes ``codes`` (float32 [n, n_concepts])."""
        n_concepts = int(n_concepts if n_concepts is not None else codes.shape[1])
        out = cls(n_concepts)
        out.add(ids, codes)
        return out

    # ----------------------------------------------------------------- mutation
    def add(self, ids: np.ndarray, codes: sp.spmatrix | np.ndarray) -> None:
        """Add (or replace) the codes of segments ``ids`` (unique int64 >= 0)."""
        ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
        if len(np.unique(ids)) != len(ids) or (len(ids) and ids.min() < 0):
            raise ValueError("ids must be unique and >= 0")
        csr = _as_codes(codes, len(ids), self.n_concepts)
        if len(ids) == 0:
            return
        self.remove(ids)
        self._blocks.append(_Block(ids, csr))
        self._maybe_compact()

    def remove(self, ids: np.ndarray) -> int:
        """Remove segments ``ids`` (absent ids ignored); returns how many were removed."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        n = 0
        for b in self._blocks:
            rows = b.rows_of(ids)
            b.alive[rows] = False
            n += len(rows)
        if n:
            self._maybe_compact()
        return n

    def compact(self) -> None:
        """Merge all blocks into one and drop removed rows."""
        if len(self._blocks) <= 1 and all(b.alive.all() for b in self._blocks):
            return
        ids = [b.ids[b.alive] for b in self._blocks]
        mats = [b.csr[b.alive] for b in self._blocks]
        self._blocks = []
        if ids and sum(len(i) for i in ids):
            self._blocks.append(_Block(np.concatenate(ids), sp.vstack(mats, format="csr")))

    def _maybe_compact(self) -> None:
        st = self.stats()
        stored = st.n_live + st.n_dead
        if st.n_blocks > self.MAX_BLOCKS or (stored and st.n_dead > self.DEAD_FRACTION * stored):
            self.compact()

    # ----------------------------------------------------------------- reading
    def __len__(self) -> int:
        return int(sum(b.alive.sum() for b in self._blocks))

    def __contains__(self, segment_id: int) -> bool:
        return any(len(b.rows_of(np.array([segment_id]))) for b in self._blocks)

    def stats(self) -> PostingsStats:
        live = len(self)
        stored = sum(len(b.ids) for b in self._blocks)
        return PostingsStats(
            n_live=live,
            n_dead=stored - live,
            n_concepts=self.n_concepts,
            nnz=int(sum(b.csr.nnz for b in self._blocks)),
            n_blocks=len(self._blocks),
        )

    def ids(self) -> np.ndarray:
        """Live segment ids (int64)."""
        parts = [b.ids[b.alive] for b in self._blocks]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def segments_with(self, concept_ids: np.ndarray | list[int]) -> np.ndarray:
        """Live segment ids (sorted) with a weight on any of ``concept_ids``: straight from the CSC columns."""
        cols = np.unique(np.asarray(concept_ids, dtype=np.int64).reshape(-1))
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_concepts):
            raise ValueError(f"concept ids outside [0, {self.n_concepts})")
        if not cols.size:
            return np.empty(0, np.int64)
        parts = []
        for b in self._blocks:
            rows = np.concatenate([b.csc.indices[b.csc.indptr[c]:b.csc.indptr[c + 1]] for c in cols])
            parts.append(b.ids[rows[b.alive[rows]]])
        return np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)

    def codes_of(self, segment_id: int) -> SegmentCode:
        """The concept code of one segment; raises :class:`UnknownSegment` if it has none."""
        for b in self._blocks:
            rows = b.rows_of(np.array([segment_id], dtype=np.int64))
            if len(rows):
                r = int(rows[0])
                lo, hi = b.csr.indptr[r], b.csr.indptr[r + 1]
                return SegmentCode(
                    b.csr.indices[lo:hi].astype(np.int32), b.csr.data[lo:hi].astype(np.float32)
                )
        raise UnknownSegment(f"segment {segment_id} has no concept code in the postings")

    def concept_search(
        self,
        query_weights: np.ndarray,
        k: int,
        allowed_ids: np.ndarray | None = None,
        exclude: list[int] | np.ndarray | None = None,
    ) -> Neighbours:
        """Top-``k`` segments by ``Σ_c q_c·w_{s,c}``.

        Candidates are the segments with a weight on at least one positively weighted concept
        (a segment sharing nothing with the query is not a hit). Negative weights lower scores;
        ``exclude`` (concept ids) drops every segment with any weight on those concepts.
        Returns float32 scores [1, k] (-inf padding) and int64 ids [1, k] (-1 padding)."""
        q = np.asarray(query_weights, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.n_concepts:
            raise ValueError(f"query has {q.shape[0]} weights for {self.n_concepts} concepts")
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        cols = np.flatnonzero(q)
        excl = np.unique(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
        if excl.size and (excl.min() < 0 or excl.max() >= self.n_concepts):
            raise ValueError(f"exclude holds concept ids outside [0, {self.n_concepts})")
        allowed = None if allowed_ids is None else np.asarray(allowed_ids, dtype=np.int64)
        all_s, all_i = [], []
        for b in self._blocks:
            s, i = self._search_block(b, q, cols, excl, allowed)
            all_s.append(s)
            all_i.append(i)
        scores = np.full((1, k), -np.inf, np.float32)
        ids = np.full((1, k), -1, np.int64)
        if all_s:
            s, i = _top_k(np.concatenate(all_s), np.concatenate(all_i), k)
            scores[0, : len(s)] = s
            ids[0, : len(i)] = i
        return Neighbours(scores, ids)

    @staticmethod
    def _search_block(
        b: _Block, q: np.ndarray, cols: np.ndarray, excl: np.ndarray, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        sub = b.csc[:, cols]  # postings of the query's concepts only
        scores = np.asarray(sub @ q[cols], dtype=np.float32).reshape(-1)
        # Which stored entries belong to a positively weighted concept?
        entry_col = np.repeat(np.arange(len(cols)), np.diff(sub.indptr))
        touched = np.zeros(len(b.ids), dtype=bool)
        touched[sub.indices[q[cols][entry_col] > 0]] = True
        if excl.size:
            touched[b.csc[:, excl].indices] = False
        touched &= b.alive
        if allowed is not None:
            touched &= np.isin(b.ids, allowed)
        rows = np.flatnonzero(touched)
        return scores[rows], b.ids[rows]

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike, generation: int) -> Path:
        """Compact, then write atomically to ``directory/postings-{generation:06d}.npz``."""
        self.compact()
        path = Path(directory) / generation_name("postings", generation)
        if self._blocks:
            b = self._blocks[0]
            ids, csr = b.ids, b.csr
        else:
            ids, csr = np.empty(0, np.int64), sp.csr_matrix((0, self.n_concepts), dtype=np.float32)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    format_version=np.int64(FORMAT_VERSION),
                    n_concepts=np.int64(self.n_concepts),
                    ids=ids,
                    indptr=csr.indptr.astype(np.int64),
                    indices=csr.indices.astype(np.int32),
                    data=csr.data.astype(np.float32),
                )

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ConceptPostings":
        """Read a postings file written by :meth:`save`."""
        p = Path(path)
        if not p.is_file():
            raise IndexFileError(f"postings file {p} is missing; rebuild it from the database")
        try:
            with np.load(p, allow_pickle=False) as z:
                version = int(z["format_version"])
                if version != FORMAT_VERSION:
                    raise IndexFileError(f"{p} has postings format {version}, expected {FORMAT_VERSION}")
                n_concepts = int(z["n_concepts"])
                ids = z["ids"].astype(np.int64)
                csr = sp.csr_matrix(
                    (z["data"], z["indices"], z["indptr"]), shape=(len(ids), n_concepts)
                )
        except (OSError, ValueError, KeyError) as exc:
            raise IndexFileError(f"cannot read postings file {p} ({exc}); rebuild it from the database") from exc
        out = cls(n_concepts)
        if len(ids):
            out._blocks.append(_Block(ids, csr))
        return out


def recompose(codes: sp.spmatrix, dictionary: np.ndarray) -> np.ndarray:
    """The concept-space embedding of each code, ``normalise(C w)``: float32 [n, d] from codes
    [n, n_concepts] and the concept dictionary [n_concepts, d]. Rows of empty codes stay zero
    (they match nothing). These vectors fill the concept :class:`~earmark.index.dense.DenseIndex`."""
    x = np.asarray(sp.csr_matrix(codes, dtype=np.float32) @ np.asarray(dictionary, np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
