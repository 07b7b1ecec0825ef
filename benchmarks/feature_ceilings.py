"""Supervised ceilings of the frozen aiSFX CNN's features: other poolings, per-package normalisation.

The everyday benchmark (benchmarks/everyday_zero_shot.py, `--supervised`) found that a classifier
trained on the other packages' labelled sounds scores little more than the zero-shot prompts on
the shipped CNN feature (block 4, mean over frequency, max over time). This script asks whether
another read-out of the same frozen CNN, or normalising each package's features by its own
statistics (its recording chain), would let the labels support more. Per everyday sound (the
same ≤ 3 loudest windows as the cached features), every pooling below is computed from the CNN's
block-3 and block-4 maps and from the log-mel itself; several parts are each unit-normalised and
joined; test-time views (the window pitch-shifted by ±1 semitone, low-passed at 6 kHz, high-passed at
300 Hz) are averaged. Each fold (a package with ≥ 40 everyday sounds) is classified by logistic regression
(C 10) and by nearest category centroid, trained on every other package's everyday sounds
(engine/training/everyday.py `supervised_fold`, `category_centroids`); a last row adds the
procedural sounds (engine/training/procedural.py) to every fold's training sounds. No training of the heads
is involved, so the script runs in about five minutes on 2 cores:

    python benchmarks/feature_ceilings.py [--cache ~/.cache/earmark/corpus] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.signal
import torch
from earmark.engine.training.corpus import PROCEDURAL, build_corpus
from earmark.engine.training.everyday import (
    RawFeatures,
    _plain_rows,
    category_centroids,
    category_of,
    folds,
    supervised_fold,
    zero_shot_fold,
)
from earmark.engine.training.features import (
    FeatureSet,
    compute_features,
    load_mono,
    select_windows,
    shift_pitch,
)
from earmark.engine.training.train import TrainConfig, _new_model, aisfx_checkpoint
from earmark.engine.user_cache import cache_root
from tqdm import tqdm

# Pooling name → the parts it joins. Parts: block b's map (B, C, F', T') reduced over frequency
# then time ("b4 mean/max" = mean over frequency, max over time: the shipped feature), and the
# log-mel's per-band mean and standard deviation over time.
POOLINGS: dict[str, tuple[str, ...]] = {
    "block 4, mean over frequency, max over time (shipped)": ("b4 mean/max",),
    "block 4, mean/mean": ("b4 mean/mean",),
    "block 4, max/max": ("b4 max/max",),
    "block 4, mean/max + mean/mean": ("b4 mean/max", "b4 mean/mean"),
    "block 4, mean/max + mean/std": ("b4 mean/max", "b4 mean/std"),
    "block 3, mean/max": ("b3 mean/max",),
    "blocks 3 + 4, mean/max": ("b3 mean/max", "b4 mean/max"),
    "blocks 3 + 4, mean/max + mean/mean": ("b3 mean/max", "b3 mean/mean", "b4 mean/max", "b4 mean/mean"),
    "block 4 mean/max + log-mel mean/std": ("b4 mean/max", "mel mean", "mel std"),
    "log-mel mean/std alone": ("mel mean", "mel std"),
}


def _parts(logmel: torch.Tensor, maps: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every pooled part of a batch of windows, each (B, ·)."""
    b3, b4 = maps[2], maps[3]  # (B, C, F', T'), frequency first
    return {
        "b4 mean/max": b4.mean(2).amax(2), "b4 mean/mean": b4.mean(2).mean(2), "b4 max/max": b4.amax(2).amax(2),
        "b4 mean/std": b4.mean(2).std(2), "b3 mean/max": b3.mean(2).amax(2), "b3 mean/mean": b3.mean(2).mean(2),
        "mel mean": logmel.mean(1), "mel std": logmel.std(1),
    }


