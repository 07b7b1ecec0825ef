"""Re-embedding a library: move it to another encoder's vectors, or fill what an older earmark
did not store.

Vectors of different encoders never mix (engine/library.py checks the fingerprint), so a library
built with one encoder cannot be searched with another — and a new earmark that ships new
embedded weights is another encoder. ``earmark reembed`` handles both reasons to embed again:

- **The encoder changed** (new shipped weights, or ``--encoder`` names another one). One
  transaction switches the library: every stored vector and concept code goes, each indexed
  sound becomes ``pending``, the codebook and any adapter (both live in the old space) are
  dropped. Then every pending sound is read again from its file and embedded in its own
  transaction, exactly as ``earmark index`` stores a file. A run killed at any point resumes
  with the sounds still pending (``earmark reembed`` again, or ``earmark index`` of the roots);
  meanwhile the library answers queries over the sounds already re-embedded.
- **Only the text side changed** (e.g. new shipped weights whose audio tower is the old one's, as
  v13's alias words left v12's): before dropping anything, a few indexed sounds are read and
  embedded again with the new encoder exactly as indexing does (:func:`audio_unchanged`); when
  every window comes out as stored, the vectors stay, only the concept codes (computed against
  the encoder's text embeddings of the vocabulary) and the indexes are made again, in minutes
  instead of a full re-embedding. Any difference, or nothing to check, takes the path above.
- **The same encoder, older rows**: windows stored before migration 0007 have no power, so the
  ``pooled`` aggregate cannot weigh them. Those sounds are re-embedded in place (their vectors
  come out the same; their power is filled) and their old rows are replaced file by file.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy import delete, exists, func, select, update

import numpy as np

from ..index.store import Code, Codebook, EncoderRecord, Root, Segment, Setting, Sound
from .audio import AudioError, probe, stream_mono
from .ingest import FileFailure, IndexRun, _embed_windows
from .lock import WriterLock
from .windows import iter_windows

PROBE_SOUNDS = 4  # indexed sounds embedded again to tell whether the audio side changed
PROBE_TOLERANCE = 1e-5  # largest difference of a vector component that still counts as the same
PROBE_MAX_SECONDS = 30.0  # sounds checked are this short where the library has such (an hour-long file takes a minute)

if TYPE_CHECKING:
    from .encoders import Encoder
    from .library import Library


@dataclass
class ReembedReport:
    """What a re-embedding run did."""

    encoder: str
    fingerprint: str
    previous_encoder: str
    previous_fingerprint: str
    switched: bool  # this run moved the library to another encoder
    kept_vectors: bool = False  # the switch kept the stored vectors (the audio side was unchanged)
    sounds: int = 0  # sounds to re-embed when the run started
    reembedded: int = 0
    segments: int = 0
    pending: int = 0  # sounds still waiting (files missing or failed) when the run ended
    failed: list[FileFailure] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def audio_unchanged(lib: "Library", target: "Encoder") -> int:
    """How many indexed sounds ``target`` embeds exactly as ``lib`` stored them (up to
    PROBE_SOUNDS, spread over the library's short sounds, else its shortest ones, each read and
    windowed as indexing does), or 0 when any differs, none could be read, or the window or
    dimension differ: the proof that a switch may keep the vectors."""
    old = lib.encoder_record()
    if (target.dim, target.sample_rate, target.window_seconds) != (old.dim, old.sample_rate, old.window_seconds):
        return 0
    with lib.session() as s:
        mine = select(Sound.id).where(Sound.status == "indexed", Sound.encoder_id == old.id)
        ids = (s.scalars(mine.where(Sound.duration <= PROBE_MAX_SECONDS).order_by(Sound.id)).all()
               or s.scalars(mine.order_by(Sound.duration, Sound.id).limit(PROBE_SOUNDS)).all())
        picked = [ids[int(i)] for i in np.unique(np.linspace(0, len(ids) - 1, min(PROBE_SOUNDS, len(ids))).round())] if ids else []
        sounds = [(Path(s.get(Root, snd.root_id).path) / snd.path,
                   s.execute(select(Segment.start, Segment.embedding).where(Segment.sound_id == snd.id)
                             .order_by(Segment.start)).all())
                  for snd in (s.get(Sound, i) for i in picked)]
    hop = lib.hop_samples_at(target.sample_rate)
    checked = 0
    for path, stored in sounds:
        try:
            windows = list(iter_windows(stream_mono(path, target.sample_rate, probe(path)), target.sample_rate,
                                        target.window_samples, hop))
        except (AudioError, OSError):
            continue  # a file gone or changed proves nothing either way
        spans, vectors, _ = _embed_windows(target, windows)
        if len(spans) != len(stored):
            continue
        old_vectors = np.stack([np.frombuffer(e, np.float32) for _, e in stored])
        if not np.allclose([a for a, _ in spans], [a for a, _ in stored], atol=1e-6):
            continue
        if np.abs(vectors - old_vectors).max() > PROBE_TOLERANCE:
            return 0
        checked += 1
    return checked


def _target_record(s, target: "Encoder") -> EncoderRecord:
    """``target``'s encoder row (a new one, or the row of an encoder used before, renamed to today's spec)."""
    rec = s.scalar(select(EncoderRecord).where(EncoderRecord.fingerprint == target.fingerprint))
    if rec is None:  # switching back to an encoder used before reuses its row
        rec = EncoderRecord(name=target.name, dim=target.dim, fingerprint=target.fingerprint,
                            sample_rate=target.sample_rate, window_seconds=target.window_seconds,
                            config=target.config())
        s.add(rec)
        s.flush()
    rec.name = target.name  # the row's name is what `Library.encoder` loads: a reused row takes today's spec
    return rec


def _drop_codebook_and_adapter(lib: "Library", s, notes: list[str]) -> None:
    """Codes are computed against the encoder's text embeddings: a new encoder gets a new codebook,
    and an adapter trained in the old space is dropped."""
    lib.set_setting(s, "codebook_id", "")
    adapter = s.get(Setting, "adapter_hash")
    if adapter is not None and adapter.value:
        lib.set_setting(s, "adapter_hash", "")
        notes.append("the concept adapter was trained in the old encoder's space and is no longer used; "
                     "run `earmark adapt LABELS.csv` again")


def _after_switch(lib: "Library", target: "Encoder", notes: list[str]) -> list[str]:
    from .library_evidence import decoder_path

    lib.forget_encoder_records()
    if decoder_path(lib).exists():
        notes.append("the evidence decoder was trained for the old encoder; run `earmark evidence train`")
    lib.bind_encoder(target)
    return notes


def keep_vectors_for(lib: "Library", target: "Encoder", checked: int) -> list[str]:
    """Bind ``lib`` to ``target`` in one transaction keeping every stored vector (``target`` embeds
    the audio as the old encoder did, :func:`audio_unchanged`), dropping the old codes, codebook and
    adapter; returns notes. Caller holds the lock."""
    notes = [f"{target.name} embeds audio exactly as the previous encoder did ({checked} sound(s) embedded again "
             "to check): the stored vectors are kept, concept codes and indexes are made again"]
    old = lib.encoder_record()
    with lib.session() as s, s.begin():
        rec = _target_record(s, target)
        s.execute(update(Segment).where(Segment.encoder_id == old.id).values(encoder_id=rec.id))
        s.execute(update(Sound).where(Sound.encoder_id == old.id).values(encoder_id=rec.id))
        s.execute(delete(Code).where(Code.codebook_id.in_(select(Codebook.id).where(Codebook.encoder_id == old.id))))
        lib.set_setting(s, "encoder_id", rec.id)
        _drop_codebook_and_adapter(lib, s, notes)
        lib.bump_data_version(s)
    return _after_switch(lib, target, notes)


def switch_encoder(lib: "Library", target: "Encoder") -> list[str]:
    """Bind ``lib`` to ``target`` in one transaction, dropping the old encoder's vectors, codes,
    codebook and adapter; returns notes on what the user has to redo. Caller holds the lock."""
    notes: list[str] = []
    old = lib.encoder_record()
    with lib.session() as s, s.begin():
        rec = _target_record(s, target)
        s.execute(update(Sound).where(Sound.status == "indexed")
                  .values(status="pending", error=f"awaiting re-embedding with {target.name}"))
        s.execute(delete(Segment))  # their concept codes go with them (ON DELETE CASCADE)
        lib.set_setting(s, "encoder_id", rec.id)
        _drop_codebook_and_adapter(lib, s, notes)
        hop, half = float(s.get(Setting, "hop_seconds").value), target.window_seconds / 2
        if abs(hop - old.window_seconds / 2) < 1e-9 and hop != half:
            lib.set_setting(s, "hop_seconds", half)  # the default hop follows the window
            notes.append(f"windows now hop by {half:g} s, half of {target.name}'s {target.window_seconds:g} s window "
                         f"(was {hop:g} s)")
        elif hop > target.window_seconds:
            lib.set_setting(s, "hop_seconds", half)
            notes.append(f"the hop ({hop:g} s) was longer than {target.name}'s window; it is now {half:g} s")
        lib.bump_data_version(s)
    return _after_switch(lib, target, notes)


def _waiting(lib: "Library") -> dict[int, tuple[Path, list[Sound]]]:
    """Per root: the sounds to embed again — pending ones, ones of another encoder, and indexed
    ones with windows stored before their power was (migration 0007)."""
    enc_id = lib.encoder_record_id()
    powerless = exists().where(Segment.sound_id == Sound.id, Segment.power.is_(None))
    q = (select(Sound, Root.path).join(Root, Root.id == Sound.root_id)
         .where((Sound.status == "pending")
                | ((Sound.status == "indexed") & ((Sound.encoder_id != enc_id) | powerless)))
         .order_by(Sound.id))
    out: dict[int, tuple[Path, list[Sound]]] = {}
    with lib.session() as s:
        for snd, root in s.execute(q):
            out.setdefault(snd.root_id, (Path(root), []))[1].append(snd)
    return out


def reembed(lib: "Library", encoder: "str | Encoder | None" = None, *, workers: int = 1,
            progress: bool = False, wait: bool = False,
            confirm_drop: "Callable[[], None] | None" = None) -> ReembedReport:
    """Embed ``lib``'s sounds again with ``encoder`` (a spec or an Encoder; default: the
    library's own spec as this earmark loads it) — see the module docstring. ``confirm_drop``
    is called, under the writer lock and after the audio check, before a switch that drops the
    stored vectors; it raises to stop the run with nothing changed."""
    from .encoders import EncoderError, load_encoder
    from .library import LibraryError

    t0 = time.perf_counter()
    lock = WriterLock(lib.path).acquire(wait=wait)
    try:
        before = lib.encoder_record()
        spec = encoder if encoder is not None else before.name
        try:
            target = load_encoder(spec) if isinstance(spec, str) else spec
        except EncoderError as exc:
            raise LibraryError(f"cannot load encoder '{spec}': {exc}") from exc
        switched = target.fingerprint != before.fingerprint
        checked = audio_unchanged(lib, target) if switched else 0
        if switched and not checked and confirm_drop is not None:
            confirm_drop()
        notes = (keep_vectors_for(lib, target, checked) if checked
                 else switch_encoder(lib, target) if switched else [])
        if not switched:
            if target.name != before.name:
                # The same weights under another spec (e.g. the previous release's file, kept to
                # pin a library to it): nothing to re-embed, but the library must load them from
                # there from now on, or it would refuse the spec it has.
                with lib.session() as s, s.begin():
                    s.get(EncoderRecord, before.id).name = target.name
                lib.forget_encoder_records()
                notes.append(f"the library now loads its encoder as '{target.name}' (was '{before.name}'; "
                             f"same fingerprint {target.fingerprint}, so its vectors stay)")
            lib.bind_encoder(target)
        waiting = _waiting(lib)
        rep = ReembedReport(target.name, target.fingerprint, before.name, before.fingerprint, switched,
                            kept_vectors=bool(checked), notes=notes, sounds=sum(len(v) for _, v in waiting.values()))
        run = IndexRun(lib, workers=workers, progress=progress)
        for root_id, (root_dir, sounds) in waiting.items():
            run.reembed(root_id, root_dir, sounds)
        if switched:
            from .concepts.dictionary import drop_cached_dictionaries

            freed = drop_cached_dictionaries(lib.cache_dir, before.fingerprint)
            if freed:
                rep.notes.append(f"removed the previous encoder's cached concept dictionaries ({freed / 1e6:.1f} MB)")
        rep.reembedded = run.report.added + run.report.updated  # (a copied twin counts as updated too)
        rep.segments, rep.failed, rep.missing = run.report.segments, run.report.failed, run.report.missing
        lib.ensure_codes(progress=progress)
        # A switch (now or by an earlier, interrupted run) leaves indexes caught up from the old
        # encoder's: rebuild them, so a trained index type is trained on the new vectors.
        lib.commit_indexes(force_rebuild=switched or any(snd.status == "pending"
                                                          for _, v in waiting.values() for snd in v))
        with lib.session() as s:
            rep.pending = s.scalar(select(func.count()).select_from(Sound).where(Sound.status == "pending")) or 0
        if rep.missing:
            rep.notes.append(f"{len(rep.missing)} sound(s) have no file any more and stay pending; "
                             "`earmark index --prune ROOT` forgets them")
        rep.seconds = time.perf_counter() - t0
        return rep
    finally:
        lock.release()
