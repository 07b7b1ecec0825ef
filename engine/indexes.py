"""A library's derived indexes, kept in step with the SQLite store.

Three indexes are derived from the store: ``dense`` (FAISS over segment embeddings),
``concept`` (FAISS over each segment's recomposed embedding normalise(Cᵀw) + mean, the form the
paper retrieves with) and ``postings`` (scipy.sparse concept postings). Each committed file is a
generation recorded in ``index_generations`` with the store's data version it reflects. Opening
loads the newest committed generation and brings it up to date from the store by id
difference (segment ids are never reused); a missing or unreadable file is rebuilt. Only a
process holding the writer lock commits new generations; readers catch up in memory.

Files are checkpoints, not logs: the store holds every vector, so a commit whose changes since
the last file are few (under :func:`checkpoint_threshold`: 2 % of the index, at least 2,000
segments) writes nothing, and the next open catches those up from the store. Adding 100 files
to a 100k-segment library therefore rewrites no index file; the next large change (or
``earmark rebuild``) writes a new generation with everything.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from sqlalchemy import delete, func, select

from ..index.dense import DenseIndex
from ..index.files import IndexFileError, remove_old_generations, remove_temporaries
from ..index.layered import LayeredIndex
from ..index.sparse import ConceptPostings
from ..index.store import Code, IndexGeneration, Segment, Setting

if TYPE_CHECKING:
    from .library import Library

log = logging.getLogger("earmark.indexes")
KINDS = ("dense", "concept", "postings")
FETCH_BATCH = 20_000
CHECKPOINT_MIN = 2_000  # segments changed since the last file before a new one is written
CHECKPOINT_FRACTION = 0.02  # ... or this share of the index, whichever is larger


def checkpoint_threshold(n_vectors: int) -> int:
    """Changes since the last committed file that make a commit write a new generation."""
    return max(CHECKPOINT_MIN, int(CHECKPOINT_FRACTION * n_vectors))


def _id_column(s, stmt) -> np.ndarray:
    """One integer column as sorted int64 ids.

    Sorted here, not by ORDER BY: SQLite answers the unordered query from a covering index and
    the ordered one from the table (100k segment ids: ~0.2 s against ~0.4 s through SQLAlchemy).
    """
    rows = s.connection().execute(stmt).fetchall()
    return np.sort(np.fromiter((r[0] for r in rows), np.int64, count=len(rows)))


def _factory(s) -> str | None:
    """The library's FAISS factory string; None picks the type by size."""
    row = s.get(Setting, "faiss_factory")
    return (row.value if row is not None else "") or None


@dataclass
class IndexState:
    """One loaded index and what it reflects."""

    kind: str
    obj: Any
    generation: int
    data_version: int
    codebook_id: int | None
    dirty: bool = False
    rebuilt: bool = False
    pending: int = 0  # segments added or removed in memory since the file `generation` was written
    store_max_id: int | None = None  # the store's largest segment id that `obj` reflects


@dataclass
class SegmentScores:
    """Segments found by one query: dense scores, concept scores and the ranking score."""

    dense: dict[int, float]
    concept: dict[int, float]
    fused: dict[int, float]


@dataclass
class SyncReport:
    """What bringing the indexes up to date did, per kind."""

    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    rebuilt: list[str] = field(default_factory=list)
    committed: dict[str, int] = field(default_factory=dict)
    deferred: dict[str, int] = field(default_factory=dict)  # kind → changes not yet in a file
    messages: list[str] = field(default_factory=list)


