"""Benchmark results: typed rows, a Table-I style table, JSON, and PNG plots (matplotlib, Agg).

A row is one way of embedding the audio: ``dense`` (the encoder's embeddings), ``concept``
(recomposed from sparse codes of one vocabulary at one λ or target L0), and with ``+adapter``
the same through the paper's d×d adapter trained on the other folds.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["BenchResult", "BenchRow", "format_table", "plot_metric_vs_l0", "plot_per_class", "write_outputs"]

# metric key → column heading, in table order
# (single-label top-1 decisions make micro F1 equal pooled accuracy, so the table shows macro F1;
# micro F1, the DCASE 2017 task 4 figure for multi-label data, is in the JSON)
CLASSIFY_COLUMNS = {"accuracy": "acc", "accuracy_pooled": "acc (pooled)", "map": "mAP", "f1_macro": "F1 (macro)"}
RETRIEVE_COLUMNS = {"t2a_r1": "T→A R@1", "t2a_r5": "T→A R@5", "t2a_r10": "T→A R@10", "t2a_map10": "T→A mAP@10",
                    "a2t_r1": "A→T R@1", "a2t_r5": "A→T R@5", "a2t_r10": "A→T R@10", "a2t_map10": "A→T mAP@10"}


@dataclass
class BenchRow:
    """One table row: how the audio was embedded, its sparsity and its metrics (fractions in [0, 1])."""

    kind: str  # "dense", "concept", "dense+adapter", "concept+adapter"
    metrics: dict[str, float]
    vocabulary: str | None = None
    vocabulary_hash: str | None = None
    lam: float | None = None
    target_l0: int | None = None
    mean_l0: float | None = None  # mean number of active concepts per clip
    fidelity: float | None = None  # mean cosine between a clip embedding and its recomposition
    per_class: dict[str, float] | None = None  # label → accuracy
    per_fold: dict[str, float] | None = None  # fold → accuracy

    @property
    def label(self) -> str:
        if self.vocabulary is None:
            return self.kind
        sparsity = f"L0→{self.target_l0}" if self.target_l0 is not None else f"λ={self.lam:g}"
        return f"{self.kind} {self.vocabulary} {sparsity}"


@dataclass
class BenchResult:
    """Everything one `earmark bench classify|retrieve` run measured, with what reproduces it."""

    task: str  # "classify" or "retrieve"
    dataset: dict  # name, format, source, clips, classes or captions, folds, fingerprint, ...
    rows: list[BenchRow]
    chance: dict[str, float]
    provenance: dict  # command, encoder, encoder_fingerprint, vocabularies (name → hash), seed, ...
    notes: list[str] = field(default_factory=list)

    @property
    def columns(self) -> dict[str, str]:
        return CLASSIFY_COLUMNS if self.task == "classify" else RETRIEVE_COLUMNS

    def to_dict(self) -> dict:
        d = asdict(self)
        for row, obj in zip(d["rows"], self.rows):
            row["label"] = obj.label
        return d


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def format_table(results: list[BenchResult]) -> str:
    """A Markdown table like the paper's Table I.

    Rows: chance, dense, concept per vocabulary and sparsity (and adapter rows); columns: for
    each result (dataset × task) its metrics, after the rows' mean L0 and fidelity (taken from the
    first result that has the row).
    """
    labels: list[str] = ["chance"]
    for res in results:
        for row in res.rows:
            if row.label not in labels:
                labels.append(row.label)
    heads = ["", "L0", "fidelity"]
    for res in results:
        heads += [f"{res.dataset['name']} {h}" if len(results) > 1 else h for h in res.columns.values()]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for lab in labels:
        found = [next((r for r in res.rows if r.label == lab), None) for res in results]
        first = next((r for r in found if r is not None), None)
        cells = [lab, _fmt(first.mean_l0, 1) if first else "–", _fmt(first.fidelity) if first else "–"]
        for res, row in zip(results, found):
            source = res.chance if lab == "chance" else (row.metrics if row else {})
            cells += [_fmt(source.get(k)) for k in res.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        from .errors import BenchError

        raise BenchError("PNG plots need matplotlib: pip install 'earmark[bench]' (or leave out --out)") from exc

    matplotlib.use("Agg")  # files only, never a display
    import matplotlib.pyplot as plt

    return plt


def plot_metric_vs_l0(result: BenchResult, path: str | Path, metric: str | None = None) -> Path:
    """PNG: ``metric`` (default: accuracy or T→A R@10) against mean active concepts, one line per
    vocabulary (and adapter), dense rows as horizontal lines."""
    plt = _pyplot()
    metric = metric or ("accuracy" if result.task == "classify" else "t2a_r10")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    groups: dict[str, list[BenchRow]] = {}
    for row in result.rows:
        if row.vocabulary is None:
            ax.axhline(row.metrics.get(metric, float("nan")), linestyle="--", linewidth=1,
                       color="black" if row.kind == "dense" else "grey", label=row.kind)
        else:
            groups.setdefault(f"{row.kind} {row.vocabulary}", []).append(row)
    for name, rows in groups.items():
        rows = sorted(rows, key=lambda r: r.mean_l0 or 0.0)
        ax.plot([r.mean_l0 for r in rows], [r.metrics.get(metric, float("nan")) for r in rows], marker="o", label=name)
    if metric in result.chance:
        ax.axhline(result.chance[metric], linestyle=":", linewidth=1, color="red", label="chance")
    ax.set_xlabel("active concepts per clip (mean L0)")
    ax.set_ylabel(result.columns.get(metric, metric))
    ax.set_title(f"{result.dataset['name']}: {result.task}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_per_class(result: BenchResult, path: str | Path, max_classes: int = 60) -> Path | None:
    """PNG: per-class accuracy of the dense row, the best concept row and the best adapter row."""
    rows = [r for r in result.rows if r.per_class]
    if not rows:
        return None
    plt = _pyplot()
    chosen = [r for r in rows if r.kind == "dense"]
    for kind in ("concept", "dense+adapter", "concept+adapter"):
        cands = [r for r in rows if r.kind == kind]
        if cands:
            chosen.append(max(cands, key=lambda r: r.metrics.get("accuracy", 0.0)))
    classes = sorted(chosen[0].per_class)[:max_classes]
    height = max(3.0, 0.18 * len(classes) * max(1, len(chosen)) / 2 + 1.2)
    fig, ax = plt.subplots(figsize=(7.0, height), dpi=100)
    bar = 0.8 / len(chosen)
    for j, row in enumerate(chosen):
        ys = [i + j * bar for i in range(len(classes))]
        ax.barh(ys, [row.per_class.get(c, float("nan")) for c in classes], height=bar, label=row.label)
    ax.set_yticks([i + 0.4 - bar / 2 for i in range(len(classes))])
    ax.set_yticklabels(classes, fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    ax.set_title(f"{result.dataset['name']}: per-class accuracy")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_outputs(result: BenchResult, out_dir: str | Path) -> dict[str, str]:
    """Write ``<task>-<dataset>.json``, ``.md`` (the table) and the PNG plots into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{result.task}-{result.dataset['name']}"
    files = {"json": out / f"{stem}.json", "table": out / f"{stem}.md"}
    files["json"].write_text(json.dumps(result.to_dict(), indent=2, default=str, ensure_ascii=False) + "\n")
    files["table"].write_text(format_table([result]) + "\n")
    files["l0_plot"] = plot_metric_vs_l0(result, out / f"{stem}-l0.png")
    if result.task == "retrieve":
        files["l0_plot_map"] = plot_metric_vs_l0(result, out / f"{stem}-l0-map10.png", metric="t2a_map10")
    per_class = plot_per_class(result, out / f"{stem}-per-class.png")
    if per_class is not None:
        files["per_class_plot"] = per_class
    return {k: str(v) for k, v in files.items()}
