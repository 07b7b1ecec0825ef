"""Listenable evidence for a library's hits: where decoders live, which audio they read.

The L-MAC maths lives in engine/evidence/; this module connects it to a library: the decoder
checkpoint (LIBRARY/models/lmac-decoder.pt, tied to the encoder fingerprint), training examples
from the library's own segments and concept codes, and rendered files under LIBRARY/evidence/.
A library without a decoder of its own uses the decoder shipped beside the embedded encoder's
weights (trained on the encoder's corpus) when its encoder is exactly those weights; only
other encoders fall back to labelled gradient saliency before `evidence train`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from ..index.store import Root, Segment, Sound
from .audio import load_mono

if TYPE_CHECKING:
    from .library import Library

DECODER_FILE = "lmac-decoder.pt"
# Trained by benchmarks/evidence.py on the embedded encoder's corpus (docs/evidence.md, "The
# shipped decoder"); tied to the shipped encoder's fingerprint like any decoder checkpoint.
SHIPPED_DECODER = Path(__file__).parent / "encoders" / "weights" / "embedded-lmac-decoder.pt"
SHIPPED_LABEL = "L-MAC evidence (shipped decoder)"
_shipped: dict[tuple[str, str], Any] = {}  # (checkpoint path, encoder fingerprint) → (decoder, meta) or None


def _error(message: str) -> Exception:
    from .library import LibraryError

    return LibraryError(message)


def decoder_path(lib: "Library") -> Path:
    return lib.path / "models" / DECODER_FILE


def load_trained(lib: "Library"):
    """The library's trained ``(decoder, checkpoint meta)``, or None before `evidence train`."""
    from .evidence import load_checkpoint

    path = decoder_path(lib)
    if not path.exists():
        return None
    enc = lib.encoder
    return load_checkpoint(path, enc.fingerprint, "cuda" if _on_cuda(enc) else "cpu")


def shipped_fingerprint(path: Path | None = None) -> str | None:
    """The encoder fingerprint the shipped decoder was trained for, from the JSON sidecar beside
    it (``write_shipped_sidecar``), so which decoder renders is known without torch."""
    sidecar = (SHIPPED_DECODER if path is None else path).with_suffix(".json")
    try:
        return json.loads(sidecar.read_text())["encoder_fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_shipped_sidecar(path: Path, encoder_fingerprint: str) -> Path:
    """Write the sidecar a decoder checkpoint ships with (the step after training a new one)."""
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({
        "encoder_fingerprint": encoder_fingerprint,
        "about": f"The encoder fingerprint {path.name} was trained for, readable without torch "
                 "(earmark status). tests/test_embedded_encoder.py checks it against the checkpoint."}, indent=2) + "\n")
    return sidecar


def load_shipped(encoder: Any, path: Path | None = None):
    """``(decoder, meta)`` of the decoder shipped for ``encoder``'s exact weights, or None (no
    shipped decoder, or one trained for other weights, e.g. a library pinned to an earlier release).
    Both the sidecar and the checkpoint itself must name the encoder."""
    from .evidence import load_checkpoint

    path = SHIPPED_DECODER if path is None else path
    key = (str(path), encoder.fingerprint)
    if key not in _shipped:
        found = None
        if path.exists() and shipped_fingerprint(path) == encoder.fingerprint:
            decoder, meta = load_checkpoint(path, None, "cpu")
            if meta.encoder_fingerprint == encoder.fingerprint:
                found = (decoder, meta)
        _shipped[key] = found
    return _shipped[key]


def decoder_source(lib: "Library") -> str:
    """Which decoder renders a library's evidence, known without loading one (no torch):
    "library" after `evidence train`, "shipped" when the shipped decoder is for the library's
    encoder, else "none" (the labelled gradient-saliency fallback)."""
    if decoder_path(lib).exists():
        return "library"
    return "shipped" if shipped_fingerprint() == lib.encoder_record().fingerprint else "none"


def active_decoder(lib: "Library"):
    """``(decoder, source)`` for the source ``decoder_source`` names; ``(None, "none")`` means
    rendering uses the labelled saliency fallback."""
    source = decoder_source(lib)
    if source == "library":
        return load_trained(lib)[0], "library"
    shipped = load_shipped(lib.encoder) if source == "shipped" else None
    return (shipped[0], "shipped") if shipped else (None, "none")


