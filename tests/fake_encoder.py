"""A small deterministic encoder for tests only (never a user-facing default).

Audio → the distribution of spectral energy over 32 log-spaced bands (unit norm), so
noise, low hums and high beeps land in clearly different places. Text → the same band space
through a few keywords ("noise" = flat, "beep"/"tone"/"high" = around 2 kHz, "hum"/"low" =
below 200 Hz); any other text gets a pseudo-random vector from its hash. Loaded in
subprocess tests with ``--encoder py:fake_encoder:FakeEncoder`` and ``PYTHONPATH=tests``.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from earmark.engine.encoders.base import Encoder, check_windows, fingerprint_of, l2_normalise

N_BANDS = 32


class FakeEncoder(Encoder):
    name = "py:fake_encoder:FakeEncoder"
    dim = N_BANDS
    sample_rate = 16000
    window_seconds = 1.0

    def __init__(self, device: str | None = None) -> None:
        n = self.window_samples
        freqs = np.fft.rfftfreq(n, 1 / self.sample_rate)
        edges = np.geomspace(40, self.sample_rate / 2, self.dim + 1)
        self._bands = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])]).astype(np.float32)
        self._centres = np.sqrt(edges[:-1] * edges[1:])

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(None, {"fake": 1, "bands": N_BANDS, "sr": self.sample_rate})

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        w = check_windows(windows, self)
        power = np.abs(np.fft.rfft(w, axis=1)) ** 2
        energy = power @ self._bands.T + 1e-6  # the floor keeps silence well-defined
        return l2_normalise(np.sqrt(energy / energy.sum(axis=1, keepdims=True)))

    def _band_profile(self, lo: float, hi: float) -> np.ndarray:
        return ((self._centres >= lo) & (self._centres < hi)).astype(np.float32) + 1e-3

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            t_low = t.lower()
            if "noise" in t_low:
                v = np.ones(self.dim, np.float32)
            elif any(k in t_low for k in ("beep", "tone", "high")):
                v = self._band_profile(1500, 3000)
            elif any(k in t_low for k in ("hum", "low")):
                v = self._band_profile(0, 200)
            else:
                seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
                v = np.abs(np.random.default_rng(seed).standard_normal(self.dim)).astype(np.float32)
            out.append(v)
        return l2_normalise(np.stack(out))


class SlowFakeEncoder(FakeEncoder):
    """The same vectors, 50 ms per call (env FAKE_ENCODER_DELAY: seconds): lets tests kill or race a run."""

    name = "py:fake_encoder:SlowFakeEncoder"

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        import os
        import time

        time.sleep(float(os.environ.get("FAKE_ENCODER_DELAY", "0.05")))
        return super().embed_audio(windows)


class _EnvVersioned(FakeEncoder):
    """A FakeEncoder whose "weights" version is read from the environment variable ``VERSION_ENV``
    (default 1) and named in its fingerprint under ``VERSION_KEY``."""

    VERSION_ENV = ""
    VERSION_KEY = ""

    @property
    def version(self) -> int:
        import os

        return int(os.environ.get(self.VERSION_ENV, "1"))

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(None, {"fake": 1, "bands": N_BANDS, "sr": self.sample_rate, self.VERSION_KEY: self.version})


class VersionedFakeEncoder(_EnvVersioned):
    """FakeEncoder whose "weights" change with env FAKE_ENCODER_VERSION: version 2 reverses the
    band order, like an earmark upgrade that ships new weights under the same spec."""

    name = "py:fake_encoder:VersionedFakeEncoder"
    VERSION_ENV, VERSION_KEY = "FAKE_ENCODER_VERSION", "version"

    def _flip(self, v: np.ndarray) -> np.ndarray:
        return v[:, ::-1].copy() if self.version == 2 else v

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        return self._flip(super().embed_audio(windows))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return self._flip(super().embed_text(texts))


class TextVersionedFakeEncoder(_EnvVersioned):
    """FakeEncoder whose text side alone changes with env FAKE_ENCODER_TEXT_VERSION (version 2
    rolls the text bands by one), like an upgrade that ships new text-side weights and the same
    audio tower: the audio vectors stay, the fingerprint (and so the concept codes) change."""

    name = "py:fake_encoder:TextVersionedFakeEncoder"
    VERSION_ENV, VERSION_KEY = "FAKE_ENCODER_TEXT_VERSION", "text"

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        v = super().embed_text(texts)
        return np.roll(v, 1, axis=1) if self.version == 2 else v


class NarrowFakeEncoder(FakeEncoder):
    """Another encoder altogether: 16 bands, 0.5 s windows (another dimension and window)."""

    name = "py:fake_encoder:NarrowFakeEncoder"
    dim = 16
    window_seconds = 0.5

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(None, {"fake": 1, "bands": self.dim, "sr": self.sample_rate, "window": 0.5})
