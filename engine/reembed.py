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
- **The same encoder, older rows**: windows stored before migration 0007 have no power, so the
  ``pooled`` aggregate cannot weigh them. Those sounds are re-embedded in place (their vectors
  come out the same; their power is filled) and their old rows are replaced file by file.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, exists, func, select, update

from ..index.store import EncoderRecord, Root, Segment, Setting, Sound
from .ingest import FileFailure, IndexRun
from .lock import WriterLock

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


def switch_encoder(lib: "Library", target: "Encoder") -> list[str]:
    """Bind ``lib`` to ``target`` in one transaction, dropping the old encoder's vectors, codes,
    codebook and adapter; returns notes on what the user has to redo. Caller holds the lock."""
    from .library_evidence import decoder_path

    notes: list[str] = []
    old = lib.encoder_record()
    with lib.session() as s, s.begin():
        rec = s.scalar(select(EncoderRecord).where(EncoderRecord.fingerprint == target.fingerprint))
        if rec is None:  # switching back to an encoder used before reuses its row
            rec = EncoderRecord(name=target.name, dim=target.dim, fingerprint=target.fingerprint,
                                sample_rate=target.sample_rate, window_seconds=target.window_seconds,
                                config=target.config())
            s.add(rec)
            s.flush()
        s.execute(update(Sound).where(Sound.status == "indexed")
                  .values(status="pending", error=f"awaiting re-embedding with {target.name}"))
        s.execute(delete(Segment))  # their concept codes go with them (ON DELETE CASCADE)
        lib.set_setting(s, "encoder_id", rec.id)
        rec.name = target.name  # the row's name is what `Library.encoder` loads: a reused row takes today's spec
        lib.set_setting(s, "codebook_id", "")
        adapter = s.get(Setting, "adapter_hash")
        if adapter is not None and adapter.value:
            lib.set_setting(s, "adapter_hash", "")
            notes.append("the concept adapter was trained in the old encoder's space and is no longer used; "
                         "run `earmark adapt LABELS.csv` again")
        hop, half = float(s.get(Setting, "hop_seconds").value), target.window_seconds / 2
        if abs(hop - old.window_seconds / 2) < 1e-9 and hop != half:
            lib.set_setting(s, "hop_seconds", half)  # the default hop follows the window
            notes.append(f"windows now hop by {half:g} s, half of {target.name}'s {target.window_seconds:g} s window "
                         f"(was {hop:g} s)")
        elif hop > target.window_seconds:
            lib.set_setting(s, "hop_seconds", half)
            notes.append(f"the hop ({hop:g} s) was longer than {target.name}'s window; it is now {half:g} s")
        lib.bump_data_version(s)
    lib.forget_encoder_records()
    if decoder_path(lib).exists():
        notes.append("the evidence decoder was trained for the old encoder; run `earmark evidence train`")
    lib.bind_encoder(target)
    return notes


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
            progress: bool = False, wait: bool = False) -> ReembedReport:
    """Embed ``lib``'s sounds again with ``encoder`` (a spec or an Encoder; default: the
    library's own spec as this earmark loads it) — see the module docstring."""
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
        notes = switch_encoder(lib, target) if switched else []
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
        rep = ReembedReport(target.name, target.fingerprint, before.name, before.fingerprint, switched, notes=notes,
                            sounds=sum(len(v) for _, v in waiting.values()))
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