def test_time_views(sample_rate: int, n: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Re-recordings of a window for test-time augmentation (the shipped read-out of each, averaged)."""
    low = scipy.signal.butter(4, 6000, "low", fs=sample_rate, output="sos")
    high = scipy.signal.butter(2, 300, "high", fs=sample_rate, output="sos")
    return {
        "pitch +1": lambda w: shift_pitch(w, 1.0, n), "pitch -1": lambda w: shift_pitch(w, -1.0, n),
        "low-pass 6 kHz": lambda w: scipy.signal.sosfilt(low, w), "high-pass 300 Hz": lambda w: scipy.signal.sosfilt(high, w),
    }


@torch.no_grad()
def pooled_windows(tower, items, sounds: list[int], max_windows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(sound index per window row, part → (rows, dim)) for the plain windows of ``sounds``; the
    parts include the shipped read-out of every test-time view ("b4 mean/max, pitch +1", ...)."""
    cfg = tower.frontend.cfg
    n = round(cfg.window_seconds * cfg.sample_rate)
    views = test_time_views(cfg.sample_rate, n)
    owner, parts = [], {}
    for s in tqdm(sounds, desc="pooling", unit="sound"):
        wins = np.stack(select_windows(load_mono(items[s].path, cfg.sample_rate), n, max_windows))
        logmel = tower.frontend(tower.frontend.stft_magnitude(torch.from_numpy(wins)))
        _, maps = tower.cnn(logmel)
        for name, v in _parts(logmel, maps).items():
            parts.setdefault(name, []).append(v.float().numpy())
        for name, view in views.items():
            x = torch.from_numpy(np.stack([view(w) for w in wins]).astype(np.float32))
            pooled, _ = tower.cnn_features(tower.frontend.stft_magnitude(x))
            parts.setdefault(f"b4 mean/max, {name}", []).append(pooled.float().numpy())
        owner += [s] * len(wins)
    return np.asarray(owner), {k: np.concatenate(v) for k, v in parts.items()}


def _unit(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def joined(parts: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """The named parts, each unit-normalised per row, side by side (each part weighs the same); one
    part alone is left as it is, as the cached features are (so the shipped pooling's row must
    equal the unnormalised row of the normalisations: the same windows, recomputed)."""
    if len(names) == 1:
        return parts[names[0]]
    return np.concatenate([_unit(parts[n]) for n in names], axis=1) / np.sqrt(len(names))


def averaged(parts: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """The mean of the named parts, each unit-normalised per row (test-time augmentation)."""
    return np.mean([_unit(parts[n]) for n in names], axis=0)


# Test-time augmentation rows: the shipped read-out averaged over these views of every window.
AVERAGED: dict[str, tuple[str, ...]] = {
    "block 4 mean/max averaged over the window and its pitch ±1 semitone":
        ("b4 mean/max", "b4 mean/max, pitch +1", "b4 mean/max, pitch -1"),
    "block 4 mean/max averaged over the window, pitch ±1, low-pass 6 kHz, high-pass 300 Hz":
        ("b4 mean/max", "b4 mean/max, pitch +1", "b4 mean/max, pitch -1", "b4 mean/max, low-pass 6 kHz",
         "b4 mean/max, high-pass 300 Hz"),
}


def plain_set(features: np.ndarray, owner: np.ndarray, labels: list[str]) -> FeatureSet:
    """A FeatureSet of plain window rows only (what the ceilings score)."""
    n = len(owner)
    return FeatureSet(features.astype(np.float32), owner, np.full(n, -1), np.zeros(n, int), labels)


def per_package(fs: FeatureSet, items, how: Callable[[np.ndarray], np.ndarray]) -> FeatureSet:
    """``fs`` with each package's rows transformed by ``how`` applied to that package's rows alone."""
    out = fs.features.copy()
    pk = np.asarray([items[int(i)].package for i in fs.item])
    for p in np.unique(pk):
        out[pk == p] = how(out[pk == p])
    return FeatureSet(out, fs.item, fs.partner, fs.kind, fs.labels)


NORMALISATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "none (shipped)": lambda x: x,
    "centred by the package's mean": lambda x: x - x.mean(0),
    "z-scored by the package's mean and std": lambda x: (x - x.mean(0)) / (x.std(0) + 1e-6),
    "scaled by the package's std": lambda x: x / (x.std(0) + 1e-6),
}


def ceilings(fs: FeatureSet, items, held: dict[str, list[int]], packages: set[str]) -> dict[str, dict[str, list]]:
    """Method → package → per-sound correctness, leave-one-package-out."""
    raw = RawFeatures()
    out: dict[str, dict[str, list]] = {"logistic regression C 10": {}, "nearest category centroid": {}}
    for p, sounds in held.items():
        train = packages - {p}
        out["logistic regression C 10"][p] = supervised_fold(raw, fs, items, train, sounds, "lr:10").tolist()
        cent = category_centroids(raw, fs, items, train)
        out["nearest category centroid"][p] = zero_shot_fold(raw, fs, items, sounds, cent).tolist()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=cache_root() / "corpus", help="corpus cache (train-encoder's)")
    ap.add_argument("--json", type=Path, help="write every per-sound result here")
    args = ap.parse_args()
    cfg = TrainConfig()
    torch.set_num_threads(cfg.threads)
    # The shipped corpus, its procedural sounds included (they come last, so the real sounds and
    # their cached features are those of a corpus without them); they train only the last row.
    items = build_corpus(args.cache, tuple(cfg.packages), procedural_variants=cfg.procedural_variants,
                         procedural_generators=cfg.procedural_generators)
    tower = _new_model(cfg.model_config(), aisfx_checkpoint(args.cache), cfg.seed).audio.eval()
    cached = compute_features(items, tower, args.cache, seed=cfg.seed, max_windows=cfg.max_windows,
                              pitch_prob=cfg.pitch_prob, n_mixes=cfg.n_mixes, progress=False)
    held = {p: s for p, s in folds(items, cached).items() if p != PROCEDURAL}  # synthetic sounds are never held out
    packages = {it.package for it in items} - {PROCEDURAL}
    # Every sound of every package with a plain window: the folds' everyday sounds are scored, the
    # other packages' everyday sounds train, and the normalisations see each package whole.
    plain = _plain_rows(cached, sorted({int(i) for i in cached.item}))
    shipped = FeatureSet(cached.features[plain], cached.item[plain], cached.partner[plain], cached.kind[plain],
                         [cached.labels[i] for i in plain])
    everyday = sorted({int(i) for i in shipped.item
                       if category_of(items[int(i)].label) and items[int(i)].package != PROCEDURAL})
    owner, parts = pooled_windows(tower, items, everyday, cfg.max_windows)
    labels = [items[int(s)].label for s in owner]
    results: dict[str, dict[str, dict[str, list]]] = {}
    for name, names in POOLINGS.items():
        results[f"pooling: {name}"] = ceilings(plain_set(joined(parts, names), owner, labels), items, held, packages)
    for name, names in AVERAGED.items():
        results[f"test-time views: {name}"] = ceilings(plain_set(averaged(parts, names), owner, labels),
                                                       items, held, packages)
    for name, how in NORMALISATIONS.items():
        results[f"normalisation: {name}"] = ceilings(per_package(shipped, items, how), items, held, packages)
    results["shipped read-out, the procedural sounds training too"] = ceilings(
        shipped, items, held, packages | {PROCEDURAL})
    print(table(results, held))
    if args.json:
        args.json.write_text(json.dumps({"folds": {p: len(s) for p, s in held.items()}, "results": results}, indent=1))


def table(results: dict[str, dict[str, dict[str, list]]], held: dict[str, list[int]]) -> str:
    """Markdown: per feature and method, pooled and package-mean top-1 and each fold's."""
    head = ["| features | classifier | pooled | package mean | " + " | ".join(f"{p} ({len(s)})" for p, s in held.items()) + " |",
            "|---|---|---|---|" + "---|" * len(held)]
    for feat, by_method in results.items():
        for method, by_pkg in by_method.items():
            acc = [np.mean(by_pkg[p]) for p in held]
            pooled = np.mean(np.concatenate([by_pkg[p] for p in held]))
            head.append(f"| {feat} | {method} | {pooled:.3f} | {np.mean(acc):.3f} | "
                        + " | ".join(f"{a:.3f}" for a in acc) + " |")
    return "\n".join(head)


if __name__ == "__main__":
    main()
