"""Procedural everyday sounds (engine/training/procedural.py) and how they join the corpus."""
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import scipy.stats
import soundfile as sf
import torch

from earmark.engine.encoders.embedded_model import EmbeddedClap, ModelConfig
from earmark.engine.training import procedural as P
from earmark.engine.training.corpus import PROCEDURAL, CorpusItem, procedural_items
from earmark.engine.training.everyday import category_of
from earmark.engine.training.features import compute_features


@pytest.mark.parametrize("name", sorted(P.GENERATORS))
def test_every_generator_renders_a_seeded_finite_sound(name):
    x = P.render(name, 0)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert 2.0 <= len(x) / P.SR <= 5.0
    assert abs(np.abs(x).max() - 0.9) < 1e-4
    np.testing.assert_array_equal(x, P.render(name, 0))  # regenerated bit for bit
    other = P.render(name, 1)
    assert len(other) != len(x) or np.abs(other - x).max() > 0.05  # variants differ


def test_every_label_names_its_everyday_category():
    """The labels are worded like the packages' labels, so each counts in the category it sounds like."""
    expect = {"rain": "rain", "wind": "wind", "fire": "fire crackling", "water": "running water", "splash": "running water",
              "thunder": "thunder", "engine": "engine", "explosion": "explosion", "gunshot": "gunshot",
              "machine_gun": "gunshot", "footsteps": "footsteps", "hammering": "hammering",
              "glass": "glass breaking", "bell": "bell ringing", "knock": "door", "door": "door",
              "axe": "axe chopping wood", "sword_clash": "sword", "sword_swing": "sword", "arrow": "bow and arrow",
              "birds": "birds chirping", "wolf": "wolf howling", "cow": "cow", "sheep": "sheep",
              "dog": "dog barking", "chicken": "chicken", "scream": "scream", "horse": "horse",
              "hooves": "horse", "pig": "pig", "laughter": "laughter", "cat": "cat meowing"}
    assert {name: category_of(label) for name, (_, label) in P.GENERATORS.items()} == expect


