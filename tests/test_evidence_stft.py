"""STFT/ISTFT round trip with the encoder's parameters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from earmark.engine.evidence.errors import EvidenceError
from earmark.engine.evidence.stft import STFTParams, istft, magnitude_phase, stft
from evidence_toy_encoder import ToyBandEncoder, tone_in_noise

torch.set_num_threads(1)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


@pytest.mark.parametrize(
    "params",
    [
        ToyBandEncoder().stft_params(),
        {"n_fft": 1024, "hop_length": 320, "win_length": 1024},  # CLAP-like, hop not dividing n_fft
        {"n_fft": 512, "hop_length": 160, "win_length": 400},  # window shorter than n_fft
    ],
)
def test_all_ones_mask_reproduces_input(params: dict[str, int]) -> None:
    p = STFTParams.from_mapping(params)
    x, _ = tone_in_noise(2, seed=3, seconds=1.3)  # length not a multiple of the hop
    wav = torch.from_numpy(x).double()
    mag, phase = magnitude_phase(stft(wav, p))
    assert mag.shape == (2, p.n_freq, p.n_frames(x.shape[1]))
    y = istft(torch.ones_like(mag) * mag, phase, p, length=x.shape[1]).numpy()
    assert y.shape == x.shape
    for a, b in zip(x, y):
        assert snr_db(a, b) > 40.0


def test_zero_mask_is_silence_and_half_mask_halves() -> None:
    p = STFTParams.from_mapping(ToyBandEncoder().stft_params())
    x, _ = tone_in_noise(1, seed=4)
    mag, phase = magnitude_phase(stft(torch.from_numpy(x), p))
    assert np.abs(istft(0 * mag, phase, p, x.shape[1]).numpy()).max() < 1e-6
    half = istft(0.5 * mag, phase, p, x.shape[1]).numpy()
    assert snr_db(0.5 * x, half) > 40.0


def test_bad_params_are_named_errors() -> None:
    with pytest.raises(EvidenceError, match="hop_length"):
        STFTParams.from_mapping({"n_fft": 256, "win_length": 256})
    with pytest.raises(EvidenceError, match="hop_length <= win_length"):
        STFTParams.from_mapping({"n_fft": 256, "hop_length": 300, "win_length": 256})
