"""Render the measured part of docs/model-card.md from a train_encoder metrics.json."""
from __future__ import annotations

import json
from pathlib import Path

ROWS = (
    ("text→audio R@1", "t2a_r1"),
    ("text→audio R@5", "t2a_r5"),
    ("text→audio R@10", "t2a_r10"),
    ("text→audio mAP@10", "t2a_map10"),
    ("audio→text R@1", "a2t_r1"),
    ("zero-shot top-1", "zero_shot_top1"),
)


def metrics_table(metrics_path: str | Path) -> str:
    """A markdown table: trained model, untrained-projection baseline and chance, side by side."""
    m = json.loads(Path(metrics_path).read_text())
    v = m["validation"]
    # the prompt choice the run did not make, beside the one it made
    other = ("without prompt ensembling", v["model_without_prompt_ensemble"]) if m["prompt_ensemble"] \
        else ("with prompt ensembling", v["model_with_prompt_ensemble"])
    cols = [("trained (shipped recipe)", v["model"])]
    if "model_without_exemplar_support" in v and m.get("config", {}).get("exemplar_weight", 0) > 0:  # v12 on
        cols.append(("without exemplar support", v["model_without_exemplar_support"]))
    if "model_without_sound_prototypes" in v:  # runs before 2026-12-04 had none
        cols.append(("without sound prototypes", v["model_without_sound_prototypes"]))
    cols += [other, ("baseline: untrained projection", v["baseline_untrained_projection"]), ("chance", v["chance"])]
    lines = ["| metric | " + " | ".join(c for c, _ in cols) + " |", "| --- |" + " --- |" * len(cols)]
    for name, key in ROWS:
        lines.append(f"| {name} | " + " | ".join(f"{d[key]:.3f}" for _, d in cols) + " |")
    model = v["model"]
    # runs before v11 always chose on the validation split; since then the recipe may fix it
    how = "chosen on this split" if m.get("config", {}).get("prompt_ensemble", "choose") == "choose" else "set by the recipe"
    lines.append("")
    lines.append(
        f"Validation: {model['n_sounds']} sounds in {model['n_categories']} categories from the held-out "
        f"packages {', '.join(v['val_packages'])}; prompt ensembling at query time: "
        f"{'on' if m['prompt_ensemble'] else 'off'} ({how})."
    )
    return "\n".join(lines)


def corpus_table(manifest_path: str | Path) -> str:
    """A markdown table of the training corpus: files and licences per source package."""
    rows: dict[str, list] = {}
    for line in Path(manifest_path).read_text().splitlines():
        if not line.strip():
            continue
        it = json.loads(line)
        entry = rows.setdefault(it["package"], [0, it["licence"], set()])
        entry[0] += 1
        entry[2].add(it["label"])
    lines = ["| source | sounds | labels | licences (from the package's copyright file) |", "| --- | ---: | ---: | --- |"]
    for pkg, (n, lic, labels) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {pkg} | {n} | {len(labels)} | {lic} |")
    return "\n".join(lines)


# A retrained tensor counts as the shipped one when no element differs by more than this
# fraction of the tensor's largest magnitude: training the same corpus on another CPU (another
# BLAS kernel, another summation order) moves weights by ~1e-7 relative, a different recipe,
# seed or corpus by far more than 1e-4.
ROUNDING_TOLERANCE = 1e-4


def _largest_difference(a, b) -> float | None:
    """Largest element difference of two checkpoint payloads relative to each tensor's largest
    magnitude, or None when they differ in anything but tensor values (keys, shapes, labels, settings)."""
    import torch

    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return None
        worst = 0.0
        for k in a:
            d = _largest_difference(a[k], b[k])
            if d is None:
                return None
            worst = max(worst, d)
        return worst
    if torch.is_tensor(a):
        if not torch.is_tensor(b) or a.shape != b.shape or a.dtype != b.dtype:
            return None
        if a.numel() == 0:
            return 0.0
        x, y = a.double(), b.double()
        return float((x - y).abs().max() / x.abs().max().clamp(min=1e-30))
    if isinstance(a, (list, tuple)):
        if not isinstance(b, (list, tuple)) or len(a) != len(b):
            return None
        diffs = [_largest_difference(u, v) for u, v in zip(a, b)]
        return None if any(d is None for d in diffs) else max(diffs, default=0.0)
    return 0.0 if a == b else None


def against_shipped(weights_path: str | Path, shipped_path: str | Path | None = None) -> str:
    """One line for the end of a training run: the new weights' encoder fingerprint (what a
    library built on them records) and whether they are the shipped weights, i.e. whether the run
    reproduced them: byte for byte, or up to floating-point rounding (the same corpus and recipe
    trained on a CPU whose arithmetic rounds differently; the fingerprint then differs too, as
    it hashes the bytes)."""
    import hashlib

    import torch

    from ..encoders.embedded import EmbeddedEncoder, shipped_weights_path

    shipped = Path(shipped_path) if shipped_path is not None else shipped_weights_path()
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
    fingerprint = EmbeddedEncoder.load(path=str(weights_path), device="cpu").fingerprint
    if shipped.is_file() and digest(weights_path) == digest(shipped):
        verdict = "byte for byte the shipped weights: this run reproduced them"
    else:
        diff = None
        if shipped.is_file():
            load = lambda p: torch.load(p, map_location="cpu", weights_only=False)
            diff = _largest_difference(load(shipped), load(weights_path))
        if diff is not None and diff <= ROUNDING_TOLERANCE:
            verdict = (f"the shipped weights ({shipped.name}) up to floating-point rounding (largest "
                       f"difference {diff:.1e} of a tensor's largest value): this run reproduced them on "
                       "a CPU that rounds differently, so the fingerprint differs")
        else:
            verdict = (f"not the shipped weights ({shipped.name}); another recipe, seed or corpus gives "
                       "other weights (docs/model-card.md, Reproduce)")
    return f"encoder fingerprint {fingerprint}; {verdict}"