def decoder_state(lib: "Library") -> tuple:
    """What changes when the library's decoder changes (its checkpoint's size and time), for caches."""
    path = decoder_path(lib)
    if not path.exists():
        return ()
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _on_cuda(enc: Any) -> bool:
    dev = getattr(enc, "device", "cpu")
    return str(dev).startswith("cuda")


def window_audio(lib: "Library", abs_path: str, start: float, end: float | None = None) -> np.ndarray:
    """One encoder window of a file starting at ``start`` seconds (zero-padded like indexing)."""
    enc = lib.encoder
    n = enc.window_samples
    audio = load_mono(abs_path, enc.sample_rate, start, start + enc.window_seconds if end is None else end)
    out = np.zeros(max(n, audio.size), np.float32)
    out[: audio.size] = audio
    return out[: max(n, audio.size)]


def _target_text(lib: "Library", query: str) -> str:
    from .query.parse import parse_query

    book = lib.active_codebook()
    parsed = parse_query(query, book.concepts if book else ())
    if parsed.free_text:
        return parsed.free_text
    positives = [t.text for t in parsed.concepts if t.weight > 0]
    if positives:
        return " and ".join(positives)
    raise _error("evidence needs a text or +concept target; like: queries have no text to explain")


@dataclass
class EvidenceFiles:
    """What `earmark evidence` wrote, and how it was made."""

    sound_id: int
    path: str
    start: float
    end: float
    target: str
    method: str  # "lmac" or "gradient-saliency" (no decoder for this encoder)
    label: str
    mask_in_wav: str
    mask_out_wav: str
    png: str
    mask_mean: float
    similarity_original: float
    similarity_in: float | None
    similarity_out: float | None
    precision: str  # arithmetic of the mask pass: fp32 or bf16
    decoder: str = "none"  # whose decoder made the mask: "library", "shipped" or "none" (saliency)

    def to_dict(self) -> dict:
        return asdict(self)


def render_for_sound(lib: "Library", ref: str | int, query: str, start: float | None = None,
                     end: float | None = None, precision: str = "auto") -> EvidenceFiles:
    """Evidence WAVs and PNG for sound ``ref`` and ``query`` (the best window when no range is given)."""
    from .evidence import render_evidence

    snd = lib.resolve_sound(ref)
    if start is None:
        hit = lib.explain(query, snd.id)
        start, end = hit.start, hit.end
    end = end if end is not None else start + lib.encoder.window_seconds
    target = _target_text(lib, query)
    wave = window_audio(lib, snd.abs_path, start, end)
    key = hashlib.sha256(f"{snd.content_hash}|{start}|{end}|{target}".encode()).hexdigest()[:12]
    out_dir = lib.path / "evidence" / f"sound-{snd.id}"
    decoder, source = active_decoder(lib)
    ev = render_evidence(lib.encoder, wave, lib.encoder.sample_rate, target, decoder, out_dir, stem=key,
                         precision=precision, decoder_label=SHIPPED_LABEL if source == "shipped" else None)
    return EvidenceFiles(snd.id, snd.abs_path, float(start), float(end), target, ev.method, ev.label,
                         str(ev.mask_in_wav), str(ev.mask_out_wav), str(ev.png), ev.mask_mean,
                         ev.similarity_original, ev.similarity_in, ev.similarity_out, ev.precision, source)


N_CANDIDATES = 50  # the library's most frequent concepts: the classes whose decision L-MAC explains
DECISION_PROB = 0.8  # share of training targets that are the encoder's decision among the candidates
# 1,200 steps reach L-MAC's bar on a 932-window library; 600 fall short on AI (docs/evidence.md).
# About 30 min on 2 CPU cores, far less on a GPU.
DEFAULT_STEPS = 1200
# Sounds held out of decoder training so `evidence eval` measures windows it never saw. Chosen by
# content hash, so a sound keeps its side when the library grows or is re-indexed; libraries
# under MIN_SPLIT_SOUNDS sounds train on everything (eval then says it is in-sample).
HELD_OUT_SHARE = 0.1
MIN_SPLIT_SOUNDS = 20
SPLITS = ("train", "held-out", "all")


def is_held_out(content_hash: str, share: float) -> bool:
    """Whether the sound with this content hash is one of the ``share`` held out of training."""
    bucket = int(hashlib.sha256(f"evidence-held-out|{content_hash}".encode()).hexdigest()[:8], 16) / 2**32
    return bucket < share


