"""Indexing runs: scan roots, skip what is unchanged, see moves and duplicates, embed the rest.

Every file is committed in its own transaction (its segments, vectors and status together),
so a run killed at any moment loses at most the file in flight and the next run resumes
where it stopped. Per-file problems are recorded with a reason; the run goes on.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..index.store import Root, Segment, Sound, utcnow
from .audio import AudioError, AudioInfo, probe, stream_mono
from .scan import FoundFile, content_hash, scan
from .window_pooling import embed_windows
from .windows import Window, iter_windows

if TYPE_CHECKING:
    from .encoders import Encoder
    from .library import Library

PREFETCH_MAX_SECONDS = 120.0  # longer files are streamed window batch by window batch
EMBED_BATCH = 32  # windows per encoder call


@dataclass
class FileFailure:
    """A file that could not be indexed, and why."""

    path: str
    reason: str


@dataclass
class IndexReport:
    """What an indexing run did."""

    scanned: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    moved: list[tuple[str, str]] = field(default_factory=list)
    failed: list[FileFailure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    pruned: int = 0
    segments: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Prepared:
    """Work done off the main thread for one file: hash, header, maybe its windows."""

    found: FoundFile
    hash: str | None = None
    info: AudioInfo | None = None
    windows: list[Window] | None = None  # None: stream later (long file) or not needed
    error: str | None = None


def _prepare(f: FoundFile, sample_rate: int, window: int, hop: int, decode: bool) -> _Prepared:
    prep = _Prepared(f)
    try:
        prep.hash = content_hash(f.path)
    except OSError as exc:
        prep.error = f"cannot read file: {exc.strerror or exc}"
        return prep
    try:
        prep.info = probe(f.path)
        if decode and prep.info.duration <= PREFETCH_MAX_SECONDS:
            prep.windows = list(iter_windows(stream_mono(f.path, sample_rate, prep.info), sample_rate, window, hop))
    except AudioError as exc:
        prep.error = exc.reason
    return prep


def _embed_windows(encoder: "Encoder", windows: Iterator[Window] | list[Window]
                   ) -> tuple[list[tuple[float, float]], np.ndarray, np.ndarray]:
    """(spans in seconds, (n, dim) float32 embeddings, (n,) mean power) of a file's windows."""
    spans: list[tuple[float, float]] = []

    def samples():
        for w in windows:
            spans.append((w.start, w.end))
            yield w.samples

    vecs, power = embed_windows(encoder, samples(), EMBED_BATCH)
    return spans, vecs, power


def resolve_target(arg: str | Path) -> tuple[Path, FoundFile | None]:
    """A CLI path argument → (root directory, the single file if a file was named)."""
    p = Path(arg).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{arg}: no such file or directory")
    p = p.resolve()
    if p.is_dir():
        return p, None
    st = p.stat()
    return p.parent, FoundFile(p.parent, p.name, int(st.st_size), float(st.st_mtime))


