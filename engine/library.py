"""The Library: one directory on disk holding a sound library's store, indexes and models.

This class is earmark's Python API; the CLI, the HTTP server and the benchmarks are thin
shells over it.
"""
from __future__ import annotations

import hashlib
import os
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ..index import db as store_db
from ..index.store import EncoderRecord, Root, Segment, Setting, Sound
from .encoders import DEFAULT_ENCODER, Encoder, EncoderError, load_encoder
from .ingest import IndexReport, IndexRun
from .lock import WriterLock
from .query.rank import DEFAULT_RANKING

if TYPE_CHECKING:
    from ..index.check import CheckReport
    from .codebook import ActiveCodebook
    from .library_status import LibraryStatus
    from .indexes import LibraryIndexes, SyncReport
    from .reembed import ReembedReport
    from .search import Hit, SearchResult

LIBRARY_ENV = "EARMARK_LIBRARY"
BACKENDS = ("faiss", "milvus")


class LibraryError(Exception):
    """A library cannot be created, opened or used as asked."""


class EncoderMismatch(LibraryError):
    """The loaded encoder is not the one the library's vectors were made with."""


@dataclass
class SoundInfo:
    """One sound as listed by ``earmark ls``."""

    id: int
    root: str
    path: str
    status: str
    duration: float | None
    sample_rate: int | None
    channels: int | None
    segments: int
    error: str | None
    content_hash: str | None

    @property
    def abs_path(self) -> str:
        return str(Path(self.root) / self.path)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BackendInfo:
    """Where a library's derived indexes live (``earmark backend status`` / ``copy``)."""

    backend: str  # faiss | milvus
    database: str  # the store's URL, password hidden
    milvus_uri: str | None
    milvus_collection: str | None
    milvus_index: str | None
    milvus_fusion: str | None
    synced_data_version: int | None  # what the Milvus collection reflects
    data_version: int
    segments: int  # rows in the active backend's dense index
    seconds: float = 0.0  # time the copy took

    def to_dict(self) -> dict:
        return asdict(self)


def default_library_path() -> Path:
    return Path(os.environ.get(LIBRARY_ENV, "earmark-library"))


EXPLAIN_SEARCH_K = 50  # `explain` looks for the sound among this many library-wide hits first


