"""Shared fixtures: real audio files written by soundfile, real libraries on disk."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

os.environ.setdefault("OMP_NUM_THREADS", "1")


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for an `earmark` subprocess that can load the test encoders (``py:fake_encoder:...``)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS_DIR), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def earmark_argv(*args: str) -> list[str]:
    """argv running the installed CLI with this interpreter: ``earmark ARGS...``."""
    return [sys.executable, "-m", "earmark.cli", *args]


def tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noise(seconds: float, sr: int, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    return (amp * np.random.default_rng(seed).uniform(-1, 1, int(seconds * sr))).astype(np.float32)


def write(path: Path, audio: np.ndarray, sr: int, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, **kw)
    return path


def write_known_sounds(d: Path) -> Path:
    """Sounds whose content is known: white noise, a 2 kHz beep, a 90 Hz hum (FLAC, 44.1 kHz),
    a beep then noise, and a byte-identical copy of the beep. Search tests rank against these."""
    import shutil

    write(d / "white_noise.wav", noise(3.0, 16000, seed=1), 16000)
    write(d / "beep.wav", tone(2000, 2.0, 16000), 16000)
    write(d / "hum.flac", tone(90, 2.5, 44100), 44100)
    write(d / "sub" / "beep_then_noise.wav", np.concatenate([tone(2000, 1.0, 16000), noise(2.0, 16000, seed=2)]), 16000)
    shutil.copy(d / "beep.wav", d / "sub" / "beep_copy.wav")
    return d


@pytest.fixture
def fake_encoder():
    from fake_encoder import FakeEncoder

    return FakeEncoder()


@pytest.fixture
def sound_dir(tmp_path: Path) -> Path:
    """A small folder of real audio in several formats, rates and channel counts."""
    d = tmp_path / "sounds"
    write(d / "beep.wav", tone(2000, 1.5, 16000), 16000)
    write(d / "hum.flac", tone(100, 2.0, 44100), 44100)
    write(d / "noise.ogg", noise(3.0, 22050), 22050, format="OGG", subtype="VORBIS")
    stereo = np.stack([tone(2000, 1.0, 48000), noise(1.0, 48000)], axis=1)
    write(d / "sub" / "stereo.wav", stereo, 48000)
    return d


TEST_VOCAB = TESTS_DIR / "data" / "test_vocab.txt"


@pytest.fixture
def library(tmp_path: Path, fake_encoder):
    from earmark.engine.library import Library

    return Library.init(tmp_path / "lib", encoder=fake_encoder, vocabulary=str(TEST_VOCAB))
