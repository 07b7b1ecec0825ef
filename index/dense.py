"""Dense vector index: FAISS inner-product search keyed by segment id.

One class, :class:`DenseIndex`, serves both the dense index (encoder embeddings) and the concept
index (recomposed embeddings ``normalise(C w)``); callers pass L2-normalised float32 vectors, so
the inner product is the cosine.

The index type is a FAISS factory string. Types that keep external ids themselves (IVF) are used
as they are; every other type is wrapped in ``IDMap2`` so results carry segment ids. Removal:

* IVF and flat-code types (``Flat``, ``SQ8``, ``PQ``) remove ids natively;
* graph types (``HNSW``) cannot, so a removed entry is *tombstoned*: its id in the ``IDMap2`` is
  set to -1 and searches exclude -1 with a FAISS ID selector. Tombstones are saved with the index.
  Once they exceed :attr:`DenseIndex.TOMBSTONE_REBUILD_FRACTION` of the entries,
  :attr:`DenseIndex.needs_rebuild` is true and the owner should :meth:`DenseIndex.rebuild` from
  the database.

Adding an id that is already present replaces its vector (remove, then add).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import faiss
import numpy as np

from earmark.index.files import IndexFileError, atomic_write, generation_name

log = logging.getLogger(__name__)


class DenseIndexError(Exception):
    """Base class of dense index errors."""


class IndexNotTrained(DenseIndexError):
    """The index type needs training (IVF, PQ) before vectors can be added."""


class ReadOnlyIndex(DenseIndexError):
    """The index was loaded memory-mapped; load it with ``mmap=False`` to modify it."""


class UnsupportedFactory(DenseIndexError):
    """The factory string names an index that cannot serve as a segment index."""


class Neighbours(NamedTuple):
    """Search result: ``scores[q, j]`` (inner products, -inf padding) and ``ids[q, j]``
    (segment ids, -1 padding), best first."""

    scores: np.ndarray
    ids: np.ndarray


@dataclass(frozen=True)
class DenseIndexStats:
    """What an index holds."""

    kind: str  # FAISS class of the searched index, e.g. 'IndexIVFFlat', 'IndexHNSWFlat'
    dim: int
    n_live: int  # searchable vectors
    n_tombstones: int  # removed but still stored (graph types only)
    is_trained: bool
    needs_rebuild: bool
    read_only: bool  # loaded memory-mapped
    nprobe: int | None  # IVF lists visited per query
    ef_search: int | None  # HNSW candidate list size per query


def _ivf_of(index: faiss.Index) -> faiss.IndexIVF | None:
    return faiss.try_extract_index_ivf(index)


def _as_ids(ids: np.ndarray | list[int], what: str = "ids") -> np.ndarray:
    arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if arr.size and arr.min() < 0:
        raise ValueError(f"{what} must be >= 0 (-1 marks padding and tombstones)")
    return arr


def _env_bytes(name: str, default: int) -> int:
    """A byte count from the environment, or ``default`` when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a whole number of bytes") from None
    if value < 0:
        raise ValueError(f"environment variable {name}={raw!r} must be >= 0")
    return value


