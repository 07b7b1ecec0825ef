"""The mask pass's precision: bf16 where the CPU has it, recorded, and close to float32."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from earmark.engine.evidence.decoder import MaskDecoder
from earmark.engine.evidence.errors import EvidenceError
from earmark.engine.evidence.evaluate import evaluate_faithfulness
from earmark.engine.evidence.precision import cpu_has_bf16, resolve_precision
from earmark.engine.evidence.render import _target_embedding, compute_mask, render_evidence
from evidence_toy_encoder import SAMPLE_RATE, ToyBandEncoder, tone_in_noise

needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16")


def test_resolve_precision():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("auto", "cpu") == ("bf16" if cpu_has_bf16() else "fp32")
    with pytest.raises(EvidenceError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")


def test_saliency_fallback_stays_fp32(tmp_path):
    x, _ = tone_in_noise(1, seed=0, seconds=1.0)
    ev = render_evidence(ToyBandEncoder(), x[0], SAMPLE_RATE, "tone", None, tmp_path, precision="auto")
    assert ev.method == "gradient-saliency" and ev.precision == "fp32"


@pytest.fixture(scope="module")
def embedded():
    from earmark.engine.encoders import load_encoder

    enc = load_encoder("embedded", device="cpu")
    return enc, MaskDecoder.for_encoder(enc)


@needs_bf16
def test_bf16_mask_is_close_to_fp32_on_the_embedded_encoder(embedded):
    enc, dec = embedded
    torch.manual_seed(0)
    for p in dec.parameters():  # a decoder with varied masks, not the near-constant initial one
        p.data.add_(0.2 * torch.randn_like(p))
    x, _ = tone_in_noise(1, seed=3, seconds=4.0)
    hit = x[0]
    a = compute_mask(enc, hit, SAMPLE_RATE, "a beep", dec, check=True, precision="fp32")
    b = compute_mask(enc, hit, SAMPLE_RATE, "a beep", dec, check=True, precision="bf16")
    assert (a.precision, b.precision) == ("fp32", "bf16")
    assert a.mask.std() > 0.05  # the comparison is between masks that vary
    assert np.abs(a.mask - b.mask).mean() < 0.03  # measured 0.012 (mask std 0.42)
    assert b.similarity_original == pytest.approx(a.similarity_original, abs=0.01)
    assert b.similarity_in == pytest.approx(a.similarity_in, abs=0.02)


@needs_bf16
def test_evaluation_scores_bf16_masks():
    enc = ToyBandEncoder()
    dec = MaskDecoder.for_encoder(enc)
    x, _ = tone_in_noise(6, seed=1)
    texts = ["tone", "hiss", "rumble"]
    a = evaluate_faithfulness(enc, x, texts, decoder=dec, methods=["lmac"], batch_size=3)
    b = evaluate_faithfulness(enc, x, texts, decoder=dec, methods=["lmac"], batch_size=3, mask_precision="bf16")
    assert b.scores["lmac"].Fid_In == pytest.approx(a.scores["lmac"].Fid_In, abs=0.2)


def test_target_embeddings_are_cached_per_encoder():
    enc = ToyBandEncoder()
    first = _target_embedding(enc, "tone")
    assert _target_embedding(enc, "tone") is first
    torch.testing.assert_close(first, enc.text_tensor(["tone"]))
    other = ToyBandEncoder()
    assert _target_embedding(other, "tone") is not first
