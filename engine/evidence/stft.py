"""STFT / ISTFT in torch with the encoder's own parameters.

The evidence mask lives on the *linear* magnitude grid of the STFT the audio tower expects
(``DifferentiableAudioEncoder.stft_params()``), so a masked spectrogram can go straight into
``embed_from_magnitude`` and, with the original phase, straight back to audio.
Hann window, centred frames (``center=True``): frame ``t`` is centred on sample ``t * hop``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from .errors import EvidenceError


@dataclass(frozen=True)
class STFTParams:
    """STFT geometry in samples."""

    n_fft: int
    hop_length: int
    win_length: int

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any]) -> "STFTParams":
        """Build from ``encoder.stft_params()``; raise EvidenceError when a key is missing."""
        try:
            p = cls(int(params["n_fft"]), int(params["hop_length"]), int(params["win_length"]))
        except KeyError as exc:
            raise EvidenceError(f"encoder stft_params() lacks {exc}; it must give n_fft, hop_length, win_length") from exc
        if not (0 < p.hop_length <= p.win_length <= p.n_fft):
            raise EvidenceError(f"need 0 < hop_length <= win_length <= n_fft, got {p}")
        return p

    @property
    def n_freq(self) -> int:
        """Number of frequency bins, n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples."""
        return 1 + n_samples // self.hop_length

    def bin_hz(self, sample_rate: int) -> float:
        """Width of one frequency bin in Hz."""
        return sample_rate / self.n_fft


def _window(params: STFTParams, like: torch.Tensor) -> torch.Tensor:
    real_dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(params.win_length, dtype=real_dtype, device=like.device)


def stft(waveform: torch.Tensor, params: STFTParams) -> torch.Tensor:
    """Complex STFT: (B, N) or (N,) samples → (B, F, T) complex, F = n_fft // 2 + 1."""
    x = waveform if waveform.ndim == 2 else waveform.reshape(1, -1)
    return torch.stft(
        x,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=_window(params, x),
        center=True,
        pad_mode="constant",  # zero padding: a silent edge stays silent, no mirrored energy
        return_complex=True,
    )


def magnitude_phase(spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a complex STFT into linear magnitude and phase (radians), both (B, F, T)."""
    return spec.abs(), torch.angle(spec)


def istft(magnitude: torch.Tensor, phase: torch.Tensor, params: STFTParams, length: int) -> torch.Tensor:
    """Inverse STFT of ``magnitude · exp(i·phase)``: (B, F, T) → (B, length) samples.

    With the phase of the original signal and an all-ones mask this reproduces the input up to
    float rounding (Hann window, hop ≤ win / 2 satisfies the overlap-add condition).
    """
    spec = torch.polar(magnitude, phase)
    return torch.istft(
        spec,
        n_fft=params.n_fft,
        hop_length=params.hop_length,
        win_length=params.win_length,
        window=_window(params, magnitude),
        center=True,
        length=length,
    )