def split_share(lib: "Library", trained=None, requested: float | None = None) -> float:
    """The held-out share of this library's decoder: the checkpoint's, else what a new training
    uses (``requested``, or ``HELD_OUT_SHARE``; 0 when the library is too small to split)."""
    if requested is not None and not 0.0 <= requested <= 0.5:
        raise _error(f"--held-out must be between 0 and 0.5 (a share of the sounds), got {requested}")
    if trained is not None:
        stored = float(trained[1].train_config.get("held_out_share", 0.0))
        if requested is not None and requested != stored:
            raise _error(f"the decoder at {decoder_path(lib)} was trained with --held-out {stored:g}; "
                         f"resuming keeps its split (delete that file to train anew with {requested:g})")
        return stored
    share = HELD_OUT_SHARE if requested is None else requested
    if not share:
        return 0.0
    with lib.session() as s:
        hashes = s.execute(select(Sound.content_hash).where(Sound.status == "indexed")).scalars().all()
    held = sum(is_held_out(h, share) for h in hashes)
    if len(hashes) >= MIN_SPLIT_SOUNDS and 0 < held < len(hashes):
        return share
    if requested is not None:  # asked for explicitly: say why it cannot be done rather than train on all
        raise _error(f"--held-out {requested:g} needs at least {MIN_SPLIT_SOUNDS} indexed sounds with some on "
                     f"each side; this library has {len(hashes)} ({held} would be held out): use --held-out 0")
    return 0.0


