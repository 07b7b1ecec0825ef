"""Atomic index files: naming, cleanup, and SIGKILL during a real write in a subprocess."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from earmark.index.dense import DenseIndex
from earmark.index.files import (
    atomic_write,
    generation_name,
    list_generations,
    parse_generation,
    remove_old_generations,
    remove_temporaries,
)
from earmark.index.sparse import ConceptPostings

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and fsync semantics are POSIX")


def test_names_parse_and_cleanup(tmp_path):
    assert generation_name("dense", 12) == "dense-000012.faiss"
    assert generation_name("postings", 3) == "postings-000003.npz"
    g = parse_generation(tmp_path / "concept-000007.faiss")
    assert (g.kind, g.generation) == ("concept", 7)
    assert parse_generation("dense-000001.npz") is None  # wrong suffix for the kind
    assert parse_generation(".dense-000001.faiss.tmp-12") is None
    with pytest.raises(ValueError):
        generation_name("other", 1)
    for gen in (1, 2, 3):
        atomic_write(tmp_path / generation_name("dense", gen), lambda p: p.write_bytes(b"x"))
    (tmp_path / ".dense-000004.faiss.tmp-99").write_bytes(b"torn")
    assert [g.generation for g in list_generations(tmp_path, "dense")] == [1, 2, 3]
    assert len(remove_old_generations(tmp_path, "dense", keep={3})) == 2
    assert [g.generation for g in list_generations(tmp_path, "dense")] == [3]
    assert len(remove_temporaries(tmp_path)) == 1


def test_failed_writer_leaves_old_file(tmp_path):
    target = tmp_path / "postings-000001.npz"
    target.write_bytes(b"old")

    def boom(p: Path) -> None:
        p.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


CHILD = textwrap.dedent(
    """
    import sys, numpy as np, scipy.sparse as sp
    from pathlib import Path
    from earmark.index.dense import DenseIndex
    from earmark.index.sparse import ConceptPostings
    from earmark.index.files import atomic_write
    d, mode = Path(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(1)
    if mode == "stall":
        # writes half a file, says so, then waits to be killed: the kill lands mid-write
        def write(p):
            with open(p, "wb") as fh:
                fh.write(b"partial")
                fh.flush()
                print("writing", flush=True)
                sys.stdin.read()
        atomic_write(d / "dense-000002.faiss", write)
    elif mode == "dense":
        x = rng.standard_normal((60000, 128)).astype("float32")  # ~31 MB file
        idx = DenseIndex.create(128, "Flat")
        idx.add(np.arange(60000), x)
        print("writing", flush=True)
        for gen in range(2, 10**6):
            idx.save(d, gen)
    else:
        n = 200000  # 10 concepts a row, one in each band of 50: sorted, unique, fast to build
        cols = (np.arange(10) * 50 + rng.integers(0, 50, (n, 10))).reshape(-1)
        w = sp.csr_matrix((rng.random(10 * n, dtype=np.float32) + 0.1, cols,
                           np.arange(0, 10 * n + 1, 10)), shape=(n, 500))
        post = ConceptPostings.from_codes(np.arange(200000), w)
        print("writing", flush=True)
        for gen in range(2, 10**6):
            post.save(d, gen)
    """
)


def run_and_kill(tmp_path: Path, mode: str) -> None:
    """Start a writer, SIGKILL it while a temporary file exists (or right after 'writing')."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(".tmp-" in p.name for p in tmp_path.iterdir()):
                break
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL


def small_dense():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 128)).astype(np.float32)
    idx = DenseIndex.create(128, "Flat")
    idx.add(np.arange(300) + 1000, x)
    return idx, x


def test_sigkill_mid_write_keeps_old_generation(tmp_path):
    idx, x = small_dense()
    old = idx.save(tmp_path, 1)
    run_and_kill(tmp_path, "stall")
    # the torn temporary exists, the new generation never appeared, the old one answers
    assert any(".tmp-" in p.name for p in tmp_path.iterdir())
    assert [g.generation for g in list_generations(tmp_path, "dense")] == [1]
    res = DenseIndex.load(old).search(x[:5], 1)
    np.testing.assert_array_equal(res.ids[:, 0], np.arange(5) + 1000)
    remove_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [old.name]


@pytest.mark.parametrize("mode", ["dense", "postings"])
def test_sigkill_during_real_save_leaves_loadable_files(tmp_path, mode):
    if mode == "dense":
        idx, x = small_dense()
        idx.save(tmp_path, 1)
    else:
        w = sp.random(50, 500, density=0.05, random_state=0, format="csr", dtype=np.float32)
        ConceptPostings.from_codes(np.arange(50) + 1000, w).save(tmp_path, 1)
    run_and_kill(tmp_path, mode)
    gens = list_generations(tmp_path, "dense" if mode == "dense" else "postings")
    assert gens[0].generation == 1
    for g in gens:  # every generation file, old or renamed-in-time, is complete
        if mode == "dense":
            loaded = DenseIndex.load(g.path)
            q = x[:3] if g.generation == 1 else np.eye(128, dtype=np.float32)[:3]
            res = loaded.search(q, 1)
            assert (res.ids >= 0).all()
            if g.generation == 1:
                np.testing.assert_array_equal(res.ids[:, 0], np.arange(3) + 1000)
            else:
                assert loaded.ntotal == 60000
        else:
            loaded = ConceptPostings.load(g.path)
            assert len(loaded) == (50 if g.generation == 1 else 200000)
            assert loaded.concept_search(np.ones(500, np.float32), 3).ids[0, 0] >= 0
