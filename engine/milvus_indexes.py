"""A library's indexes on Milvus: the scale-out backend, derived from the store like the FAISS files.

The store (SQLite or PostgreSQL) stays the source of truth. The Milvus collection
(:mod:`earmark.index.milvus`) holds, per segment, the dense embedding, the concept code and
filterable metadata; it is derived state that can always be rebuilt from the store. The
settings table records what was synced (``milvus_data_version``, ``milvus_codebook_id``), so
opening a library only touches Milvus when the store has moved on: then the collection's ids
are compared with the store's (segment ids are never reused) and the difference is written.

:class:`MilvusLibraryIndexes` offers the interface search uses on the FAISS backend
(:meth:`search_segments`, ``postings.codes_of`` for explanations, ``dense.search``), so queries,
explanations and evidence are the same code on both backends.

Settings (``Library.setting``): ``index_backend`` = faiss | milvus, ``milvus_uri`` (a Milvus
Lite ``.db`` file or ``http://host:19530``), ``milvus_collection``, ``milvus_index`` (FLAT,
IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW), ``milvus_fusion``, ``milvus_weights`` ("0.5,0.5"),
``milvus_shards`` and ``milvus_replicas`` (cluster sizing, docs/milvus.md).

Fusion (``milvus_fusion``): ``rrf`` and ``weighted`` are one Milvus ``hybrid_search`` with
``RRFRanker(60)`` (the formula earmark uses) or ``WeightedRanker``; ``earmark`` (the default)
runs the two Milvus searches and fuses them with earmark's RRF. The default exists because
Milvus ranks *tied* scores in its own order (measured on Milvus Lite 2.5: reverse insertion
order) while earmark ranks ties by segment id; libraries with identical windows (duplicate files,
a file that opens like another) then get slightly different RRF terms and may show the other
copy of a duplicate. ``earmark`` gives the FAISS backend's results exactly.
A token for a secured cluster comes from the environment, ``EARMARK_MILVUS_TOKEN``, never the
database.
"""
from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable

import numpy as np
import scipy.sparse as sp
from sqlalchemy import select

from ..index.dense import Neighbours
from ..index.milvus import FUSIONS, MilvusError, MilvusSegments, SegmentRows
from ..index.sparse import SegmentCode, UnknownSegment
from ..index.store import Code, Segment, Setting, Sound
from .indexes import FETCH_BATCH, SegmentScores, SyncReport

if TYPE_CHECKING:
    from .library import Library

log = logging.getLogger("earmark.milvus")
KIND = "milvus"
FUSION_MODES = FUSIONS + ("earmark",)
TOKEN_ENV = "EARMARK_MILVUS_TOKEN"


def segments_store(library: "Library") -> MilvusSegments:
    """The library's collection as its settings name it."""
    uri = library.setting("milvus_uri") or ""
    name = library.setting("milvus_collection") or ""
    if not uri or not name:
        raise MilvusError(f"{library.path} has no Milvus settings; run `earmark backend copy --to milvus --milvus-uri URI`")
    return MilvusSegments(uri, name, library.encoder_record().dim, token=os.environ.get(TOKEN_ENV) or None,
                          index_type=library.setting("milvus_index") or "FLAT",
                          shards=int(library.setting("milvus_shards") or 1),
                          replicas=int(library.setting("milvus_replicas") or 1))


def _read_rows(s, ids: list[int], book) -> SegmentRows:
    """Store rows → collection rows for ``ids`` (ascending), codes under ``book`` (empty without)."""
    from .codebook import read_codes

    rows = s.execute(select(Segment.id, Segment.sound_id, Segment.start, Segment.end, Segment.embedding,
                            Sound.duration, Sound.root_id).join(Sound, Sound.id == Segment.sound_id)
                     .where(Segment.id.in_(ids)).order_by(Segment.id)).all()
    got = np.array([r[0] for r in rows], np.int64)
    dense = np.stack([np.frombuffer(r[4], np.float32) for r in rows]) if rows else np.zeros((0, 1), np.float32)
    n_concepts = len(book.concepts) if book is not None else 1
    codes = sp.csr_matrix((len(rows), n_concepts), dtype=np.float32)
    if book is not None and len(rows):
        cids, csr, _ = read_codes(s, book.id, [int(i) for i in got], n_concepts)
        pos = np.searchsorted(got, cids)
        perm = sp.csr_matrix((np.ones(len(cids), np.float32), (pos, np.arange(len(cids)))), shape=(len(rows), len(cids)))
        codes = (perm @ csr).tocsr()
    return SegmentRows(ids=got, sound_ids=np.array([r[1] for r in rows], np.int64),
                       root_ids=np.array([r[6] for r in rows], np.int64),
                       starts=np.array([r[2] for r in rows], np.float32), ends=np.array([r[3] for r in rows], np.float32),
                       durations=np.array([r[5] or 0.0 for r in rows], np.float32), dense=dense, codes=codes)


