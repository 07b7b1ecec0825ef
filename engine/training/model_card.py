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
    if "model_without_sound_prototypes" in v:  # runs before 2026-12-04 had none
        cols.append(("without sound prototypes", v["model_without_sound_prototypes"]))
    cols += [other, ("baseline: untrained projection", v["baseline_untrained_projection"]), ("chance", v["chance"])]
    lines = ["| metric | " + " | ".join(c for c, _ in cols) + " |", "| --- |" + " --- |" * len(cols)]
    for name, key in ROWS:
        lines.append(f"| {name} | " + " | ".join(f"{d[key]:.3f}" for _, d in cols) + " |")
    model = v["model"]
    lines.append("")
    lines.append(
        f"Validation: {model['n_sounds']} sounds in {model['n_categories']} categories from the held-out "
        f"packages {', '.join(v['val_packages'])}; prompt ensembling at query time: "
        f"{'on' if m['prompt_ensemble'] else 'off'} (chosen on this split)."
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


def against_shipped(weights_path: str | Path, shipped_path: str | Path | None = None) -> str:
    """One line for the end of a training run: the new weights' encoder fingerprint (what a
    library built on them records) and whether they are byte for byte the shipped weights, i.e.
    whether the run reproduced them."""
    import hashlib

    from ..encoders.embedded import EmbeddedEncoder, shipped_weights_path

    shipped = Path(shipped_path) if shipped_path is not None else shipped_weights_path()
    digest = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    fingerprint = EmbeddedEncoder.load(path=str(weights_path), device="cpu").fingerprint
    if shipped.is_file() and digest(weights_path) == digest(shipped):
        verdict = "byte for byte the shipped weights: this run reproduced them"
    else:
        verdict = (f"not the shipped weights ({shipped.name}); another recipe, seed, corpus or machine "
                   "gives other weights (docs/model-card.md, Reproduce)")
    return f"encoder fingerprint {fingerprint}; {verdict}"
