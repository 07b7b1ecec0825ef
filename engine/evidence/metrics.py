"""Faithfulness metrics of the L-MAC paper (Paissan et al., ICML 2024), as pure numpy functions.

Notation, for example i and its class c_i = argmax_k Y_ik (the model's own prediction on the
full input, as in L-MAC):

- Y_i = class probabilities on the original input X_i                      (N, K)
- O_i = class probabilities on the masked-in input M_i ⊙ X_i                (N, K)
- Q_i = class probabilities on the masked-out input (1 − M_i) ⊙ X_i         (N, K)

Every function takes *probabilities* (rows summing to 1), never logits, and checks it: applying
a softmax twice (a known slip in public AD code) flattens the distribution and hides drops.
For a CLAP-style zero-shot model the class probability is softmax_k(s · cos(f(X), t_k)) over a
set of candidate texts t_k; see :mod:`earmark.engine.evidence.evaluate` for the set earmark uses.

Higher is better for AI, AG, FF, Fid-In and SPS; lower is better for AD and COMP.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_EPS = 1e-10  # guards divisions by Y (AD) and 1 − Y (AG)
_GINI_EPS = 1e-7  # added to every mask value before the Gini index (Quantus' Sparseness)
# An "increase" smaller than this (probability units) is float rounding, not an increase: an
# encoder that normalises level maps a uniformly scaled spectrogram to the same input, and
# without a tolerance the rounding noise would score AI = 50 % by coin flip.
AI_TOLERANCE = 1e-6


def _probs(p: np.ndarray, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"{name} must be (N, K) class probabilities, got shape {p.shape}")
    if np.any(p < -1e-6) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError(f"{name} rows must be probabilities summing to 1 (pass softmax outputs once, not logits)")
    return p


def _selected(y: np.ndarray, o: np.ndarray, name_o: str) -> tuple[np.ndarray, np.ndarray]:
    """Y_ic and O_ic with c = argmax_k Y_ik."""
    y = _probs(y, "original probabilities")
    o = _probs(o, name_o)
    if y.shape != o.shape:
        raise ValueError(f"probability arrays differ in shape: {y.shape} vs {o.shape}")
    c = y.argmax(axis=1)
    rows = np.arange(len(c))
    return y[rows, c], o[rows, c]


def average_increase(y: np.ndarray, o: np.ndarray, tol: float = AI_TOLERANCE) -> np.ndarray:
    """AI_i = 100 · 1[Y_ic + tol < O_ic]: the masked-in input is *more* confident in c (percent)."""
    yc, oc = _selected(y, o, "masked-in probabilities")
    return 100.0 * (yc + tol < oc).astype(np.float64)


def average_drop(y: np.ndarray, o: np.ndarray) -> np.ndarray:
    """AD_i = 100 · max(0, Y_ic − O_ic) / Y_ic: relative confidence lost by masking in (percent)."""
    yc, oc = _selected(y, o, "masked-in probabilities")
    return 100.0 * np.maximum(0.0, yc - oc) / (yc + _EPS)


def average_gain(y: np.ndarray, o: np.ndarray) -> np.ndarray:
    """AG_i = 100 · max(0, O_ic − Y_ic) / (1 − Y_ic): share of the possible gain achieved (percent)."""
    yc, oc = _selected(y, o, "masked-in probabilities")
    return 100.0 * np.maximum(0.0, oc - yc) / (1.0 - yc + _EPS)


def faithfulness(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """FF_i = Y_ic − Q_ic: confidence removed by deleting the masked region (probability units)."""
    yc, qc = _selected(y, q, "masked-out probabilities")
    return yc - qc


def input_fidelity(y: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Fid-In_i = 1[argmax_k O_ik = c_i]: the masked-in input keeps the decision (0 or 1)."""
    y = _probs(y, "original probabilities")
    o = _probs(o, "masked-in probabilities")
    return (o.argmax(axis=1) == y.argmax(axis=1)).astype(np.float64)


def sparseness(masks: np.ndarray) -> np.ndarray:
    """SPS_i = Gini index of |M_i| (Chalasani et al. 2020, Quantus ``Sparseness``), in [0, 1].

    With a = sort(|M_i| + 1e-7) ascending over its n values (flattened):
    SPS = Σ_j (2j − n − 1) a_j / (n Σ_j a_j), j = 1..n. 0 for a constant mask, → 1 for one spike.
    """
    m = np.abs(np.asarray(masks, dtype=np.float64)).reshape(len(masks), -1) + _GINI_EPS
    a = np.sort(m, axis=1)
    n = a.shape[1]
    j = np.arange(1, n + 1)
    return ((2 * j - n - 1) * a).sum(axis=1) / (n * a.sum(axis=1))


def complexity(masks: np.ndarray) -> np.ndarray:
    """COMP_i = entropy (nats) of p = |M_i| / Σ|M_i| (Bhatt et al. 2020, Quantus ``Complexity``).

    Lower is simpler; a constant mask over n bins scores ln n, the maximum. An all-zero mask
    has no distribution and scores NaN.
    """
    m = np.abs(np.asarray(masks, dtype=np.float64)).reshape(len(masks), -1)
    total = m.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = m / total
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    out = terms.sum(axis=1)
    out[total[:, 0] <= 0] = np.nan
    return out


@dataclass(frozen=True)
class FaithfulnessScores:
    """Means over examples. Units: AI, AD, AG in percent; FF and Fid-In in [0, 1]; COMP in nats."""

    n: int
    AI: float
    AD: float
    AG: float
    FF: float
    Fid_In: float
    SPS: float
    COMP: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def faithfulness_scores(y: np.ndarray, o: np.ndarray, q: np.ndarray, masks: np.ndarray) -> FaithfulnessScores:
    """All seven metrics at once from Y (original), O (masked-in), Q (masked-out) and the masks."""
    return FaithfulnessScores(
        n=int(np.asarray(y).shape[0]),
        AI=float(average_increase(y, o).mean()),
        AD=float(average_drop(y, o).mean()),
        AG=float(average_gain(y, o).mean()),
        FF=float(faithfulness(y, q).mean()),
        Fid_In=float(input_fidelity(y, o).mean()),
        SPS=float(np.nanmean(sparseness(masks))),
        COMP=float(np.nanmean(complexity(masks))) if np.any(np.abs(masks) > 0) else float("nan"),
    )