class _DenseView:
    """``idx.dense`` on Milvus: the DenseIndex calls search and tests use."""

    def __init__(self, owner: "MilvusLibraryIndexes") -> None:
        self._o = owner

    def search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None) -> Neighbours:
        q = np.atleast_2d(np.asarray(queries, np.float32))
        parts = [self._o.store.search_dense(row, k, allowed_ids=allowed_ids) for row in q]
        return Neighbours(np.concatenate([p.scores for p in parts]), np.concatenate([p.ids for p in parts]))

    def ids(self) -> np.ndarray:
        return self._o.store.ids()

    @property
    def ntotal(self) -> int:
        return self._o.store.count()


class _PostingsView:
    """``idx.postings`` on Milvus: codes for explanations, concept search."""

    def __init__(self, owner: "MilvusLibraryIndexes", n_concepts: int) -> None:
        self._o = owner
        self.n_concepts = n_concepts

    def _code(self, segment_id: int) -> SegmentCode | None:
        cache = self._o._codes
        if segment_id not in cache:
            cache.update(self._o.store.codes_of([segment_id]))
            cache.setdefault(segment_id, None)
        code = cache[segment_id]
        return code if code is not None and len(code.concept_ids) else None

    def __contains__(self, segment_id: int) -> bool:
        return self._code(int(segment_id)) is not None

    def codes_of(self, segment_id: int) -> SegmentCode:
        code = self._code(int(segment_id))
        if code is None:
            raise UnknownSegment(f"segment {segment_id} has no concept code in the Milvus collection")
        return code

    def __len__(self) -> int:
        return self._o.store.count()

    def ids(self) -> np.ndarray:
        return self._o.store.ids()

    def concept_search(self, query_weights: np.ndarray, k: int, allowed_ids: np.ndarray | None = None,
                       exclude: list[int] | None = None) -> Neighbours:
        banned = self._o.store.segments_with_concepts(exclude or [])
        return self._o.store.search_concepts(query_weights, k, allowed_ids=allowed_ids, banned_ids=banned)


