"""The Milvus backend against the FAISS backend on the same small library (Milvus Lite, exact types).

Milvus Lite (PyPI milvus-lite 2.5, the embedded Milvus server) runs in a subprocess per .db
file; one file serves the whole module. Skipped when the `milvus` extra is not installed.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from conftest import TEST_VOCAB, noise, tone, write, write_known_sounds

QUERIES = ["+noise", "a high beep", "+beep -noise", "+beep +hum", "noise path:sub/*", "low hum dur:>2"]
RANKINGS = ["dense", "concept", "fusion"]


def _milvus_or_skip():
    import warnings

    try:
        from earmark.index.milvus import pymilvus

        pymilvus()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # milvus-lite 2.5 imports the deprecated pkg_resources
            import milvus_lite  # noqa: F401
    except Exception as exc:  # MilvusUnavailable, or milvus-lite's own import failing
        pytest.skip(f"Milvus backend not installed (pip install 'earmark[milvus]'): {exc}")


@pytest.fixture(scope="module")
def milvus_db(tmp_path_factory):
    _milvus_or_skip()
    from earmark.index.milvus import close_clients

    yield tmp_path_factory.mktemp("milvus") / "milvus.db"
    close_clients()


@pytest.fixture(scope="module")
def pair(tmp_path_factory, milvus_db):
    """The same known sounds indexed by a FAISS library and a Milvus library."""
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library

    base = tmp_path_factory.mktemp("pair")
    d = write_known_sounds(base / "known")
    faiss_lib = Library.init(base / "faiss", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB))
    faiss_lib.index([d])
    milvus_lib = Library.init(base / "milvus", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB),
                              backend="milvus", milvus_uri=str(milvus_db))
    milvus_lib.index([d])
    return faiss_lib, milvus_lib, d


def _same_contributions(a, b):
    assert [c.concept for c in a] == [c.concept for c in b]
    for x, y in zip(a, b):
        assert math.isclose(x.contribution, y.contribution, rel_tol=1e-5, abs_tol=1e-6)
        assert math.isclose(x.hit_weight, y.hit_weight, rel_tol=1e-6, abs_tol=1e-7)


def assert_same_hits(ra, rb):
    """Ids and order equal; scores and explanations within float tolerance."""
    assert [(h.sound_id, h.path, h.segment_id, h.start, h.end) for h in ra.hits] == \
           [(h.sound_id, h.path, h.segment_id, h.start, h.end) for h in rb.hits]
    for a, b in zip(ra.hits, rb.hits):
        assert math.isclose(a.score, b.score, rel_tol=1e-5, abs_tol=1e-6)
        for fa, fb in ((a.dense_score, b.dense_score), (a.concept_score, b.concept_score),
                       (a.dense_explained, b.dense_explained)):
            assert (fa is None) == (fb is None)
            if fa is not None:
                assert math.isclose(fa, fb, rel_tol=1e-5, abs_tol=1e-6)
        _same_contributions(a.contributions, b.contributions)
        _same_contributions(a.dense_contributions, b.dense_contributions)
        assert [c.concept for c in a.top_concepts] == [c.concept for c in b.top_concepts]
        assert a.duplicates == b.duplicates


@pytest.mark.parametrize("ranking", RANKINGS)
def test_search_equals_the_faiss_backend(pair, ranking):
    faiss_lib, milvus_lib, _ = pair
    assert milvus_lib.backend == "milvus" and faiss_lib.backend == "faiss"
    for q in QUERIES:
        ra, rb = faiss_lib.search(q, ranking=ranking), milvus_lib.search(q, ranking=ranking)
        assert ra.hits, q
        assert_same_hits(ra, rb)
        assert ra.query.concepts == rb.query.concepts


def test_explain_and_similar_equal_the_faiss_backend(pair):
    faiss_lib, milvus_lib, d = pair
    for q in ("+noise", "a high beep"):
        a, b = faiss_lib.explain(q, "hum.flac"), milvus_lib.explain(q, "hum.flac")
        assert (a.segment_id, a.start, a.end) == (b.segment_id, b.start, b.end)
        _same_contributions(a.contributions, b.contributions)
        _same_contributions(a.dense_contributions, b.dense_contributions)
    assert_same_hits(faiss_lib.similar(str(d / "beep.wav")), milvus_lib.similar(str(d / "beep.wav")))


def test_collection_holds_every_segment_with_its_code(pair):
    faiss_lib, milvus_lib, _ = pair
    fi, mi = faiss_lib.indexes(), milvus_lib.indexes()
    assert sorted(fi.dense.ids().tolist()) == mi.dense.ids().tolist()
    for sid in mi.dense.ids().tolist():
        a, b = fi.postings.codes_of(sid), mi.postings.codes_of(sid)
        assert a.concept_ids.tolist() == b.concept_ids.tolist()
        np.testing.assert_array_equal(a.weights, b.weights)  # float32 stored exactly
    assert milvus_lib.check().ok
    info = milvus_lib.backend_info()
    assert info.synced_data_version == info.data_version and info.segments == len(mi.dense.ids())


def test_check_finds_a_stale_collection_and_repair_rebuilds_it(tmp_path, milvus_db):
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library

    d = tmp_path / "few"
    write(d / "beep.wav", tone(2000, 2.0, 16000), 16000)
    write(d / "noise.wav", noise(2.0, 16000, seed=3), 16000)
    lib = Library.init(tmp_path / "lib", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB), backend="milvus",
                       milvus_uri=str(milvus_db))
    lib.index([d])
    store = lib.indexes().store
    store.delete(store.ids()[:1])  # the collection loses a row behind earmark's back
    rep = lib.check()
    assert not rep.ok and any("1 segments missing" in p for p in rep.problems)
    fixed = lib.check(repair=True)
    assert fixed.repaired and lib.check().ok


def _segment_queries(lib, q):
    from earmark.engine.query.parse import parse_query
    from earmark.engine.search import plan_query

    plan = plan_query(lib, parse_query(q, lib.vocabulary()))
    return plan.dense, plan.concept, plan.exclude


@pytest.mark.parametrize("q", ["+noise", "a high beep", "+beep -noise"])
def test_native_rrf_hybrid_search_gives_earmarks_rrf_scores(pair, q):
    """Milvus's hybrid_search + RRFRanker(60) computes earmark's RRF: the same fused scores over
    the same segments. (Tied windows may swap places: Milvus orders ties its own way.)"""
    from earmark.engine.milvus_indexes import MilvusLibraryIndexes

    faiss_lib, milvus_lib, _ = pair
    dq, cq, ex = _segment_queries(faiss_lib, q)
    want = faiss_lib.indexes().search_segments(dq, cq, 80, ranking="fusion", exclude=ex).fused
    native = MilvusLibraryIndexes(milvus_lib)
    native.sync()
    native.fusion = "rrf"
    got = native.search_segments(dq, cq, 80, ranking="fusion", exclude=ex).fused
    assert set(got) == set(want)
    np.testing.assert_allclose(sorted(got.values()), sorted(want.values()), rtol=1e-5)
    native.fusion = "weighted"
    weighted = native.search_segments(dq, cq, 80, ranking="fusion", exclude=ex).fused
    assert set(weighted) == set(want)
    assert list(weighted.values()) == sorted(weighted.values(), reverse=True)


def test_native_rrf_matches_faiss_fusion_without_ties(tmp_path, milvus_db):
    """On a library without identical windows, Milvus's own hybrid search gives FAISS's hits."""
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library

    d = tmp_path / "distinct"
    for i, f in enumerate((300, 700, 1500, 2500, 4000)):
        write(d / f"tone_{f}.wav", tone(f, 1.5 + 0.25 * i, 16000) + noise(1.5 + 0.25 * i, 16000, 0.05, seed=i), 16000)
    write(d / "noise.wav", noise(2.0, 16000, seed=9), 16000)
    a = Library.init(tmp_path / "a", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB))
    b = Library.init(tmp_path / "b", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB), backend="milvus",
                     milvus_uri=str(milvus_db), milvus_fusion="rrf")
    a.index([d])
    b.index([d])
    for q in ("+noise", "a high beep", "low hum", "+beep +hum"):
        assert_same_hits(a.search(q, ranking="fusion"), b.search(q, ranking="fusion"))


def test_removals_and_copy_faiss_milvus_faiss_round_trip(tmp_path, milvus_db):
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library

    d = write_known_sounds(tmp_path / "known")
    lib = Library.init(tmp_path / "lib", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB))
    lib.index([d])
    before = {(q, r): lib.search(q, ranking=r) for q in QUERIES[:3] for r in RANKINGS}

    info = lib.copy_backend("milvus", milvus_uri=str(milvus_db))
    assert info.backend == "milvus" and info.segments == len(lib.indexes().dense.ids())
    assert info.synced_data_version == lib.data_version
    for (q, r), res in before.items():
        assert_same_hits(res, lib.search(q, ranking=r))

    lib.remove(["hum.flac"])  # written to the collection at once
    hum_gone = lib.search("low hum", ranking="dense", k=10)
    assert "hum.flac" not in [h.path for h in hum_gone.hits]
    with lib.session() as s:
        from sqlalchemy import select

        from earmark.index.store import Segment

        assert lib.indexes().dense.ids().tolist() == sorted(s.scalars(select(Segment.id)))
    on_milvus = {(q, r): lib.search(q, ranking=r) for q in QUERIES[:3] for r in RANKINGS}

    reopened = Library(lib.path)  # opening an up-to-date collection writes nothing
    assert reopened.commit_indexes().rebuilt == []

    back = reopened.copy_backend("faiss")  # the FAISS files catch up with the removal
    assert back.backend == "faiss"
    for (q, r), res in on_milvus.items():
        assert_same_hits(res, reopened.search(q, ranking=r))
    assert reopened.check().ok


def test_cli_init_milvus_and_backend_copy(tmp_path, milvus_db):
    from click.testing import CliRunner

    from earmark.cli import main

    d = write_known_sounds(tmp_path / "known")
    lib = tmp_path / "clilib"
    run = CliRunner().invoke
    r = run(main, ["init", str(lib), "--encoder", "py:fake_encoder:FakeEncoder", "--vocabulary", str(TEST_VOCAB),
                   "--backend", "milvus", "--milvus-uri", str(milvus_db)])
    assert r.exit_code == 0, r.output
    assert run(main, ["index", "-L", str(lib), str(d)]).exit_code == 0
    r = run(main, ["backend", "status", "-L", str(lib), "--json"])
    assert r.exit_code == 0, r.output
    assert '"backend": "milvus"' in r.output
    r = run(main, ["search", "-L", str(lib), "+noise", "--json"])
    assert r.exit_code == 0 and "white_noise.wav" in r.output
    r = run(main, ["backend", "copy", "-L", str(lib), "--to", "faiss"])
    assert r.exit_code == 0, r.output
    assert "faiss" in r.output
    r = run(main, ["init", str(tmp_path / "bad"), "--backend", "milvus", "--milvus-uri", "nota.txt"])
    assert r.exit_code == 3 and ".db" in r.output


def test_missing_pymilvus_names_the_extra(monkeypatch):
    from earmark.index.milvus import MilvusUnavailable, pymilvus

    monkeypatch.setitem(sys.modules, "pymilvus", None)
    with pytest.raises(MilvusUnavailable, match=r"earmark\[milvus\]"):
        pymilvus()


def test_reembed_moves_the_milvus_collection_to_the_new_dimension(tmp_path, milvus_db):
    """`earmark reembed` on a Milvus library: the collection is recreated for the new encoder's
    vectors (16-d instead of 32-d) and answers as a FAISS library of that encoder does."""
    from fake_encoder import FakeEncoder, NarrowFakeEncoder

    from earmark.engine.library import Library

    d = write_known_sounds(tmp_path / "known")
    lib = Library.init(tmp_path / "milvus", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB),
                       backend="milvus", milvus_uri=str(milvus_db))
    lib.index([d])
    rep = lib.reembed(NarrowFakeEncoder())
    assert rep.switched and rep.reembedded == 5 and rep.pending == 0
    reference = Library.init(tmp_path / "faiss", encoder=NarrowFakeEncoder(), vocabulary=str(TEST_VOCAB))
    reference.index([d])
    reopened = Library(tmp_path / "milvus", encoder=NarrowFakeEncoder())
    assert reopened.indexes().store.dim == 16
    for q in ("low hum", "+noise"):
        got = [(h.path, round(h.score, 4)) for h in reopened.search(q, k=5, ranking="dense").hits]
        want = [(h.path, round(h.score, 4)) for h in reference.search(q, k=5, ranking="dense").hits]
        assert got == want
    assert reopened.check().ok
