"""`earmark index` killed with SIGKILL mid-run (a real subprocess), then run again."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import TEST_VOCAB, noise, tone, write, earmark_argv, subprocess_env

N_FILES = 24


def _indexed(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM sounds WHERE status='indexed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_sigkill_mid_run_then_resume_indexes_each_file_once(tmp_path):
    src = tmp_path / "src"
    expected_windows = {}
    for i in range(N_FILES):
        secs = 1.0 + (i % 3) * 0.5
        audio = tone(300 + 50 * i, secs, 16000) if i % 2 else noise(secs, 16000, seed=i)
        write(src / f"f{i:02d}.wav", audio, 16000)
        expected_windows[f"f{i:02d}.wav"] = {1.0: 1, 1.5: 2, 2.0: 3}[secs]
    lib = tmp_path / "lib"
    subprocess.run(earmark_argv("init", str(lib), "--encoder", "py:fake_encoder:SlowFakeEncoder",
                           "--vocabulary", str(TEST_VOCAB)),
                   check=True, env=subprocess_env(), capture_output=True)
    proc = subprocess.Popen(earmark_argv("index", "--library", str(lib), "--workers", "1", str(src)),
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while _indexed(lib / "earmark.db") < 5 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _indexed(lib / "earmark.db")
    assert 5 <= done_before < N_FILES, "the kill must land mid-run"

    rerun = subprocess.run(earmark_argv("index", "--library", str(lib), str(src), "--json"),
                           env=subprocess_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr

    con = sqlite3.connect(lib / "earmark.db")
    rows = con.execute(
        "SELECT s.path, count(g.id) FROM sounds s LEFT JOIN segments g ON g.sound_id = s.id GROUP BY s.id"
    ).fetchall()
    assert sorted(p for p, _ in rows) == sorted(expected_windows)  # each file exactly once
    assert dict(rows) == expected_windows  # no half-written or doubled segments
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
