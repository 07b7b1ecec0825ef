"""Decoder shape/range, checkpoints, and training on tone-in-noise."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from earmark.engine.evidence.checkpoint import load_checkpoint
from earmark.engine.evidence.decoder import MaskDecoder
from earmark.engine.evidence.errors import CheckpointMismatch, EvidenceError
from earmark.engine.evidence.objective import ObjectiveWeights, lmac_objective
from earmark.engine.evidence.stft import STFTParams, magnitude_phase, stft
from earmark.engine.evidence.train import SegmentExample, TrainConfig, iter_batches, train_decoder
from evidence_toy_encoder import SAMPLE_RATE, ToyBandEncoder, tone_in_noise

torch.set_num_threads(1)
NEGATIVES = ["hiss", "rumble", "dog bark"]


def _mag(enc: ToyBandEncoder, x: np.ndarray) -> torch.Tensor:
    p = STFTParams.from_mapping(enc.stft_params())
    return magnitude_phase(stft(torch.from_numpy(x), p))[0]


def test_mask_shape_and_range() -> None:
    enc = ToyBandEncoder()
    dec = MaskDecoder.for_encoder(enc)
    x, _ = tone_in_noise(3, seed=1)
    mag = _mag(enc, x)
    with torch.no_grad():
        _, fmaps = enc.embed_from_magnitude(mag)
        # random FiLM/heads so the output is not the trivial 0.5 everywhere
        for p in dec.parameters():
            p.add_(torch.randn_like(p))
        mask = dec(fmaps, enc.text_tensor(["tone", "hiss", "dog"]), mag)
    assert mask.shape == mag.shape == (3, 129, 126)
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    assert float(mask.std()) > 0.01
    # conditioning matters: another text gives another mask
    with torch.no_grad():
        other = dec(fmaps, enc.text_tensor(["rumble"] * 3), mag)
    assert float((other - mask).abs().max()) > 1e-3


def test_objective_terms_are_per_example() -> None:
    """Same examples repeated → same loss: nothing scales with the batch size."""
    enc = ToyBandEncoder()
    x, _ = tone_in_noise(2, seed=2)
    mag = _mag(enc, x)
    mask = torch.full_like(mag, 0.3)
    cands = enc.text_tensor(["tone", "hiss"])
    one = lmac_objective(enc, mag, mask, cands, torch.tensor([0, 0]), ObjectiveWeights(), 10.0)
    four = lmac_objective(enc, mag.repeat(2, 1, 1), mask.repeat(2, 1, 1), cands, torch.tensor([0] * 4), ObjectiveWeights(), 10.0)
    assert one.sparsity.item() == pytest.approx(0.3)
    assert four.total.item() == pytest.approx(one.total.item(), rel=1e-5)
    w = ObjectiveWeights()
    assert one.total.item() == pytest.approx(w.mask_in * one.mask_in.item() + w.mask_out * one.mask_out.item() + w.sparsity * 0.3, rel=1e-5)
    # by hand for example 0: L_in = −log p_in(tone), L_out = −log(1 − p_out(tone))
    with torch.no_grad():
        z_in, _ = enc.embed_from_magnitude(0.3 * mag[:1])
        z_out, _ = enc.embed_from_magnitude(0.7 * mag[:1])
    p_in = torch.softmax(10.0 * z_in @ cands.T, dim=1)[0, 0].item()
    p_out = torch.softmax(10.0 * z_out @ cands.T, dim=1)[0, 0].item()
    single = lmac_objective(enc, mag[:1], mask[:1], cands, torch.tensor([0]), ObjectiveWeights(), 10.0)
    assert single.mask_in.item() == pytest.approx(-np.log(p_in), rel=1e-4)
    assert single.mask_out.item() == pytest.approx(-np.log(1 - p_out), rel=1e-4)


def test_synonyms_are_not_competitors() -> None:
    """'beep' and 'tone' share an embedding: with 'tone' as target, 'beep' leaves the softmax."""
    enc = ToyBandEncoder()
    x, _ = tone_in_noise(1, seed=2)
    mag = _mag(enc, x)
    cands = enc.text_tensor(["tone", "beep", "hiss"])
    with_syn = lmac_objective(enc, mag, torch.ones_like(mag), cands, torch.tensor([0]), ObjectiveWeights(), 10.0)
    without = lmac_objective(enc, mag, torch.ones_like(mag), cands[[0, 2]], torch.tensor([0]), ObjectiveWeights(), 10.0)
    assert with_syn.mask_in.item() == pytest.approx(without.mask_in.item(), rel=1e-6)


def test_training_lowers_loss_and_finds_the_tone(tmp_path) -> None:
    enc = ToyBandEncoder()
    x, (lo, hi) = tone_in_noise(32, seed=0)
    segs = [SegmentExample(w, ["tone", "beep"]) for w in x]
    ckpt = tmp_path / "decoder.pt"
    res = train_decoder(enc, iter_batches(segs, 8, seed=0), ckpt, TrainConfig(steps=120, save_every=60), NEGATIVES, progress=False)
    losses = np.array([h["total"] for h in res.history])
    assert len(losses) == 120 and res.steps_done == 120
    assert losses[-10:].mean() < 0.1 * losses[:5].mean()

    xt, _ = tone_in_noise(4, seed=99)  # held-out clips
    mag = _mag(enc, xt)
    with torch.no_grad():
        _, fmaps = enc.embed_from_magnitude(mag)
        mask = res.decoder(fmaps, enc.text_tensor(["beep"] * 4), mag).numpy()
    hz = np.arange(mask.shape[1]) * SAMPLE_RATE / 256
    band = (hz >= lo - 40) & (hz <= hi + 40)
    inside, outside = mask[:, band].mean(), mask[:, ~band].mean()
    assert inside > 0.2 and inside > 5.0 * outside, (inside, outside)


def test_resume_and_fingerprint_check(tmp_path) -> None:
    enc = ToyBandEncoder()
    x, _ = tone_in_noise(8, seed=0)
    segs = [SegmentExample(w, ["tone"], caption="a beep in noise") for w in x]
    ckpt = tmp_path / "decoder.pt"
    first = train_decoder(enc, iter_batches(segs, 4), ckpt, TrainConfig(steps=3), NEGATIVES, progress=False)
    assert first.start_step == 0 and first.steps_done == 3
    second = train_decoder(enc, iter_batches(segs, 4), ckpt, TrainConfig(steps=5), NEGATIVES, progress=False)
    assert second.start_step == 3 and second.steps_done == 5 and len(second.history) == 5
    dec, meta = load_checkpoint(ckpt, enc.fingerprint)
    assert meta.step == 5 and meta.encoder_fingerprint == enc.fingerprint
    for a, b in zip(dec.state_dict().values(), second.decoder.state_dict().values()):
        assert torch.equal(a, b.cpu())
    with pytest.raises(CheckpointMismatch, match="retrain"):
        load_checkpoint(ckpt, "0" * 16)
    with pytest.raises(EvidenceError, match="no decoder checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_batches_need_targets() -> None:
    with pytest.raises(EvidenceError, match="concepts or a caption"):
        next(iter_batches([SegmentExample(np.zeros(8000, np.float32), [])], 2))


def test_decision_targets_are_sampled_at_their_share() -> None:
    """decision_prob picks the segment's decision; the rest come from its concepts or caption."""
    segs = [SegmentExample(np.zeros(800, np.float32), ["rain", "wind"], caption="a storm", decision="thunder")
            for _ in range(8)]
    always = next(iter_batches(segs, 8, seed=1, decision_prob=1.0))
    assert set(always.targets) == {"thunder"}
    never = next(iter_batches(segs, 8, seed=1, decision_prob=0.0))
    assert "thunder" not in never.targets and set(never.targets) <= {"rain", "wind", "a storm"}
    targets = [t for _, b in zip(range(50), iter_batches(segs, 8, seed=2, decision_prob=0.8)) for t in b.targets]
    share = targets.count("thunder") / len(targets)
    assert 0.7 < share < 0.9, share


@pytest.mark.gpu
def test_training_and_rendering_on_gpu(tmp_path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from earmark.engine.evidence.render import render_evidence

    enc = ToyBandEncoder(device="cuda")
    x, _ = tone_in_noise(8, seed=0)
    segs = [SegmentExample(w, ["tone"]) for w in x]
    res = train_decoder(enc, iter_batches(segs, 4), tmp_path / "d.pt", TrainConfig(steps=5), NEGATIVES, progress=False)
    assert res.decoder.freq_proj.device.type == "cuda"
    dec, _ = load_checkpoint(tmp_path / "d.pt", enc.fingerprint)  # loaded on CPU, follows the encoder
    ev = render_evidence(enc, x[0], SAMPLE_RATE, "tone", dec, tmp_path)
    assert ev.method == "lmac" and ev.png.exists()
