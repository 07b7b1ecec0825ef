"""The library's derived indexes follow the store: built, caught up, rebuilt, checked, repaired."""
from __future__ import annotations

import numpy as np

from conftest import noise, tone, write
from earmark.engine.library import Library


def _segments(lib):
    from sqlalchemy import select

    from earmark.index.store import Segment

    with lib.session() as s:
        return set(s.scalars(select(Segment.id)))


def test_index_run_commits_all_three_indexes(library, sound_dir):
    library.index([sound_dir])
    files = sorted(p.name for p in (library.path / "indexes").iterdir())
    assert files == ["concept-000001.faiss", "dense-000001.faiss", "postings-000001.npz"]
    idx = library.indexes()
    assert set(idx.dense.ids().tolist()) == _segments(library)
    assert set(idx.concept.ids().tolist()) == _segments(library)
    assert set(idx.postings.ids().tolist()) == _segments(library)
    assert library.check().ok


def test_dense_index_answers_like_brute_force(library, sound_dir):
    from sqlalchemy import select

    from earmark.index.store import Segment

    library.index([sound_dir])
    with library.session() as s:
        rows = s.execute(select(Segment.id, Segment.embedding)).all()
    ids = np.array([r[0] for r in rows])
    vecs = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
    q = vecs[3:4]
    scores, got = library.indexes().dense.search(q, 5)
    want = ids[np.argsort(-(vecs @ q[0]), kind="stable")[:5]]
    np.testing.assert_allclose(scores[0], np.sort(vecs @ q[0])[::-1][:5], rtol=1e-5)
    assert set(got[0]) == set(want)


def test_missing_index_file_is_rebuilt_on_open(library, sound_dir):
    library.index([sound_dir])
    (library.path / "indexes" / "dense-000001.faiss").unlink()
    reopened = Library(library.path, encoder=library.encoder)
    assert not reopened.check().ok
    idx = reopened.indexes()
    assert set(idx.dense.ids().tolist()) == _segments(reopened)


def test_few_changes_leave_the_checkpoint_and_readers_catch_up(library, sound_dir, tmp_path):
    """Index files are checkpoints: a small change writes no file; the store fills the gap on open."""
    library.index([sound_dir])
    more = tmp_path / "more"
    write(more / "extra.wav", tone(600, 2.0, 16000), 16000)
    library.index([more])
    files = sorted(p.name for p in (library.path / "indexes").iterdir())
    assert files == ["concept-000001.faiss", "dense-000001.faiss", "postings-000001.npz"]  # nothing rewritten
    library.remove(["beep.wav"])
    reopened = Library(library.path, encoder=library.encoder)
    idx = reopened.indexes()
    for kind in ("dense", "concept", "postings"):
        assert set(getattr(idx, kind).ids().tolist()) == _segments(reopened), kind
    rep = reopened.check()
    assert rep.ok, rep.problems
    assert any("checkpoint" in c and "behind" in c for c in rep.checked)


def test_many_changes_write_a_new_generation(library, sound_dir, tmp_path, monkeypatch):
    import earmark.engine.indexes as indexes

    library.index([sound_dir])
    monkeypatch.setattr(indexes, "CHECKPOINT_MIN", 1)  # every change is "many" on this tiny library
    more = tmp_path / "more"
    write(more / "extra.wav", tone(600, 2.0, 16000), 16000)
    library.index([more])
    files = sorted(p.name for p in (library.path / "indexes").iterdir())
    assert "dense-000002.faiss" in files and "postings-000002.npz" in files
    reopened = Library(library.path, encoder=library.encoder)
    assert set(reopened.indexes().dense.ids().tolist()) == _segments(reopened)
    rep = reopened.check()
    assert rep.ok and not any("behind" in c for c in rep.checked)


def test_check_detects_a_checkpoint_that_lost_a_vector(library, sound_dir):
    from earmark.index.dense import DenseIndex

    library.index([sound_dir])
    path = library.path / "indexes" / "dense-000001.faiss"
    d = DenseIndex.load(path, mmap=False)
    lost = int(sorted(d.ids())[0])  # a segment the file must hold: it existed when the file was written
    d.remove(np.array([lost]))
    path.unlink()
    d.save(library.path / "indexes", 1)
    rep = library.check()
    assert not rep.ok and any("1 segments missing" in p for p in rep.problems)


def test_check_detects_and_repair_fixes_an_orphaned_vector(library, sound_dir):
    library.index([sound_dir])
    # Simulate a crash that left the committed dense file with a vector the store does not know.
    from earmark.index.dense import DenseIndex

    path = library.path / "indexes" / "dense-000001.faiss"
    d = DenseIndex.load(path, mmap=False)
    d.add(np.array([999_999]), np.ones((1, d.dim), np.float32) / np.sqrt(d.dim))
    path.unlink()
    d.save(library.path / "indexes", 1)
    rep = library.check()
    assert not rep.ok and any("orphaned" in p for p in rep.problems)
    fixed = library.check(repair=True)
    assert fixed.ok and fixed.repaired
    assert library.check().ok


def test_rebuild_with_another_factory(library, sound_dir):
    library.index([sound_dir])
    library.rebuild_indexes("HNSW16")
    reopened = Library(library.path, encoder=library.encoder)
    assert reopened.indexes().dense.stats().kind == "IndexHNSWFlat"
    assert set(reopened.indexes().dense.ids().tolist()) == _segments(reopened)
