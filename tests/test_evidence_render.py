"""Rendering: WAVs, PNG, labelled saliency fallback, chunking of long hits."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from PIL import Image

from earmark.engine.evidence.decoder import MaskDecoder
from earmark.engine.evidence.errors import EvidenceError
from earmark.engine.evidence.render import compute_mask, render_evidence
from earmark.engine.evidence.saliency import SALIENCY_LABEL
from evidence_toy_encoder import SAMPLE_RATE, ToyBandEncoder, tone_in_noise

torch.set_num_threads(1)


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / np.sum((ref - est) ** 2)))


def _hit(seconds: float, seed: int = 0) -> np.ndarray:
    x, _ = tone_in_noise(1, seed=seed, seconds=seconds)
    return x[0]


def test_fallback_is_labelled_saliency_and_in_plus_out_is_the_input(tmp_path) -> None:
    enc = ToyBandEncoder()
    x = _hit(2.3)  # 2.3 windows long: three chunks, the last aligned to the end
    ev = render_evidence(enc, x, SAMPLE_RATE, "tone", None, tmp_path, stem="hit42")
    assert ev.method == "gradient-saliency" and ev.label == SALIENCY_LABEL
    assert ev.mask_in_wav.name == "hit42.gradient-saliency.in.wav" and ev.png.name == "hit42.gradient-saliency.png"
    a, sr = sf.read(ev.mask_in_wav, dtype="float64")
    b, _ = sf.read(ev.mask_out_wav, dtype="float64")
    assert sr == SAMPLE_RATE and a.shape == b.shape == x.shape
    assert snr_db(x, a + b) > 35.0  # ISTFT is linear: M|X| + (1 − M)|X| = |X| (16-bit files)
    img = Image.open(ev.png)
    frames = 1 + len(x) // 64  # hop 64 (the toy encoder's STFT)
    assert img.mode == "RGB" and img.height == 256 + 30 and img.width == 44 + min(1200, max(480, 6 * frames))
    assert ev.duration_s == pytest.approx(2.3)
    assert 0.0 < ev.mask_mean < 1.0


def test_decoder_mask_near_one_reproduces_the_hit(tmp_path) -> None:
    enc = ToyBandEncoder()
    dec = MaskDecoder.for_encoder(enc)
    with torch.no_grad():
        dec.head2.bias.fill_(20.0)  # sigmoid(20) ≈ 1: mask-in ≈ the hit, mask-out ≈ silence
    x = _hit(1.7, seed=1)
    ev = render_evidence(enc, x, SAMPLE_RATE, "tone", dec, tmp_path)
    assert ev.method == "lmac" and ev.mask_in_wav.name == "evidence.lmac.in.wav"
    a, _ = sf.read(ev.mask_in_wav, dtype="float64")
    b, _ = sf.read(ev.mask_out_wav, dtype="float64")
    assert snr_db(x, a) > 35.0
    assert np.abs(b).max() < 1e-3
    assert ev.similarity_in == pytest.approx(ev.similarity_original, abs=1e-4)


def test_other_rates_and_short_hits() -> None:
    enc = ToyBandEncoder()
    x = _hit(0.3, seed=2)  # shorter than one window: zero-padded for the encoder
    ev = compute_mask(enc, soxr.resample(x, SAMPLE_RATE, 16000), 16000, "tone")
    assert ev.sample_rate == SAMPLE_RATE and abs(ev.n_samples - len(x)) <= 1
    assert ev.mask.shape == ev.magnitude.shape == (129, 1 + ev.n_samples // 64)
    assert ev.mask.min() >= 0.0 and ev.mask.max() <= 1.0
    with pytest.raises(EvidenceError, match="mono"):
        compute_mask(enc, np.zeros((100, 2), np.float32), SAMPLE_RATE, "tone")
