"""Faults around a live library: searching while a writer works, two writers, a read-only library."""
from __future__ import annotations

import os
import subprocess
import time

import pytest
from click.testing import CliRunner

from conftest import TEST_VOCAB, noise, tone, write, earmark_argv, subprocess_env
from earmark.cli import main
from earmark.engine.library import Library


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
    subprocess.run(earmark_argv("init", str(lib_dir), "--encoder", "py:fake_encoder:SlowFakeEncoder",
                        "--vocabulary", str(TEST_VOCAB)), check=True, env=subprocess_env(), capture_output=True)
    subprocess.run(earmark_argv("index", "--library", str(lib_dir), str(first)), check=True, env=subprocess_env(), capture_output=True)
    writer = subprocess.Popen(earmark_argv("index", "--library", str(lib_dir), str(second)), env=subprocess_env(),
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
    subprocess.run(earmark_argv("init", str(lib_dir), "--encoder", "py:fake_encoder:SlowFakeEncoder",
                        "--vocabulary", str(TEST_VOCAB)), check=True, env=subprocess_env(), capture_output=True)
    # 0.5 s an embedding call keeps the first run busy for ~20 s, long past the second's start-up.
    first = subprocess.Popen(earmark_argv("index", "--library", str(lib_dir), str(src)), env=subprocess_env(FAKE_ENCODER_DELAY="0.5"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while not (lib_dir / ".lock").exists() or not (lib_dir / ".lock").read_text().strip():
        assert time.time() < deadline
        time.sleep(0.02)
    second = subprocess.run(earmark_argv("index", "--library", str(lib_dir), str(src)), env=subprocess_env(), capture_output=True, text=True)
    assert first.poll() is None, "the first run ended before the second started: the test proved nothing"
    assert first.wait(timeout=120) == 0
    assert second.returncode == 4 and "being written by pid" in second.stderr


def _make_read_only(lib_dir, tmp_path):
    """Make ``lib_dir`` read-only: file modes for users; a read-only tmpfs for root, who ignores modes."""
    if os.geteuid() != 0:
        os.chmod(lib_dir, 0o555)
        os.chmod(lib_dir / "earmark.db", 0o444)
        return lambda: (os.chmod(lib_dir, 0o755), os.chmod(lib_dir / "earmark.db", 0o644))
    import shutil

    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("root cannot mount a tmpfs here, so a read-only library cannot be made")
    shutil.copytree(lib_dir, mnt / "lib")
    shutil.rmtree(lib_dir)
    os.symlink(mnt / "lib", lib_dir)
    subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

    def undo():
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        os.unlink(lib_dir)
        shutil.copytree(mnt / "lib", lib_dir)
        subprocess.run(["umount", "-l", str(mnt)], check=True)
    return undo


def test_read_only_library_gives_a_clear_error(library, sound_dir, tmp_path):
    library.index([sound_dir])
    before = library.status()
    extra = tmp_path / "extra"
    write(extra / "new.wav", noise(1.5, 16000, seed=5), 16000)
    undo = _make_read_only(library.path, tmp_path)
    try:
        res = CliRunner().invoke(main, ["index", "--library", str(library.path), str(extra)])
        assert res.exit_code == 3 and "cannot be written" in res.output and "Traceback" not in res.output, res.output
        reader = Library(library.path, encoder=library.encoder)  # searching still works
        assert reader.search("+noise", k=3, ranking="concept").hits
    finally:
        undo()
    after = Library(library.path, encoder=library.encoder)
    assert after.status().segments == before.segments and after.check().ok