class MilvusLibraryIndexes:
    """The dense and concept indexes of one library, kept in a Milvus collection."""

    backend = KIND

    def __init__(self, library: "Library", notify: Callable[[str], None] | None = None) -> None:
        self.lib = library
        self.store = segments_store(library)
        self.data_version = -1
        self.notify = notify or (lambda msg: log.info(msg))
        self.fusion = library.setting("milvus_fusion") or "earmark"
        if self.fusion not in FUSION_MODES:
            raise MilvusError(f"milvus_fusion must be one of {', '.join(FUSION_MODES)}, got {self.fusion!r}")
        w = [float(x) for x in (library.setting("milvus_weights") or "0.5,0.5").split(",")]
        self.weights = (w[0], w[1])
        self._codes: dict[int, SegmentCode | None] = {}
        self._n_concepts: int | None = None
        self._pending: tuple[int, str] | None = None
        self._max_id: int | None = None  # largest id written, when this sync read the wanted ids

    # -- access ---------------------------------------------------------------------------
    @property
    def dense(self) -> _DenseView:
        return _DenseView(self)

    @property
    def concept(self) -> None:
        """No recomposed-vector index on Milvus: concept search runs on the sparse codes."""
        return None

    @property
    def postings(self) -> _PostingsView | None:
        return _PostingsView(self, self._n_concepts) if self._n_concepts else None

    # -- sync -----------------------------------------------------------------------------
    def _wanted(self, s, book) -> np.ndarray:
        # With a codebook, a segment enters the collection once it has its code (the row holds
        # both vectors, and a row written without its code would never be rewritten).
        if book is None:
            return np.array(s.scalars(select(Segment.id).order_by(Segment.id)).all(), np.int64)
        return np.array(s.scalars(select(Code.segment_id).where(Code.codebook_id == book.id)
                                  .order_by(Code.segment_id)).all(), np.int64)

    def _write(self, s, ids: np.ndarray, book) -> None:
        for lo in range(0, len(ids), FETCH_BATCH):
            rows = _read_rows(s, [int(i) for i in ids[lo:lo + FETCH_BATCH]], book)
            if len(rows):
                self.store.upsert(rows)

    def sync(self, force_rebuild: bool = False) -> SyncReport:
        """Bring the collection up to date with the store (writes to Milvus when it is behind)."""
        rep = SyncReport()
        book = self.lib.active_codebook()
        tag = "" if book is None else str(book.id)
        with self.lib.session() as s, s.begin():  # one snapshot: ids and data version agree
            version = int(s.get(Setting, "data_version").value)
            row_v, row_t = s.get(Setting, "milvus_data_version"), s.get(Setting, "milvus_codebook_id")
            synced_v = int(row_v.value) if row_v is not None and row_v.value != "" else -1
            synced_t = row_t.value if row_t is not None else None
            exists = self.store.exists()
            wanted = np.zeros(0, np.int64)
            if force_rebuild or not exists or synced_t != tag:
                wanted = self._wanted(s, book)
                self.store.drop()
                self.store.create()
                self._write(s, wanted, book)
                rep.rebuilt.append(KIND)
                msg = f"rebuilt the Milvus collection {self.store.collection} from the database ({len(wanted)} segments)"
                rep.messages.append(msg)
                self.notify(msg)
            elif synced_v != version:
                wanted = self._wanted(s, book)
                row_m = s.get(Setting, "milvus_max_id")
                max_id = int(row_m.value) if row_m is not None and row_m.value != "" else None
                fresh = wanted[wanted > max_id] if max_id is not None else wanted
                if max_id is not None and self.store.count() == len(wanted) - len(fresh):
                    # Only appends since the last commit (ids only grow): no id scan of the collection.
                    add, gone = fresh, np.zeros(0, np.int64)
                else:
                    have = self.store.ids()
                    add = np.setdiff1d(wanted, have, assume_unique=True)
                    gone = np.setdiff1d(have, wanted, assume_unique=True)
                if len(gone):
                    self.store.delete(gone)
                if len(add):
                    self._write(s, add, book)
                if len(add) or len(gone):
                    rep.added[KIND], rep.removed[KIND] = len(add), len(gone)
        self._codes.clear()
        self._n_concepts = len(book.concepts) if book is not None else None
        self.data_version = version
        self._max_id = int(wanted[-1]) if len(wanted) else 0
        self._pending = (version, tag) if (synced_v, synced_t) != (version, tag) or rep.rebuilt else None
        return rep

    def commit(self, rep: SyncReport | None = None) -> SyncReport:
        """Record in the store which data version the collection reflects (caller holds the lock)."""
        rep = rep or SyncReport()
        if self._pending is None:
            return rep
        version, tag = self._pending
        self.store.flush()  # sealed segments: the next process sees the rows without replaying
        with self.lib.session() as s, s.begin():
            self.lib.set_setting(s, "milvus_data_version", version)
            self.lib.set_setting(s, "milvus_codebook_id", tag)
            if self._max_id is not None:
                self.lib.set_setting(s, "milvus_max_id", self._max_id)
        rep.committed[KIND] = version
        self._pending = None
        return rep

    # -- search ---------------------------------------------------------------------------
    def excluded_segments(self, exclude: list[int]) -> np.ndarray:
        return self.store.segments_with_concepts(exclude)

    def search_segments(self, dense_query: np.ndarray | None, concept_query: np.ndarray | None, k: int, *,
                        ranking: str = "fusion", allowed_ids: np.ndarray | None = None,
                        exclude: list[int] | None = None) -> SegmentScores:
        """As :meth:`LibraryIndexes.search_segments`, through Milvus: ``fusion`` with both queries
        is one ``hybrid_search`` (RRFRanker(60) = earmark's RRF, or WeightedRanker) unless the
        library's ``milvus_fusion`` is ``earmark``."""
        from .query.rank import RRF_K, fuse

        excl = list(exclude or [])
        if concept_query is not None:  # a negative weight excludes its concept (the query language's -c)
            excl += [int(c) for c in np.flatnonzero(np.asarray(concept_query) < 0)]
        banned = self.store.segments_with_concepts(excl) if excl else None
        if ranking == "fusion" and dense_query is not None and concept_query is not None and self.fusion in FUSIONS:
            nb = self.store.hybrid_search(dense_query, concept_query, k, allowed_ids=allowed_ids, banned_ids=banned,
                                          fusion=self.fusion, rrf_k=RRF_K, weights=self.weights)
            fused = {int(i): float(sc) for sc, i in zip(nb.scores[0], nb.ids[0]) if i >= 0}
            return SegmentScores({}, {}, fused)
        dense_hits: dict[int, float] = {}
        concept_hits: dict[int, float] = {}
        if dense_query is not None:
            nb = self.store.search_dense(dense_query, k, allowed_ids=allowed_ids, banned_ids=banned)
            dense_hits = {int(i): float(sc) for sc, i in zip(nb.scores[0], nb.ids[0]) if i >= 0}
        if concept_query is not None:
            nb = self.store.search_concepts(concept_query, k, allowed_ids=allowed_ids, banned_ids=banned)
            concept_hits = {int(i): float(sc) for sc, i in zip(nb.scores[0], nb.ids[0]) if i >= 0}
        return SegmentScores(dense_hits, concept_hits, fuse(dense_hits, concept_hits, ranking))


def check_milvus(library: "Library", rep, repair: bool = False) -> None:
    """Compare the collection with the store; ``repair`` rebuilds it."""
    from .lock import WriterLock

    idx = MilvusLibraryIndexes(library, notify=lambda m: None)
    book = library.active_codebook()
    rep.checked.append("Milvus collection agrees with the database")
    with library.session() as s:
        want = set(int(i) for i in idx._wanted(s, book))
    problem = None
    if not idx.store.exists():
        problem = f"Milvus collection {idx.store.collection} does not exist"
    else:
        have = set(int(i) for i in idx.store.ids())
        if have != want:
            problem = (f"Milvus collection {idx.store.collection} is stale: {len(want - have)} segments missing, "
                       f"{len(have - want)} orphaned rows")
    if problem and repair:
        with WriterLock(library.path).acquire():
            library.ensure_codes()
            library.commit_indexes(force_rebuild=True)
        rep.repaired.append(f"Milvus collection {idx.store.collection} rebuilt from the database")
    elif problem:
        rep.problems.append(problem)
