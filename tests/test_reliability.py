"""Faults around a live library: searching while a writer works, two writers, a read-only library."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import TEST_VOCAB, TESTS_DIR, noise, tone, write
from earmark.cli import main
from earmark.engine.library import Library


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    return env


def _cli(*args):
    return [sys.executable, "-m", "earmark.cli", *args]


def test_search_answers_while_an_index_run_writes(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    # Noise and hums from the start: the codebook centres on the first vectors' mean, and a
    # library of noise alone would centre the noise away.
    for i in range(4):
        write(first / f"n{i}.wav", noise(1.0, 16000, seed=i), 16000)
        write(first / f"h{i}.wav", tone(80 + 10 * i, 1.0, 16000), 16000)
    for i in range(20):
        write(second / f"t{i}.wav", tone(300 + 40 * i, 1.5, 16000), 16000)
    lib_dir = tmp_path / "lib"
    subprocess.run(_cli("init", str(lib_dir), "--encoder", "py:fake_encoder:SlowFakeEncoder",
                        "--vocabulary", str(TEST_VOCAB)), check=True, env=_env(), capture_output=True)
    subprocess.run(_cli("index", "--library", str(lib_dir), str(first)), check=True, env=_env(), capture_output=True)
    writer = subprocess.Popen(_cli("index", "--library", str(lib_dir), str(second)), env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    from fake_encoder import SlowFakeEncoder

    lib = Library(lib_dir, encoder=SlowFakeEncoder())
    answered, seen_counts = 0, []
    while writer.poll() is None and answered < 200:
        res = lib.search("+noise", k=50, ranking="concept")
        assert res.hits and res.hits[0].path.startswith("n")  # the noise files stay on top
        seen_counts.append(lib.status().sounds_indexed)
        answered += 1
        time.sleep(0.05)
    assert writer.wait(timeout=120) == 0, writer.stderr.read().decode()[-1000:]
    assert answered >= 3
    assert seen_counts == sorted(seen_counts)  # readers see whole files appear, never go back
    final = Library(lib_dir, encoder=SlowFakeEncoder())
    assert final.status().sounds_indexed == 28 and final.check().ok


def test_second_concurrent_index_run_is_refused_clearly(tmp_path):
    src = tmp_path / "src"
    for i in range(40):
        write(src / f"f{i}.wav", noise(1.5, 16000, seed=i), 16000)
    lib_dir = tmp_path / "lib"
    subprocess.run(_cli("init", str(lib_dir), "--encoder", "py:fake_encoder:SlowFakeEncoder",
                        "--vocabulary", str(TEST_VOCAB)), check=True, env=_env(), capture_output=True)
    # 0.5 s an embedding call keeps the first run busy for ~20 s, long past the second's start-up.
    first = subprocess.Popen(_cli("index", "--library", str(lib_dir), str(src)), env={**_env(), "FAKE_ENCODER_DELAY": "0.5"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not (lib_dir / ".lock").exists() or not (lib_dir / ".lock").read_text().strip():
        assert time.time() < deadline
        time.sleep(0.02)
    second = subprocess.run(_cli("index", "--library", str(lib_dir), str(src)), env=_env(), capture_output=True, text=True)
    assert first.poll() is None, "the first run ended before the second started: the test proved nothing"
    assert first.wait(timeout=120) == 0
    assert second.returncode == 4 and "being written by pid" in second.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions, so a read-only library cannot be made")
def test_read_only_library_gives_a_clear_error(library, sound_dir):
    library.index([sound_dir])
    before = library.status()
    os.chmod(library.path, 0o555)
    os.chmod(library.path / "earmark.db", 0o444)
    try:
        res = CliRunner().invoke(main, ["index", "--library", str(library.path), str(sound_dir)])
        assert res.exit_code != 0 and "earmark:" in res.output
    finally:
        os.chmod(library.path, 0o755)
        os.chmod(library.path / "earmark.db", 0o644)
    assert Library(library.path, encoder=library.encoder).status().segments == before.segments
