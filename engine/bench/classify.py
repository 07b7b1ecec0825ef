"""Zero-shot classification metrics (pure numpy, no I/O).

Scores are (n clips, K classes) similarities between clip embeddings and the class prompts'
text embeddings. Targets are (n, K) booleans (one True per row for single-label data).

- accuracy: the top-scoring class is a true class (ESC-50, UrbanSound8K: averaged over folds;
  the runner also reports it pooled over all clips).
- mAP: mean over classes of average precision of the clips ranked by that class's score
  (AudioSet style; classes without positives are left out).
- F1 (DCASE style): decisions are each clip's top-1 class; micro F1 pools all decisions,
  macro F1 averages per-class F1 over classes with positives or predictions.
"""
from __future__ import annotations

import numpy as np

__all__ = ["accuracy", "average_precision", "f1_scores", "fold_accuracy", "mean_average_precision",
           "per_class_accuracy", "top1_decisions", "zero_shot_scores"]


def zero_shot_scores(audio: np.ndarray, class_text: np.ndarray) -> np.ndarray:
    """(n, d) clip embeddings · (K, d) class prompt embeddings → (n, K) cosine scores."""
    return np.asarray(audio, np.float64) @ np.asarray(class_text, np.float64).T


def accuracy(scores: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose top-scoring class is one of their true classes."""
    top = np.argmax(scores, axis=1)
    return float(np.mean(targets[np.arange(len(top)), top])) if len(top) else 0.0


def fold_accuracy(scores: np.ndarray, targets: np.ndarray, folds: list[str | None]) -> tuple[float, dict[str, float]]:
    """(mean of per-fold accuracies, {fold: accuracy}); one pool when no fold is given."""
    f = np.array(["" if x is None else str(x) for x in folds])
    names = sorted(set(f), key=lambda x: (0, int(x), "") if x.isdigit() else (1, 0, x))  # "2" before "10"
    per = {str(name): accuracy(scores[f == name], targets[f == name]) for name in names}
    return float(np.mean(list(per.values()))) if per else 0.0, per


def per_class_accuracy(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K,) accuracy of the clips of each class (NaN for a class with no clips)."""
    top = np.argmax(scores, axis=1)
    hit = targets[np.arange(len(top)), top]
    out = np.full(targets.shape[1], np.nan)
    for k in range(targets.shape[1]):
        rows = targets[:, k]
        if rows.any():
            out[k] = float(np.mean(hit[rows]))
    return out


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one ranking: mean of precision@rank over the relevant items (ties: stable order)."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    rel = np.asarray(relevant, bool)[order]
    if not rel.any():
        return float("nan")
    precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float(precision[rel].mean())


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (columns) with at least one positive of the AP of ranking clips by score."""
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(targets.shape[1]) if targets[:, k].any()]
    return float(np.mean(aps)) if aps else 0.0


def top1_decisions(scores: np.ndarray) -> np.ndarray:
    """(n, K) bool with one True per row at the top-scoring class."""
    dec = np.zeros(scores.shape, bool)
    if len(scores):
        dec[np.arange(len(scores)), np.argmax(scores, axis=1)] = True
    return dec


def f1_scores(decisions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 of boolean decisions against boolean targets, both (n, K)."""
    d, t = np.asarray(decisions, bool), np.asarray(targets, bool)
    tp = (d & t).sum(axis=0).astype(np.float64)
    fp = (d & ~t).sum(axis=0).astype(np.float64)
    fn = (~d & t).sum(axis=0).astype(np.float64)
    denom = 2 * tp.sum() + fp.sum() + fn.sum()
    micro = float(2 * tp.sum() / denom) if denom else 0.0
    seen = (tp + fp + fn) > 0
    per = np.where(seen, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    macro = float(per[seen].mean()) if seen.any() else 0.0
    return {"f1_micro": micro, "f1_macro": macro}