class DenseIndex:
    """A FAISS inner-product index over float32 vectors keyed by int64 segment ids."""

    #: Up to this many vectors exact search needs no training and answers in 11-15 ms at d=512 on
    #: the busy 2-core benchmark machine; above it the automatic type is IVF, under 1 ms at 100k
    #: (docs/indexes.md has the measurements).
    FLAT_LIMIT = 20_000
    #: Rebuild once this fraction of stored entries are tombstones (graph types).
    TOMBSTONE_REBUILD_FRACTION = 0.10
    #: Filtered searches with at most this many allowed ids are answered exactly.
    EXACT_FILTER_LIMIT = 20_000
    #: Files larger than this load memory-mapped when ``load(mmap=None)``, as the library loads
    #: its files (index/layered.py); the environment variable EARMARK_MMAP_BYTES overrides it.
    MMAP_THRESHOLD_BYTES = 1 << 30
    #: Default HNSW search breadth.
    EF_SEARCH = 64
    #: Stored vectors used as queries when an IVF index measures its nprobe.
    CALIBRATION_QUERIES = 200

    def __init__(self, index: faiss.Index, *, read_only: bool = False) -> None:
        """Wrap an existing FAISS index (use :meth:`create` or :meth:`load` instead)."""
        self._index = index
        self._read_only = read_only
        self._ivf = _ivf_of(index)
        self._idmap = isinstance(index, faiss.IndexIDMap2)
        if self._ivf is None and not self._idmap:
            raise UnsupportedFactory(
                f"{type(index).__name__} keeps no segment ids; use an IVF type or wrap it in IDMap2"
            )
        self._inner = faiss.downcast_index(index.index) if self._idmap else self._ivf
        # Flat-code storage and IVF remove natively; graph indexes get tombstones.
        self._tombstoning = self._idmap and not isinstance(self._inner, faiss.IndexFlatCodes)
        # FAISS applies ID selectors during search for these; others are filtered exactly.
        self._filterable = self._ivf is not None or isinstance(
            self._inner, (faiss.IndexFlat, faiss.IndexHNSW)
        )
        self._n_tomb = int((self._id_map() == -1).sum()) if self._tombstoning else 0
        self._gpu: faiss.Index | None = None

    # ----------------------------------------------------------------- construction
    @staticmethod
    def auto_factory(expected_size: int | None) -> str:
        """Factory string for a library of ``expected_size`` vectors: exact ``Flat`` up to
        :attr:`FLAT_LIMIT`, else ``IVF{nlist},Flat`` with nlist ≈ 2·√n rounded to a power of 2
        (lists of ~250-1000 vectors)."""
        n = expected_size or 0
        if n <= DenseIndex.FLAT_LIMIT:
            return "Flat"
        nlist = 2 ** round(math.log2(2 * math.sqrt(n)))
        return f"IVF{nlist},Flat"

    @classmethod
    def create(
        cls, dim: int, factory: str | None = None, expected_size: int | None = None
    ) -> "DenseIndex":
        """An empty inner-product index of dimension ``dim``. ``factory`` is a FAISS factory
        string ("Flat", "HNSW32", "IVF4096,Flat", "IVF4096,SQ8"); None picks by
        ``expected_size``. IVF and PQ types must be :meth:`train`-ed before :meth:`add`."""
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        spec = (factory or cls.auto_factory(expected_size)).strip()
        bare = spec.split(",", 1)[1] if spec.upper().startswith("IDMAP") else spec
        try:
            probe = faiss.index_factory(dim, bare, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise UnsupportedFactory(f"FAISS cannot build {spec!r}: {exc}") from exc
        ivf = _ivf_of(probe)
        if ivf is not None:
            if bare != spec:
                # IDMap over IVF breaks removal (IVF does not renumber); IVF keeps ids itself.
                raise UnsupportedFactory(f"drop the IDMap prefix from {spec!r}: IVF keeps ids itself")
            ivf.nprobe = max(16, ivf.nlist // 16)  # until calibrate_nprobe measures it (rebuild does)
            ivf.cp.niter = 10  # 10 k-means iterations: centroids are good enough, 2.5x faster
            index = probe
        else:
            index = faiss.index_factory(dim, "IDMap2," + bare, faiss.METRIC_INNER_PRODUCT)
            inner = faiss.downcast_index(index.index)
            if isinstance(inner, faiss.IndexHNSW):
                inner.hnsw.efSearch = cls.EF_SEARCH
        return cls(index)

    @classmethod
    def rebuild(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        factory: str | None = None,
        *,
        train_size: int | None = None,
        seed: int = 0,
        batch: int = 65_536,
        recall_target: float | None = 0.97,
    ) -> "DenseIndex":
        """A fresh index holding exactly ``ids``/``vectors``: trained (when the type needs it) on
        a seeded random sample of ``train_size`` vectors (default 40 per IVF list), then filled in
        batches. Use it to retrain, to change type, or to drop tombstones. An IVF index then gets
        the smallest nprobe that reaches ``recall_target`` (:meth:`calibrate_nprobe`; None keeps
        the fixed default)."""
        ids = _as_ids(ids)
        vectors = np.asarray(vectors, dtype=np.float32)
        out = cls.create(vectors.shape[1], factory, expected_size=len(ids))
        if not out.is_trained:
            out.train(vectors, sample_size=train_size, seed=seed)
        for lo in range(0, len(ids), batch):
            out.add(ids[lo : lo + batch], vectors[lo : lo + batch])
        if out._ivf is not None and recall_target is not None and len(ids) > 2 * cls.CALIBRATION_QUERIES:
            out.calibrate_nprobe(ids, vectors, recall_target, seed=seed)
        return out

    def calibrate_nprobe(self, ids: np.ndarray, vectors: np.ndarray, recall_target: float = 0.97, *,
                         queries: int | None = None, k: int = 10, seed: int = 0) -> tuple[int, float]:
        """Set nprobe to the smallest power of two (from 8 up to nlist) whose recall@``k`` reaches
        ``recall_target`` on ``queries`` of the stored ``ids``/``vectors`` (what the index
        holds), each asking for its nearest *other* stored vectors; returns
        (nprobe, recall). How many lists a query must visit depends on how clustered the library
        is (docs/indexes.md: 8 of 2,048 lists gave recall 0.998 on one data set, 64 of 512 gave
        0.959 on another), so it is measured per library instead of fixed."""
        if self._ivf is None:
            raise DenseIndexError("nprobe applies to IVF indexes only")
        x = self._as_vectors(vectors)
        stored_ids = _as_ids(ids)
        m = min(queries or self.CALIBRATION_QUERIES, len(x) - 1)
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(x), m, replace=False))
        q = x[pick]
        # Exact neighbours by blocks of stored vectors (bounded memory at a million rows).
        best_s = np.full((m, k + 1), -np.inf, np.float32)
        best_i = np.full((m, k + 1), -1, np.int64)
        for lo in range(0, len(x), 65_536):
            sims = q @ x[lo : lo + 65_536].T
            s_all = np.concatenate([best_s, sims], axis=1)
            i_all = np.concatenate([best_i, np.broadcast_to(np.arange(lo, lo + sims.shape[1]), sims.shape)], axis=1)
            top = np.argpartition(-s_all, k, axis=1)[:, : k + 1]
            best_s, best_i = np.take_along_axis(s_all, top, 1), np.take_along_axis(i_all, top, 1)
        order = np.argsort(-best_s, axis=1, kind="stable")  # best first, so dropping self keeps the top k
        best_i = np.take_along_axis(best_i, order, 1)
        truth = [set(stored_ids[r[r != pick[j]]][:k].tolist()) for j, r in enumerate(best_i)]
        nprobe, recall = self._ivf.nlist, 1.0
        step = 8
        while step < self._ivf.nlist:
            params = faiss.SearchParametersIVF(nprobe=step)
            _, found = self._ivf.search(q, k + 1, params=params)
            got = [[int(i) for i in row if i >= 0 and i != stored_ids[pick[j]]][:k] for j, row in enumerate(found)]
            recall = float(np.mean([len(t & set(g)) / max(1, len(t)) for t, g in zip(truth, got)]))
            if recall >= recall_target:
                nprobe = step
                break
            step *= 2
        else:
            recall = 1.0
        self.nprobe = nprobe
        return nprobe, recall

    def train(self, vectors: np.ndarray, *, sample_size: int | None = None, seed: int = 0) -> None:
        """Train the index (IVF centroids, PQ codebooks) on a random sample of ``vectors``."""
        self._check_writable()
        vectors = self._as_vectors(vectors)
        if sample_size is None:
            nlist = self._ivf.nlist if self._ivf is not None else 256
            sample_size = 40 * nlist
        if len(vectors) > sample_size:
            pick = np.random.default_rng(seed).choice(len(vectors), sample_size, replace=False)
            vectors = vectors[np.sort(pick)]
        self._index.train(vectors)

    # ----------------------------------------------------------------- properties
    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def ntotal(self) -> int:
        """Number of searchable vectors (tombstones excluded)."""
        return int(self._index.ntotal) - self._n_tomb

    @property
    def is_trained(self) -> bool:
        return bool(self._index.is_trained)

    @property
    def read_only(self) -> bool:
        return self._read_only

    @property
    def needs_rebuild(self) -> bool:
        """True once tombstones exceed :attr:`TOMBSTONE_REBUILD_FRACTION` of stored entries."""
        stored = int(self._index.ntotal)
        return stored > 0 and self._n_tomb > self.TOMBSTONE_REBUILD_FRACTION * stored

    @property
    def faiss_index(self) -> faiss.Index:
        """The underlying FAISS index (for inspection; mutate only through this class)."""
        return self._index

    @property
    def nprobe(self) -> int | None:
        return int(self._ivf.nprobe) if self._ivf is not None else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self._ivf is None:
            raise DenseIndexError("nprobe applies to IVF indexes only")
        self._ivf.nprobe = int(min(max(1, value), self._ivf.nlist))
        self._gpu = None

    @property
    def ef_search(self) -> int | None:
        return int(self._inner.hnsw.efSearch) if isinstance(self._inner, faiss.IndexHNSW) else None

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        if not isinstance(self._inner, faiss.IndexHNSW):
            raise DenseIndexError("ef_search applies to HNSW indexes only")
        self._inner.hnsw.efSearch = int(value)

    def stats(self) -> DenseIndexStats:
        searched = self._ivf if self._ivf is not None else self._inner
        return DenseIndexStats(
            kind=type(faiss.downcast_index(searched)).__name__,
            dim=self.dim,
            n_live=self.ntotal,
            n_tombstones=self._n_tomb,
            is_trained=self.is_trained,
            needs_rebuild=self.needs_rebuild,
            read_only=self._read_only,
            nprobe=self.nprobe,
            ef_search=self.ef_search,
        )

    def ids(self) -> np.ndarray:
        """All live ids (int64, unordered)."""
        if self._idmap:
            m = self._id_map()
            return m[m >= 0]
        invlists = self._ivf.invlists
        parts = []
        for lst in range(self._ivf.nlist):
            size = invlists.list_size(lst)
            if size:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(lst), size).copy())
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    # ----------------------------------------------------------------- mutation
    def add(self, ids: np.ndarray, vectors: np.ndarray, replace: bool = True) -> None:
        """Add (or replace) vectors under segment ``ids`` (int64 >= 0, unique).

        ``replace=False`` is for ids the caller knows are new: it skips the removal pass, which
        scans every list of an IVF index.
        """
        self._check_writable()
        ids = _as_ids(ids)
        vectors = self._as_vectors(vectors)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids must be unique within one add() call")
        if not self.is_trained:
            raise IndexNotTrained("train() the index (or use DenseIndex.rebuild) before add()")
        if len(ids) == 0:
            return
        if replace:
            self.remove(ids)  # replace semantics: an id maps to one vector
        self._index.add_with_ids(vectors, ids)
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove segment ``ids`` (absent ids are ignored); returns how many were removed."""
        self._check_writable()
        ids = _as_ids(ids)
        if len(ids) == 0 or self._index.ntotal == 0:
            return 0
        self._gpu = None
        if not self._tombstoning:
            return int(self._index.remove_ids(faiss.IDSelectorBatch(ids)))
        id_map = self._id_map()
        hit = np.isin(id_map, ids)
        n = int(hit.sum())
        if n:
            id_map[hit] = -1
            faiss.copy_array_to_vector(id_map, self._index.id_map)
            self._index.construct_rev_map()
            self._n_tomb += n
        return n

    # ----------------------------------------------------------------- search
    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None,
        excluded_ids: np.ndarray | None = None,
    ) -> Neighbours:
        """Top-``k`` inner products for each row of ``queries`` (float32 [q, d]); with
        ``allowed_ids`` only those segments are candidates (exact when at most
        :attr:`EXACT_FILTER_LIMIT` are allowed); ``excluded_ids`` are never returned."""
        queries = self._as_vectors(queries)
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        nq = len(queries)
        empty = Neighbours(np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64))
        if self.ntotal == 0 or nq == 0:
            return empty
        allowed = None
        banned = None
        if excluded_ids is not None and len(excluded_ids):
            banned = np.unique(_as_ids(excluded_ids, "excluded_ids"))
        if allowed_ids is not None:
            allowed = np.unique(_as_ids(allowed_ids, "allowed_ids"))
            if banned is not None:
                allowed, banned = np.setdiff1d(allowed, banned, assume_unique=True), None
            if len(allowed) == 0:
                return empty
        if banned is not None and not self._filterable:
            # Types that cannot filter: an allow-list of the rest, searched exactly.
            allowed = np.setdiff1d(self.ids(), banned, assume_unique=True)
            if len(allowed) == 0:
                return empty
            banned = None
        if allowed is not None and self._idmap and (
            not self._filterable or (self._tombstoning and len(allowed) <= self.EXACT_FILTER_LIMIT)
        ):
            return self._exact_subset(queries, k, allowed)
        sel = None
        if allowed is not None:
            sel = faiss.IDSelectorBatch(allowed)
        elif self._n_tomb:
            sel = faiss.IDSelectorNot(faiss.IDSelectorRange(-1, 0))  # hide tombstones
        if banned is not None:
            inner = faiss.IDSelectorBatch(banned)
            not_banned = faiss.IDSelectorNot(inner)
            not_banned._refs = (inner,)
            if sel is None:
                sel = not_banned
            else:
                both = faiss.IDSelectorAnd(sel, not_banned)
                both._refs = (sel, not_banned)  # the C++ selector holds raw pointers to these
                sel = both
        if sel is None and self._gpu_index() is not None:
            scores, labels = self._gpu.search(queries, k)
        else:
            params = self._params(sel, exhaustive=allowed is not None
                                  and len(allowed) <= self.EXACT_FILTER_LIMIT)
            scores, labels = self._index.search(queries, k, params=params)
        scores = np.where(labels < 0, -np.inf, scores).astype(np.float32)
        return Neighbours(scores, labels)

    def _params(
        self, sel: faiss.IDSelector | None, exhaustive: bool
    ) -> faiss.SearchParameters | None:
        if self._ivf is not None:
            # A small allowed set may lie outside the nprobe nearest lists: visit all lists;
            # the selector skips non-allowed entries before any distance is computed.
            nprobe = self._ivf.nlist if exhaustive else self._ivf.nprobe
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        elif isinstance(self._inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(efSearch=self._inner.hnsw.efSearch)
        elif sel is None:
            return None  # some types (PQ) reject any parameters
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
            params._sel_ref = sel  # keep the selector alive as long as the params
        return params

    def _exact_subset(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> Neighbours:
        """Exact search over the allowed entries of an IDMap2 index (graph filters can miss a
        small allowed set; PQ-like types cannot filter). Scores use the stored (decoded) vectors."""
        id_map = self._id_map()
        pos = np.flatnonzero(np.isin(id_map, allowed))
        nq = len(queries)
        scores = np.full((nq, k), -np.inf, np.float32)
        labels = np.full((nq, k), -1, np.int64)
        if len(pos) == 0:
            return Neighbours(scores, labels)
        vecs = self._inner.reconstruct_batch(pos.astype(np.int64))
        sims = queries @ vecs.T  # [q, m]
        kk = min(k, len(pos))
        top = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        top_s = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_s, axis=1, kind="stable")
        scores[:, :kk] = np.take_along_axis(top_s, order, axis=1)
        labels[:, :kk] = id_map[pos[np.take_along_axis(top, order, axis=1)]]
        return Neighbours(scores, labels)

    def _gpu_index(self) -> faiss.Index | None:
        """A GPU copy for unfiltered searches when faiss-gpu sees a GPU (never required)."""
        if self._gpu is not None:
            return self._gpu
        if self._tombstoning or not hasattr(faiss, "index_cpu_to_all_gpus"):
            return None
        if faiss.get_num_gpus() <= 0:
            return None
        try:
            self._gpu = faiss.index_cpu_to_all_gpus(self._index)
        except RuntimeError as exc:  # type without a GPU implementation: CPU gives same results
            log.info("dense index stays on CPU: %s", exc)
            return None
        return self._gpu

    # ----------------------------------------------------------------- persistence
    def save(self, directory: str | os.PathLike, generation: int, kind: str = "dense") -> Path:
        """Write atomically to ``directory/{kind}-{generation:06d}.faiss``; returns the path."""
        path = Path(directory) / generation_name(kind, generation)
        return atomic_write(path, lambda tmp: faiss.write_index(self._index, str(tmp)))

    @classmethod
    def mmap_threshold(cls) -> int:
        """File size above which ``load(mmap=None)`` maps: EARMARK_MMAP_BYTES, else
        :attr:`MMAP_THRESHOLD_BYTES`. A malformed variable is a ValueError naming it."""
        return _env_bytes("EARMARK_MMAP_BYTES", cls.MMAP_THRESHOLD_BYTES)

    @classmethod
    def load(cls, path: str | os.PathLike, mmap: bool | None = None) -> "DenseIndex":
        """Read an index file. ``mmap=True`` maps it read-only (fast open, pages loaded on
        demand); None maps files above :meth:`mmap_threshold`."""
        p = Path(path)
        if not p.is_file():
            raise IndexFileError(f"index file {p} is missing; rebuild it from the database")
        if mmap is None:
            mmap = p.stat().st_size > cls.mmap_threshold()
        flags = 0
        if mmap:
            # IVF files (fourcc 'Iw..') map their inverted lists with IO_FLAG_MMAP; the code
            # arrays of flat-code types (Flat, SQ, PQ, HNSW storage) need IO_FLAG_MMAP_IFC.
            # FAISS refuses the two together on IVF files.
            with open(p, "rb") as fh:
                is_ivf = fh.read(2) == b"Iw"
            flags = faiss.IO_FLAG_READ_ONLY | (
                faiss.IO_FLAG_MMAP if is_ivf else faiss.IO_FLAG_MMAP_IFC
            )
        try:
            index = faiss.read_index(str(p), flags)
        except RuntimeError as exc:
            raise IndexFileError(f"cannot read index file {p} ({exc}); rebuild it from the database") from exc
        return cls(index, read_only=bool(mmap))

    # ----------------------------------------------------------------- helpers
    def _id_map(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map)

    def _check_writable(self) -> None:
        if self._read_only:
            raise ReadOnlyIndex("index was loaded memory-mapped; load with mmap=False to modify it")

    def _as_vectors(self, vectors: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"expected float32 [n, {self.dim}], got shape {arr.shape}")
        return arr