class LibraryIndexes:
    """The dense, concept and postings indexes of one library."""

    def __init__(self, library: "Library", notify: Callable[[str], None] | None = None) -> None:
        self.lib = library
        self.dir = library.path / "indexes"
        self.states: dict[str, IndexState] = {}
        self.data_version = -1
        self.notify = notify or (lambda msg: log.info(msg))

    # -- access ---------------------------------------------------------------------------
    @property
    def dense(self) -> DenseIndex | LayeredIndex:
        return self.states["dense"].obj

    @property
    def concept(self) -> DenseIndex | LayeredIndex | None:
        st = self.states.get("concept")
        return st.obj if st else None

    @property
    def postings(self) -> ConceptPostings | None:
        st = self.states.get("postings")
        return st.obj if st else None

    # -- search ---------------------------------------------------------------------------
    def excluded_segments(self, exclude: list[int]) -> np.ndarray:
        """Segments whose code has a weight on any of the ``exclude`` concepts."""
        if not exclude or self.postings is None:
            return np.zeros(0, np.int64)
        return self.postings.segments_with(exclude)

    def search_segments(self, dense_query: np.ndarray | None, concept_query: np.ndarray | None, k: int, *,
                        ranking: str = "fusion", allowed_ids: np.ndarray | None = None,
                        exclude: list[int] | None = None) -> SegmentScores:
        """Top-``k`` segments for a dense query (unit [d]) and/or a concept query ([V]), restricted
        to ``allowed_ids`` and without segments carrying an ``exclude`` concept, fused by
        ``ranking`` (engine/query/rank.py). The same interface serves the Milvus backend."""
        from .query.rank import fuse

        dense_hits: dict[int, float] = {}
        concept_hits: dict[int, float] = {}
        if dense_query is not None:
            # -concept: the segments carrying it, passed to FAISS as "not these ids" (the postings
            # search below drops them itself through ``exclude``).
            banned = self.excluded_segments(list(exclude or []))
            sc, ids = self.dense.search(np.asarray(dense_query, np.float32)[None, :], k, allowed_ids=allowed_ids,
                                        excluded_ids=banned if len(banned) else None)
            dense_hits = {int(i): float(s) for s, i in zip(sc[0], ids[0]) if i >= 0}
        if concept_query is not None and self.postings is not None:
            sc, ids = self.postings.concept_search(concept_query, k, allowed_ids=allowed_ids, exclude=exclude or None)
            concept_hits = {int(i): float(s) for s, i in zip(sc[0], ids[0]) if i >= 0}
        return SegmentScores(dense_hits, concept_hits, fuse(dense_hits, concept_hits, ranking))

    # -- sync -----------------------------------------------------------------------------
    def sync(self, force_rebuild: bool = False) -> SyncReport:
        """Load committed generations and bring them up to date with the store (in memory)."""
        rep = SyncReport()
        self.dir.mkdir(parents=True, exist_ok=True)
        # The codebook's id tags the concept indexes; the codebook itself (encoder and dictionary,
        # so torch) is loaded only if an index must be built or caught up (``_vectors``).
        book_id = self.lib.active_codebook_id()
        with self.lib.session() as s, s.begin():  # one snapshot: ids and data version agree
            version = int(s.get(Setting, "data_version").value)
            factory = _factory(s)
            dim = self.lib.encoder_record().dim
            wanted: dict[str, np.ndarray] = {"dense": _id_column(s, select(Segment.id))}
            if book_id is not None:
                wanted["concept"] = wanted["postings"] = _id_column(
                    s, select(Code.segment_id).where(Code.codebook_id == book_id))
            for kind in KINDS:
                if kind not in wanted:
                    self.states.pop(kind, None)
                    continue
                tag = None if kind == "dense" else book_id
                st = self.states.get(kind)
                if st is None or st.codebook_id != tag or force_rebuild:
                    st = None if force_rebuild else self._load_committed(s, kind, tag)
                if st is not None and kind != "postings" and st.obj.dim != dim:
                    st = None  # the library moved to an encoder of another dimension (engine/reembed.py)
                if st is None:
                    st = self._build(s, kind, wanted[kind], factory, version)
                    rep.rebuilt.append(kind)
                elif st.data_version != version:
                    self._catch_up(s, st, wanted[kind], rep)
                if kind != "postings" and st.obj.needs_rebuild:
                    st = self._build(s, kind, wanted[kind], factory, version)
                    rep.rebuilt.append(kind)
                elif kind != "postings" and factory is None and self._outgrown(st.obj):
                    st = self._build(s, kind, wanted[kind], None, version)
                    rep.rebuilt.append(kind)
                st.data_version = version
                st.store_max_id = int(wanted[kind][-1]) if len(wanted[kind]) else 0  # ids are sorted
                self.states[kind] = st
        self.data_version = version
        for kind in rep.rebuilt:
            msg = f"rebuilt the {kind} index from the database ({len(wanted.get(kind, []))} segments)"
            rep.messages.append(msg)
            self.notify(msg)
        return rep

    def _outgrown(self, idx: DenseIndex | LayeredIndex) -> bool:
        """An exact index that passed the size where the automatic type changes."""
        # A Flat index reads back from its file as IndexFlatIP, a subclass.
        return idx.stats().kind.startswith("IndexFlat") and idx.ntotal > DenseIndex.FLAT_LIMIT

    def _load_committed(self, s, kind: str, tag: int | None) -> IndexState | None:
        row = s.scalar(select(IndexGeneration).where(IndexGeneration.kind == kind)
                       .order_by(IndexGeneration.generation.desc()).limit(1))
        if row is None or row.codebook_id != tag:
            return None
        path = self.dir / row.file
        try:
            # Files above DenseIndex.mmap_threshold() are mapped; changes go to a delta.
            obj = ConceptPostings.load(path) if kind == "postings" else DenseIndex.load(path, mmap=None)
        except (IndexFileError, OSError, ValueError) as exc:
            self.notify(f"{kind} index generation {row.generation} cannot be read ({exc}); rebuilding")
            return None
        if isinstance(obj, DenseIndex) and obj.read_only:
            obj = LayeredIndex(obj, path)
        return IndexState(kind, obj, row.generation, row.data_version, tag, store_max_id=row.store_max_id)

    def _vectors(self, s, kind: str, ids: np.ndarray):
        """Stored vectors (dense), recomposed vectors (concept) or CSR codes (postings) for ids
        (the last two under the active codebook)."""
        from .codebook import read_codes

        if kind == "dense":
            out = np.zeros((len(ids), self.lib.encoder_record().dim), np.float32)
            pos = {int(i): n for n, i in enumerate(ids)}
            for lo in range(0, len(ids), FETCH_BATCH):
                chunk = [int(i) for i in ids[lo:lo + FETCH_BATCH]]
                for sid, blob in s.execute(select(Segment.id, Segment.embedding).where(Segment.id.in_(chunk))):
                    out[pos[sid]] = np.frombuffer(blob, np.float32)
            return out
        book = self.lib.active_codebook()
        parts, got = [], []
        for lo in range(0, len(ids), FETCH_BATCH):
            got_ids, csr, _ = read_codes(s, book.id, [int(i) for i in ids[lo:lo + FETCH_BATCH]], len(book.concepts))
            got.append(got_ids)
            parts.append(csr)
        import scipy.sparse as sp

        csr = sp.vstack(parts).tocsr() if parts else sp.csr_matrix((0, len(book.concepts)), dtype=np.float32)
        if kind == "postings":
            return csr
        from .concepts.decompose import recompose  # torch: only when vectors are recomposed

        return recompose(csr, book.dictionary)

    def _build(self, s, kind: str, ids: np.ndarray, factory: str | None, version: int) -> IndexState:
        data = self._vectors(s, kind, ids)
        book = None if kind == "dense" else self.lib.active_codebook()
        if kind == "postings":
            obj = ConceptPostings.from_codes(ids, data, len(book.concepts))
        elif len(ids):
            obj = DenseIndex.rebuild(ids, data, factory)
        else:
            dim = self.lib.encoder_record().dim
            obj = DenseIndex.create(dim, factory if factory and not factory.upper().startswith("IVF") else "Flat")
        return IndexState(kind, obj, -1, version, None if kind == "dense" else book.id, dirty=True, rebuilt=True)

    def _catch_up(self, s, st: IndexState, wanted: np.ndarray, rep: SyncReport) -> None:
        have = np.sort(st.obj.ids())
        add = np.setdiff1d(wanted, have, assume_unique=True)
        gone = np.setdiff1d(have, wanted, assume_unique=True)
        if len(gone):
            st.obj.remove(gone)
        if len(add):
            data = self._vectors(s, st.kind, add)
            if st.kind != "postings" and not st.obj.is_trained:
                st.obj.train(data)
            if st.kind == "postings":
                st.obj.add(add, data)
            else:
                st.obj.add(add, data, replace=False)  # `add` holds only ids the index lacks
        if len(add) or len(gone):
            st.dirty = True
            st.pending += len(add) + len(gone)
            rep.added[st.kind] = len(add)
            rep.removed[st.kind] = len(gone)

    def _materialise(self, kind: str, st: IndexState) -> DenseIndex:
        """A layered index in memory: its file plus changes, or, when another process already
        removed that file (this one mapped it long ago), rebuilt from the store."""
        try:
            return st.obj.materialise()
        except IndexFileError as exc:
            self.notify(f"{kind} index: {exc}; writing it from the database instead")
            with self.lib.session() as s:
                return self._build(s, kind, np.sort(st.obj.ids()), _factory(s), st.data_version).obj

    # -- commit ---------------------------------------------------------------------------
    def commit(self, rep: SyncReport | None = None, force: bool = False) -> SyncReport:
        """Write changed indexes as new generations (caller holds the writer lock).

        Few changes since the last file are not written (see the module docstring) unless
        ``force``; rebuilt indexes always are.
        """
        rep = rep or SyncReport()
        remove_temporaries(self.dir)
        for kind, st in self.states.items():
            n_now = len(st.obj) if kind == "postings" else st.obj.ntotal
            if st.dirty and not st.rebuilt and not force and st.pending < checkpoint_threshold(n_now):
                rep.deferred[kind] = st.pending  # the store has them; the next open catches up
                continue
            if not st.dirty:
                # Same vectors (ids are never reused, vectors never change): only record that this
                # file also reflects the newer data version, so the next open skips the catch-up.
                with self.lib.session() as s, s.begin():
                    row = s.scalar(select(IndexGeneration).where(IndexGeneration.kind == kind,
                                                                 IndexGeneration.generation == st.generation))
                    if row is not None and row.data_version < st.data_version:
                        row.data_version = st.data_version
                continue
            with self.lib.session() as s, s.begin():
                last = s.scalar(select(func.max(IndexGeneration.generation)).where(IndexGeneration.kind == kind))
                gen = (last or 0) + 1
                if isinstance(st.obj, LayeredIndex):
                    # The mapped file plus the delta, written once in full; the new file is
                    # mapped in turn, so the process never holds the whole index for long.
                    path = self._materialise(kind, st).save(self.dir, gen, kind=kind)
                    st.obj = LayeredIndex(DenseIndex.load(path, mmap=True), path)
                elif kind == "postings":
                    path = st.obj.save(self.dir, gen)
                else:
                    path = st.obj.save(self.dir, gen, kind=kind)
                n = len(st.obj) if kind == "postings" else st.obj.ntotal
                s.add(IndexGeneration(kind=kind, generation=gen, file=path.name, n_vectors=int(n),
                                      data_version=st.data_version, codebook_id=st.codebook_id,
                                      store_max_id=st.store_max_id,
                                      factory=None if kind == "postings" else st.obj.stats().kind))
                # older generation rows stay as history; their files go once the new row commits
                s.execute(delete(IndexGeneration).where(IndexGeneration.kind == kind, IndexGeneration.generation < gen - 5))
            remove_old_generations(self.dir, kind, keep={gen, gen - 1})  # a reader may still open gen-1
            st.generation, st.dirty, st.rebuilt, st.pending = gen, False, False, 0
            rep.committed[kind] = gen
        return rep