class IndexRun:
    """One `earmark index` run over a library (the caller holds the writer lock)."""

    def __init__(self, library: "Library", *, workers: int = 1, progress: bool = True,
                 on_commit: Callable[[int, list[int], list[int], np.ndarray | None], None] | None = None) -> None:
        self.lib = library
        self.workers = max(1, int(workers))
        self.progress = progress
        self.on_commit = on_commit  # (sound_id, removed segment ids, new segment ids, vectors)
        self.force = False  # re-embed even a file whose content and encoder are unchanged (reembed)
        self.report = IndexReport()
        self._moved_hashes: set[str] = set()
        self._pending_removals: list[int] = []

    # -- public -------------------------------------------------------------------------
    def run(self, targets: Sequence[str | Path], include: Sequence[str] = (), exclude: Sequence[str] = (),
            prune: bool = False) -> IndexReport:
        t0 = time.perf_counter()
        for target in targets:
            root_dir, single = resolve_target(target)
            root_id = self._root(root_dir, include, exclude)
            if single is not None:
                found, problems = [single], []
            else:
                found, problems = scan(root_dir, include, exclude)
            for prob in problems:
                self.report.failed.append(FileFailure(str(root_dir / prob.rel), prob.reason))
            self._index_root(root_id, root_dir, found, prune=prune and single is None)
        self.report.seconds = time.perf_counter() - t0
        return self.report

    def reembed(self, root_id: int, root_dir: Path, sounds: Sequence[Sound]) -> None:
        """Read ``sounds`` of one root again from their files and embed them with the library's
        encoder, each in its own transaction (engine/reembed.py). A sound whose file is gone
        stays as it is and is reported missing."""
        self.force = True
        todo: list[FoundFile] = []
        for snd in sounds:
            f = root_dir / snd.path
            try:
                st = f.stat()
            except OSError:
                self.report.missing.append(str(f))
                continue
            todo.append(FoundFile(root_dir, snd.path, int(st.st_size), float(st.st_mtime)))
        self.report.scanned += len(todo)
        if todo:
            self._process(root_id, todo, {snd.path: snd for snd in sounds}, {}, self.lib.encoder_record_id())

    # -- steps --------------------------------------------------------------------------
    def _root(self, root_dir: Path, include: Sequence[str], exclude: Sequence[str]) -> int:
        with self.lib.session() as s, s.begin():
            root = s.scalar(select(Root).where(Root.path == str(root_dir)))
            if root is None:
                root = Root(path=str(root_dir), include=list(include), exclude=list(exclude))
                s.add(root)
            elif include or exclude:
                root.include, root.exclude = list(include), list(exclude)
            s.flush()
            return root.id

    def _index_root(self, root_id: int, root_dir: Path, found: list[FoundFile], prune: bool) -> None:
        rep = self.report
        rep.scanned += len(found)
        with self.lib.session() as s:
            existing = {snd.path: snd for snd in s.scalars(select(Sound).where(Sound.root_id == root_id))}
        enc_id = self.lib.encoder_record_id()
        present = {f.rel for f in found}
        missing = {snd.path: snd for path, snd in existing.items() if path not in present and snd.status != "removed"}
        missing_by_hash = {snd.content_hash: snd for snd in missing.values() if snd.status == "indexed" and snd.content_hash}

        todo: list[FoundFile] = []
        for f in found:
            snd = existing.get(f.rel)
            if (snd is not None and snd.size == f.size and snd.mtime == f.mtime
                    and (snd.status == "failed" or (snd.status == "indexed" and snd.encoder_id == enc_id))):
                rep.unchanged += 1
            else:
                todo.append(f)

        if todo:
            self._process(root_id, todo, existing, missing_by_hash, enc_id)

        still_missing = [p for p, snd in missing.items() if snd.content_hash not in self._moved_hashes]
        if prune:
            with self.lib.session() as s, s.begin():
                for path in still_missing:
                    snd = s.get(Sound, missing[path].id)
                    seg_ids = list(s.scalars(select(Segment.id).where(Segment.sound_id == snd.id)))
                    s.execute(delete(Segment).where(Segment.sound_id == snd.id))
                    snd.status, snd.error = "removed", "file no longer exists"
                    self.lib.bump_data_version(s)
                    rep.pruned += 1
                    self._pending_removals.extend(seg_ids)
            if self.on_commit and self._pending_removals:
                self.on_commit(0, list(self._pending_removals), [], None)
                self._pending_removals.clear()
        else:
            rep.missing.extend(str(root_dir / p) for p in still_missing)

    def _process(self, root_id: int, todo: list[FoundFile], existing: dict[str, Sound],
                 missing_by_hash: dict[str, Sound], enc_id: int) -> None:
        from tqdm import tqdm

        encoder = self.lib.encoder
        window = encoder.window_samples
        hop = self.lib.hop_samples
        sr = encoder.sample_rate
        bar = tqdm(total=len(todo), unit="file", desc="re-embedding" if self.force else "indexing",
                   disable=not self.progress, dynamic_ncols=True)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures: list[Future[_Prepared]] = []
            it = iter(todo)
            lookahead = 2 * self.workers

            def submit_next() -> None:
                f = next(it, None)
                if f is not None:
                    futures.append(pool.submit(_prepare, f, sr, window, hop, True))

            for _ in range(lookahead):
                submit_next()
            while futures:
                prep = futures.pop(0).result()
                submit_next()
                bar.set_postfix_str(prep.found.rel[-40:], refresh=False)
                self._commit_file(root_id, prep, existing.get(prep.found.rel), missing_by_hash, enc_id, encoder, sr, window, hop)
                bar.update(1)
        bar.close()

    def _commit_file(self, root_id: int, prep: _Prepared, old: Sound | None, missing_by_hash: dict[str, Sound],
                     enc_id: int, encoder: "Encoder", sr: int, window: int, hop: int) -> None:
        rep = self.report
        f = prep.found
        if prep.error is not None:
            self._record_failure(root_id, f, old, prep.hash, prep.error)
            return
        assert prep.hash is not None and prep.info is not None

        # Same content at the same path (only the mtime changed): nothing to embed.
        if (not self.force and old is not None and old.status == "indexed" and old.content_hash == prep.hash
                and old.encoder_id == enc_id):
            with self.lib.session() as s, s.begin():
                snd = s.get(Sound, old.id)
                snd.size, snd.mtime, snd.error = f.size, f.mtime, None
            rep.unchanged += 1
            return

        # A file that vanished from its old path reappears here: a move, vectors kept.
        moved_from = missing_by_hash.pop(prep.hash, None)
        if moved_from is not None and moved_from.encoder_id == enc_id:
            with self.lib.session() as s, s.begin():
                if old is not None:
                    self._drop_sound(s, old.id)
                snd = s.get(Sound, moved_from.id)
                snd.path, snd.size, snd.mtime, snd.root_id = f.rel, f.size, f.mtime, root_id
                self.lib.bump_data_version(s)
            self._moved_hashes.add(prep.hash)
            rep.moved.append((moved_from.path, f.rel))
            self._flush_removals()
            return

        # Identical content indexed elsewhere: copy its vectors instead of re-embedding.
        with self.lib.session() as s:
            twin = s.scalar(select(Sound).where(Sound.content_hash == prep.hash, Sound.status == "indexed",
                                                Sound.encoder_id == enc_id).limit(1))
            twin_segments = (list(s.execute(select(Segment.start, Segment.end, Segment.embedding, Segment.power)
                                            .where(Segment.sound_id == twin.id).order_by(Segment.id)))
                             if twin is not None and (old is None or twin.id != old.id) else None)
        if twin_segments and any(p is None for *_, p in twin_segments):
            twin_segments = None  # a twin indexed before window power was stored: embed afresh instead
        power: list[float | None]
        if twin_segments:
            spans = [(a, b) for a, b, _, _ in twin_segments]
            vectors = np.stack([np.frombuffer(e, np.float32) for _, _, e, _ in twin_segments])
            power = [p for _, _, _, p in twin_segments]
            rep.duplicates += 1
        else:
            try:
                wins = prep.windows if prep.windows is not None else iter_windows(stream_mono(f.path, sr, prep.info), sr, window, hop)
                spans, vectors, window_powers = _embed_windows(encoder, wins)
                power = [float(p) for p in window_powers]
            except AudioError as exc:
                self._record_failure(root_id, f, old, prep.hash, exc.reason)
                return
            if not spans:
                self._record_failure(root_id, f, old, prep.hash, "no audio samples after decoding")
                return
        self._store(root_id, f, old, prep, enc_id, spans, vectors, power)
        if old is not None and old.status in ("indexed", "pending"):
            rep.updated += 1
        elif not twin_segments:
            rep.added += 1
        rep.segments += len(spans)

    def _store(self, root_id: int, f: FoundFile, old: Sound | None, prep: _Prepared, enc_id: int,
               spans: list[tuple[float, float]], vectors: np.ndarray, power: list[float | None]) -> None:
        info = prep.info
        assert info is not None
        with self.lib.session() as s, s.begin():
            removed: list[int] = []
            if old is not None:
                removed = list(s.scalars(select(Segment.id).where(Segment.sound_id == old.id)))
                s.execute(delete(Segment).where(Segment.sound_id == old.id))
                snd = s.get(Sound, old.id)
            else:
                snd = Sound(root_id=root_id, path=f.rel)
                s.add(snd)
            snd.content_hash, snd.size, snd.mtime = prep.hash, f.size, f.mtime
            # A header can promise more than decodes (truncated MP3s keep their Xing frame count):
            # the decoded audio, where the last window ends, is the truth.
            decoded = max((b for _, b in spans), default=0.0)
            duration = info.duration if decoded >= info.duration - 0.01 else decoded
            snd.duration, snd.sample_rate, snd.channels, snd.format = duration, info.sample_rate, info.channels, info.format
            snd.status, snd.error, snd.encoder_id, snd.indexed_at = "indexed", None, enc_id, utcnow()
            s.flush()
            segs = [Segment(sound_id=snd.id, start=float(a), end=float(b), embedding=vectors[i].tobytes(),
                            encoder_id=enc_id, power=power[i])
                    for i, (a, b) in enumerate(spans)]
            s.add_all(segs)
            s.flush()
            new_ids = [seg.id for seg in segs]
            self.lib.compute_codes(s, new_ids, vectors)
            self.lib.bump_data_version(s)
            sound_id = snd.id
        if self.on_commit:
            self.on_commit(sound_id, removed, new_ids, vectors)

    def _record_failure(self, root_id: int, f: FoundFile, old: Sound | None, digest: str | None, reason: str) -> None:
        self.report.failed.append(FileFailure(str(f.path), reason))
        with self.lib.session() as s, s.begin():
            if old is not None and old.status == "indexed":
                # Keep what was indexed: a failed re-read must not lose data. The size/mtime
                # stay old so the next run tries again.
                s.get(Sound, old.id).error = f"last re-index failed: {reason}"
                return
            snd = s.get(Sound, old.id) if old is not None else None
            if snd is None:
                snd = Sound(root_id=root_id, path=f.rel)
                s.add(snd)
            snd.content_hash, snd.size, snd.mtime = digest, f.size, f.mtime
            snd.status, snd.error, snd.indexed_at = "failed", reason, utcnow()

    def _drop_sound(self, s: Session, sound_id: int) -> None:
        self._pending_removals.extend(s.scalars(select(Segment.id).where(Segment.sound_id == sound_id)))
        s.execute(delete(Sound).where(Sound.id == sound_id))

    def _flush_removals(self) -> None:
        if self.on_commit and self._pending_removals:
            self.on_commit(0, list(self._pending_removals), [], None)
        self._pending_removals.clear()
