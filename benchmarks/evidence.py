"""Benchmark of listenable evidence: decoder training, faithfulness table, rendering time.

    python benchmarks/evidence.py                      # embedded encoder, game-sound corpus
    python benchmarks/evidence.py --encoder toy        # the test suite's toy encoder, tone in noise
    python benchmarks/evidence.py --write-docs docs/evidence.md

Data (embedded encoder): the "library" is the corpus audio (--corpus x/, the Debian game and
sample packages) that is *not* in the encoder's training manifest — sounds the shipped encoder
never trained on — minus tuxpaint's spoken stamp descriptions. One window per file (the loudest
of its first three half-overlapping windows), shuffled with a fixed seed, split into held-out
evaluation windows and training windows.

Training targets: a window's "top concepts" are the 3 candidate labels closest to its audio
embedding (a stand-in for concept codes, which this benchmark does not compute); its "caption"
is the keyword label of its archive path when there is one. Candidate texts (training negatives
and the class probability of the metrics): the 50 most frequent labels of the encoder's training
manifest, near-synonyms merged.

Timing: ``render_evidence`` (mask + two ISTFTs + two WAVs + PNG) on a 10 s hit, CPU, 2 threads,
median of --timing-runs after one warm-up; the mask computation alone is reported separately.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MARK_START = "<!-- benchmark:start -->"
MARK_END = "<!-- benchmark:end -->"
METRICS = ("AI", "AD", "AG", "FF", "Fid_In", "SPS", "COMP")
LMAC_PAPER = {"AI": 61.62, "AD": 3.83, "AG": 33.48, "FF": 0.40, "Fid_In": 0.82, "SPS": 0.93, "COMP": 9.77}


def _toy_data(n_train: int, n_eval: int):
    sys.path.insert(0, str(REPO / "tests"))
    from evidence_toy_encoder import ToyBandEncoder, tone_in_noise

    from earmark.engine.evidence.train import SegmentExample

    enc = ToyBandEncoder()
    x, _ = tone_in_noise(n_train, seed=0)
    xe, _ = tone_in_noise(n_eval, seed=1)
    train = [SegmentExample(w, ["tone"], caption="beep") for w in x]
    candidates = ["tone", "hiss", "rumble"]
    long_hit = tone_in_noise(1, seed=2, seconds=10.0)[0][0]
    return enc, train, xe, candidates, long_hit, "toy band encoder (tests/evidence_toy_encoder.py), tone in noise"


N_CANDIDATES = 50
# Spoken descriptions of drawing stamps (~7,400 files of one voice reading words): not sound effects.
EXCLUDED_PACKAGES = ("tuxpaint-stamps-default",)


def _unseen_files(corpus: Path) -> list[Path]:
    """Audio files of the corpus that are not in the encoder's training manifest, sorted.

    The shipped encoder trains on the manifest's items only (labelled files, capped per label),
    so these ~2,500 files are sounds it has never seen.
    """
    from earmark.engine.audio import AUDIO_EXTENSIONS
    from earmark.engine.training.corpus import read_manifest

    seen = {os.path.realpath(item.path) for item in read_manifest(corpus)}
    out = []
    for p in (corpus / "x").rglob("*"):
        if p.suffix.lower() not in AUDIO_EXTENSIONS or not p.is_file():
            continue
        if p.relative_to(corpus / "x").parts[0] in EXCLUDED_PACKAGES or os.path.realpath(p) in seen:
            continue
        out.append(p)
    return sorted(out)


def _loud_window(path: Path, enc) -> np.ndarray | None:
    """The loudest of the first few half-overlapping windows of a file, or None if unreadable/silent."""
    from earmark.engine.audio import AudioError, load_mono

    w = enc.window_samples
    try:
        x = load_mono(path, enc.sample_rate, 0.0, 3 * enc.window_seconds)
    except AudioError:
        return None
    if x.size < w:
        x = np.pad(x, (0, w - x.size))
    starts = range(0, x.size - w + 1, max(1, w // 2))
    best = max(starts, key=lambda s: float(np.mean(x[s : s + w] ** 2)))
    win = x[best : best + w].astype(np.float32)
    return win if float(np.sqrt(np.mean(win**2))) >= 1e-3 else None


def _candidates(enc, corpus: Path) -> list[str]:
    """The 50 most frequent labels of the encoder's training manifest, near-synonyms (cos > 0.9) merged."""
    import collections

    from earmark.engine.training.corpus import read_manifest

    counts = collections.Counter(item.label for item in read_manifest(corpus))
    labels = [label for label, _ in counts.most_common()]
    emb = enc.embed_text(labels)
    kept: list[int] = []
    for i in range(len(labels)):
        if all(float(emb[i] @ emb[j]) <= 0.9 for j in kept):
            kept.append(i)
        if len(kept) == N_CANDIDATES:
            break
    return [labels[i] for i in kept]


