"""Faithfulness metrics against values computed by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from earmark.engine.evidence import metrics as M
from earmark.engine.evidence.evaluate import evaluate_faithfulness
from evidence_toy_encoder import ToyBandEncoder, tone_in_noise

torch.set_num_threads(1)

# Three examples, three classes. c = argmax Y = [0, 1, 0].
Y = np.array([[0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
O = np.array([[0.6, 0.2, 0.2], [0.4, 0.35, 0.25], [0.3, 0.6, 0.1]])  # O_c = .6, .35, .3
Q = np.array([[0.1, 0.45, 0.45], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])  # Q_c = .1, .3, .5


def test_probability_metrics_by_hand() -> None:
    np.testing.assert_allclose(M.average_increase(Y, O), [100, 0, 0])
    np.testing.assert_allclose(M.average_drop(Y, O), [0, 50, 50], rtol=1e-8)  # .35/.7, .3/.6
    np.testing.assert_allclose(M.average_gain(Y, O), [20, 0, 0], rtol=1e-8)  # .1 / (1 - .5)
    np.testing.assert_allclose(M.faithfulness(Y, Q), [0.4, 0.4, 0.1], atol=1e-12)
    np.testing.assert_allclose(M.input_fidelity(Y, O), [1, 0, 0])


def test_mask_metrics_by_hand() -> None:
    masks = np.array([[0, 0, 0, 1.0], [0.5, 0.5, 0.5, 0.5], [0, 0.5, 0.5, 1.0]]).reshape(3, 2, 2)
    # Gini of sorted a: (−3a1 − a2 + a3 + 3a4) / (4 Σa)
    np.testing.assert_allclose(M.sparseness(masks), [0.75, 0.0, 3 / 8], atol=1e-6)
    comp = M.complexity(np.array([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 1.0]]))
    np.testing.assert_allclose(comp, [math.log(2), math.log(4), 0.0], atol=1e-12)
    assert np.isnan(M.complexity(np.zeros((1, 4))))[0]


def test_toy_linear_classifier_by_hand() -> None:
    """p = softmax(x) of a 2-bin input; masks [1, 0] and [0, 1]."""
    x = np.log(np.array([[3.0, 2.0], [1.0, 4.0]]))
    m = np.array([[1.0, 0.0], [1.0, 0.0]])

    def softmax(z: np.ndarray) -> np.ndarray:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    y, o, q = softmax(x), softmax(m * x), softmax((1 - m) * x)
    # ex. 1: Y = [3/5, 2/5], c = 0; in: [ln3, 0] → [3/4, 1/4]; out: [0, ln2] → [1/3, 2/3]
    # ex. 2: Y = [1/5, 4/5], c = 1; in: [0, 0] → [1/2, 1/2]; out: [0, ln4] → [1/5, 4/5]
    s = M.faithfulness_scores(y, o, q, m)
    assert s.AI == pytest.approx((100 + 0) / 2)
    assert s.AD == pytest.approx((0 + 100 * (0.8 - 0.5) / 0.8) / 2)
    assert s.AG == pytest.approx((100 * (0.75 - 0.6) / 0.4 + 0) / 2)
    assert s.FF == pytest.approx(((0.6 - 1 / 3) + (0.8 - 0.8)) / 2)
    assert s.Fid_In == pytest.approx((1 + 0) / 2)  # ex. 2 ties at 1/2: argmax picks class 0
    assert s.COMP == pytest.approx(0.0, abs=1e-12)  # one non-zero bin each


def test_logits_are_refused() -> None:
    """Passing logits (or softmaxing twice upstream and then logits again) is an error, not a number."""
    with pytest.raises(ValueError, match="probabilities"):
        M.average_drop(np.log(Y), O)


def test_evaluation_baselines_on_toy_encoder() -> None:
    enc = ToyBandEncoder()
    x, _ = tone_in_noise(6, seed=5)
    res = evaluate_faithfulness(enc, x, ["tone", "hiss", "rumble"], batch_size=4)
    assert set(res.scores) == {"random", "all-ones", "gradient-saliency"}
    ones = res.scores["all-ones"]
    # all-ones: masked-in is the original → no drop, no increase, decision kept
    assert ones.AI == 0.0 and ones.AD == pytest.approx(0.0, abs=1e-9) and ones.Fid_In == 1.0
    assert ones.SPS == pytest.approx(0.0, abs=1e-6)
    n_bins = 129 * (1 + 8000 // 64)
    assert ones.COMP == pytest.approx(math.log(n_bins), rel=1e-9)
    for s in res.scores.values():
        assert s.n == 6 and 0.0 <= s.Fid_In <= 1.0 and 0 <= s.AI <= 100 and 0 <= s.AD <= 100


def test_lmac_method_needs_a_decoder() -> None:
    from earmark.engine.evidence.errors import EvidenceError

    x, _ = tone_in_noise(2, seed=5)
    with pytest.raises(EvidenceError, match="trained decoder"):
        evaluate_faithfulness(ToyBandEncoder(), x, ["tone", "hiss"], decoder=None, methods=["lmac"])


def test_rounding_is_not_an_increase() -> None:
    y = np.array([[0.6, 0.4]])
    assert M.average_increase(y, y + np.array([[1e-9, -1e-9]]))[0] == 0.0
    assert M.average_increase(y, np.array([[0.61, 0.39]]))[0] == 100.0
