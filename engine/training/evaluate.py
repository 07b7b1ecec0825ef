"""Retrieval metrics for the held-out split (pure numpy, no I/O).

Queries are the distinct labels of the validation sounds; a sound is relevant to a query when
it carries that label. Chance levels are computed for the same sizes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from math import comb

import numpy as np


@dataclass(frozen=True)
class RetrievalMetrics:
    """Validation figures (fractions in [0, 1])."""

    t2a_r1: float  # text→audio recall@1: share of label queries with a relevant sound at rank 1
    t2a_r5: float
    t2a_r10: float
    t2a_map10: float  # mean average precision over the top 10
    a2t_r1: float  # audio→text: the sound's own caption ranks first among all validation captions
    zero_shot_top1: float  # sound classified into the right validation category (ensembled prompts)
    n_sounds: int
    n_categories: int

    def to_dict(self) -> dict:
        return asdict(self)


def _ap_at_k(relevant_sorted: np.ndarray, n_relevant: int, k: int) -> float:
    rel = relevant_sorted[:k].astype(np.float64)
    if n_relevant == 0:
        return 0.0
    precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float((precision * rel).sum() / min(k, n_relevant))


def text_to_audio(sim: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """sim (Q, N) query×sound similarities, relevant (Q, N) bool → R@1/5/10, mAP@10."""
    order = np.argsort(-sim, axis=1, kind="stable")
    rel_sorted = np.take_along_axis(relevant, order, axis=1)
    out = {f"r{k}": float(np.mean(rel_sorted[:, :k].any(axis=1))) for k in (1, 5, 10)}
    out["map10"] = float(np.mean([_ap_at_k(r, int(n), 10) for r, n in zip(rel_sorted, relevant.sum(1))]))
    return out


def chance_text_to_audio(relevant: np.ndarray, seed: int = 0, draws: int = 200) -> dict[str, float]:
    """Expected R@k (exact) and mAP@10 (Monte Carlo over random rankings) of a random ranker."""
    n = relevant.shape[1]
    n_rel = relevant.sum(axis=1)
    out = {}
    for k in (1, 5, 10):
        kk = min(k, n)  # fewer candidates than k: the top k holds them all
        out[f"r{k}"] = float(np.mean([1.0 - comb(n - r, kk) / comb(n, kk) for r in n_rel]))
    rng = np.random.default_rng(seed)
    aps = []
    for _ in range(draws):
        sim = rng.random(relevant.shape)
        aps.append(text_to_audio(sim, relevant)["map10"])
    out["map10"] = float(np.mean(aps))
    return out


def evaluate(
    audio: np.ndarray,
    sound_labels: list[str],
    category_emb: np.ndarray,
    categories: list[str],
    caption_emb: np.ndarray,
    caption_labels: list[str],
    support: np.ndarray | None = None,
) -> RetrievalMetrics:
    """All figures from unit-norm embeddings.

    Args:
        audio: (N, d) one embedding per validation sound.
        sound_labels: (N,) label per sound.
        category_emb: (K, d) prompt-ensembled embedding per category (label), in ``categories`` order.
        caption_emb: (M, d) embeddings of the raw captions of the validation sounds.
        caption_labels: (M,) the label each caption describes.
        support: (N, K) exemplar support terms added to the category scores (text→audio and
            zero-shot), as search and `bench classify` add them; None: cosines alone.
    """
    labels = np.asarray(sound_labels)
    cats = np.asarray(categories)
    relevant = cats[:, None] == labels[None, :]
    scores = audio @ category_emb.T
    if support is not None:
        scores = scores + support
    t2a = text_to_audio(scores.T, relevant)
    zs = float(np.mean(cats[np.argmax(scores, axis=1)] == labels))
    cap_labels = np.asarray(caption_labels)
    a2t = float(np.mean(cap_labels[np.argmax(audio @ caption_emb.T, axis=1)] == labels))
    return RetrievalMetrics(t2a["r1"], t2a["r5"], t2a["r10"], t2a["map10"], a2t, zs, len(labels), len(cats))


def chance(sound_labels: list[str], categories: list[str], caption_labels: list[str]) -> RetrievalMetrics:
    """The same figures for a random ranker."""
    labels = np.asarray(sound_labels)
    cats = np.asarray(categories)
    relevant = cats[:, None] == labels[None, :]
    t2a = chance_text_to_audio(relevant)
    cap_labels = np.asarray(caption_labels)
    a2t = float(np.mean([np.mean(cap_labels == lab) for lab in labels]))
    return RetrievalMetrics(t2a["r1"], t2a["r5"], t2a["r10"], t2a["map10"], a2t, 1.0 / len(cats), len(labels), len(cats))
