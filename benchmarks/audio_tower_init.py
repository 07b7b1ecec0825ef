"""Audio tower initialisation: aiSFX's pretrained CNN (frozen, as shipped) against a CNN trained
from scratch, on the validation split the model card reports.

Both arms train on the same rows of the same corpus (train-encoder's cache: plain, pitch-shifted
and mixed windows of the training packages) with the same loss, sampling, domain confusion and
sound prototypes, and are measured on the held-out validation packages with train-encoder's own
`measure`. The aiSFX arm is the shipped recipe's validation model (its figures are the model
card's validation table). The scratch arm is the aiSFX architecture at width W (W → 8·W channels;
aiSFX is 64) with every layer trained, its batch norm included, from the log-mel of each window
(cached under ``<cache>/logmels``, float16, 0.2 GB): width 16 takes ~1.5 minutes an epoch on 2 cores
(26 steps of 256 windows), width 64 about 16 times as long. Dropout on the input is off for the scratch arm (it would drop log-mel
pixels, not features).

    python benchmarks/audio_tower_init.py [--cache ~/.cache/earmark/corpus] [--width 16] [--epochs 20]
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from earmark.engine.encoders.embedded_model import EmbeddedClap, ModelConfig, SfxCNN
from earmark.engine.training.corpus import build_corpus
from earmark.engine.training.features import FeatureExtractor, compute_features
from earmark.engine.training.model_card import ROWS
from earmark.engine.training.train import (
    TrainConfig,
    _new_model,
    _rows_in,
    aisfx_checkpoint,
    fit,
    measure,
    sound_prototypes,
    text_embeddings,
    train_on,
)
from earmark.engine.user_cache import cache_root

_CHUNK = 256  # windows a forward pass without gradients


class LogMels(FeatureExtractor):
    """Windows → the front end's log-mel (level-normalised), flattened (B, T·F) float16."""

    @torch.no_grad()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(windows), self.batch_size):
            x = torch.from_numpy(windows[i : i + self.batch_size])
            logmel = self.tower.frontend(self.tower.frontend.stft_magnitude(x))
            out.append(logmel.reshape(len(x), -1).to(torch.float16).numpy())
        return np.concatenate(out) if out else self.empty()

    def empty(self) -> np.ndarray:
        return np.zeros((0, 0), np.float16)


class ScratchCnnClap(EmbeddedClap):
    """An :class:`EmbeddedClap` whose ``project_audio_features`` takes a window's log-mel and runs
    a CNN of aiSFX's shape, randomly initialised and trained with the heads."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)  # audio.cnn (frozen by fit, unused) sets audio.proj's input width
        self.scratch = SfxCNN(cfg.audio.cnn_width)  # not under audio.cnn: fit trains it

    def project_audio_features(self, flat_logmel: torch.Tensor) -> torch.Tensor:
        """(B, T·F) log-mel → (B, dim) unit-norm."""
        def run(x: torch.Tensor) -> torch.Tensor:
            logmel = x.float().view(len(x), -1, self.cfg.audio.n_mels)
            return F.normalize(self.audio.proj(self.scratch(logmel)[0]), dim=-1)

        if torch.is_grad_enabled():
            return run(flat_logmel)
        return torch.cat([run(flat_logmel[i : i + _CHUNK]) for i in range(0, len(flat_logmel), _CHUNK)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=cache_root() / "corpus", help="corpus cache (train-encoder's)")
    ap.add_argument("--width", type=int, default=16, help="first conv block's channels of the scratch CNN (aiSFX: 64)")
    ap.add_argument("--epochs", type=int, default=20, help="the scratch arm's epochs (the aiSFX arm keeps its 40)")
    args = ap.parse_args()
    cfg = TrainConfig()
    torch.set_num_threads(cfg.threads)
    items = build_corpus(args.cache, tuple(cfg.packages), procedural_variants=cfg.procedural_variants,
                         procedural_generators=cfg.procedural_generators)
    cnn_state = aisfx_checkpoint(args.cache)
    model_cfg = cfg.model_config()
    tower = _new_model(model_cfg, cnn_state, cfg.seed).audio
    common = {"seed": cfg.seed, "max_windows": cfg.max_windows, "pitch_prob": cfg.pitch_prob,
              "n_mixes": cfg.n_mixes, "acoustic_views": cfg.acoustic_views, "progress": True}
    fs = compute_features(items, tower, args.cache, **common)
    mels = compute_features(items, tower, args.cache / "logmels", extract=LogMels(tower), **common)
    if not (np.array_equal(mels.item, fs.item) and np.array_equal(mels.kind, fs.kind)):
        raise SystemExit(f"{args.cache / 'logmels'} holds other rows than the CNN features: delete it and run again")
    labels = sorted(set(fs.labels))
    text = text_embeddings(labels, labels, args.cache, True)
    packages = {it.package for it in items}
    val = set(cfg.val_packages) & packages
    train_pk = packages - val
    rows = _rows_in(fs, items, cfg.fit_packages(train_pk), cfg.row_kinds())
    ensemble = False  # the shipped checkpoint's choice on this split

    results = {}
    t0 = time.time()
    model, protos, _ = train_on(cfg, cnn_state, fs, items, text, train_pk)
    results["aiSFX, frozen (shipped recipe)"] = measure(model, fs, items, val, text, ensemble, protos)
    print(f"aiSFX arm: {time.time() - t0:.0f} s", flush=True)

    t0 = time.time()
    scratch_model_cfg = replace(model_cfg, audio=replace(model_cfg.audio, cnn_width=args.width))
    torch.manual_seed(cfg.seed)
    scratch = ScratchCnnClap(scratch_model_cfg)
    scratch_cfg = replace(cfg, epochs=args.epochs, input_dropout=0.0)
    fit(scratch, mels, rows, text, scratch_cfg, progress=True, items=items)
    protos = sound_prototypes(scratch, mels, items, train_pk, text, scratch_cfg)
    name = f"CNN from scratch, width {args.width}, {args.epochs} epochs"
    results[name] = measure(scratch, mels, items, val, text, ensemble, protos)
    print(f"scratch arm: {time.time() - t0:.0f} s", flush=True)

    cols = list(results)
    lines = ["| metric | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, key in ROWS:
        lines.append(f"| {label} | " + " | ".join(f"{getattr(results[c], key):.3f}" for c in cols) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
