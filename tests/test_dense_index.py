"""DenseIndex against exact brute force, for every supported index type."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from earmark.index.dense import (
    DenseIndex,
    IndexNotTrained,
    ReadOnlyIndex,
    UnsupportedFactory,
)

DIM = 24
N = 1200


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    centres = unit(rng.standard_normal((12, DIM)))
    x = unit(centres[rng.integers(0, 12, N)] + 0.35 * rng.standard_normal((N, DIM)))
    ids = rng.choice(10**9, N, replace=False).astype(np.int64)  # sparse, unordered ids
    q = unit(centres[rng.integers(0, 12, 20)] + 0.35 * rng.standard_normal((20, DIM)))
    return ids, x, q


def brute(ids, x, q, k, allowed=None):
    """Reference: exact inner-product top-k by numpy."""
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, x = ids[keep], x[keep]
    sims = q @ x.T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), ids[order]


# Types searched exhaustively on this small data (nprobe = nlist, wide HNSW beam), so they must
# agree with brute force exactly; compressed types are checked for recall.
EXACT_TYPES = ["Flat", "HNSW16", "IVF8,Flat"]


def make(factory, ids, x):
    idx = DenseIndex.rebuild(ids, x, factory, train_size=len(x))
    if idx.nprobe is not None:
        idx.nprobe = 10**6  # clamped to nlist: exhaustive
    if idx.ef_search is not None:
        idx.ef_search = 1024
    return idx


def assert_same(got, ref_scores, ref_ids):
    np.testing.assert_allclose(got.scores, ref_scores, atol=1e-5)
    np.testing.assert_array_equal(got.ids, ref_ids)


@pytest.mark.parametrize("factory", EXACT_TYPES)
def test_add_remove_update_search_match_brute_force(factory, data):
    ids, x, q = data
    idx = make(factory, ids, x)
    assert idx.ntotal == N
    assert_same(idx.search(q, 10), *brute(ids, x, q, 10))

    # remove a third, including a query's own nearest neighbours
    gone = ids[::3]
    assert idx.remove(gone) == len(gone)
    assert idx.remove(gone) == 0  # idempotent
    keep = ~np.isin(ids, gone)
    ids2, x2 = ids[keep], x[keep].copy()
    assert idx.ntotal == len(ids2)
    res = idx.search(q, 10)
    assert not np.isin(res.ids, gone).any()
    assert_same(res, *brute(ids2, x2, q, 10))

    # update: re-adding an existing id replaces its vector (no duplicate)
    x2[:50] = unit(x2[:50] + q[0])
    idx.add(ids2[:50], x2[:50])
    assert idx.ntotal == len(ids2)
    # re-add removed ids
    idx.add(gone[:40], x[::3][:40])
    ids3 = np.concatenate([ids2, gone[:40]])
    x3 = np.concatenate([x2, x[::3][:40]])
    assert idx.ntotal == len(ids3)
    assert_same(idx.search(q, 10), *brute(ids3, x3, q, 10))
    assert sorted(idx.ids().tolist()) == sorted(ids3.tolist())


@pytest.mark.parametrize("factory", EXACT_TYPES + ["PQ4x4"])
@pytest.mark.parametrize("n_allowed", [7, 600])
def test_allowed_ids_restrict_results(factory, n_allowed, data, monkeypatch):
    ids, x, q = data
    idx = make(factory, ids, x)
    rng = np.random.default_rng(n_allowed)
    allowed = rng.choice(ids, n_allowed, replace=False)
    allowed = np.concatenate([allowed, [123]])  # an unknown id is harmless
    res = idx.search(q, 10, allowed_ids=allowed)
    assert np.isin(res.ids[res.ids >= 0], allowed).all()
    if factory == "PQ4x4":
        # compressed: scores come from decoded vectors, so check only membership and count
        assert (res.ids >= 0).sum(axis=1).min() == min(10, n_allowed)
        return
    assert_same(res, *_padded(*brute(ids, x, q, 10, allowed), 10))
    # the selector path (not the exact-subset path) must agree too
    monkeypatch.setattr(DenseIndex, "EXACT_FILTER_LIMIT", 0)
    assert_same(idx.search(q, 10, allowed_ids=allowed), *_padded(*brute(ids, x, q, 10, allowed), 10))


@pytest.mark.parametrize("factory", EXACT_TYPES + ["PQ4x4"])
def test_excluded_ids_are_never_returned(factory, data):
    """-concept queries: a "not these ids" selector, alone, with an allow-list, and after removals."""
    ids, x, q = data
    idx = make(factory, ids, x)
    nearest = brute(ids, x, q, 10)[1]
    banned = np.concatenate([nearest[:, :3].ravel(), ids[::5]])  # the queries' own best hits among them
    keep = ~np.isin(ids, banned)
    res = idx.search(q, 10, excluded_ids=banned)
    assert not np.isin(res.ids, banned).any()
    if factory != "PQ4x4":
        assert_same(res, *brute(ids[keep], x[keep], q, 10))
    allowed = ids[:300]
    res = idx.search(q, 10, allowed_ids=allowed, excluded_ids=banned)
    assert np.isin(res.ids[res.ids >= 0], np.setdiff1d(allowed, banned)).all()
    if factory != "PQ4x4":
        assert_same(res, *_padded(*brute(ids, x, q, 10, np.setdiff1d(allowed, banned)), 10))
        idx.remove(ids[1::7])  # tombstones (HNSW) and the exclusion together
        live = keep & ~np.isin(ids, ids[1::7])
        assert_same(idx.search(q, 10, excluded_ids=banned), *brute(ids[live], x[live], q, 10))


def _padded(scores, labels, k):
    s = np.full((len(scores), k), -np.inf, np.float32)
    i = np.full((len(scores), k), -1, np.int64)
    s[:, : scores.shape[1]] = scores
    i[:, : labels.shape[1]] = labels
    return s, i


@pytest.mark.parametrize("factory", ["IVF8,SQ8", "HNSW8,SQ8", "SQ8"])
def test_compressed_types_have_high_recall_and_remove(factory, data):
    ids, x, q = data
    idx = make(factory, ids, x)
    idx.remove(ids[:100])
    res = idx.search(q, 10)
    _, ref = brute(ids[100:], x[100:], q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(res.ids, ref)])
    assert recall >= 0.7, recall
    assert not np.isin(res.ids, ids[:100]).any()


def test_padding_when_k_exceeds_size(data):
    ids, x, q = data
    idx = DenseIndex.create(DIM, "Flat")
    idx.add(ids[:3], x[:3])
    res = idx.search(q[:2], 5)
    assert (res.ids[:, 3:] == -1).all() and np.isneginf(res.scores[:, 3:]).all()
    assert set(res.ids[0, :3]) == set(ids[:3])
    empty = DenseIndex.create(DIM).search(q[:2], 4)
    assert (empty.ids == -1).all()


@pytest.mark.parametrize("factory", EXACT_TYPES)
@pytest.mark.parametrize("mmap", [False, True])
def test_save_load_roundtrip(factory, mmap, data, tmp_path):
    ids, x, q = data
    idx = make(factory, ids, x)
    idx.remove(ids[:30])
    before = idx.search(q, 10)
    path = idx.save(tmp_path, 3)
    assert path.name == "dense-000003.faiss"
    loaded = DenseIndex.load(path, mmap=mmap)
    assert loaded.ntotal == idx.ntotal
    assert loaded.stats().n_tombstones == idx.stats().n_tombstones
    assert_same(loaded.search(q, 10), before.scores, before.ids)
    if mmap:
        assert loaded.read_only
        with pytest.raises(ReadOnlyIndex):
            loaded.add(ids[:1], x[:1])
    else:
        loaded.add(ids[:30], x[:30])
        assert loaded.ntotal == N


def test_hnsw_tombstones_trigger_rebuild(data):
    ids, x, q = data
    idx = make("HNSW16", ids, x)
    idx.remove(ids[: N // 20])
    assert not idx.needs_rebuild
    idx.remove(ids[: N // 5])
    st = idx.stats()
    assert st.needs_rebuild and st.n_tombstones == N // 5
    live = ~np.isin(ids, ids[: N // 5])
    fresh = DenseIndex.rebuild(ids[live], x[live], "HNSW16")
    assert fresh.stats().n_tombstones == 0 and fresh.ntotal == live.sum()


def test_ivf_requires_training(data):
    ids, x, _ = data
    idx = DenseIndex.create(DIM, "IVF8,Flat")
    with pytest.raises(IndexNotTrained):
        idx.add(ids[:5], x[:5])
    idx.train(x)
    idx.add(ids[:5], x[:5])
    assert idx.ntotal == 5


def test_auto_factory_by_size():
    assert DenseIndex.auto_factory(None) == "Flat"
    assert DenseIndex.auto_factory(DenseIndex.FLAT_LIMIT) == "Flat"
    assert DenseIndex.auto_factory(1_000_000) == "IVF2048,Flat"
    assert DenseIndex.auto_factory(100_000) == "IVF512,Flat"


def test_bad_input_is_rejected(data):
    ids, x, _ = data
    idx = DenseIndex.create(DIM)
    with pytest.raises(ValueError, match="expected float32"):
        idx.add(ids[:2], x[:2, :5])
    with pytest.raises(ValueError, match=">= 0"):
        idx.add(np.array([-1, 2]), x[:2])
    with pytest.raises(ValueError, match="unique"):
        idx.add(np.array([4, 4]), x[:2])
    with pytest.raises(UnsupportedFactory):
        DenseIndex.create(DIM, "NotAnIndex")
    with pytest.raises(UnsupportedFactory, match="IDMap"):
        DenseIndex.create(DIM, "IDMap2,IVF8,Flat")


def _clustered(rng, n: int, d: int, clusters: int, noise: float) -> np.ndarray:
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_rebuild_calibrates_nprobe_to_the_recall_target():
    """IVF's nprobe is measured per library: few lists on well-clustered data, many on flat data,
    and held-out queries (perturbed stored vectors) reach the target recall either way."""
    rng = np.random.default_rng(3)
    d = 64
    chosen = {}
    for name, x in (("clustered", _clustered(rng, 30_000, d, 300, 0.3)),
                    ("harder", _clustered(rng, 30_000, d, 2000, 0.9))):
        ids = np.arange(30_000, dtype=np.int64) * 3
        idx = DenseIndex.rebuild(ids, x)
        assert idx.stats().kind == "IndexIVFFlat"
        chosen[name] = idx.nprobe
        q = x[rng.choice(len(x), 200, replace=False)] + 0.05 * rng.standard_normal((200, d)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        truth = ids[np.argsort(-(q @ x.T), axis=1)[:, :10]]
        got = idx.search(q, 10).ids
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(truth, got)])
        assert recall >= 0.95, (name, idx.nprobe, recall)
    assert chosen["clustered"] < chosen["harder"] <= 2 ** round(np.log2(2 * np.sqrt(30_000)))
    fixed = DenseIndex.rebuild(np.arange(30_000), _clustered(rng, 30_000, d, 300, 0.3), recall_target=None)
    assert fixed.nprobe == max(16, faiss.extract_index_ivf(fixed.faiss_index).nlist // 16)  # the fixed default