def _corpus_data(enc, corpus: Path, n_train: int, n_eval: int, seed: int):
    from earmark.engine.evidence.train import SegmentExample
    from earmark.engine.training.captions import keyword_label, tokens_of

    files = _unseen_files(corpus)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    windows, captions = [], []
    for i in order:
        if len(windows) >= n_train + n_eval:
            break
        win = _loud_window(files[i], enc)
        if win is None:
            continue
        windows.append(win)
        captions.append(keyword_label(tokens_of(str(files[i].relative_to(corpus / "x")))))
    windows_arr = np.stack(windows)
    eval_w, train_w, train_c = windows_arr[:n_eval], windows_arr[n_eval:], captions[n_eval:]
    candidates = _candidates(enc, corpus)
    # "Top concepts" of a training window: its 3 nearest candidate labels (a stand-in for concept codes).
    sims = enc.embed_audio(train_w) @ enc.embed_text(candidates).T
    top = np.argsort(-sims, axis=1)[:, :3]
    train = [SegmentExample(w, [candidates[j] for j in t], caption=c) for w, t, c in zip(train_w, top, train_c)]
    long_hit = np.concatenate(list(eval_w[:5]))[: int(10 * enc.sample_rate)]
    n_cap = sum(c is not None for c in train_c)
    desc = (
        f"{len(windows_arr)} windows (one per file, the loudest of its first three) drawn from {len(files)} corpus "
        f"audio files that are not in the encoder's training manifest (never trained on; tuxpaint spoken "
        f"descriptions excluded): {len(train)} train ({n_cap} with a path caption) / "
        f"{len(eval_w)} held-out eval; candidates = the {len(candidates)} most frequent labels of the encoder's "
        f"training manifest, near-synonyms (text cos > 0.9) merged"
    )
    return train, eval_w, candidates, long_hit, desc


def _time_render(enc, decoder, hit: np.ndarray, runs: int, precision: str = "fp32") -> dict[str, float]:
    from earmark.engine.evidence.precision import resolve_precision
    from earmark.engine.evidence.render import compute_mask, render_evidence

    prec = resolve_precision(precision, "cpu") if decoder is not None else "fp32"
    fresh = iter(f"target number {i}" for i in range(10_000))
    out: dict = {"precision": prec}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (
            # A query's hits share its target: the text tower runs once per query (cached).
            ("render_s", lambda: render_evidence(enc, hit, enc.sample_rate, "the target", decoder, tmp, check=False,
                                                 precision=prec)),
            # The first hit of a new query also embeds the target text.
            ("render_new_target_s", lambda: render_evidence(enc, hit, enc.sample_rate, next(fresh), decoder, tmp,
                                                            check=False, precision=prec)),
            ("render_checked_s", lambda: render_evidence(enc, hit, enc.sample_rate, "the target", decoder, tmp,
                                                         precision=prec)),
            ("mask_s", lambda: compute_mask(enc, hit, enc.sample_rate, "the target", decoder, check=False,
                                            precision=prec)),
            ("encoder_s", lambda: _encoder_pass(enc, hit, prec)),
        ):
            fn()  # warm-up
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[name] = statistics.median(times)
    return out


def _mask_agreement(enc, decoder, windows: np.ndarray) -> dict[str, float]:
    """Mean and 99th-percentile |mask_bf16 − mask_fp32| over held-out windows."""
    from earmark.engine.evidence.render import compute_mask

    diffs = []
    for w in windows:
        a = compute_mask(enc, w, enc.sample_rate, "the target", decoder, check=False, precision="fp32").mask
        b = compute_mask(enc, w, enc.sample_rate, "the target", decoder, check=False, precision="bf16").mask
        diffs.append(np.abs(a - b).ravel())
    d = np.concatenate(diffs)
    return {"mean_abs": float(d.mean()), "p99_abs": float(np.quantile(d, 0.99)), "windows": len(windows)}


