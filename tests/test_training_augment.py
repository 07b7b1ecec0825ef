"""Acoustic views (engine/training/features.py) and similar-label positives (train.py)."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from earmark.engine.encoders.embedded_model import EmbeddedClap, ModelConfig
from earmark.engine.training import captions as C
from earmark.engine.training.corpus import CorpusItem
from earmark.engine.training.features import VIEW_KIND, acoustic_view, compute_features
from earmark.engine.training.train import TrainConfig, TrainingError, block3_maps, fit, similar_labels
from earmark.engine.training.tuned_block4 import Block4TunedClap
from test_everyday import _tiny_set

N = 101_430  # one 2.3 s window at 44.1 kHz


def test_acoustic_view_is_a_window_through_a_changed_channel():
    t = np.arange(5 * 44100) / 44100
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    wave[: 44100] = 0.0  # a silent first second: views come from the louder half of the grid
    views = [acoustic_view(wave, N, 44100, np.random.default_rng(s)) for s in range(8)]
    for v in views:
        assert v.shape == (N,) and v.dtype == np.float32
        assert abs(np.abs(v).max() - 0.9) < 1e-4  # peak-normalised
        assert np.sqrt(np.mean(v**2)) > 0.1  # not the silent second
    # Deterministic for a given generator state, different across states.
    again = acoustic_view(wave, N, 44100, np.random.default_rng(3))
    np.testing.assert_array_equal(again, views[3])
    assert min(np.abs(views[0] - v).max() for v in views[1:]) > 1e-3


def test_acoustic_view_keeps_a_short_sound_whole():
    click = np.zeros(2000, np.float32)
    click[100:110] = 1.0
    v = acoustic_view(click, N, 44100, np.random.default_rng(0))
    assert v.shape == (N,)
    assert np.argmax(np.abs(v)) < N  # somewhere inside the window
    assert np.sum(np.abs(v) > 0.3) >= 1


def _two_tones(folder: Path) -> list[CorpusItem]:
    """Two 3 s sine files written by soundfile, as corpus items."""
    items = []
    for i, (label, freq) in enumerate((("a beep", 880.0), ("a low hum", 110.0))):
        p = folder / f"s{i}.wav"
        t = np.arange(int(3.0 * 44100)) / 44100
        sf.write(p, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 44100)
        items.append(CorpusItem(str(p), "test", "CC0", label, "file-name"))
    return items


def test_compute_features_adds_views_per_sound(tmp_path: Path):
    items = _two_tones(tmp_path)
    torch.manual_seed(0)
    tower = EmbeddedClap(ModelConfig()).audio
    fs = compute_features(items, tower, tmp_path / "cache", max_windows=1, pitch_prob=0.0,
                          n_mixes=0, acoustic_views=2, progress=False)
    assert sorted(fs.kind.tolist()) == [0, 0, 3, 3, 3, 3]
    assert [fs.labels[i] for i in np.where(fs.kind == 3)[0]] == ["a beep", "a beep", "a low hum", "a low hum"]
    # Cached: a second call reads the same rows back.
    again = compute_features(items, tower, tmp_path / "cache", max_windows=1, pitch_prob=0.0,
                             n_mixes=0, acoustic_views=2, progress=False)
    np.testing.assert_array_equal(again.features, fs.features)


def test_pitch_draw_is_the_same_in_any_cache_folder(tmp_path: Path):
    """The pitch augmentation hashes a sound's key (its path inside the corpus cache), so the
    same corpus in two folders draws the same shifts: the model card's command reproduces the
    shipped run wherever the cache lives."""
    torch.manual_seed(0)
    tower = EmbeddedClap(ModelConfig()).audio
    draws = []
    for folder in ("here", "somewhere/else"):
        root = tmp_path / folder
        (root / "x").mkdir(parents=True)
        items = []
        for i in range(10):
            p = root / "x" / f"s{i}.wav"
            t = np.arange(int(2.5 * 44100)) / 44100
            sf.write(p, (0.3 * np.sin(2 * np.pi * (200.0 + 90 * i) * t)).astype(np.float32), 44100)
            items.append(CorpusItem(str(p), "test", "CC0", f"tone {i}", "file-name", key=f"x/s{i}.wav"))
        fs = compute_features(items, tower, root, max_windows=1, pitch_prob=0.5, n_mixes=0, progress=False)
        draws.append(sorted(fs.item[fs.kind == 1].tolist()))
        assert items[0].draw_key == "x/s0.wav"
    assert 0 < len(draws[0]) < 10  # some sounds shifted, some not
    assert draws[0] == draws[1]
    assert CorpusItem("/a/b.wav", "p", "l", "x", "r").draw_key == "/a/b.wav"  # hand-built: the path


def test_similar_labels_are_positives():
    rng = np.random.default_rng(0)
    labels = ["rain", "rainfall", "a dog barking"]
    text = {c: rng.standard_normal(384).astype(np.float32) for lab in labels for c in C.captions_for(lab)}
    for c_new, c_old in zip(C.captions_for("rainfall"), C.captions_for("rain")):
        text[c_new] = text[c_old] + 0.01 * rng.standard_normal(384).astype(np.float32)
    same = similar_labels(labels, text, 0.9)
    assert same.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert similar_labels(labels, text, 1.01).tolist() == np.eye(3, dtype=bool).tolist()  # only itself


def test_fit_with_similar_positives_learns():
    fs, text = _tiny_set()
    torch.manual_seed(0)
    model = EmbeddedClap(ModelConfig())
    cfg = TrainConfig(epochs=30, batch_size=16, threads=1, positive_similarity=0.9, package_adversary_weight=0.0)
    losses = fit(model, fs, np.arange(len(fs.labels)), text, cfg, progress=False)
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_recipes_without_views_never_train_on_view_rows() -> None:
    assert VIEW_KIND not in TrainConfig().row_kinds()
    assert VIEW_KIND in TrainConfig(acoustic_views=2).row_kinds()
    assert TrainConfig(acoustic_views=2, train_kinds=(0, 2)).row_kinds() == (0, 2)


def test_fit_with_the_all_label_softmax_learns_and_changes_the_heads():
    fs, text = _tiny_set()
    rows = np.arange(len(fs.labels))
    trained = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = EmbeddedClap(ModelConfig())
        cfg = TrainConfig(epochs=30, batch_size=16, threads=1, label_softmax_weight=weight, positive_similarity=0.9,
                          package_adversary_weight=0.0)
        losses = fit(model, fs, rows, text, cfg, progress=False)
        assert np.mean(losses[-10:]) < np.mean(losses[:10])
        trained[weight] = model.text_proj.linear1.weight.detach().clone()
    assert not torch.allclose(trained[0.0], trained[1.0])  # the extra term is not a no-op


def test_cached_block3_maps_through_block4_give_the_pooled_features(tmp_path: Path):
    """`block3_maps` caches block 3's maps through compute_features(extract=) for the same rows as
    the pooled features, and Block4TunedClap runs block 4 on them: with Δ = 0 that must give the
    pooled CNN feature of the same windows (within fp16 storage), which pins the maps' (C, F, T)
    layout; maps of other rows are refused."""
    items = _two_tones(tmp_path)
    torch.manual_seed(0)
    model = Block4TunedClap(ModelConfig(), scale=0.1).eval()
    cfg = TrainConfig(max_windows=1, pitch_prob=0.0, n_mixes=0)
    common = dict(max_windows=1, pitch_prob=0.0, n_mixes=0, progress=False)
    pooled = compute_features(items, model.audio, tmp_path / "pooled", **common)
    maps = block3_maps(items, model.audio, tmp_path / "maps", pooled, cfg, progress=False)
    # each extractor keeps its own dtype: pooled rows float32, maps float16 (half the memory)
    assert pooled.features.dtype == np.float32
    assert maps.features.shape == (2, 256 * 12 * 12) and maps.features.dtype == np.float16
    with torch.no_grad():
        got = model.pooled(torch.from_numpy(maps.features)).numpy()
    np.testing.assert_allclose(got, pooled.features, atol=5e-3 * np.abs(pooled.features).max())
    with_a_mixture = compute_features(items, model.audio, tmp_path / "pooled-mix", **{**common, "n_mixes": 1})
    with pytest.raises(TrainingError, match="not for the same rows"):
        block3_maps(items, model.audio, tmp_path / "maps", with_a_mixture, cfg, progress=False)
