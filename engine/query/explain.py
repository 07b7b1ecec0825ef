"""Explanations: which concepts made a hit match, in numbers that add up.

Concept score of segment s for query concept vector q: S = Σ_c q_c · w_{s,c}. Each shared concept
contributes q_c · w_{s,c}; the contributions sum to S exactly (up to float rounding).

Dense score ⟨z_q, z_s⟩ is explained through the hit's code w: with u = Cᵀw (atoms are the centred
concept embeddings), v = u/‖u‖ + μ (μ the audio mean) and ẑ = v/‖v‖ the recomposed embedding,

    ⟨z_q, ẑ⟩ = Σ_c w_c ⟨z_q, C_c⟩ / (‖u‖‖v‖) + ⟨z_q, μ⟩/‖v‖

so concept c contributes w_c⟨z_q, C_c⟩/(‖u‖‖v‖) (its "query weight" is ⟨z_q, C_c⟩, the query's
alignment with the concept). ``share`` = Σ_c contributions / ⟨z_q, z_s⟩ is the part of the dense
score the concepts account for; the rest is the shared mean and what the code does not capture.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class ConceptContribution:
    concept: str
    query_weight: float
    hit_weight: float
    contribution: float


@dataclass
class ConceptExplanation:
    score: float
    contributions: list[ConceptContribution] = field(default_factory=list)


@dataclass
class DenseExplanation:
    dense_score: float
    recomposed_score: float  # ⟨z_q, ẑ⟩
    mean_term: float  # ⟨z_q, μ⟩/‖v‖
    share: float | None  # Σ contributions / dense score (None when the dense score is ~0)
    contributions: list[ConceptContribution] = field(default_factory=list)


def explain_concepts(query: np.ndarray, concept_ids: np.ndarray, weights: np.ndarray,
                     concepts: Sequence[str]) -> ConceptExplanation:
    """Contributions q_c·w_c of the concepts the query and the hit share, largest |c| first."""
    q = np.asarray(query, np.float64)
    ids = np.asarray(concept_ids, np.int64)
    w = np.asarray(weights, np.float64)
    parts = [(int(c), float(q[c]), float(wc), float(q[c] * wc)) for c, wc in zip(ids, w) if q[c] != 0]
    parts.sort(key=lambda p: (-abs(p[3]), p[0]))
    score = float(sum(p[3] for p in parts))
    return ConceptExplanation(score, [ConceptContribution(concepts[c], qc, wc, x) for c, qc, wc, x in parts])


def explain_dense(z_q: np.ndarray, dense_score: float, concept_ids: np.ndarray, weights: np.ndarray,
                  dictionary, concepts: Sequence[str], top: int = 10) -> DenseExplanation:
    """The concept account of a dense match (see the module docstring)."""
    ids = np.asarray(concept_ids, np.int64)
    w = np.asarray(weights, np.float64)
    mu = np.asarray(dictionary.audio_mean, np.float64)
    zq = np.asarray(z_q, np.float64)
    if ids.size == 0:
        v = mu
        nv = float(np.linalg.norm(v)) or 1.0
        mean_term = float(zq @ mu) / nv
        return DenseExplanation(float(dense_score), mean_term, mean_term, None, [])
    atoms = np.asarray(dictionary.atoms[ids], np.float64)  # only the hit's concepts, not all 2,000
    u = w @ atoms
    nu = float(np.linalg.norm(u)) or 1.0
    v = u / nu + mu
    nv = float(np.linalg.norm(v)) or 1.0
    align = atoms @ zq  # ⟨z_q, C_c⟩
    contrib = w * align / (nu * nv)
    mean_term = float(zq @ mu) / nv
    order = np.argsort(-np.abs(contrib), kind="stable")
    parts = [ConceptContribution(concepts[int(ids[i])], float(align[i]), float(w[i]), float(contrib[i])) for i in order[:top]]
    total = float(contrib.sum())
    share = total / float(dense_score) if abs(dense_score) > 1e-9 else None
    return DenseExplanation(float(dense_score), total + mean_term, mean_term, share, parts)
