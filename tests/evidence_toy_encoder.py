"""A tiny differentiable CLAP-style encoder for the evidence tests (not collected by pytest).

Audio tower: linear STFT magnitude → triangular mel projection (32 bands, 0–4 kHz) → log →
two small conv layers (the "internal feature maps"). The embedding is the centred, unit-norm
vector of mean log energies in 8 groups of 4 mel bands, so each embedding dimension responds
to energy in one frequency band. The "text tower" is a table: "tone"/"beep" point at the band
holding 1 kHz, "hiss" at the top band, "rumble" at the lowest; other strings get a fixed
pseudo-random unit vector. With this, "where is the tone?" has one right answer.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earmark.engine.encoders.base import DifferentiableAudioEncoder, Encoder, check_windows, fingerprint_of

SAMPLE_RATE = 8000
N_FFT = 256
HOP = 64
N_MELS = 32
N_GROUPS = 8
TONE_HZ = 1000.0


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + f / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freq: int, n_mels: int, sample_rate: int) -> np.ndarray:
    """(n_mels, n_freq) triangular filters, HTK mel scale, 0 Hz to Nyquist."""
    freqs = np.linspace(0.0, sample_rate / 2, n_freq)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(sample_rate / 2)), n_mels + 2))
    fb = np.zeros((n_mels, n_freq), np.float32)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[m] = np.clip(np.minimum(up, down), 0.0, None)
    return fb


def group_of_hz(hz: float) -> int:
    """Index of the embedding dimension (mel band group) whose filters peak nearest ``hz``."""
    fb = mel_filterbank(N_FFT // 2 + 1, N_MELS, SAMPLE_RATE)
    bin_ = int(round(hz / (SAMPLE_RATE / N_FFT)))
    return int(np.argmax(fb[:, bin_])) // (N_MELS // N_GROUPS)


class _Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(1234)
        fb = torch.from_numpy(mel_filterbank(N_FFT // 2 + 1, N_MELS, SAMPLE_RATE))
        self.register_buffer("mel", fb)
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        self.requires_grad_(False)
        self.eval()

    def forward(self, magnitude: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        power = magnitude**2
        logmel = torch.log(torch.einsum("mf,bft->bmt", self.mel, power) + 1e-4)  # (B, M, T)
        f1 = F.avg_pool2d(F.relu(self.conv1(logmel[:, None])), 2)  # (B, 8, 16, T/2)
        f2 = F.relu(self.conv2(f1))  # (B, 16, 8, T/4)
        bands = logmel.mean(dim=2).reshape(logmel.shape[0], N_GROUPS, N_MELS // N_GROUPS).mean(-1)
        z = bands - bands.mean(dim=1, keepdim=True)
        return F.normalize(z, dim=1), [f1, f2]


class ToyBandEncoder(Encoder, DifferentiableAudioEncoder):
    """See module docstring. 8 kHz, 1 s windows, n_fft 256, hop 64; embedding dim 8."""

    name = "py:evidence_toy_encoder:ToyBandEncoder"  # tests/ is on sys.path (conftest)
    dim = N_GROUPS
    sample_rate = SAMPLE_RATE
    window_seconds = 1.0
    logit_scale = 10.0

    def __init__(self, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.tower = _Tower().to(self.device)
        self.named = {
            "tone": group_of_hz(TONE_HZ),
            "beep": group_of_hz(TONE_HZ),
            "hiss": N_GROUPS - 1,
            "rumble": 0,
        }

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.tower.state_dict(), {"toy": "band-encoder-v1"})

    def stft_params(self) -> dict[str, int]:
        return {"n_fft": N_FFT, "hop_length": HOP, "win_length": N_FFT}

    def embed_from_magnitude(self, magnitude: torch.Tensor,
                             level_reference: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.tower(magnitude)  # no level normalisation: the reference changes nothing

    def _text_vector(self, text: str) -> np.ndarray:
        key = text.strip().lower()
        if key in self.named:
            v = np.zeros(N_GROUPS, np.float32)
            v[self.named[key]] = 1.0
            return v
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little")
        v = np.random.default_rng(seed).standard_normal(N_GROUPS).astype(np.float32)
        return v / np.linalg.norm(v)

    def text_tensor(self, texts: Sequence[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self._text_vector(t) for t in texts])).to(self.device)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return self.text_tensor(texts).cpu().numpy()

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        w = torch.from_numpy(check_windows(windows, self)).to(self.device)
        win = torch.hann_window(N_FFT, device=self.device)
        spec = torch.stft(w, N_FFT, HOP, N_FFT, window=win, center=True, pad_mode="constant", return_complex=True)
        with torch.no_grad():
            z, _ = self.embed_from_magnitude(spec.abs())
        return z.cpu().numpy()


def tone_in_noise(n: int, seed: int, seconds: float = 1.0) -> tuple[np.ndarray, tuple[float, float]]:
    """``n`` clips of white noise with a ~1 kHz tone in a random stretch of time.

    Returns (n, samples) float32 and the tone's frequency range in Hz.
    """
    rng = np.random.default_rng(seed)
    s = int(seconds * SAMPLE_RATE)
    t = np.arange(s) / SAMPLE_RATE
    out = np.empty((n, s), np.float32)
    for i in range(n):
        f = TONE_HZ + rng.uniform(-40.0, 40.0)
        start = rng.uniform(0.0, 0.4) * seconds
        dur = rng.uniform(0.3, 0.5) * seconds
        env = ((t >= start) & (t < start + dur)).astype(np.float64)
        tone = 0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * env
        noise = rng.standard_normal(s) * rng.uniform(0.03, 0.08)
        out[i] = (tone + noise).astype(np.float32)
    return out, (TONE_HZ - 40.0, TONE_HZ + 40.0)
