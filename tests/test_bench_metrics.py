"""Benchmark metrics against values computed by hand (and sklearn where it has the same metric)."""
from __future__ import annotations

import numpy as np
import pytest

from earmark.engine.bench import classify as C
from earmark.engine.bench.retrieve import caption_relevance, chance_retrieval, retrieval_metrics


def test_accuracy_and_fold_mean():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    targets = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], bool)
    assert C.accuracy(scores, targets) == 0.75
    mean, per = C.fold_accuracy(scores, targets, ["1", "1", "2", "10"])
    assert per == {"1": 0.5, "2": 1.0, "10": 1.0} and list(per) == ["1", "2", "10"]
    assert mean == pytest.approx(2.5 / 3)
    assert C.fold_accuracy(scores, targets, [None] * 4)[0] == 0.75
    np.testing.assert_allclose(C.per_class_accuracy(scores, targets), [2 / 3, 1.0])


def test_average_precision_by_hand():
    # ranking: r, n, r, n, r → precisions at the relevant ranks 1, 2/3, 3/5
    assert C.average_precision(np.array([5, 4, 3, 2, 1.0]), np.array([1, 0, 1, 0, 1], bool)) == pytest.approx(
        (1 + 2 / 3 + 3 / 5) / 3)
    scores = np.array([[0.9, 0.2], [0.8, 0.9], [0.1, 0.3]])
    targets = np.array([[1, 0], [0, 1], [1, 0]], bool)
    # class 0 ranks clips 0,1,2 → relevant at 1 and 3: (1 + 2/3)/2 ; class 1 ranks 1,2,0 → AP 1
    assert C.mean_average_precision(scores, targets) == pytest.approx(((1 + 2 / 3) / 2 + 1) / 2)


def test_map_matches_sklearn():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    scores = rng.random((40, 5))
    targets = rng.random((40, 5)) < 0.3
    ours = C.mean_average_precision(scores, targets)
    ref = np.mean([average_precision_score(targets[:, k], scores[:, k]) for k in range(5)])
    assert ours == pytest.approx(ref)


def test_f1_micro_macro_by_hand():
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]], bool)
    scores = np.array([[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.0, 0.1, 0.9]])
    dec = C.top1_decisions(scores)
    assert dec.tolist() == [[True, False, False], [True, False, False], [False, False, True]]
    f = C.f1_scores(dec, targets)
    # tp = 2 (clip 0 class 0, clip 2 class 2), fp = 1, fn = 2 → micro 4 / (4 + 1 + 2)
    assert f["f1_micro"] == pytest.approx(4 / 7)
    # class 0: tp1 fp1 → 2/3; class 1: fn2 → 0; class 2: tp1 → 1
    assert f["f1_macro"] == pytest.approx((2 / 3 + 0 + 1) / 3)


def test_caption_relevance_shares_identical_captions():
    caps, rel = caption_relevance([("a dog", "a bark"), ("a cat",), ("a dog",)])
    assert caps == ["a dog", "a bark", "a cat"]
    assert rel.tolist() == [[True, False, True], [True, False, False], [False, True, False]]


def test_retrieval_metrics_by_hand():
    audio = np.eye(3)
    # caption 0 → clip 0 (rank 1); caption 1 → clip 1 but clip 2 scores higher (rank 2); caption 2 → clip 2
    cap = np.array([[1, 0, 0], [0, 0.5, 0.8], [0, 0, 1.0]])
    rel = np.eye(3, dtype=bool)
    m = retrieval_metrics(audio, cap, rel)
    assert m["t2a_r1"] == pytest.approx(2 / 3) and m["t2a_r5"] == 1.0
    assert m["t2a_map10"] == pytest.approx((1 + 0.5 + 1) / 3)
    # audio→text: clip 1's own caption (score 0.5) ranks first; clip 2's caption ranks 1st (1.0 vs 0.8)
    assert m["a2t_r1"] == 1.0


def test_chance_retrieval_with_fewer_candidates_than_k():
    rel = np.eye(4, dtype=bool)
    ch = chance_retrieval(rel, seed=0)
    assert ch["t2a_r1"] == pytest.approx(0.25) and ch["t2a_r10"] == 1.0
    assert 0 < ch["t2a_map10"] < 1
