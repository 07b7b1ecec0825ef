"""Fault injection: `earmark index` killed at 20 random points, and a disk that fills up.

Each fault is followed by the checks a user relies on: the library opens, every sound is
indexed exactly once with exactly its windows, what a reader's dense/concept/postings indexes
hold agrees with SQLite, no vector is orphaned, and a re-run finishes the work. The summary
line each test prints is what docs/reliability.md records
(``python -m pytest -q -s tests/test_faults.py``).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_VOCAB, noise, tone, write, earmark_argv, subprocess_env

KILLS = 20
SR = 16000


def _add_files(src: Path, start: int, n: int, windows: dict[str, int]) -> None:
    """Noise and tones of 1, 1.5 or 2 s (1, 2 or 3 one-second windows at half-window hop)."""
    for i in range(start, start + n):
        secs = 1.0 + (i % 3) * 0.5
        audio = tone(200 + 37 * i, secs, SR) if i % 2 else noise(secs, SR, seed=i)
        write(src / f"f{i:03d}.wav", audio, SR)
        windows[f"f{i:03d}.wav"] = {1.0: 1, 1.5: 2, 2.0: 3}[secs]


def _wait_for(trigger: str, proc: subprocess.Popen, lib_dir: Path, rng: random.Random) -> None:
    """Return at the moment to kill ``proc``: a random instant of its work, or a phase's start."""
    from earmark.index.files import _TMP_MARK

    deadline = time.time() + 60
    indexes = lib_dir / "indexes"
    start_segments = _count(lib_dir / "earmark.db", "segments")
    while proc.poll() is None and time.time() < deadline:
        if trigger == "time" and _count(lib_dir / "earmark.db", "segments") > start_segments:
            time.sleep(rng.uniform(0.0, 1.0))  # past start-up (imports): the first new file is in
            return
        if trigger == "index-write" and indexes.is_dir() and any(_TMP_MARK in p.name for p in indexes.iterdir()):
            return
        if trigger == "codes" and _count(lib_dir / "earmark.db", "codes") > 0:
            return
        time.sleep(0.002)


def _count(db: Path, table: str) -> int:
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def _phase(db: Path, lib_dir: Path, on_disk: int) -> str:
    """Where a killed run was, read from what it left: files, codes, or index generations."""
    con = sqlite3.connect(db)
    try:
        indexed = con.execute("SELECT count(*) FROM sounds WHERE status='indexed'").fetchone()[0]
        if indexed == 0 and not con.execute("SELECT count(*) FROM segments").fetchone()[0]:
            return "before the first file (start-up, scan, decoding)"
        if indexed < on_disk:
            return "decoding / embedding / coding / committing files"
        segs = con.execute("SELECT count(*) FROM segments").fetchone()[0]
        codes = con.execute("SELECT count(*) FROM codes").fetchone()[0]
        if codes < segs:
            return "computing concept codes"
        version = int(con.execute("SELECT value FROM settings WHERE key='data_version'").fetchone()[0])
        gens = con.execute("SELECT kind, max(data_version) FROM index_generations GROUP BY kind").fetchall()
    finally:
        con.close()
    from earmark.index.files import _TMP_MARK

    temporaries = any(_TMP_MARK in p.name for p in (lib_dir / "indexes").glob(".*"))
    if len(gens) < 3 or any(v != version for _, v in gens) or temporaries:
        return "writing index files"
    return "after the last write (exit)"


