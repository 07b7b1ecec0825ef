"""hf backend specifics: hub ids from the local cache only, fused models, the CLI end to end."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from earmark.engine.encoders import EncoderError, load_encoder


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    import torch

    from encoder_fixtures import build_tiny_hf_clap

    torch.set_num_threads(1)
    return build_tiny_hf_clap(tmp_path_factory.mktemp("hf") / "tiny")


def test_hub_id_not_in_local_cache_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError, match="not in the local Hugging Face cache") as err:
        load_encoder("hf:laion/clap-htsat-unfused", device="cpu")
    assert "huggingface-cli download laion/clap-htsat-unfused" in str(err.value)


def test_hub_id_resolves_from_the_local_cache(tiny_dir, tmp_path, monkeypatch) -> None:
    """A model laid out as the HF cache does (models--owner--name/snapshots/REV) loads by id."""
    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny-clap" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    for f in tiny_dir.iterdir():
        (snap / f.name).symlink_to(f)
    (cache / "models--acme--tiny-clap" / "refs").mkdir()
    (cache / "models--acme--tiny-clap" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    by_id = load_encoder("hf:acme/tiny-clap", device="cpu")
    by_dir = load_encoder(f"hf:{tiny_dir}", device="cpu")
    assert by_id.name == "hf:acme/tiny-clap"
    assert by_id.fingerprint == by_dir.fingerprint
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, by_id.window_samples)).astype(np.float32)
    assert np.array_equal(by_id.embed_audio(x), by_dir.embed_audio(x))


def test_a_relative_directory_is_recorded_absolute(tiny_dir, monkeypatch) -> None:
    monkeypatch.chdir(tiny_dir.parent)
    assert load_encoder(f"hf:{tiny_dir.name}", device="cpu").name == f"hf:{tiny_dir.resolve()}"


def test_directory_without_config_names_the_missing_file(tmp_path) -> None:
    d = tmp_path / "half"
    d.mkdir()
    (d / "vocab.json").write_text("{}")
    with pytest.raises(EncoderError, match="config.json"):
        load_encoder(f"hf:{d}", device="cpu")


def test_fingerprint_changes_with_weights(tiny_dir, tmp_path) -> None:
    from encoder_fixtures import build_tiny_hf_clap

    other = build_tiny_hf_clap(tmp_path / "other", seed=1)
    assert load_encoder(f"hf:{other}", device="cpu").fingerprint != load_encoder(f"hf:{tiny_dir}", device="cpu").fingerprint


def test_fusion_model_is_batch_independent(tmp_path) -> None:
    """transformers' extractor flags a random clip as 'longer' in fusion mode; earmark must not."""
    import torch
    from transformers import ClapConfig, ClapModel, ClapProcessor

    from encoder_fixtures import build_tiny_hf_clap

    d = build_tiny_hf_clap(tmp_path / "fused")
    cfg = ClapConfig.from_pretrained(d)
    cfg.audio_config.enable_fusion = True
    cfg.audio_config.fusion_type = None
    torch.manual_seed(3)
    ClapModel(cfg).save_pretrained(d)
    proc = ClapProcessor.from_pretrained(d)
    proc.feature_extractor.truncation = "fusion"
    proc.save_pretrained(d)
    enc = load_encoder(f"hf:{d}", device="cpu")
    assert enc.config()["truncation"] == "fusion"
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (4, enc.window_samples)).astype(np.float32)
    many = enc.embed_audio(x)
    for seed in range(3):  # the extractor's random pick would land on different clips
        np.random.seed(seed)
        np.testing.assert_allclose(enc.embed_audio(x[2:3])[0], many[2], atol=2e-5, rtol=0)
    assert np.array_equal(enc.embed_audio(x), many)


def test_cli_init_and_index_with_hf_encoder(tiny_dir, tmp_path) -> None:
    import soundfile as sf

    from earmark.cli import main

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    t = np.arange(24000) / 48000
    sf.write(sounds / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 48000)
    sf.write(sounds / "noise.flac", np.random.default_rng(0).uniform(-0.3, 0.3, 40000).astype(np.float32), 22050)
    lib = str(tmp_path / "lib")
    r = CliRunner()
    vocab = tmp_path / "concepts.txt"  # a user vocabulary file: the test needs no shipped one
    vocab.write_text("rain\ndog barking\ncar engine\nbird song\n")
    res = r.invoke(main, ["init", lib, "--encoder", f"hf:{tiny_dir}", "--vocabulary", str(vocab)])
    assert res.exit_code == 0, res.output
    assert f"hf:{tiny_dir}" in res.output
    res = r.invoke(main, ["index", "--library", lib, str(sounds), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)  # JSON on stdout alone: nothing else may be printed there
    assert report["added"] == 2 and report["failed"] == [] and report["segments"] >= 2
