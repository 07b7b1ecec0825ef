"""The benchmarks end to end in Python: known answers on the FakeEncoder, the adapter, the cache."""
from __future__ import annotations

import numpy as np
import pytest

from bench_fixtures import write_clotho, write_esc50, write_folders, write_generic_csv, write_manifest
from conftest import TEST_VOCAB
from fake_encoder import FakeEncoder
from earmark.engine.bench import BenchError
from earmark.engine.bench.datasets import read_dataset
from earmark.engine.bench.embed_cache import clip_embeddings
from earmark.engine.bench.report import format_table, write_outputs
from earmark.engine.bench.run import run_classify, run_retrieve

VOCAB = (str(TEST_VOCAB),)


class CountingEncoder(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.audio_calls = 0
        self.text_calls = 0

    def embed_audio(self, windows):
        self.audio_calls += 1
        return super().embed_audio(windows)

    def embed_text(self, texts):
        self.text_calls += 1
        return super().embed_text(texts)


def test_dense_and_concept_classify_noise_beep_hum(tmp_path):
    ds = read_dataset(write_esc50(tmp_path / "esc"))
    res = run_classify(ds, FakeEncoder(), vocabularies=VOCAB, lams=(0.05, 0.25), cache_dir=tmp_path / "cache")
    dense = res.rows[0]
    assert dense.kind == "dense" and dense.metrics["accuracy"] == 1.0
    assert dense.metrics["map"] == 1.0 and dense.metrics["f1_micro"] == 1.0
    assert dense.per_fold == {"1": 1.0, "2": 1.0} and dense.per_class == {"beep": 1.0, "hum": 1.0, "noise": 1.0}
    concept = [r for r in res.rows if r.kind == "concept"]
    assert [r.lam for r in concept] == [0.05, 0.25] and all(r.vocabulary == "test_vocab" for r in concept)
    assert all(r.metrics["accuracy"] == 1.0 for r in concept)
    assert concept[0].mean_l0 > concept[1].mean_l0 > 0  # larger λ, fewer active concepts
    assert all(0 < r.fidelity <= 1 for r in concept)
    assert res.chance["accuracy"] == pytest.approx(1 / 3)
    assert res.provenance["vocabularies"]["test_vocab"] == concept[0].vocabulary_hash
    assert res.provenance["encoder_fingerprint"] == FakeEncoder().fingerprint


def test_target_l0_rows(tmp_path):
    ds = read_dataset(write_folders(tmp_path / "f"))
    res = run_classify(ds, FakeEncoder(), vocabularies=VOCAB, target_l0s=(2, 5), cache_dir=tmp_path / "c")
    rows = [r for r in res.rows if r.kind == "concept"]
    assert [r.target_l0 for r in rows] == [2, 5] and rows[0].label == "concept test_vocab L0→2"
    assert abs(rows[0].mean_l0 - 2) <= 1 and abs(rows[1].mean_l0 - 5) <= 1


def test_adapter_rows_trained_on_other_folds(tmp_path):
    ds = read_dataset(write_generic_csv(tmp_path))
    res = run_classify(ds, FakeEncoder(), vocabularies=VOCAB, lams=(0.15,), adapter=True, folds=("2",),
                       cache_dir=tmp_path / "c")
    kinds = [r.kind for r in res.rows]
    assert kinds == ["dense", "concept", "dense+adapter", "concept+adapter"]
    assert res.dataset["clips"] == 6 and res.dataset["evaluated_folds"] == ["2"]
    ad = res.rows[2]
    assert ad.per_fold == {"2": 1.0} and ad.metrics["accuracy"] == 1.0
    with pytest.raises(BenchError, match="unknown fold"):
        run_classify(ds, FakeEncoder(), vocabularies=(), folds=("9",), cache_dir=tmp_path / "c")


def test_adapter_on_dataset_without_folds_uses_seeded_folds(tmp_path):
    ds = read_dataset(write_folders(tmp_path / "f"))
    res = run_classify(ds, FakeEncoder(), vocabularies=(), adapter=True, n_folds=3, seed=1, cache_dir=None)
    assert res.provenance["fold_assignment"] == "3 seeded folds"
    assert sorted(res.rows[1].per_fold) == ["1", "2", "3"]


def test_second_run_reuses_embeddings_and_codes(tmp_path):
    ds = read_dataset(write_esc50(tmp_path / "esc"))
    enc = CountingEncoder()
    first = run_classify(ds, enc, vocabularies=VOCAB, lams=(0.1,), cache_dir=tmp_path / "cache")
    assert enc.audio_calls == len(ds)  # one call per (short) clip
    files = sorted(p.name for p in (tmp_path / "cache").iterdir())
    enc.audio_calls = enc.text_calls = 0
    again = run_classify(ds, enc, vocabularies=VOCAB, lams=(0.1,), cache_dir=tmp_path / "cache")
    assert enc.audio_calls == 0 and enc.text_calls == 0
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == files
    assert again.rows[1].metrics == first.rows[1].metrics and again.rows[1].mean_l0 == first.rows[1].mean_l0
    run_classify(ds, enc, vocabularies=VOCAB, lams=(0.3,), cache_dir=tmp_path / "cache")
    assert enc.audio_calls == 0  # another sparsity: codes recomputed, audio never re-embedded


def test_clip_embedding_is_mean_of_windows(tmp_path):
    ds = read_dataset(write_folders(tmp_path / "f"))
    enc = FakeEncoder()
    emb, _ = clip_embeddings(ds, enc, cache_dir=None, pooling="mean")
    from earmark.engine.audio import load_mono

    audio = load_mono(ds.items[0].path, enc.sample_rate)  # 1.2 s → windows at 0 and 0.5 s (padded)
    w = np.zeros((2, enc.window_samples), np.float32)
    w[0] = audio[:16000]
    w[1, : audio.size - 8000] = audio[8000:]
    ref = enc.embed_audio(w).mean(0)
    np.testing.assert_allclose(emb[0], ref / np.linalg.norm(ref), atol=1e-6)


def test_clip_embedding_weights_windows_by_power_and_keys_the_cache_by_pooling(tmp_path):
    """The default pooling weights each window by its mean power (padding included), so a loud
    event outweighs a quiet tail; a silent file falls back to the plain mean."""
    import soundfile as sf

    from earmark.engine.bench.datasets import Dataset, Item

    enc = FakeEncoder()
    n = enc.window_samples
    t = np.arange(n) / enc.sample_rate
    rng = np.random.default_rng(0)
    audio = np.concatenate([0.5 * np.sin(2 * np.pi * 440 * t), 0.01 * rng.standard_normal(n)]).astype(np.float32)
    sf.write(tmp_path / "beep_then_hiss.wav", audio, enc.sample_rate, subtype="FLOAT")
    sf.write(tmp_path / "silence.wav", np.zeros(n + n // 4, np.float32), enc.sample_rate, subtype="FLOAT")
    ds = Dataset("d", "csv", str(tmp_path), (Item(str(tmp_path / "beep_then_hiss.wav"), ("a",)),
                                             Item(str(tmp_path / "silence.wav"), ("b",))))
    energy, key_energy = clip_embeddings(ds, enc, cache_dir=tmp_path / "cache")
    plain, key_plain = clip_embeddings(ds, enc, cache_dir=tmp_path / "cache", pooling="mean")
    assert key_energy != key_plain and len(list((tmp_path / "cache").iterdir())) == 2

    windows = np.stack([audio[0:n], audio[n // 2 : n // 2 + n], audio[n:]])  # hop n/2; the last ends at the end
    e = enc.embed_audio(windows).astype(np.float64)
    power = np.mean(windows.astype(np.float64) ** 2, axis=1)
    want = power @ e
    np.testing.assert_allclose(energy[0], want / np.linalg.norm(want), atol=1e-6)
    mean = e.mean(0)
    np.testing.assert_allclose(plain[0], mean / np.linalg.norm(mean), atol=1e-6)
    assert float(energy[0] @ plain[0]) < 0.9999  # the weighting changes the clip's embedding
    np.testing.assert_allclose(energy[1], plain[1], atol=1e-6)  # silence: nothing to weight by
    with pytest.raises(BenchError, match="pooling"):
        clip_embeddings(ds, enc, cache_dir=None, pooling="max")


def test_retrieve_one_clip_per_label_is_perfect(tmp_path):
    ds = read_dataset(write_clotho(tmp_path, per_label=1))
    res = run_retrieve(ds, FakeEncoder(), vocabularies=VOCAB, lams=(0.05,), cache_dir=tmp_path / "c")
    dense = res.rows[0].metrics
    assert all(v == 1.0 for v in dense.values()), dense
    assert res.dataset["clips"] == 3 and res.dataset["captions"] == 9
    assert res.chance["t2a_r1"] == pytest.approx(1 / 3) and res.chance["t2a_r5"] == 1.0
    assert res.rows[1].kind == "concept" and res.rows[1].metrics["t2a_r1"] == 1.0


def test_retrieve_same_label_clips_rank_in_the_top_three(tmp_path):
    ds = read_dataset(write_clotho(tmp_path, per_label=3))
    m = run_retrieve(ds, FakeEncoder(), vocabularies=(), cache_dir=None).rows[0].metrics
    assert m["t2a_r5"] == 1.0 and m["t2a_r10"] == 1.0 and m["a2t_r10"] == 1.0


def test_classify_and_retrieve_need_labels_and_captions(tmp_path):
    with pytest.raises(BenchError, match="have no label.*bench retrieve"):
        run_classify(read_dataset(write_clotho(tmp_path / "c")), FakeEncoder(), vocabularies=(), cache_dir=None)
    with pytest.raises(BenchError, match="no captions"):
        run_retrieve(read_dataset(write_folders(tmp_path / "f")), FakeEncoder(), vocabularies=(), cache_dir=None)
    with pytest.raises(BenchError, match="--lam must be > 0"):
        run_classify(read_dataset(write_folders(tmp_path / "f")), FakeEncoder(), vocabularies=VOCAB, lams=(0,),
                     cache_dir=None)


def test_manifest_val_split_classify_and_retrieve(tmp_path):
    ds = read_dataset(write_manifest(tmp_path), split="val")
    res = run_classify(ds, FakeEncoder(), vocabularies=(), adapter=True, cache_dir=None)
    assert res.dataset["folds"] == ["flare-game", "minetest-data"] and res.rows[0].metrics["accuracy"] == 1.0
    ret = run_retrieve(ds, FakeEncoder(), vocabularies=(), cache_dir=None)
    assert ret.rows[0].metrics["t2a_r10"] == 1.0 and ret.notes  # template captions shared by same-label clips


def test_outputs_table_json_png(tmp_path):
    ds = read_dataset(write_esc50(tmp_path / "esc"))
    res = run_classify(ds, FakeEncoder(), vocabularies=VOCAB, lams=(0.05, 0.15), adapter=True,
                       cache_dir=tmp_path / "c", command="earmark bench classify x")
    table = format_table([res])
    assert table.splitlines()[0] == "|  | L0 | fidelity | acc | acc (pooled) | mAP | F1 (macro) |"
    assert "| dense | – | – | 1.000 | 1.000 | 1.000 | 1.000 |" in table and "concept+adapter test_vocab λ=0.15" in table
    files = write_outputs(res, tmp_path / "out")
    for key in ("json", "table", "l0_plot", "per_class_plot"):
        assert (tmp_path / "out").joinpath(files[key].rsplit("/", 1)[1]).stat().st_size > 0
    assert open(files["l0_plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    ret = run_retrieve(read_dataset(write_clotho(tmp_path / "cl")), FakeEncoder(), vocabularies=VOCAB, lams=(0.1,),
                       cache_dir=tmp_path / "c")
    both = format_table([res, ret])
    assert "esc acc" in both and "clotho_captions_evaluation T→A R@1" in both


class TwoPromptEncoder(FakeEncoder):
    """Prefers two prompts; records every text it embeds."""

    default_prompts = ("{}", "a recording of {}")

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed_text(self, texts):
        self.texts += list(texts)
        return super().embed_text(texts)


def test_classify_averages_the_encoders_default_prompts_unless_told(tmp_path):
    from earmark.engine.bench.prompts import label_text
    from earmark.engine.encoders.base import l2_normalise

    ds = read_dataset(write_esc50(tmp_path / "esc"))
    enc = TwoPromptEncoder()
    res = run_classify(ds, enc, vocabularies=(), adapter=True, cache_dir=None)
    assert res.provenance["prompts"] == ["{}", "a recording of {}"]
    assert {"beep", "a recording of beep"} <= set(enc.texts)
    labels = ["rain", "wind_gust"]  # no keyword of the fake text tower: each text its own vector
    expected = l2_normalise(l2_normalise(enc.embed_text(["rain", "wind gust"]))
                            + l2_normalise(enc.embed_text([f"a recording of {x}" for x in ("rain", "wind gust")])))
    np.testing.assert_allclose(label_text(labels, enc.default_prompts, enc.embed_text), expected, atol=1e-6)
    assert not np.allclose(expected, l2_normalise(enc.embed_text(["rain", "wind gust"])), atol=1e-3)

    told = run_classify(ds, FakeEncoder(), vocabularies=(), prompts=("{} sound",), cache_dir=None)
    assert told.provenance["prompts"] == ["{} sound"]
    assert run_classify(ds, FakeEncoder(), vocabularies=(), cache_dir=None).provenance["prompts"] == [
        "This is a sound of {}"]
    with pytest.raises(BenchError, match="must contain"):
        run_classify(ds, FakeEncoder(), vocabularies=(), prompts=("{} ok", "no slot"), cache_dir=None)