def _assert_consistent(lib_dir: Path, windows: dict[str, int]) -> None:
    """The library opens; each indexed file once with exactly its windows; readers agree with SQLite."""
    from fake_encoder import SlowFakeEncoder

    from earmark.engine.library import Library
    from earmark.index.check import check_store

    lib = Library(lib_dir, encoder=SlowFakeEncoder())
    with lib.session() as s:
        store = check_store(s, lib.encoder.dim)
    assert store.ok, store.problems
    con = sqlite3.connect(lib_dir / "earmark.db")
    try:
        rows = con.execute("SELECT s.path, s.status, count(g.id) FROM sounds s LEFT JOIN segments g "
                           "ON g.sound_id = s.id GROUP BY s.id").fetchall()
        seg_ids = {r[0] for r in con.execute("SELECT id FROM segments")}
        code_ids = {r[0] for r in con.execute(
            "SELECT segment_id FROM codes WHERE codebook_id = "
            "(SELECT CAST(value AS INTEGER) FROM settings WHERE key='codebook_id')")}
    finally:
        con.close()
    paths = [p for p, _, _ in rows]
    assert len(paths) == len(set(paths)), "a file is recorded twice"
    for path, status, n in rows:
        assert status == "indexed" and n == windows[path], (path, status, n)
    idx = lib.indexes()
    assert set(int(i) for i in idx.dense.ids()) == seg_ids, "dense index disagrees with SQLite"
    if code_ids:
        assert set(int(i) for i in idx.concept.ids()) == code_ids, "concept index disagrees with SQLite"
        assert set(int(i) for i in idx.postings.ids()) == code_ids, "postings disagree with SQLite"
    if rows:  # it answers: every hit is an indexed sound
        hits = (lib.search("+noise", k=5, ranking="concept") if code_ids else lib.search("noise", k=5, ranking="dense")).hits
        assert {h.path for h in hits} <= set(paths)