def _encoder_pass(enc, hit: np.ndarray, precision: str = "fp32") -> None:
    """The encoder's own share: STFT + one forward pass over the hit's window-length chunks."""
    from earmark.engine.evidence.precision import mask_autocast
    from earmark.engine.evidence.stft import STFTParams, magnitude_phase, stft

    p = STFTParams.from_mapping(enc.stft_params())
    mag = magnitude_phase(stft(torch.from_numpy(hit), p))[0][0]
    chunk = p.n_frames(enc.window_samples)
    n = -(-mag.shape[1] // chunk)
    mag = torch.nn.functional.pad(mag, (0, n * chunk - mag.shape[1]))
    with torch.no_grad(), mask_autocast(precision, "cpu"):
        enc.embed_from_magnitude(mag.reshape(mag.shape[0], n, chunk).permute(1, 0, 2).contiguous())


def _table(scores: dict, n: int) -> str:
    head = "| method | " + " | ".join(m.replace("_", "-") for m in METRICS) + " |"
    sep = "|---" * (len(METRICS) + 1) + "|"
    rows = [head, sep]
    for method, s in scores.items():
        d = s.as_dict()
        rows.append(f"| {method} | " + " | ".join(f"{d[m]:.2f}" for m in METRICS) + " |")
    rows.append("| L-MAC paper (CNN14, ESC-50 OOD) | " + " | ".join(f"{LMAC_PAPER[m]:.2f}" for m in METRICS) + " |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoder", default="embedded", help="encoder spec, or 'toy' for the test encoder")
    ap.add_argument("--corpus", type=Path, default=Path("/work/cache/earmark-corpus"), help="earmark corpus cache (manifest.jsonl, x/)")
    ap.add_argument("--train-files", type=int, default=400)
    ap.add_argument("--eval-files", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weights", type=float, nargs=3, metavar=("IN", "OUT", "SPARSITY"), default=(4.0, 0.2, 0.4),
                    help="loss weights of mask_in, mask_out, sparsity (L-MAC's 4 / 0.2 / 0.4)")
    ap.add_argument("--top-k", type=int, default=1, help="targets drawn from a window's top-k concepts")
    ap.add_argument("--caption-prob", type=float, default=0.1, help="probability of the path caption as target")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "out" / "evidence" / "decoder.pt")
    ap.add_argument("--timing-runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-docs", type=Path, default=None, help="replace the benchmark section of this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from earmark.engine.evidence.evaluate import evaluate_faithfulness
    from earmark.engine.evidence.objective import ObjectiveWeights, logit_scale_of
    from earmark.engine.evidence.train import TrainConfig, iter_batches, train_decoder

    t0 = time.perf_counter()
    if args.encoder == "toy":
        enc, train, eval_w, candidates, long_hit, desc = _toy_data(args.train_files, args.eval_files)
    else:
        from earmark.engine.encoders import load_encoder

        enc = load_encoder(args.encoder, device="cpu")
        train, eval_w, candidates, long_hit, desc = _corpus_data(enc, args.corpus, args.train_files, args.eval_files, args.seed)
    t_data = time.perf_counter() - t0
    scale = logit_scale_of(enc)  # the encoder's own s (the embedded model's learned one, ~24)
    print(f"data: {desc} ({t_data:.0f} s)", file=sys.stderr)

    t0 = time.perf_counter()
    res = train_decoder(
        enc,
        iter_batches(train, args.batch_size, seed=args.seed, top_k=args.top_k, caption_prob=args.caption_prob),
        args.checkpoint,
        TrainConfig(steps=args.steps, lr=args.lr, save_every=25, seed=args.seed, logit_scale=scale,
                    weights=ObjectiveWeights(*args.weights)),
        negatives=candidates,
    )
    t_train = time.perf_counter() - t0
    hist = res.history
    first, last = hist[: min(10, len(hist))], hist[-min(10, len(hist)) :]
    loss_first = float(np.mean([h["total"] for h in first]))
    loss_last = float(np.mean([h["total"] for h in last]))

    t0 = time.perf_counter()
    ev = evaluate_faithfulness(enc, eval_w, candidates, res.decoder, batch_size=8, seed=args.seed, logit_scale=scale)
    t_eval = time.perf_counter() - t0
    from earmark.engine.evidence.precision import cpu_has_bf16

    scores = dict(ev.scores)
    agreement = None
    if cpu_has_bf16():
        ev16 = evaluate_faithfulness(enc, eval_w, candidates, res.decoder, methods=["lmac"], batch_size=8,
                                     seed=args.seed, logit_scale=scale, mask_precision="bf16")
        scores = {"lmac": ev.scores["lmac"], "lmac, bf16 mask pass": ev16.scores["lmac"],
                  **{m: v for m, v in ev.scores.items() if m != "lmac"}}
        agreement = _mask_agreement(enc, res.decoder, eval_w[:40])
    timing = _time_render(enc, res.decoder, long_hit, args.timing_runs, "fp32")
    timing_auto = _time_render(enc, res.decoder, long_hit, args.timing_runs, "auto")
    timing_fallback = _time_render(enc, None, long_hit, max(1, args.timing_runs // 2))

    result = {
        "encoder": args.encoder if args.encoder != "toy" else "toy",
        "encoder_fingerprint": getattr(enc, "fingerprint", None),
        "data": desc,
        "candidates": candidates,
        "logit_scale": ev.logit_scale,
        "train": {
            "steps": res.steps_done,
            "resumed_from": res.start_step,
            "batch_size": args.batch_size,
            "seconds_this_run": t_train,
            "loss_first10": loss_first,
            "loss_last10": loss_last,
            "last": last[-1] if last else None,
        },
        "eval_seconds": t_eval,
        "n_eval_windows": ev.n_windows,
        "scores": {m: s.as_dict() for m, s in scores.items()},
        "bf16_mask_agreement": agreement,
        "render_10s_cpu": {**timing, "threads": args.threads},
        "render_10s_cpu_auto_precision": {**timing_auto, "threads": args.threads},
        "render_10s_cpu_saliency_fallback": {**timing_fallback, "threads": args.threads},
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    out_json = args.checkpoint.parent / "benchmark.json"
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2))

    table = _table(scores, ev.n_windows)

    def timing_line(t: dict, what: str) -> str:
        return (f"{what}: full render (mask, 2 ISTFT, 2 WAV, PNG) **{t['render_s']:.3f} s** per hit of a query "
                f"({t['render_new_target_s']:.3f} s for its first hit, which also embeds the target text), of which "
                f"the encoder's own forward pass over the hit is {t['encoder_s']:.3f} s and the mask (encoder + "
                f"decoder) {t['mask_s']:.3f} s; with the masked-in/-out similarity check {t['render_checked_s']:.3f} s.")

    precision_lines = [timing_line(timing, "float32 mask pass")]
    if timing_auto["precision"] != "fp32":
        precision_lines.append(timing_line(timing_auto, f"{timing_auto['precision']} mask pass (the default here)"))
    if agreement:
        precision_lines.append(f"bf16 against float32 masks on {agreement['windows']} held-out windows: mean "
                               f"|Δmask| {agreement['mean_abs']:.4f}, 99th percentile {agreement['p99_abs']:.4f}.")
    section = "\n".join(
        [
            MARK_START,
            f"Encoder: `{result['encoder']}` (fingerprint `{result['encoder_fingerprint']}`). Data: {desc}.",
            f"Decoder: {res.steps_done} steps of batch {args.batch_size} on CPU, targets from each window's top "
            f"{args.top_k} concept(s) or (p = {args.caption_prob}) its path caption, loss weights "
            f"{' / '.join(f'{w:g}' for w in args.weights)} (mask-in / mask-out / sparsity) "
            f"(loss {loss_first:.3f} → {loss_last:.3f}, mean of first/last 10 steps). "
            f"Logit scale s = {ev.logit_scale:g}; {ev.n_windows} held-out windows; "
            f"{len(candidates)} candidate texts.",
            "",
            table,
            "",
            f"Rendering a 10 s hit on CPU ({args.threads} threads, median of {args.timing_runs}):",
            "",
            *[f"- {line}" for line in precision_lines],
            f"- Saliency fallback (float32): {timing_fallback['render_s']:.3f} s.",
            "",
            f"Produced by `python benchmarks/evidence.py {' '.join(sys.argv[1:])}`; raw numbers in `{out_json.relative_to(REPO) if out_json.is_relative_to(REPO) else out_json}`.",
            MARK_END,
        ]
    )
    print(section)
    if args.write_docs:
        text = args.write_docs.read_text() if args.write_docs.exists() else f"{MARK_START}\n{MARK_END}\n"
        if MARK_START not in text or MARK_END not in text:
            text = text.rstrip() + f"\n\n{MARK_START}\n{MARK_END}\n"
        a, b = text.index(MARK_START), text.index(MARK_END) + len(MARK_END)
        args.write_docs.write_text(text[:a] + section + text[b:])


if __name__ == "__main__":
    main()
