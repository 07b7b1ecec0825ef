"""A memory-mapped index file plus the changes made since it was written.

A large committed index (a million 512-d vectors is 2 GB) is mapped read-only instead of read:
opening takes milliseconds and only the pages a query touches are read. A mapped FAISS index
cannot change, so the segments a process adds after opening go into a small exact in-memory
``delta`` index and the ones it removes from the mapped ``base`` are hidden from its searches
("not these ids" selector). A search asks both and merges. Segment ids are never reused and a
segment's vector never changes, so the two never disagree about a segment.

The delta stays small: the library writes a new generation once its changes reach the checkpoint
threshold (engine/indexes.py), and :meth:`LayeredIndex.materialise` then reads the file into
memory and applies the changes, the one time the whole index is loaded.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from earmark.index.dense import DenseIndex, DenseIndexStats, Neighbours, _as_ids


class LayeredIndex:
    """A read-only mapped :class:`DenseIndex` (``base``), its removed ids and an in-memory delta.

    Offers the :class:`DenseIndex` calls the library makes: search, add, remove, ids, ntotal,
    stats, save.
    """

    def __init__(self, base: DenseIndex, path: str | os.PathLike) -> None:
        if not base.read_only:
            raise ValueError("LayeredIndex wraps an index loaded with mmap=True")
        self.base = base
        self.path = Path(path)
        self.delta = DenseIndex.create(base.dim, "Flat")
        self._base_ids = np.sort(base.ids())
        self._removed = np.zeros(0, np.int64)  # sorted base ids hidden from searches

    # ----------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return self.base.dim

    @property
    def ntotal(self) -> int:
        return len(self._base_ids) - len(self._removed) + self.delta.ntotal

    @property
    def is_trained(self) -> bool:
        return True  # the base is trained; the delta is exact

    @property
    def read_only(self) -> bool:
        return False  # changes go to the delta

    @property
    def needs_rebuild(self) -> bool:
        return self.base.needs_rebuild

    @property
    def nprobe(self) -> int | None:
        return self.base.nprobe

    @property
    def n_delta(self) -> int:
        """Segments held in memory on top of the mapped file."""
        return self.delta.ntotal

    @property
    def n_removed(self) -> int:
        """Segments of the mapped file hidden from searches."""
        return len(self._removed)

    def stats(self) -> DenseIndexStats:
        """The mapped file's stats, with the live count this process sees."""
        return dataclasses.replace(self.base.stats(), n_live=self.ntotal, read_only=True)

    def ids(self) -> np.ndarray:
        """All live ids (int64)."""
        kept = np.setdiff1d(self._base_ids, self._removed, assume_unique=True)
        return np.concatenate([kept, self.delta.ids()])

    # ----------------------------------------------------------------- mutation
    def train(self, vectors: np.ndarray, **_: object) -> None:
        """Nothing to train: the base was trained when its file was written."""

    def add(self, ids: np.ndarray, vectors: np.ndarray, replace: bool = True) -> None:
        """Add segments to the in-memory delta (``replace`` first removes ids already present)."""
        ids = _as_ids(ids)
        if replace:
            self.remove(ids)
        self.delta.add(ids, vectors, replace=False)

    def remove(self, ids: np.ndarray) -> int:
        """Remove segments: from the delta, or hidden from the mapped base; returns how many."""
        ids = np.unique(_as_ids(ids))
        n = self.delta.remove(ids)
        in_base = ids[np.isin(ids, self._base_ids, assume_unique=True)]
        fresh = np.setdiff1d(in_base, self._removed, assume_unique=True)
        if len(fresh):
            self._removed = np.union1d(self._removed, fresh)
        return n + len(fresh)

    # ----------------------------------------------------------------- search
    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None,
               excluded_ids: np.ndarray | None = None) -> Neighbours:
        """Top-``k`` over base and delta, merged best first (ties: smaller id first)."""
        hidden = self._removed
        if excluded_ids is not None and len(excluded_ids):
            hidden = np.union1d(hidden, _as_ids(excluded_ids, "excluded_ids"))
        base = self.base.search(queries, k, allowed_ids=allowed_ids, excluded_ids=hidden if len(hidden) else None)
        if self.delta.ntotal == 0:
            return base
        extra = self.delta.search(queries, k, allowed_ids=allowed_ids, excluded_ids=excluded_ids)
        scores = np.concatenate([base.scores, extra.scores], axis=1)
        labels = np.concatenate([base.ids, extra.ids], axis=1)
        # Sort by (-score, id) per row; padding (-inf, -1) sorts last.
        order = np.lexsort((np.where(labels < 0, np.iinfo(np.int64).max, labels), -scores), axis=1)[:, :k]
        return Neighbours(np.take_along_axis(scores, order, 1), np.take_along_axis(labels, order, 1))

    # ----------------------------------------------------------------- persistence
    def materialise(self) -> DenseIndex:
        """The base file read into memory with this process's changes applied."""
        full = DenseIndex.load(self.path, mmap=False)
        if len(self._removed):
            full.remove(self._removed)
        if self.delta.ntotal:
            inner = self.delta.faiss_index
            full.add(self.delta.ids(), inner.index.reconstruct_n(0, inner.ntotal), replace=False)
        return full

    def save(self, directory: str | os.PathLike, generation: int, kind: str = "dense") -> Path:
        """Write base plus changes as a new generation file (atomic, like DenseIndex.save)."""
        return self.materialise().save(directory, generation, kind=kind)
