"""Training block 4 from cached block-3 maps (TrainConfig.block4_scale): the maps path computes
what the CNN computes, training moves only Δ and the heads, and folding Δ into the CNN ships the
model that was measured."""
from __future__ import annotations

import numpy as np
import torch
from earmark.engine.encoders.embedded_model import EmbeddedClap, ModelConfig
from earmark.engine.training import captions as C
from earmark.engine.training.features import FeatureExtractor, FeatureSet
from earmark.engine.training.train import TrainConfig, fit
from earmark.engine.training.tuned_block4 import Block3Maps, Block4TunedClap

torch.set_num_threads(1)


def _windows(n: int) -> np.ndarray:
    cfg = ModelConfig().audio
    rng = np.random.default_rng(0)
    t = np.arange(round(cfg.window_seconds * cfg.sample_rate)) / cfg.sample_rate
    tones = [np.sin(2 * np.pi * (200 + 300 * i) * t) * (0.2 + 0.1 * i) for i in range(n)]
    return np.stack([x + 0.05 * rng.standard_normal(len(x)) for x in tones]).astype(np.float32)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_maps_path_equals_the_cnn_and_folding_ships_what_was_trained() -> None:
    torch.manual_seed(0)
    plain = EmbeddedClap(ModelConfig()).eval()
    windows = _windows(3)
    maps = torch.from_numpy(Block3Maps(plain.audio)(windows))
    assert maps.dtype == torch.float16 and maps.shape == (3, 256 * 12 * 12)
    pooled = torch.from_numpy(FeatureExtractor(plain.audio)(windows))  # what the frozen CNN gives

    tuned = Block4TunedClap(ModelConfig(), scale=0.1)
    missing = tuned.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["d1", "d2"]  # Δ starts at zero: the frozen model exactly
    tuned.eval()
    with torch.no_grad():
        assert _relative_error(tuned.pooled(maps), pooled) < 5e-3  # float16 maps against float32
        tuned.d1.normal_(0, float(tuned.audio.cnn.conv_block4.conv1.weight.std()))
        tuned.d2.normal_(0, float(tuned.audio.cnn.conv_block4.conv2.weight.std()))
        moved = tuned.pooled(maps)
        assert _relative_error(moved, pooled) > 0.02  # Δ changes block 4's output...
        shipped = tuned.folded()
        assert isinstance(shipped, EmbeddedClap) and not isinstance(shipped, Block4TunedClap)
        assert set(shipped.state_dict()) == set(plain.state_dict())
        through_cnn = torch.from_numpy(FeatureExtractor(shipped.audio)(windows))
        assert _relative_error(moved, through_cnn) < 5e-3  # ...and the folded CNN computes the same
        np.testing.assert_allclose(tuned.project_audio_features(maps).numpy(),
                                   shipped.project_audio_features(through_cnn).numpy(), atol=2e-3)


def test_fit_trains_delta_and_heads_but_not_the_pretrained_cnn() -> None:
    torch.manual_seed(0)
    model = Block4TunedClap(ModelConfig(), scale=0.1)
    windows = _windows(6)
    maps = Block3Maps(model.audio)(windows)
    labels = ["rain", "rain", "dog barking", "dog barking", "sine tone", "sine tone"]
    fs = FeatureSet(features=maps, item=np.arange(6), partner=np.full(6, -1), kind=np.zeros(6, int), labels=labels)
    rng = np.random.default_rng(1)
    text = {c: rng.standard_normal(384).astype(np.float32) for lab in set(labels) for c in C.captions_for(lab)}
    cnn_before = {k: v.clone() for k, v in model.audio.cnn.state_dict().items()}
    head_before = model.audio.proj.linear1.weight.detach().clone()
    fit(model, fs, np.arange(6), text, TrainConfig(epochs=3, batch_size=4, block4_scale=0.1, package_adversary_weight=0.0), progress=False)
    assert model.block4_change() > 0
    assert not torch.equal(model.audio.proj.linear1.weight, head_before)
    for k, v in model.audio.cnn.state_dict().items():
        assert torch.equal(v, cnn_before[k]), k  # W₀ and batch-norm statistics stay aiSFX's


def test_train_encoder_with_block4_tuning_ships_a_plain_checkpoint_with_the_tuned_cnn(tmp_path, monkeypatch) -> None:
    """`train_encoder` end to end on eight generated sounds (corpus and aiSFX checkpoint stubbed by
    a random CNN): with block4_scale the saved checkpoint loads strictly as the embedded encoder
    and its block 4 has moved off the pretrained weights; without it the CNN ships unchanged."""
    import soundfile as sf

    import earmark.engine.training.train as T
    from earmark.engine.encoders.embedded import EmbeddedEncoder
    from earmark.engine.encoders.embedded_model import SfxCNN
    from earmark.engine.training.corpus import CorpusItem

    items = []
    for i in range(8):
        label, freq = ("a beep", 880.0 + 40 * i) if i % 2 else ("a low hum", 110.0 + 10 * i)
        path = tmp_path / f"s{i}.wav"
        t = np.arange(3 * 44100) / 44100
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 44100)
        items.append(CorpusItem(str(path), "train-pkg" if i < 4 else "val-pkg", "CC0", label, "file-name"))
    torch.manual_seed(0)
    pretrained = {f"embedding_net.{k}": v for k, v in SfxCNN().state_dict().items()}
    monkeypatch.setattr(T, "build_corpus", lambda cache, packages, **procedural: items)
    monkeypatch.setattr(T, "aisfx_checkpoint", lambda cache: pretrained)
    moved = {}
    for scale in (0.1, 0.0):
        cfg = TrainConfig(epochs=2, batch_size=4, max_windows=1, pitch_prob=0.0, n_mixes=0, threads=1,
                          val_packages=("val-pkg",), block4_scale=scale)
        report = T.train_encoder(tmp_path / f"out-{scale}", tmp_path / "cache", progress=False, config=cfg)
        assert report.config["block4_scale"] == scale and "model" in report.validation
        encoder = EmbeddedEncoder.load(report.weights_path, device="cpu")  # strict: no Δ keys left over
        shipped = encoder.model.audio.cnn.conv_block4.conv2.weight.detach()
        moved[scale] = float((shipped - pretrained["embedding_net.conv_block4.conv2.weight"]).norm())
    assert (tmp_path / "cache" / "block3-maps").is_dir()
    assert moved[0.1] > 0 and moved[0.0] == 0