def training_examples(lib: "Library", max_segments: int = 2000, top_k: int = 5, seed: int = 0,
                      split: str = "all", share: float = HELD_OUT_SHARE) -> list:
    """SegmentExamples from the library: each window's audio and its own top concepts.

    ``split``: "train" (sounds not held out at ``share``), "held-out" (the others) or "all".
    """
    from .codebook import read_codes
    from .evidence import SegmentExample

    if split not in SPLITS:
        raise _error(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    book = lib.active_codebook()
    if book is None:
        raise _error("the library has no concept codes yet: index some sounds first")
    with lib.session() as s:
        rows = s.execute(select(Segment.id, Segment.start, Sound.path, Root.path, Sound.content_hash)
                         .join(Sound, Sound.id == Segment.sound_id).join(Root, Root.id == Sound.root_id)
                         .where(Sound.status == "indexed").order_by(Segment.id)).all()
        if split != "all":
            rows = [r for r in rows if is_held_out(r[4], share) == (split == "held-out")]
        if len(rows) > max_segments:
            pick = np.sort(np.random.default_rng(seed).choice(len(rows), max_segments, replace=False))
            rows = [rows[i] for i in pick]
        ids, csr, _ = read_codes(s, book.id, [r[0] for r in rows], len(book.concepts))
    pos = {int(i): n for n, i in enumerate(ids)}
    cache: dict[str, np.ndarray] = {}
    enc = lib.encoder
    examples = []
    for seg_id, start, rel, root, _hash in rows:
        if seg_id not in pos:
            continue
        path = str(Path(root) / rel)
        if path not in cache:
            cache = {path: load_mono(path, enc.sample_rate)}  # one file at a time in memory
        audio = cache[path]
        a = int(round(start * enc.sample_rate))
        win = np.zeros(enc.window_samples, np.float32)
        chunk = audio[a:a + enc.window_samples]
        win[: chunk.size] = chunk
        row = csr.getrow(pos[seg_id])
        order = np.argsort(-row.data, kind="stable")[:top_k]
        concepts = [book.concepts[int(row.indices[i])] for i in order]
        examples.append(SegmentExample(win, concepts, None))
    return examples


def frequent_concepts(examples: list, n: int = N_CANDIDATES) -> list[str]:
    """The ``n`` concepts most often among the examples' top three: the library's candidate classes."""
    counts: dict[str, int] = {}
    for ex in examples:
        for c in ex.concepts[:3]:
            counts[c] = counts.get(c, 0) + 1
    return [c for c, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def with_decisions(lib: "Library", examples: list, candidates: list[str], batch_size: int = 32) -> list:
    """The examples with their encoder decision: the candidate nearest each window's embedding.

    L-MAC explains a classifier's decision, and `evidence eval` measures exactly that decision
    among ``candidates``; training mostly on it (rather than only on the sparse codes' top
    concepts, which often differ from the argmax) took a library's AI from 29 to 57 and AD from
    16.5 to 2.1 at 600 steps (docs/evidence.md, "Against the goals").
    """
    from dataclasses import replace

    enc = lib.encoder
    text = enc.embed_text(candidates)
    out = []
    for a in range(0, len(examples), batch_size):
        chunk = examples[a:a + batch_size]
        emb = enc.embed_audio(np.stack([ex.waveform for ex in chunk]))
        best = np.argmax(emb @ text.T, axis=1)
        out.extend(replace(ex, decision=candidates[int(j)]) for ex, j in zip(chunk, best))
    return out


def train(lib: "Library", steps: int = DEFAULT_STEPS, batch_size: int = 8, max_segments: int = 2000, seed: int = 0,
          progress: bool = True, held_out: float | None = None):
    """Train (or resume) the library's decoder on its own segments; returns the TrainResult.

    Targets: the encoder's decision among the library's frequent concepts (``DECISION_PROB``
    of the time), else one of the window's own top-5 concepts, so the decoder also learns to
    explain the concept queries people type. The candidate concepts are stored in the
    checkpoint and `evidence eval` measures against the same set. ``held_out`` (default
    ``HELD_OUT_SHARE``; 0 trains on every sound) of the sounds, by content hash, are left out
    for `evidence eval`; the share is stored in the checkpoint, so a resumed training keeps it.
    """
    from .evidence import TrainConfig, iter_batches, train_decoder

    trained = load_trained(lib)
    share = split_share(lib, trained, held_out)
    examples = training_examples(lib, max_segments=max_segments, seed=seed, split="train" if share else "all",
                                 share=share)
    if not examples:
        raise _error("no indexed segments to train on")
    path = decoder_path(lib)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidates = _candidates(trained, examples)
    examples = with_decisions(lib, examples, candidates)
    cfg = TrainConfig(steps=steps, seed=seed)
    batches = iter_batches(examples, batch_size, seed=seed, decision_prob=DECISION_PROB)
    return train_decoder(lib.encoder, batches, path, cfg, negatives=candidates,
                         encoder_fingerprint=lib.encoder.fingerprint, progress=progress,
                         record={"held_out_share": share})


def _stored_candidates(meta) -> list[str] | None:
    """The candidate concepts a decoder checkpoint was trained against (None when it has none)."""
    negatives = meta.train_config.get("negatives") or []
    return list(negatives) if len(negatives) >= 2 else None


def _candidates(trained, examples: list) -> list[str]:
    """The classes of train and eval: the stored ones of a trained decoder, else the examples' frequent concepts."""
    return (trained and _stored_candidates(trained[1])) or frequent_concepts(examples)


def evaluate(lib: "Library", n_windows: int = 64, seed: int = 0, methods=None, in_sample: bool = False):
    """Faithfulness of the library's decoder against the baselines, on the library's windows.

    The classes are the candidate concepts the library's decoder was trained against (or,
    without one, the windows' own most frequent concepts). The windows come from the sounds
    held out of training when the decoder has a split (``in_sample``: its training sounds
    instead); with the shipped decoder, which never trained on the library, from all sounds
    (split "unseen"). The result's ``split`` says which.
    """
    from dataclasses import replace

    from .evidence import evaluate_faithfulness

    trained = load_trained(lib)
    shipped = None if trained else load_shipped(lib.encoder)
    if shipped and in_sample:
        raise _error("--in-sample needs a decoder trained on this library (`earmark evidence train`); the "
                     "shipped decoder never trained on its sounds, so every window is out of sample")
    share = split_share(lib, trained) if trained else 0.0
    split = "all" if not share else "train" if in_sample else "held-out"
    examples = training_examples(lib, max_segments=n_windows, seed=seed, split=split, share=share)
    if not examples:
        raise _error(f"no indexed segments to evaluate on (split: {split})")
    wav = np.stack([ex.waveform for ex in examples])
    candidates = _candidates(trained, examples)  # the shipped decoder's own are its corpus's labels
    decoder = trained[0] if trained else shipped[0] if shipped else None
    if shipped:
        split = "unseen"
    res = evaluate_faithfulness(lib.encoder, wav, candidates, decoder=decoder, methods=methods, seed=seed)
    return replace(res, split=split)