class Library:
    """A sound library on disk. ``Library(path)`` opens an existing one; ``Library.init`` makes one."""

    def __init__(self, path: str | Path, *, migrate: bool = False, encoder: Encoder | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        if not self.path.is_dir():
            raise LibraryError(f"{self.path}: no such library directory; run `earmark init {path}` first")
        from ..index.dense import DenseIndex

        try:
            DenseIndex.mmap_threshold()  # a malformed EARMARK_MMAP_BYTES fails here, not mid-query
        except ValueError as exc:
            raise LibraryError(str(exc)) from None
        self._sessions: sessionmaker[Session] = store_db.open_store(self.path, migrate=migrate)
        self._encoder = encoder
        self._encoder_rid: int | None = None  # the encoder record `_encoder` was loaded for
        self._codebook: "ActiveCodebook | None" = None
        self._indexes: "LibraryIndexes | None" = None
        self._snapshot = threading.local()  # settings read once per query (see read_snapshot)
        # Encoder rows change only by `earmark reembed` (their spec, never their fingerprint).
        self._encoder_records: dict[int, EncoderRecord] = {}

    # -- creation -----------------------------------------------------------------------
    @classmethod
    def init(cls, path: str | Path, encoder: str | Encoder = DEFAULT_ENCODER, hop_seconds: float | None = None,
             vocabulary: str | None = None, lam: float | None = None, target_l0: int | None = None, *,
             backend: str = "faiss", milvus_uri: str | None = None, milvus_index: str = "FLAT",
             milvus_fusion: str | None = None, db_url: str | None = None) -> "Library":
        """Create a library at ``path`` bound to ``encoder`` (a spec string or an Encoder).

        ``vocabulary`` (a shipped name or a file), ``lam`` or ``target_l0`` set how concept
        codes are computed (defaults: the shipped 'pruned' vocabulary, λ = 0.15). ``backend``
        'milvus' keeps the indexes in a Milvus collection at ``milvus_uri`` (a Milvus Lite
        ``.db`` file or ``http://host:19530``); ``db_url`` puts the metadata store in a
        database server (``postgresql+psycopg://user@host/db``) instead of ``earmark.db``.
        """
        from .codebook import resolve_vocabulary

        if lam is not None and target_l0 is not None:
            raise LibraryError("give --lam or --target-l0, not both")
        if backend not in BACKENDS:
            raise LibraryError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        milvus = _milvus_settings(milvus_uri, milvus_index, fusion=milvus_fusion) if backend == "milvus" else {}
        p = Path(path).expanduser().resolve()
        if store_db.is_library(p):
            raise LibraryError(f"{p} is already an earmark library")
        enc = load_encoder(encoder) if isinstance(encoder, str) else encoder
        vocab = resolve_vocabulary(vocabulary)  # fail before creating anything
        hop = hop_seconds if hop_seconds is not None else enc.window_seconds / 2
        if not 0 < hop <= enc.window_seconds:
            raise LibraryError(f"hop must be in (0, {enc.window_seconds}] seconds, got {hop}")
        p.mkdir(parents=True, exist_ok=True)
        sessions = store_db.open_store(p, create=True, db_url=db_url)
        with sessions() as s, s.begin():
            rec = EncoderRecord(name=enc.name, dim=enc.dim, fingerprint=enc.fingerprint,
                                sample_rate=enc.sample_rate, window_seconds=enc.window_seconds, config=enc.config())
            s.add(rec)
            s.flush()
            # the encoder row's name is the spec the library loads its encoder by (no separate
            # setting: libraries before 2026-12-07 also hold an `encoder_spec` row, never read now)
            settings = {"encoder_id": rec.id, "hop_seconds": hop, "data_version": 0,
                        "vocabulary": vocabulary or vocab.name, "lam": "" if lam is None else lam,
                        "target_l0": "" if target_l0 is None else target_l0, "codebook_id": "",
                        "index_backend": backend, **milvus}
            for key, value in settings.items():
                s.add(Setting(key=key, value=str(value)))
        return cls(p, encoder=enc)

    # -- plumbing -----------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            yield s

    def setting(self, key: str, default: str | None = None) -> str | None:
        snap = getattr(self._snapshot, "settings", None)
        if snap is not None:
            return snap.get(key, default)
        with self.session() as s:
            row = s.get(Setting, key)
            return row.value if row is not None else default

    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Inside this block (per thread) the settings table is read once, in one SELECT.

        A query reads the codebook, encoder, backend and data version several times; each read
        used to be its own session. One snapshot also means one query sees one consistent
        state even while another process writes. Writers never run inside a snapshot.
        """
        if getattr(self._snapshot, "settings", None) is not None:
            yield
            return
        with self.session() as s:
            self._snapshot.settings = {row.key: row.value for row in s.scalars(select(Setting))}
        try:
            yield
        finally:
            self._snapshot.settings = None

    def set_setting(self, s: Session, key: str, value: object) -> None:
        row = s.get(Setting, key)
        if row is None:
            s.add(Setting(key=key, value=str(value)))
        else:
            row.value = str(value)
        self._note_setting(key, str(value))

    def bump_data_version(self, s: Session) -> int:
        """Increment the store's data version inside the caller's transaction."""
        row = s.get(Setting, "data_version")
        row.value = str(int(row.value) + 1)
        self._note_setting("data_version", row.value)
        return int(row.value)

    def _note_setting(self, key: str, value: str) -> None:
        # A reader that catches up (Milvus) writes inside its query's snapshot: keep it current.
        snap = getattr(self._snapshot, "settings", None)
        if snap is not None:
            snap[key] = value

    @property
    def data_version(self) -> int:
        return int(self.setting("data_version", "0"))

    def encoder_record_id(self) -> int:
        return int(self.setting("encoder_id"))

    def encoder_record(self) -> EncoderRecord:
        rid = self.encoder_record_id()
        rec = self._encoder_records.get(rid)
        if rec is None:
            with self.session() as s:
                rec = s.get(EncoderRecord, rid)
            if rec is not None:
                self._encoder_records[rid] = rec
        return rec

    @property
    def encoder(self) -> Encoder:
        """The library's encoder, loaded on first use and checked against its fingerprint."""
        rec = self.encoder_record()
        if self._encoder is not None and self._encoder_rid not in (None, rec.id):
            # Another process moved the library to another encoder (`earmark reembed`): reload.
            self._encoder, self._codebook, self._indexes = None, None, None
        if self._encoder is None:
            try:
                self._encoder = load_encoder(rec.name)
            except EncoderError as exc:
                raise LibraryError(f"cannot load this library's encoder '{rec.name}': {exc}") from exc
            self._encoder_rid = rec.id
        if self._encoder.fingerprint != rec.fingerprint:
            raise EncoderMismatch(
                f"encoder '{self._encoder.name}' has fingerprint {self._encoder.fingerprint} but this library "
                f"was built with {rec.fingerprint} ({rec.name}); vectors of different encoders never mix — "
                "run `earmark reembed` to embed its sounds again with this encoder"
            )
        return self._encoder

    def forget_encoder_records(self) -> None:
        """Drop the cached encoder rows (after `earmark reembed` renamed one)."""
        self._encoder_records.clear()

    def bind_encoder(self, encoder: Encoder) -> None:
        """Use ``encoder`` (already checked against the library's record, see engine/reembed.py)."""
        self._encoder, self._encoder_rid = encoder, self.encoder_record_id()
        self._codebook, self._indexes = None, None

    @property
    def hop_samples(self) -> int:
        return self.hop_samples_at(self.encoder.sample_rate)

    def hop_samples_at(self, sample_rate: int) -> int:
        """The library's hop in samples at ``sample_rate`` (an encoder it is not bound to yet, too)."""
        return max(1, int(round(float(self.setting("hop_seconds")) * sample_rate)))

    # -- concept codes ------------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        return self.path / "cache"

    def active_codebook_id(self) -> int | None:
        """The active codebook's id (None until the library has vectors), read without loading it:
        loading it loads the encoder, which readers that only compare ids do not need."""
        return int(self.setting("codebook_id") or 0) or None

    def active_codebook(self) -> "ActiveCodebook | None":
        """The codebook new codes are computed with (None until the library has vectors)."""
        from .codebook import load_codebook

        cb_id = self.active_codebook_id()
        if cb_id is None:
            return None
        if self._codebook is None or self._codebook.id != cb_id:
            with self.session() as s:
                self._codebook = load_codebook(s, cb_id, self.encoder, self.cache_dir, self.path / "models")
        return self._codebook

    def active_vocabulary_hash(self) -> str | None:
        """Hash of the vocabulary the active codebook holds (its own copy in the store), without
        loading the encoder; None before the library has a codebook."""
        from ..index.store import Codebook
        from ..index.store import Vocabulary as VocabularyRow

        cb_id = self.active_codebook_id()
        if cb_id is None:
            return None
        with self.session() as s:
            cb = s.get(Codebook, cb_id)
            row = s.get(VocabularyRow, cb.vocabulary_id) if cb is not None else None
            return row.hash if row is not None else None

    def compute_codes(self, s: Session, segment_ids: list[int], vectors) -> None:
        """Concept codes for freshly stored segments, inside the caller's transaction."""
        from .codebook import store_codes

        book = self.active_codebook()
        if book is not None and len(segment_ids):
            store_codes(s, book, segment_ids, vectors)

    def _new_codebook(self, vocabulary: str, lam: float | None, target_l0: int | None,
                      adapter_hash: str | None = None) -> int | None:
        from .codebook import create_codebook, library_audio_mean, resolve_vocabulary

        vocab = resolve_vocabulary(vocabulary)
        enc = self.encoder
        with self.session() as s, s.begin():
            if adapter_hash is None and self.setting("adapter_hash"):
                adapter_hash = self.setting("adapter_hash")
            transform = None
            if adapter_hash:
                from .codebook import adapter_file
                from .concepts.adapter import Adapter

                transform = Adapter.load(adapter_file(self.path / "models", adapter_hash)).apply
            mean = getattr(enc, "audio_mean", None) if transform is None else None
            if mean is None:
                mean = library_audio_mean(s, enc.dim, transform)
            if mean is None:
                return None
            cb_id = create_codebook(s, vocab, self.encoder_record_id(), mean, lam, target_l0, adapter_hash or None)
            self.set_setting(s, "codebook_id", cb_id)
            for key, value in (("vocabulary", vocabulary), ("lam", "" if lam is None else lam),
                               ("target_l0", "" if target_l0 is None else target_l0)):
                self.set_setting(s, key, value)
            self.bump_data_version(s)
        self._codebook = None
        return cb_id

    def ensure_codes(self, progress: bool = False) -> int:
        """Create the codebook once the library has vectors, and code every segment lacking one.

        Each batch is its own transaction, so an interrupted run resumes here. Returns the
        number of segments coded.
        """
        from tqdm import tqdm

        from .codebook import segments_without_codes, store_codes

        if not self.setting("codebook_id"):
            lam = self.setting("lam") or None
            l0 = self.setting("target_l0") or None
            if self._new_codebook(self.setting("vocabulary") or "pruned", float(lam) if lam else None,
                                  int(l0) if l0 else None) is None:
                return 0
        book = self.active_codebook()
        done = 0
        with tqdm(desc="concept codes", unit="seg", disable=not progress) as bar:
            while True:
                with self.session() as s, s.begin():
                    batch = next(segments_without_codes(s, book.id), None)
                    if batch is None:
                        break
                    store_codes(s, book, *batch)
                    self.bump_data_version(s)
                done += len(batch[0])
                bar.update(len(batch[0]))
        return done

    def adapt(self, labels_csv: str | Path, alpha: float = 1.0, progress: bool = False) -> dict:
        """Train the paper's linear adapter on labelled sounds and recompute codes through it.

        ``labels_csv`` has columns ``file`` (a path, absolute or relative to the CSV) and
        ``label``. Sounds already in the library use their stored vectors; others are embedded.
        """
        import csv

        from .codebook import adapter_file
        from .concepts.adapter import train_adapter
        from .search import _like_vector

        rows = []
        path = Path(labels_csv)
        try:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = {"file", "label"} - set(reader.fieldnames or [])
                if missing:
                    raise LibraryError(f"{path}: missing column(s) {', '.join(sorted(missing))} (need file,label)")
                rows = [(r["file"], r["label"]) for r in reader if r.get("file") and r.get("label")]
        except OSError as exc:
            raise LibraryError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if len({lab for _, lab in rows}) < 2:
            raise LibraryError(f"{path}: need labelled sounds of at least two labels")
        vecs, labels = [], []
        for file, label in rows:
            fp = Path(file) if Path(file).is_absolute() else path.parent / file
            vecs.append(_like_vector(self, str(fp), None, None))
            labels.append(label)
        enc = self.encoder
        adapter = train_adapter(np.stack(vecs), labels, enc.embed_text, alpha=alpha, encoder_fingerprint=enc.fingerprint)
        digest = hashlib.sha256(adapter.matrix.tobytes()).hexdigest()[:16]
        (self.path / "models").mkdir(parents=True, exist_ok=True)
        adapter.save(adapter_file(self.path / "models", digest))
        with self.session() as s, s.begin():
            self.set_setting(s, "adapter_hash", digest)
        lam = self.setting("lam") or None
        l0 = self.setting("target_l0") or None
        n = self.use_vocabulary(self.setting("vocabulary") or "pruned", float(lam) if lam else None,
                                int(l0) if l0 else None, progress=progress)
        return {"adapter": digest, "sounds": len(rows), "labels": sorted(set(labels)), "recoded_segments": n,
                "metrics": adapter.metrics}

    def use_vocabulary(self, vocabulary: str, lam: float | None = None, target_l0: int | None = None,
                       progress: bool = False) -> int:
        """Switch to another vocabulary or sparsity: recompute codes from stored vectors."""
        from sqlalchemy import delete

        from ..index.store import Code

        if lam is not None and target_l0 is not None:
            raise LibraryError("give lam or target_l0, not both")
        lock = WriterLock(self.path).acquire()
        try:
            old = self.setting("codebook_id")
            if self._new_codebook(vocabulary, lam, target_l0) is None:
                with self.session() as s, s.begin():
                    for key, value in (("vocabulary", vocabulary), ("lam", "" if lam is None else lam),
                                       ("target_l0", "" if target_l0 is None else target_l0)):
                        self.set_setting(s, key, value)
                return 0
            n = self.ensure_codes(progress=progress)
            if old:
                with self.session() as s, s.begin():  # the old codes are no longer reachable
                    s.execute(delete(Code).where(Code.codebook_id == int(old)))
            self.commit_indexes()
            return n
        finally:
            lock.release()

    # -- derived indexes ----------------------------------------------------------------
    @property
    def backend(self) -> str:
        """Where the derived indexes live: 'faiss' (files in the library) or 'milvus'."""
        return self.setting("index_backend") or "faiss"

    def _backend_indexes(self):
        """The in-memory indexes object of the configured backend (a new one if it changed)."""
        if self._indexes is None or getattr(self._indexes, "backend", "faiss") != self.backend:
            if self.backend == "milvus":
                from .milvus_indexes import MilvusLibraryIndexes

                self._indexes = MilvusLibraryIndexes(self)
            else:
                from .indexes import LibraryIndexes

                self._indexes = LibraryIndexes(self)
        return self._indexes

    def indexes(self) -> "LibraryIndexes":
        """The library's indexes (FAISS files or Milvus), up to date with the store."""
        idx = self._backend_indexes()
        if idx.data_version != self.data_version:
            idx.sync()
        return idx

    def commit_indexes(self, force_rebuild: bool = False) -> "SyncReport":
        """Bring the indexes up to date and write new generations (caller holds the lock)."""
        rep = self._backend_indexes().sync(force_rebuild=force_rebuild)
        return self._indexes.commit(rep)

    def copy_backend(self, to: str, milvus_uri: str | None = None, milvus_index: str | None = None,
                     milvus_fusion: str | None = None, *, wait: bool = False) -> BackendInfo:
        """Copy the library's indexes to another backend and switch to it.

        Both backends derive from the store, so the copy is written from the store's vectors and
        codes (exact, whatever FAISS type the files had). ``to='milvus'`` fills a fresh
        collection at ``milvus_uri`` (default: the one recorded); ``to='faiss'`` brings the
        index files up to date. The other backend's data is left in place.
        """
        import time

        if to not in BACKENDS:
            raise LibraryError(f"backend must be one of {', '.join(BACKENDS)}, got {to!r}")
        t0 = time.perf_counter()
        lock = WriterLock(self.path).acquire(wait=wait)
        try:
            with self.session() as s, s.begin():
                if to == "milvus":
                    uri = milvus_uri or self.setting("milvus_uri")
                    index = milvus_index or self.setting("milvus_index") or "FLAT"
                    values = _milvus_settings(uri, index, self.setting("milvus_collection"),
                                              fusion=milvus_fusion or self.setting("milvus_fusion"))
                    for key, value in values.items():
                        self.set_setting(s, key, value)
                self.set_setting(s, "index_backend", to)
            self._indexes = None
            self.ensure_codes()
            self.commit_indexes(force_rebuild=to == "milvus")
        finally:
            lock.release()
        info = self.backend_info()
        info.seconds = round(time.perf_counter() - t0, 3)
        return info

    def backend_info(self) -> BackendInfo:
        """The backend in use and what the Milvus collection (if any) reflects."""
        idx = self.indexes()
        synced = self.setting("milvus_data_version") or ""
        url = self._sessions.kw["bind"].url
        return BackendInfo(
            backend=self.backend, database=url.render_as_string(hide_password=True),
            milvus_uri=self.setting("milvus_uri"), milvus_collection=self.setting("milvus_collection"),
            milvus_index=self.setting("milvus_index"), milvus_fusion=self.setting("milvus_fusion") or (
                "earmark" if self.setting("milvus_uri") else None),
            synced_data_version=int(synced) if synced else None, data_version=self.data_version,
            segments=int(idx.dense.ntotal))

    def set_faiss_factory(self, factory: str | None) -> None:
        """Choose the FAISS index type ("Flat", "HNSW32", "IVF4096,Flat"; None = automatic by size)."""
        from ..index.dense import DenseIndex

        if factory:
            DenseIndex.create(self.encoder_record().dim, factory)  # fails fast on a bad string
        with self.session() as s, s.begin():
            self.set_setting(s, "faiss_factory", factory or "")

    def rebuild_indexes(self, factory: str | None = None, *, wait: bool = False) -> "SyncReport":
        """Rebuild (and retrain) every derived index from the store, optionally as another type."""
        lock = WriterLock(self.path).acquire(wait=wait)
        try:
            if factory is not None:
                self.set_faiss_factory(factory or None)
            return self.commit_indexes(force_rebuild=True)
        finally:
            lock.release()

    # -- verbs --------------------------------------------------------------------------
    def index(self, paths: Sequence[str | Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
              workers: int = 1, prune: bool = False, progress: bool = False, wait: bool = False) -> IndexReport:
        """Index files and folders; unchanged files are skipped, moves and duplicates detected."""
        lock = WriterLock(self.path).acquire(wait=wait)
        try:
            run = IndexRun(self, workers=workers, progress=progress)
            report = run.run(paths, include, exclude, prune=prune)
            self.ensure_codes(progress=progress)
            self.commit_indexes()
            return report
        finally:
            lock.release()

    def reembed(self, encoder: str | Encoder | None = None, *, workers: int = 1, progress: bool = False,
                wait: bool = False, confirm_drop: "Callable[[], None] | None" = None) -> "ReembedReport":
        """Embed the sounds again: with another encoder (or this earmark's new weights for the
        library's spec), or to fill window power older rows lack (engine/reembed.py).
        ``confirm_drop`` is called before a switch that drops the stored vectors (it raises to stop)."""
        from .reembed import reembed

        return reembed(self, encoder, workers=workers, progress=progress, wait=wait, confirm_drop=confirm_drop)

    def status(self) -> "LibraryStatus":
        """Counts, settings, indexes, evidence decoder and disk use (engine/library_status.py)."""
        from .library_status import library_status

        return library_status(self)

    def sounds(self, status: str | None = None, limit: int | None = None) -> list[SoundInfo]:
        """Sounds with their segment counts, ordered by root and path."""
        with self.session() as s:
            seg_counts = select(Segment.sound_id, func.count().label("n")).group_by(Segment.sound_id).subquery()
            q = (select(Sound, Root.path, func.coalesce(seg_counts.c.n, 0))
                 .join(Root, Root.id == Sound.root_id)
                 .outerjoin(seg_counts, seg_counts.c.sound_id == Sound.id)
                 .order_by(Root.path, Sound.path))
            if status:
                q = q.where(Sound.status == status)
            if limit:
                q = q.limit(limit)
            return [SoundInfo(snd.id, root, snd.path, snd.status, snd.duration, snd.sample_rate, snd.channels,
                              int(n), snd.error, snd.content_hash) for snd, root, n in s.execute(q)]

    def resolve_sound(self, ref: str | int) -> SoundInfo:
        """A sound by id, by absolute path or by root-relative path."""
        sounds = self.sounds()
        if isinstance(ref, int) or str(ref).isdigit():
            hit = [x for x in sounds if x.id == int(ref)]
        else:
            p = str(Path(ref).expanduser().resolve()) if Path(ref).expanduser().exists() else str(ref)
            hit = [x for x in sounds if x.abs_path == p or x.path == str(ref)]
        if not hit:
            raise LibraryError(f"no sound '{ref}' in {self.path}")
        if len(hit) > 1:
            raise LibraryError(f"'{ref}' matches {len(hit)} sounds; use the sound id")
        return hit[0]

    # -- queries ------------------------------------------------------------------------
    def search(self, query: str | bytes, *, k: int = 10, ranking: str = DEFAULT_RANKING, aggregate: str | None = None,
               path_glob: str | None = None, min_duration: float | None = None, max_duration: float | None = None,
               root: str | None = None, exclude_sounds: Sequence[int] = ()) -> "SearchResult":
        """Search by text, concepts (+rain -music rain:0.7) and example sounds (like:FILE@a-b);
        ``aggregate`` None is the ranking's default (query/rank.py)."""
        from .search import search

        with self.read_snapshot():
            return search(self, query, k=k, ranking=ranking, aggregate=aggregate, path_glob=path_glob,
                          min_duration=min_duration, max_duration=max_duration, root=root,
                          exclude_sounds=exclude_sounds)

    def similar(self, ref: str | int, k: int = 10, start: float | None = None, end: float | None = None,
                ranking: str = "dense") -> "SearchResult":
        """Sounds like a file (indexed or not) or an indexed sound id, the sound itself excluded."""
        from .query.parse import QuerySyntaxError

        if isinstance(ref, int) or str(ref).isdigit():
            path = self.resolve_sound(ref).abs_path
        elif Path(ref).expanduser().exists():
            path = str(ref)
        else:  # an indexed sound named by its root-relative path, as `explain` and `evidence` accept
            path = self.resolve_sound(ref).abs_path
        if '"' in path:
            raise QuerySyntaxError("file names with double quotes cannot be used with like:", field="like")
        span = f"@{start or 0:g}-{end:g}" if end is not None else ""
        me = Path(path).expanduser().resolve()
        mine = [x.id for x in self.sounds() if Path(x.abs_path) == me]
        return self.search(f'like:"{path}"{span}', k=k, ranking=ranking, exclude_sounds=mine)

    def explain(self, query: str, ref: str | int, ranking: str = DEFAULT_RANKING) -> "Hit":
        """Why sound ``ref`` matches ``query``: its best window, contributions and dense account."""
        from .search import search

        snd = self.resolve_sound(ref)
        with self.read_snapshot():
            # Fusion ranks a window against the whole library (RRF), so the sound's best window
            # and score are the ones a search showed only when ranked among all sounds: use that
            # hit when the sound is in the top results, the sound alone otherwise.
            shown = search(self, query, k=EXPLAIN_SEARCH_K, ranking=ranking)
            for hit in shown.hits:
                if hit.sound_id == snd.id:
                    return hit
            res = search(self, query, k=1, ranking=ranking, only_sounds=[snd.id])
        if not res.hits:
            raise LibraryError(f"sound {snd.id} ({snd.path}) shares nothing with '{query}' under ranking '{ranking}'")
        return res.hits[0]

    def concepts_of(self, ref: str | int, top: int = 20) -> dict:
        """A sound's concept profile: mean code over its windows, its fidelity and L0."""
        from .codebook import read_codes

        snd = self.resolve_sound(ref)
        book = self.active_codebook()
        if book is None:
            raise LibraryError("this library has no concept codes yet: index some sounds first")
        with self.session() as s:
            seg_ids = list(s.scalars(select(Segment.id).where(Segment.sound_id == snd.id).order_by(Segment.id)))
            _, csr, fid = read_codes(s, book.id, seg_ids, len(book.concepts))
        if csr.shape[0] == 0:
            raise LibraryError(f"sound {snd.id} has no concept codes (status {snd.status})")
        mean = np.asarray(csr.mean(axis=0)).ravel()
        order = np.argsort(-mean, kind="stable")[:top]
        return {"sound_id": snd.id, "path": snd.abs_path, "windows": int(csr.shape[0]),
                "fidelity": float(fid.mean()), "l0": float(np.diff(csr.indptr).mean()),
                "vocabulary": book.vocabulary.name, "lam": book.lam, "target_l0": book.target_l0,
                "concepts": [{"concept": book.concepts[i], "weight": float(mean[i])} for i in order if mean[i] > 0]}

    # -- evidence -------------------------------------------------------------------------
    def evidence(self, ref: str | int, query: str, start: float | None = None, end: float | None = None,
                 precision: str = "auto"):
        """Render listenable evidence (mask-in/out WAVs and a PNG) for sound ``ref`` and ``query``;
        ``precision`` of the mask pass: auto, fp32 or bf16 (engine/evidence/precision.py)."""
        from .library_evidence import render_for_sound

        return render_for_sound(self, ref, query, start, end, precision)

    def train_evidence(self, steps: int | None = None, batch_size: int = 8, max_segments: int = 2000, seed: int = 0,
                       progress: bool = False, held_out: float | None = None):
        """Train (or resume) the library's L-MAC decoder on its own segments (``steps`` in total,
        default ``library_evidence.DEFAULT_STEPS``; ``held_out``: share of sounds kept out for
        `evaluate_evidence`, default ``library_evidence.HELD_OUT_SHARE``)."""
        from .library_evidence import DEFAULT_STEPS, train

        lock = WriterLock(self.path).acquire()
        try:
            return train(self, steps=DEFAULT_STEPS if steps is None else steps, batch_size=batch_size,
                         max_segments=max_segments, seed=seed, progress=progress, held_out=held_out)
        finally:
            lock.release()

    def evaluate_evidence(self, n_windows: int = 64, seed: int = 0, in_sample: bool = False):
        """Faithfulness (AI, AD, AG, FF, Fid-In, SPS, COMP) of L-MAC against the baselines, on
        the sounds held out of decoder training (``in_sample``: on its training sounds)."""
        from .library_evidence import evaluate

        return evaluate(self, n_windows=n_windows, seed=seed, in_sample=in_sample)

    def vocabulary(self) -> list[str]:
        """The active vocabulary's concepts (empty before the first codes exist)."""
        book = self.active_codebook()
        return list(book.concepts) if book else []

    def check(self, repair: bool = False) -> "CheckReport":
        """Verify the store (and the derived indexes); ``repair`` rebuilds what is derived."""
        from ..index.check import check_store
        from .indexes import check_indexes

        with self.session() as s:
            rep = check_store(s, self.encoder_record().dim)
        if rep.ok or repair:
            if self.backend == "milvus":
                from .milvus_indexes import check_milvus

                check_milvus(self, rep, repair=repair)
            else:
                check_indexes(self, rep, repair=repair)
        return rep

    def remove(self, refs: Sequence[str | int]) -> list[SoundInfo]:
        """Forget sounds (their rows, segments and codes); the files are not touched."""
        targets = [self.resolve_sound(r) for r in refs]
        lock = WriterLock(self.path).acquire()
        try:
            with self.session() as s, s.begin():
                for t in targets:
                    s.delete(s.get(Sound, t.id))
                self.bump_data_version(s)
            self.commit_indexes()
        finally:
            lock.release()
        return targets


def _milvus_settings(uri: str | None, index: str, collection: str | None = None,
                     fusion: str | None = None) -> dict[str, str]:
    """Validated Milvus settings; a new collection name unless one is recorded."""
    import uuid

    from ..index.milvus import DENSE_INDEX_TYPES, normalise_uri
    from .milvus_indexes import FUSION_MODES

    if fusion and fusion not in FUSION_MODES:
        raise LibraryError(f"Milvus fusion must be one of {', '.join(FUSION_MODES)}, got {fusion!r}")

    if not uri:
        raise LibraryError("the Milvus backend needs --milvus-uri: a Milvus Lite file (lib/milvus.db) "
                           "or a server (http://host:19530)")
    if index.upper() not in DENSE_INDEX_TYPES:
        raise LibraryError(f"Milvus index type must be one of {', '.join(DENSE_INDEX_TYPES)}, got {index!r}")
    return {"milvus_uri": normalise_uri(uri), "milvus_index": index.upper(),
            "milvus_collection": collection or f"earmark_{uuid.uuid4().hex[:16]}", "milvus_fusion": fusion or "earmark"}
