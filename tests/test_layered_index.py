"""A memory-mapped index file plus in-memory changes answers like one index holding them all."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tone, write
from earmark.engine.library import Library
from earmark.index.dense import DenseIndex
from earmark.index.layered import LayeredIndex

D = 16


def _unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(ids: np.ndarray, vecs: np.ndarray, q: np.ndarray, k: int, allowed=None, excluded=None) -> list[list[int]]:
    keep = np.ones(len(ids), bool)
    if allowed is not None:
        keep &= np.isin(ids, allowed)
    if excluded is not None:
        keep &= ~np.isin(ids, excluded)
    ids, vecs = ids[keep], vecs[keep]
    out = []
    for row in q @ vecs.T:
        order = np.lexsort((ids, -row))[:k]
        out.append(ids[order].tolist())
    return out


@pytest.fixture(params=["Flat", "IVF8,Flat"])
def layered(request, tmp_path):
    """A mapped base of 300 vectors; 40 removed (some of them re-added), 50 new ones added."""
    ids = np.arange(300, dtype=np.int64) * 2
    vecs = _unit(300, 0)
    base = DenseIndex.rebuild(ids, vecs, request.param, recall_target=None)
    if base.nprobe is not None:
        base.nprobe = 8  # every list: the comparison with brute force is exact
    path = base.save(tmp_path, 1)
    lay = LayeredIndex(DenseIndex.load(path, mmap=True), path)
    assert lay.base.read_only
    gone = ids[::7][:40]
    assert lay.remove(gone) == 40
    new_ids = np.arange(1000, 1050, dtype=np.int64)
    new_vecs = _unit(50, 1)
    lay.add(new_ids, new_vecs)
    back = gone[:5]  # removed from the base, then added again with another vector
    back_vecs = _unit(5, 2)
    lay.add(back, back_vecs)
    live = ~np.isin(ids, gone)
    all_ids = np.concatenate([ids[live], new_ids, back])
    all_vecs = np.concatenate([vecs[live], new_vecs, back_vecs])
    return lay, all_ids, all_vecs


def test_layered_search_matches_brute_force(layered):
    lay, ids, vecs = layered
    q = _unit(12, 3)
    assert lay.ntotal == len(ids)
    assert sorted(lay.ids().tolist()) == sorted(ids.tolist())
    _, got = lay.search(q, 10)
    assert got.tolist() == _brute(ids, vecs, q, 10)
    allowed = ids[::3]
    excluded = ids[1::5]
    _, got = lay.search(q, 10, allowed_ids=allowed, excluded_ids=excluded)
    assert got.tolist() == _brute(ids, vecs, q, 10, allowed, excluded)


def test_layered_removal_of_delta_and_base(layered):
    lay, ids, vecs = layered
    drop = np.array([1000, 1001, int(ids[0])])
    assert lay.remove(drop) == 3
    assert lay.remove(drop) == 0  # already gone
    keep = ~np.isin(ids, drop)
    q = _unit(5, 4)
    assert lay.search(q, 10).ids.tolist() == _brute(ids[keep], vecs[keep], q, 10)


def test_materialise_holds_base_plus_changes(layered, tmp_path):
    lay, ids, vecs = layered
    (tmp_path / "out").mkdir()
    path = lay.save(tmp_path / "out", 2)
    full = DenseIndex.load(path, mmap=False)
    if full.nprobe is not None:
        full.nprobe = 8
    assert sorted(full.ids().tolist()) == sorted(ids.tolist())
    q = _unit(6, 5)
    assert full.search(q, 10).ids.tolist() == lay.search(q, 10).ids.tolist()


def test_layered_wraps_only_mapped_indexes():
    with pytest.raises(ValueError, match="mmap=True"):
        LayeredIndex(DenseIndex.create(D, "Flat"), "x.faiss")


# -- in a library -----------------------------------------------------------------------------

def _store(lib):
    from sqlalchemy import select

    from earmark.index.store import Segment

    with lib.session() as s:
        rows = s.execute(select(Segment.id, Segment.embedding)).all()
    return np.array([r[0] for r in rows]), np.stack([np.frombuffer(r[1], np.float32) for r in rows])


def test_library_maps_large_files_and_catches_up_in_a_delta(library, sound_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(DenseIndex, "MMAP_THRESHOLD_BYTES", 0)  # every file is "large"
    library.index([sound_dir])
    more = tmp_path / "more"
    write(more / "extra.wav", tone(600, 2.0, 16000), 16000)
    library.index([more])  # a checkpoint commit: no new file, the reader below catches up
    library.remove(["beep.wav"])
    reader = Library(library.path, encoder=library.encoder)
    idx = reader.indexes()
    for kind in ("dense", "concept"):
        obj = getattr(idx, kind)
        assert isinstance(obj, LayeredIndex), kind
        assert obj.n_delta > 0 and obj.n_removed > 0, kind
    ids, vecs = _store(reader)
    assert sorted(idx.dense.ids().tolist()) == sorted(ids.tolist())
    q = vecs[:3]
    assert idx.dense.search(q, 5).ids.tolist() == _brute(ids, vecs, q, 5)
    hits = reader.search("tone", k=10).hits
    assert all(h.path != "beep.wav" for h in hits)
    assert any(h.path == "extra.wav" for h in hits)
    assert reader.check().ok

    # A forced commit writes base + changes in full and maps the new file.
    from earmark.engine.lock import WriterLock

    with WriterLock(reader.path).acquire():
        done = idx.commit(force=True)
    assert "dense" in done.committed
    dense = reader.indexes().dense
    assert isinstance(dense, LayeredIndex) and dense.n_delta == 0 and dense.n_removed == 0
    assert sorted(dense.ids().tolist()) == sorted(ids.tolist())
    fresh = Library(library.path, encoder=library.encoder)
    assert sorted(fresh.indexes().dense.ids().tolist()) == sorted(ids.tolist())
    assert fresh.check().ok


def test_commit_rebuilds_when_the_mapped_file_is_gone(library, sound_dir, tmp_path, monkeypatch):
    """A process that mapped an old generation another writer has since deleted still commits."""
    monkeypatch.setenv("EARMARK_MMAP_BYTES", "0")  # the user's switch
    library.index([sound_dir])
    reader = Library(library.path, encoder=library.encoder)
    idx = reader.indexes()
    idx.dense.path.unlink()  # the mapping stays valid; the file cannot be read again
    write(tmp_path / "more" / "extra.wav", tone(600, 2.0, 16000), 16000)
    library.index([tmp_path / "more"])
    idx.sync()
    messages = []
    idx.notify = messages.append
    from earmark.engine.lock import WriterLock

    with WriterLock(reader.path).acquire():
        done = idx.commit(force=True)
    assert "dense" in done.committed
    assert any("from the database" in m for m in messages)
    ids, _ = _store(reader)
    fresh = Library(library.path, encoder=library.encoder)
    assert sorted(fresh.indexes().dense.ids().tolist()) == sorted(ids.tolist())


def test_a_flat_index_read_from_its_file_is_retyped_when_it_outgrows_flat(library, sound_dir, tmp_path, monkeypatch):
    library.index([sound_dir])
    n = library.indexes().dense.ntotal
    monkeypatch.setattr(DenseIndex, "FLAT_LIMIT", n)  # one more segment passes the limit
    write(tmp_path / "more" / "extra.wav", tone(600, 2.0, 16000), 16000)
    writer = Library(library.path, encoder=library.encoder)  # its Flat index comes from the file
    writer.index([tmp_path / "more"])
    reopened = Library(library.path, encoder=library.encoder)
    idx = reopened.indexes()
    assert idx.dense.stats().kind.startswith("IndexIVF")
    assert idx.dense.ntotal == len(_store(reopened)[0]) > n


def test_a_malformed_mmap_variable_is_a_clear_library_error(library, monkeypatch):
    from earmark.engine.library import LibraryError

    monkeypatch.setenv("EARMARK_MMAP_BYTES", "1GB")
    with pytest.raises(LibraryError, match="EARMARK_MMAP_BYTES='1GB' is not a whole number of bytes"):
        Library(library.path, encoder=library.encoder)
