"""ConceptPostings against a dense numpy reference."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from earmark.index.files import IndexFileError
from earmark.index.sparse import ConceptPostings, UnknownSegment, recompose

C = 60  # concepts
N = 500  # segments


@pytest.fixture
def codes():
    rng = np.random.default_rng(3)
    w = sp.random(N, C, density=0.08, random_state=4, format="csr", dtype=np.float32)
    w.data = rng.uniform(0.05, 1.0, w.nnz).astype(np.float32)
    ids = rng.choice(10**7, N, replace=False).astype(np.int64)
    return ids, w


def reference(ids, dense, q, k, allowed_ids=None, exclude=()):
    """Score every segment densely, then apply the candidate rules."""
    scores = dense @ q
    cand = (dense[:, q > 0] > 0).any(axis=1)
    if len(exclude):
        cand &= ~(dense[:, list(exclude)] > 0).any(axis=1)
    if allowed_ids is not None:
        cand &= np.isin(ids, allowed_ids)
    rows = np.flatnonzero(cand)
    order = np.lexsort((ids[rows], -scores[rows]))[:k]
    out_s = np.full(k, -np.inf, np.float32)
    out_i = np.full(k, -1, np.int64)
    out_s[: len(order)] = scores[rows][order]
    out_i[: len(order)] = ids[rows][order]
    return out_s, out_i


def check(post, ids, dense, q, k, **kw):
    got = post.concept_search(q, k, **kw)
    s, i = reference(ids, dense, q, k, **kw)
    np.testing.assert_allclose(got.scores[0], s, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got.ids[0], i)


def queries():
    rng = np.random.default_rng(11)
    for _ in range(8):
        q = np.zeros(C, np.float32)
        q[rng.choice(C, 3, replace=False)] = rng.uniform(0.2, 1.0, 3)
        yield q
    q = np.zeros(C, np.float32)
    q[[1, 2]] = [1.0, 0.5]
    q[3] = -0.8  # "-concept": lowers scores
    yield q


def test_search_matches_dense_reference(codes):
    ids, w = codes
    post = ConceptPostings.from_codes(ids, w)
    dense = w.toarray()
    for q in queries():
        check(post, ids, dense, q, 10)
        check(post, ids, dense, q, 10, exclude=[5, 7])
        check(post, ids, dense, q, 10, allowed_ids=ids[::4])


def test_incremental_add_remove_update_compaction(codes):
    ids, w = codes
    post = ConceptPostings(C)
    for lo in range(0, N, 50):  # ten blocks: crosses MAX_BLOCKS, so compaction runs
        post.add(ids[lo : lo + 50], w[lo : lo + 50])
    assert post.stats().n_blocks <= ConceptPostings.MAX_BLOCKS
    dense = w.toarray()
    gone = ids[::5]
    assert post.remove(gone) == len(gone)
    assert post.remove(gone) == 0
    keep = ~np.isin(ids, gone)
    new = sp.random(30, C, density=0.2, random_state=9, format="csr", dtype=np.float32)
    post.add(ids[keep][:30], new)  # update existing ids
    dense2 = dense[keep].copy()
    dense2[:30] = new.toarray()
    assert len(post) == keep.sum()
    for q in queries():
        check(post, ids[keep], dense2, q, 15)
    np.testing.assert_array_equal(post.codes_of(int(ids[keep][0])).concept_ids, new[0].indices)
    with pytest.raises(UnknownSegment):
        post.codes_of(int(gone[0]))
    # segments_with (the -concept exclusion list) over blocks, removals and updates
    for cols in ([5], [5, 7, 59], []):
        want = np.sort(ids[keep][(dense2[:, cols] > 0).any(axis=1)]) if cols else np.empty(0, np.int64)
        np.testing.assert_array_equal(post.segments_with(cols), want)
        assert all((int(i) in post) for i in want[:5])
    with pytest.raises(ValueError, match="concept ids"):
        post.segments_with([C])


def test_codes_of_and_roundtrip(codes, tmp_path):
    ids, w = codes
    post = ConceptPostings.from_codes(ids, w)
    post.remove(ids[:10])
    code = post.codes_of(int(ids[20]))
    np.testing.assert_array_equal(code.concept_ids, w[20].indices)
    np.testing.assert_allclose(code.weights, w[20].data)
    path = post.save(tmp_path, 5)
    assert path.name == "postings-000005.npz"
    loaded = ConceptPostings.load(path)
    assert len(loaded) == N - 10 and loaded.stats().n_dead == 0
    q = next(queries())
    a, b = post.concept_search(q, 10), loaded.concept_search(q, 10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.scores, b.scores)


def test_bad_files_and_queries(tmp_path):
    post = ConceptPostings(C)
    assert (post.concept_search(np.ones(C, np.float32), 3).ids == -1).all()  # empty
    with pytest.raises(ValueError, match="weights"):
        post.concept_search(np.ones(C + 1), 3)
    with pytest.raises(ValueError, match="exclude"):
        post.concept_search(np.ones(C), 3, exclude=[C])
    bad = tmp_path / "postings-000001.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(IndexFileError, match="rebuild"):
        ConceptPostings.load(bad)
    with pytest.raises(IndexFileError, match="missing"):
        ConceptPostings.load(tmp_path / "postings-000002.npz")


def test_recompose_is_normalised_dictionary_mix():
    rng = np.random.default_rng(0)
    dictionary = rng.standard_normal((C, 16)).astype(np.float32)
    w = sp.csr_matrix(np.array([[0, 0.5, 0, 2.0] + [0] * (C - 4), [0] * C], np.float32))
    out = recompose(w, dictionary)
    ref = 0.5 * dictionary[1] + 2.0 * dictionary[3]
    np.testing.assert_allclose(out[0], ref / np.linalg.norm(ref), rtol=1e-5)
    assert (out[1] == 0).all()