def test_sigkill_at_20_random_points_loses_nothing(tmp_path):
    rng = random.Random(2026)
    src, lib_dir = tmp_path / "src", tmp_path / "lib"
    windows: dict[str, int] = {}
    _add_files(src, 0, 30, windows)
    subprocess.run(earmark_argv("init", str(lib_dir), "--encoder", "py:fake_encoder:SlowFakeEncoder",
                            "--vocabulary", str(TEST_VOCAB)), check=True, env=subprocess_env(), capture_output=True)
    phases: Counter[str] = Counter()
    for cycle in range(KILLS):
        if cycle:
            _add_files(src, 30 + 6 * (cycle - 1), 6, windows)  # every restart has new work as well
        proc = subprocess.Popen(earmark_argv("index", "--library", str(lib_dir), "-j", "1", str(src)), env=subprocess_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Most kills land at a random instant once work has started; some wait for the first
        # concept codes (first run) or for a temporary index file, so every phase is hit.
        trigger = "codes" if cycle == 0 else ("index-write" if cycle % 4 == 1 else "time")
        _wait_for(trigger, proc, lib_dir, rng)
        proc.send_signal(signal.SIGKILL)
        rc = proc.wait()
        assert rc in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
        phase = _phase(lib_dir / "earmark.db", lib_dir, len(windows)) if rc else "finished before the kill"
        phases[phase] += 1
        _assert_consistent(lib_dir, windows)
    final = subprocess.run(earmark_argv("index", "--library", str(lib_dir), str(src), "--json"), env=subprocess_env(),
                           capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    _assert_consistent(lib_dir, windows)
    con = sqlite3.connect(lib_dir / "earmark.db")
    indexed = {p for (p,) in con.execute("SELECT path FROM sounds WHERE status='indexed'")}
    con.close()
    lost = set(windows) - indexed
    assert not lost
    check = subprocess.run(earmark_argv("check", "--library", str(lib_dir), "--json"), env=subprocess_env(),
                           capture_output=True, text=True)
    assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stdout + check.stderr
    print(f"\nSIGKILL faults: {sum(phases.values())} injected, files {len(windows)}, lost {len(lost)}, "
          f"check ok; where the kills landed: {dict(phases)}")
    assert sum(v for k, v in phases.items() if k != "finished before the kill") >= KILLS // 2, phases


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if res.returncode:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({res.stderr.decode().strip()}); needs root")


@pytest.mark.skipif(not shutil.which("mount") or os.geteuid() != 0, reason="a size-limited tmpfs needs root")
@pytest.mark.parametrize("size_kb", [200, 450, 700, 1000])
def test_full_disk_gives_a_clear_error_and_resumes_after_space_is_freed(tmp_path, size_kb):
    src, lib_dir = tmp_path / "src", tmp_path / ("lib-" + uuid.uuid4().hex[:6])
    windows: dict[str, int] = {}
    _add_files(src, 0, 60, windows)
    for name in list(windows):  # longer files: more vectors, so the disk fills at different steps
        audio = np.tile(noise(1.0, SR, seed=hash(name) % 1000), 4)
        write(src / name, audio, SR)
        windows[name] = 7
    _mount_tmpfs(lib_dir, f"{size_kb}k")
    try:
        init = subprocess.run(earmark_argv("init", str(lib_dir), "--encoder", "py:fake_encoder:FakeEncoder",
                                       "--vocabulary", str(TEST_VOCAB)), env=subprocess_env(), capture_output=True, text=True)
        run = subprocess.run(earmark_argv("index", "--library", str(lib_dir), str(src)), env=subprocess_env(),
                             capture_output=True, text=True) if init.returncode == 0 else init
        out = run.stderr + run.stdout
        assert "Traceback" not in out, out[-3000:]
        if run.returncode:
            assert run.returncode == 3 and "disk is full" in out, out[-2000:]
        if init.returncode == 0:
            con = sqlite3.connect(lib_dir / "earmark.db")
            indexed = {p for (p,) in con.execute("SELECT path FROM sounds WHERE status='indexed'")}
            con.close()
            _assert_consistent(lib_dir, {p: windows[p] for p in indexed})
            subprocess.run(["mount", "-o", "remount,size=64m", str(lib_dir)], check=True)  # space freed
            again = subprocess.run(earmark_argv("index", "--library", str(lib_dir), str(src)), env=subprocess_env(),
                                   capture_output=True, text=True)
            assert again.returncode == 0, again.stderr[-2000:]
            _assert_consistent(lib_dir, windows)
            check = subprocess.run(earmark_argv("check", "--library", str(lib_dir)), env=subprocess_env(), capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
        said = out.strip().splitlines()[-1][:90] if run.returncode else "fitted"
        print(f"\nfull disk at {size_kb} kB: first run exit {run.returncode} ({said}), "
              f"resumed to {len(windows)} files, lost 0")
    finally:
        subprocess.run(["umount", "-l", str(lib_dir)], capture_output=True)


def test_enospc_while_writing_an_index_file_keeps_the_old_generation(library, sound_dir, tmp_path, monkeypatch):
    """ENOSPC injected into the dense index's atomic write (the store itself has room)."""
    import errno

    from click.testing import CliRunner

    import earmark.engine.indexes as indexes_module
    import earmark.index.dense as dense_module
    from earmark.cli import main

    # One new file is far below the checkpoint threshold: make this commit write its files.
    monkeypatch.setattr(indexes_module, "CHECKPOINT_MIN", 1)
    library.index([sound_dir])
    before = library.status()
    more = tmp_path / "more"
    write(more / "n.wav", noise(2.0, SR, seed=9), SR)
    real = dense_module.atomic_write

    def full(path, writer):
        def fill_then_fail(tmp):
            writer(tmp)
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
        return real(path, fill_then_fail)

    monkeypatch.setattr(dense_module, "atomic_write", full)
    res = CliRunner().invoke(main, ["index", "--library", str(library.path), str(more)])
    assert res.exit_code == 3 and "disk is full" in res.output and "Traceback" not in res.output, res.output
    assert not list((library.path / "indexes").glob("*.tmp*"))  # the half-written file is gone
    monkeypatch.setattr(dense_module, "atomic_write", real)
    from earmark.engine.library import Library

    reopened = Library(library.path, encoder=library.encoder)
    assert reopened.status().sounds_indexed == before.sounds_indexed + 1  # the file itself was committed
    assert reopened.search("+noise", k=3, ranking="concept").hits
    res = CliRunner().invoke(main, ["index", "--library", str(library.path), str(more)])
    assert res.exit_code == 0, res.output
    assert Library(library.path, encoder=library.encoder).check().ok