def _frame_db(x: np.ndarray, frame: float = 0.05) -> np.ndarray:
    n = int(frame * P.SR)
    rms = np.sqrt(np.mean(x[: len(x) // n * n].reshape(-1, n) ** 2, axis=1)) + 1e-9
    return 20 * np.log10(rms / rms.max())


def _centroid_hz(x: np.ndarray) -> float:
    f, p = scipy.signal.welch(x, P.SR, nperseg=4096)
    return float(np.sum(f * p) / np.sum(p))


def test_textures_are_continuous_and_impacts_are_not():
    """Rain, wind and a stream fill the whole sound; a knock or a gunshot is mostly silence."""
    for name in ("rain", "wind", "water"):
        for i in range(3):
            assert np.mean(_frame_db(P.render(name, i)) > -30) > 0.8, (name, i)  # wind: lulls between gusts
    for name in ("knock", "gunshot"):
        for i in range(3):
            assert np.mean(_frame_db(P.render(name, i)) > -20) < 0.5, (name, i)


def test_spectra_sit_where_the_sounds_do():
    """Thunder rumbles low, glass and birdsong are bright, a bell is tonal and rain is noise."""
    for i in range(3):
        assert _centroid_hz(P.render("thunder", i)) < 600
        assert _centroid_hz(P.render("glass", i)) > 2500
        f, p = scipy.signal.welch(P.render("birds", i), P.SR, nperseg=4096)
        assert 1500 < f[np.argmax(p)] < 8000
        flat = {n: scipy.stats.gmean(scipy.signal.welch(P.render(n, i), P.SR, nperseg=4096)[1] + 1e-20)
                / np.mean(scipy.signal.welch(P.render(n, i), P.SR, nperseg=4096)[1]) for n in ("bell", "rain")}
        assert flat["bell"] < 0.1 * flat["rain"], flat


def _loudness_rate_hz(x: np.ndarray) -> float:
    """The strongest rate (1–20 Hz) at which the loudness rises and falls."""
    n = int(0.01 * P.SR)
    env = np.sqrt(np.mean(x[: len(x) // n * n].reshape(-1, n) ** 2, axis=1))
    spec = np.abs(np.fft.rfft(env - env.mean()))
    rate = np.fft.rfftfreq(len(env), 0.01)
    band = (rate > 1) & (rate < 20)
    return float(rate[band][np.argmax(spec[band])])


def test_voices_have_their_rhythm_and_register():
    """Laughter pulses at four to six syllables a second; a whinny and a meow are one long arc
    each (no fast pulsing); a pig's grunts reach down below 350 Hz, a meow does not."""
    for i in range(4):
        assert 3.5 <= _loudness_rate_hz(P.render("laughter", i)) <= 6.5, i
        assert _loudness_rate_hz(P.render("cat", i)) < 2.5, i
        assert _loudness_rate_hz(P.render("horse", i)) < 2.5, i
    def low_share(name: str, i: int) -> float:
        f, p = scipy.signal.welch(P.render(name, i), P.SR, nperseg=8192)
        return float(p[f < 350].sum() / p.sum())

    assert all(low_share("pig", i) > 0.01 for i in range(6))
    assert all(low_share("cat", i) < 0.005 for i in range(6))


def test_procedural_items_are_written_once_and_labelled(tmp_path: Path):
    items = procedural_items(tmp_path, 1)
    assert len(items) == len(P.GENERATORS)
    assert {it.package for it in items} == {PROCEDURAL} and all(it.captions for it in items)
    stamp = {it.path: Path(it.path).stat().st_mtime_ns for it in items}
    again = procedural_items(tmp_path, 1)
    assert [it.path for it in again] == [it.path for it in items]
    assert all(Path(p).stat().st_mtime_ns == t for p, t in stamp.items())  # kept, not rewritten
    assert not list(tmp_path.rglob("*.tmp.wav"))
    assert procedural_items(tmp_path, 0) == []


def test_a_recipe_can_name_its_generators(tmp_path: Path, monkeypatch):
    """v8's 27 generators stay a recipe of their own; a corpus keys every sound by its path inside
    the cache, the same wherever the cache lives."""
    import earmark.engine.training.corpus as corpus

    assert len(P.V8_GENERATORS) == 27 and P.V8_GENERATORS[-1] == "scream"
    assert {"horse", "hooves", "pig", "laughter", "cat"} == set(P.GENERATORS) - set(P.V8_GENERATORS)
    made = P.write_procedural(tmp_path / "p", 1, names=("rain", "cat"))
    assert [p.name.split("_v")[0] for p, _ in made] == ["rain", "cat"]
    with pytest.raises(ValueError, match="no procedural generator named kazoo"):
        P.write_procedural(tmp_path / "p", 1, names=("rain", "kazoo"))
    monkeypatch.setattr(corpus, "synthesise", lambda cache: [])  # sox and espeak-ng sounds: not needed here
    keys = [[it.key for it in corpus.build_corpus(tmp_path / where, (), 1, ("rain", "cat"))] for where in ("a", "b/c")]
    assert keys[0] == keys[1] == [f"procedural/{p.name}" for p, _ in made]


def test_a_corpus_build_stopped_while_writing_its_manifest_leaves_the_previous_one_whole(tmp_path: Path, monkeypatch):
    """The manifest is written whole and renamed: a build that fails half-way through writing it
    leaves the previous manifest as it was, not half of a new one."""
    import json

    import earmark.engine.training.corpus as corpus

    monkeypatch.setattr(corpus, "synthesise", lambda cache: [])
    corpus.build_corpus(tmp_path, (), 1, ("rain", "cat"))
    before = (tmp_path / "manifest.jsonl").read_text()
    assert len(before.splitlines()) == 2
    written = []

    def dumps_then_fail(obj, *a, **k):
        if written:
            raise OSError("disk full")
        written.append(obj)
        return json.dumps(obj, *a, **k)

    monkeypatch.setattr(corpus.json, "dumps", dumps_then_fail)
    with pytest.raises(OSError, match="disk full"):
        corpus.build_corpus(tmp_path, (), 1, ("rain", "cat", "cow"))
    assert written and (tmp_path / "manifest.jsonl").read_text() == before


def test_procedural_sounds_leave_the_other_sounds_mixtures_as_drawn(tmp_path: Path):
    """Appended procedural sounds are never mixed, so the rest of the corpus keeps its mixtures."""
    items = []
    for i, freq in enumerate((220.0, 440.0, 880.0, 1760.0)):
        p = tmp_path / f"tone{i}.wav"
        t = np.arange(int(3.0 * 44100)) / 44100
        sf.write(p, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 44100)
        items.append(CorpusItem(str(p), "test", "CC0", f"tone {i}", "file-name"))
    extra = [CorpusItem(str(p), PROCEDURAL, "none", lab, PROCEDURAL)
             for p, lab in P.write_procedural(tmp_path / "proc", 1)[:3]]
    torch.manual_seed(0)
    tower = EmbeddedClap(ModelConfig()).audio
    common = dict(max_windows=1, pitch_prob=0.0, n_mixes=4, progress=False)
    plain = compute_features(items, tower, tmp_path / "cache", **common)
    more = compute_features(items + extra, tower, tmp_path / "cache", **common)
    mixed = lambda fs: [(int(a), int(b), lab) for a, b, lab, k in zip(fs.item, fs.partner, fs.labels, fs.kind) if k == 2]
    assert mixed(plain) and mixed(more) == mixed(plain)
    np.testing.assert_array_equal(more.features[more.kind == 2], plain.features[plain.kind == 2])
    assert sorted({int(i) for i in more.item[more.kind == 0]}) == list(range(len(items) + len(extra)))


@pytest.mark.parametrize("training, prototypes", [(True, True), (False, True), (True, False)])
def test_train_encoder_takes_procedural_sounds_where_the_recipe_says(tmp_path: Path, monkeypatch, training, prototypes):
    """`train_encoder` end to end on generated tones plus two procedural sounds (corpus and aiSFX
    checkpoint stubbed by a random CNN): the corpus is asked for the recipe's number of procedural
    sounds, the heads train on them unless ``procedural_training`` is off, and the shipped sound
    prototypes hold their labels unless ``procedural_prototypes`` is off."""
    import earmark.engine.training.train as T
    from earmark.engine.encoders.embedded_model import SfxCNN

    tones = []
    for i in range(6):
        label, freq = ("a beep", 880.0 + 40 * i) if i % 2 else ("a low hum", 110.0 + 10 * i)
        path = tmp_path / f"s{i}.wav"
        sf.write(path, (0.3 * np.sin(2 * np.pi * freq * np.arange(3 * 44100) / 44100)).astype(np.float32), 44100)
        tones.append(CorpusItem(str(path), "train-pkg" if i < 4 else "val-pkg", "CC0", label, "file-name"))
    asked = []

    def corpus(cache, packages, procedural_variants=0, procedural_generators=None):
        asked.append(procedural_variants)
        made = [it for it in procedural_items(tmp_path / "cache", procedural_variants) if it.label in ("rain", "thunder")]
        return tones + made

    monkeypatch.setattr(T, "build_corpus", corpus)
    torch.manual_seed(0)
    pretrained = {f"embedding_net.{k}": v for k, v in SfxCNN().state_dict().items()}
    monkeypatch.setattr(T, "aisfx_checkpoint", lambda cache: pretrained)
    cfg = T.TrainConfig(epochs=1, batch_size=4, max_windows=1, pitch_prob=0.0, n_mixes=0, threads=1,
                        val_packages=("val-pkg",), package_adversary_weight=0.0, procedural_variants=1,
                        procedural_training=training, procedural_prototypes=prototypes)
    report = T.train_encoder(tmp_path / "out", tmp_path / "cache", progress=False, config=cfg)
    assert asked == [1]
    assert report.n_train_rows == 6 + (2 if training else 0)  # one window per sound, all packages
    labels = torch.load(report.weights_path, weights_only=False)["sound_prototypes"]["labels"]
    assert ("rain" in labels and "thunder" in labels) == prototypes and {"a beep", "a low hum"} <= set(labels)