def check_indexes(library: "Library", rep, repair: bool = False) -> None:
    """Compare the committed index files with the store; ``repair`` rebuilds and commits them."""
    from .lock import WriterLock

    # The active codebook's id is all the comparison needs: loading the codebook itself would
    # load the encoder and its concept dictionary (torch) just to read an id.
    book_id = library.active_codebook_id()
    idx = LibraryIndexes(library, notify=lambda m: None)
    index_problems: list[str] = []
    with library.session() as s:
        expected = {"dense": set(s.scalars(select(Segment.id)))}
        if book_id is not None:
            codes = set(s.scalars(select(Code.segment_id).where(Code.codebook_id == book_id)))
            expected["concept"] = expected["postings"] = codes
            missing_codes = len(expected["dense"] - codes)
            rep.checked.append("every segment has a concept code")
            if missing_codes:
                rep.problems.append(f"{missing_codes} segments have no concept code under the active codebook")
        for kind, want in expected.items():
            rep.checked.append(f"{kind} index agrees with the database")
            st = idx._load_committed(s, kind, None if kind == "dense" else book_id)
            if st is None:
                index_problems.append(f"{kind} index: no readable committed generation")
                continue
            have = set(int(i) for i in st.obj.ids())
            missing, orphaned = want - have, have - want
            if st.store_max_id is not None:
                # A checkpoint lags legitimately: it lacks segments added after it (ids above its
                # store_max_id) and holds segments deleted after it (ids at or below). Anything
                # else is damage: a vector it should hold, or an id the store never had.
                lag = sum(1 for i in missing if i > st.store_max_id) + sum(1 for i in orphaned if i <= st.store_max_id)
                missing = {i for i in missing if i <= st.store_max_id}
                orphaned = {i for i in orphaned if i > st.store_max_id}
                if lag:
                    rep.checked.append(f"{kind} index generation {st.generation} is a checkpoint {lag} changes behind "
                                       f"the store (caught up on open)")
            if missing or orphaned:
                index_problems.append(
                    f"{kind} index generation {st.generation} is stale: {len(missing)} segments missing, "
                    f"{len(orphaned)} orphaned vectors")
    if repair and (index_problems or any("concept code" in p for p in rep.problems)):
        with WriterLock(library.path).acquire():
            library.ensure_codes()
            done = library.commit_indexes(force_rebuild=True)
        rep.repaired.extend(f"{k} index rebuilt as generation {g}" for k, g in done.committed.items())
        rep.problems[:] = [p for p in rep.problems if "concept code" not in p]
    else:
        rep.problems.extend(index_problems)
