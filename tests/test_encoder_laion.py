"""laion backend specifics: spec options, RoBERTa files, checkpoint layout, the CLI end to end.

The tests that need laion-clap are marked ``laion`` and run in their own environment
(.ci/laion.sh); in the main environment they skip. Spec parsing and the missing-file errors
that come before any laion-clap import run everywhere.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from earmark.engine.encoders import EncoderError, load_encoder
from earmark.engine.encoders.laion import LaionSpec, resolve_roberta_dir

HAS_LAION = importlib.util.find_spec("laion_clap") is not None
needs_laion = [pytest.mark.laion,
               pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")]


def test_spec_parsing() -> None:
    s = LaionSpec.parse("/m/630k-audioset-best.pt?text=/r&amodel=HTSAT-tiny&fusion=1")
    assert s == LaionSpec(Path("/m/630k-audioset-best.pt"), "/r", "HTSAT-tiny", True, False)
    assert LaionSpec.parse("x.pt") == LaionSpec(Path("x.pt"))
    with pytest.raises(EncoderError, match="unknown option"):
        LaionSpec.parse("x.pt?txt=/r")
    with pytest.raises(EncoderError, match="fusion must be 0 or 1"):
        LaionSpec.parse("x.pt?fusion=yes")


def test_spec_is_recorded_with_absolute_local_paths(tmp_path, monkeypatch) -> None:
    """What a library records (the encoder's name) must reopen from any working directory."""
    (tmp_path / "m.pt").write_bytes(b"")
    (tmp_path / "roberta").mkdir()
    (tmp_path / "cfg.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    spec = "m.pt?text=roberta&amodel=cfg.json&fusion=0"
    assert LaionSpec.absolute(spec) == f"{tmp_path}/m.pt?text={tmp_path}/roberta&amodel={tmp_path}/cfg.json&fusion=0"
    assert LaionSpec.parse(LaionSpec.absolute(spec)) == LaionSpec(tmp_path / "m.pt", f"{tmp_path}/roberta",
                                                                  f"{tmp_path}/cfg.json", False)
    # options keep their order; names that are not local files (an amodel name) stay as given
    assert LaionSpec.absolute("m.pt?amodel=HTSAT-tiny&text=roberta") == f"{tmp_path}/m.pt?amodel=HTSAT-tiny&text={tmp_path}/roberta"
    assert LaionSpec.absolute(f"{tmp_path}/m.pt") == f"{tmp_path}/m.pt"


def test_roberta_dir_missing_files_are_named(tmp_path, monkeypatch) -> None:
    d = tmp_path / "roberta"
    d.mkdir()
    (d / "vocab.json").write_text("{}")
    with pytest.raises(EncoderError, match="lacks config.json, merges.txt"):
        resolve_roberta_dir(str(d))
    monkeypatch.setenv("EARMARK_ROBERTA_DIR", str(d))
    with pytest.raises(EncoderError, match="lacks config.json, merges.txt"):
        resolve_roberta_dir(None)


def test_no_roberta_anywhere_says_where_to_put_it(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EARMARK_ROBERTA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(EncoderError, match=r"\?text=DIR.*EARMARK_ROBERTA_DIR"):
        resolve_roberta_dir(None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not HAS_LAION:
        pytest.skip("laion-clap is not installed here; run .ci/laion.sh")
    import torch

    from encoder_fixtures import build_tiny_laion_checkpoint

    torch.set_num_threads(1)
    return build_tiny_laion_checkpoint(tmp_path_factory.mktemp("laion"))


@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
def test_missing_checkpoint_names_the_file(tmp_path) -> None:
    with pytest.raises(EncoderError, match="nowhere.pt not found"):
        load_encoder(f"laion:{tmp_path / 'nowhere.pt'}", device="cpu")


@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
def test_roberta_from_env_and_architecture_detection(tiny, monkeypatch) -> None:
    from earmark.engine.encoders.laion import detect_architecture, load_checkpoint

    ckpt, cfg, roberta = tiny
    assert detect_architecture(load_checkpoint(ckpt, trust=False)) == ("PANN-6", False)
    monkeypatch.setenv("EARMARK_ROBERTA_DIR", str(roberta))
    enc = load_encoder(f"laion:{ckpt}?amodel={cfg}", device="cpu")
    ref = load_encoder(f"laion:{ckpt}?amodel={cfg}&text={roberta}", device="cpu")
    assert enc.fingerprint == ref.fingerprint and enc.dim == 512 and enc.sample_rate == 16000
    assert np.array_equal(enc.embed_text(["rain"]), ref.embed_text(["rain"]))
    moved = cfg.parent / "elsewhere" / cfg.name  # where the JSON config lies is not part of the fingerprint
    moved.parent.mkdir(exist_ok=True)
    moved.write_text(cfg.read_text())
    assert load_encoder(f"laion:{ckpt}?amodel={moved}", device="cpu").fingerprint == ref.fingerprint


@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
def test_wrong_audio_model_is_a_clear_error(tiny) -> None:
    ckpt, _cfg, roberta = tiny
    with pytest.raises(EncoderError, match="does not fit audio model 'PANN-10'"):
        load_encoder(f"laion:{ckpt}?amodel=PANN-10&text={roberta}", device="cpu")


@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
def test_embeddings_match_laion_clap_own_inference_path(tiny) -> None:
    """Our wrapper must give what laion-clap's CLAP.forward / get_text_embedding give."""
    import torch

    ckpt, cfg, roberta = tiny
    enc = load_encoder(f"laion:{ckpt}?amodel={cfg}&text={roberta}", device="cpu")
    x = np.random.default_rng(0).uniform(-0.9, 0.9, (2, enc.window_samples)).astype(np.float32)
    q = (np.clip(x, -1, 1) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0
    with torch.no_grad():
        # laion-clap's forward with text=None; its Cnn6 takes the waveform tensor itself
        ref = torch.nn.functional.normalize(enc.model(torch.from_numpy(q), None), dim=-1).numpy()
        tok = enc.tokenizer(["a dog barks"], padding="max_length", truncation=True, max_length=77, return_tensors="pt")
        ref_t = enc.model.get_text_embedding(dict(tok)).numpy()
    np.testing.assert_allclose(enc.embed_audio(x), ref, atol=1e-5)
    np.testing.assert_allclose(enc.embed_text(["a dog barks"]), ref_t, atol=1e-5)


@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
def test_cli_init_and_index_with_laion_encoder(tiny, tmp_path) -> None:
    import soundfile as sf
    from click.testing import CliRunner

    from earmark.cli import main

    ckpt, cfg, roberta = tiny
    spec = f"laion:{ckpt}?amodel={cfg}&text={roberta}"
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    t = np.arange(30000) / 44100
    sf.write(sounds / "tone.wav", (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
    lib = str(tmp_path / "lib")
    r = CliRunner()
    vocab = tmp_path / "concepts.txt"  # a user vocabulary file: the test needs no shipped one
    vocab.write_text("rain\ndog barking\ncar engine\nbird song\n")
    res = r.invoke(main, ["init", lib, "--encoder", spec, "--vocabulary", str(vocab)])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["index", "--library", lib, str(sounds), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["added"] == 1


@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
def test_fusion_mel_matches_librosa_htk_power_mel() -> None:
    """fusion_mel stands in for laion-clap's torchaudio get_mel; librosa (htk, no norm) is its reference."""
    import librosa
    import torch

    from earmark.engine.encoders.laion import fusion_mel

    cfg = {"sample_rate": 48000, "window_size": 1024, "hop_size": 480, "mel_bins": 64, "fmin": 50, "fmax": 14000}
    x = np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32)
    ours = fusion_mel(torch.from_numpy(x)[None], cfg)[0].numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=48000, n_fft=1024, hop_length=480, win_length=1024, center=True,
                                         pad_mode="reflect", power=2.0, n_mels=64, fmin=50, fmax=14000,
                                         htk=True, norm=None)
    ref_db = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == (4, ref_db.shape[0], 64)
    assert np.array_equal(ours[0], ours[3])
    np.testing.assert_allclose(ours[0], ref_db, atol=1e-3)


@pytest.mark.slow
@pytest.mark.laion
@pytest.mark.skipif(not HAS_LAION, reason="laion-clap is not installed here; run .ci/laion.sh")
@pytest.mark.parametrize("fusion", [False, True], ids=["htsat", "htsat-fusion"])
def test_stock_htsat_tiny_shapes_detected_and_match_laion(tmp_path, fusion) -> None:
    """The published checkpoints' architecture (HTSAT-tiny, 10 s at 48 kHz), random weights."""
    import torch

    from earmark.engine.encoders.laion import fusion_mel
    from encoder_fixtures import build_stock_laion_checkpoint

    ckpt, roberta = build_stock_laion_checkpoint(tmp_path, "HTSAT-tiny", fusion)
    enc = load_encoder(f"laion:{ckpt}?text={roberta}", device="cpu")  # architecture auto-detected
    assert enc.config() == {"backend": "laion", "amodel": "HTSAT-tiny", "fusion": fusion}
    assert (enc.sample_rate, enc.window_samples, enc.dim) == (48000, 480000, 512)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, enc.window_samples)).astype(np.float32)
    v = enc.embed_audio(x)
    q = torch.from_numpy((np.clip(x, -1, 1) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0)
    items = [{"waveform": r, "longer": torch.tensor([False])} for r in q]
    if fusion:
        for item in items:
            item["mel_fusion"] = fusion_mel(item["waveform"][None], enc.audio_cfg)[0]
    with torch.no_grad():
        ref = enc.model.get_audio_embedding(items).numpy()  # laion-clap's own batching path
    np.testing.assert_allclose(v, ref, atol=1e-5)
    np.testing.assert_allclose(enc.embed_audio(x[1:]), v[1:], atol=2e-5)
