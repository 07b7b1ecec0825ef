"""Evidence through the library: fallback labelled, decoder trained on the library, files written."""
from __future__ import annotations

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from conftest import TEST_VOCAB, noise, tone, write
from earmark.cli import main
from earmark.engine.library import Library


def _lib(tmp_path):
    from evidence_toy_encoder import ToyBandEncoder

    d = tmp_path / "snd"
    sr = ToyBandEncoder.sample_rate
    write(d / "tone_in_noise.wav", tone(2000, 2.0, sr) + noise(2.0, sr, amp=0.05), sr)
    write(d / "noise.wav", noise(2.0, sr, amp=0.3), sr)
    lib = Library.init(tmp_path / "lib", encoder=ToyBandEncoder(), vocabulary=str(TEST_VOCAB))
    lib.index([d])
    return lib


def test_without_decoder_the_fallback_is_labelled(tmp_path):
    lib = _lib(tmp_path)
    ev = lib.evidence("tone_in_noise.wav", "a high beep")
    assert ev.method == "gradient-saliency" and "saliency" in ev.label.lower()
    for p in (ev.mask_in_wav, ev.mask_out_wav, ev.png):
        assert p.startswith(str(lib.path / "evidence"))
    a, sr = sf.read(ev.mask_in_wav)
    b, _ = sf.read(ev.mask_out_wav)
    assert sr == lib.encoder.sample_rate and a.shape == b.shape
    assert open(ev.png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_train_then_render_with_lmac_and_resume(tmp_path):
    lib = _lib(tmp_path)
    res = lib.train_evidence(steps=20, batch_size=4)
    assert res.steps_done == 20 and res.checkpoint_path.exists()
    res2 = lib.train_evidence(steps=30, batch_size=4)
    assert res2.start_step == 20 and res2.steps_done == 30
    ev = lib.evidence("tone_in_noise.wav", "+beep")
    assert ev.method == "lmac"
    scores = lib.evaluate_evidence(n_windows=4).scores
    assert {"lmac", "random", "all-ones"} <= set(scores) or "lmac" in scores


def test_a_shipped_decoder_for_the_encoder_is_used_until_the_library_trains_its_own(tmp_path, monkeypatch):
    """A decoder shipped for the library's exact encoder makes L-MAC masks before `evidence
    train` (labelled as the shipped one, evaluated on all windows as unseen); the library's own
    decoder takes over once trained."""
    import shutil

    import pytest

    from earmark.engine import library_evidence as le
    from earmark.engine.library import LibraryError

    corpus = _lib(tmp_path / "corpus")  # where the "shipped" decoder learnt
    corpus.train_evidence(steps=5, batch_size=4)
    shipped = tmp_path / "shipped-decoder.pt"
    shutil.copy(le.decoder_path(corpus), shipped)
    monkeypatch.setattr(le, "SHIPPED_DECODER", shipped)
    lib = _lib(tmp_path / "mine")
    assert lib.status().evidence_decoder == "none"  # a checkpoint without its sidecar is not shipped
    le.write_shipped_sidecar(shipped, corpus.encoder.fingerprint)
    assert lib.status().evidence_decoder == "shipped"
    ev = lib.evidence("tone_in_noise.wav", "a high beep")
    assert (ev.method, ev.decoder, ev.label) == ("lmac", "shipped", le.SHIPPED_LABEL)
    res = lib.evaluate_evidence(n_windows=4)
    assert res.split == "unseen" and "lmac" in res.scores
    with pytest.raises(LibraryError, match="out of sample"):  # it has no in-sample windows here
        lib.evaluate_evidence(n_windows=4, in_sample=True)
    lib.train_evidence(steps=3, batch_size=4)
    ev = lib.evidence("tone_in_noise.wav", "a high beep")
    assert (ev.method, ev.decoder) == ("lmac", "library") and "shipped" not in ev.label
    assert lib.status().evidence_decoder == "library"


def test_a_decoder_shipped_for_other_weights_is_not_used(tmp_path, monkeypatch):
    """A library pinned to other weights than the shipped decoder's falls back to labelled saliency."""
    from earmark.engine import library_evidence as le
    from earmark.engine.evidence import MaskDecoder
    from earmark.engine.evidence.checkpoint import DecoderCheckpoint, save_checkpoint

    lib = _lib(tmp_path)
    dec = MaskDecoder.for_encoder(lib.encoder)
    shipped = save_checkpoint(tmp_path / "other.pt", dec, DecoderCheckpoint("0" * 16, dec.config, 0))
    monkeypatch.setattr(le, "SHIPPED_DECODER", shipped)
    assert le.load_shipped(lib.encoder) is None
    le.write_shipped_sidecar(shipped, lib.encoder.fingerprint)  # a sidecar that disagrees with the checkpoint
    le._shipped.clear()
    assert le.load_shipped(lib.encoder) is None
    ev = lib.evidence("tone_in_noise.wav", "a high beep")
    assert (ev.method, ev.decoder) == ("gradient-saliency", "none")


def test_training_targets_the_decision_eval_measures(tmp_path):
    """Train and eval share one candidate set (stored in the checkpoint), and each window's
    decision is the candidate nearest its embedding: the class L-MAC's metrics explain."""
    from earmark.engine.library_evidence import (_stored_candidates, frequent_concepts, load_trained,
                                                 training_examples, with_decisions)

    lib = _lib(tmp_path)
    assert load_trained(lib) is None
    examples = training_examples(lib)
    candidates = frequent_concepts(examples)
    assert 2 <= len(candidates) <= 50 and len(set(candidates)) == len(candidates)
    decided = with_decisions(lib, examples, candidates)
    emb = lib.encoder.embed_audio(np.stack([ex.waveform for ex in examples]))
    text = lib.encoder.embed_text(candidates)
    assert [ex.decision for ex in decided] == [candidates[j] for j in np.argmax(emb @ text.T, axis=1)]
    lib.train_evidence(steps=2, batch_size=2)
    _dec, meta = load_trained(lib)
    assert meta.train_config["negatives"] == candidates == _stored_candidates(meta)


def _split_lib(tmp_path, n: int = 24):
    """A library over MIN_SPLIT_SOUNDS: 1-window tones and noises, every file distinct."""
    from evidence_toy_encoder import ToyBandEncoder

    d = tmp_path / "many"
    sr = ToyBandEncoder.sample_rate
    for i in range(n):
        sound = tone(300 + 150 * i, 1.0, sr) if i % 2 else noise(1.0, sr, amp=0.2, seed=i)
        write(d / f"s{i:02d}.wav", sound, sr)
    lib = Library.init(tmp_path / "lib", encoder=ToyBandEncoder(), vocabulary=str(TEST_VOCAB))
    lib.index([d])
    return lib


def test_eval_reads_sounds_held_out_of_training(tmp_path, monkeypatch):
    """A tenth of the sounds (by content hash) never reach the decoder; eval measures on them."""
    from earmark.engine import library_evidence
    from earmark.engine.library_evidence import (HELD_OUT_SHARE, is_held_out, load_trained, split_share,
                                                 training_examples)
    from earmark.index.store import Sound

    lib = _split_lib(tmp_path)
    with lib.session() as s:
        hashes = [h for (h,) in s.query(Sound.content_hash).all()]
    held = [h for h in hashes if is_held_out(h, HELD_OUT_SHARE)]
    assert 0 < len(held) < len(hashes) and split_share(lib) == HELD_OUT_SHARE
    train = training_examples(lib, split="train")
    out = training_examples(lib, split="held-out")
    assert len(out) == len(held) and len(train) + len(out) == len(training_examples(lib)) == len(hashes)
    # no held-out window is among the training windows
    assert not {ex.waveform.tobytes() for ex in train} & {ex.waveform.tobytes() for ex in out}

    seen = []  # the windows training turns into targets
    real = library_evidence.with_decisions
    monkeypatch.setattr(library_evidence, "with_decisions",
                        lambda lib_, exs, cands: seen.extend(exs) or real(lib_, exs, cands))
    lib.train_evidence(steps=2, batch_size=2)
    assert len(seen) == len(train)
    assert not {ex.waveform.tobytes() for ex in seen} & {ex.waveform.tobytes() for ex in out}
    assert load_trained(lib)[1].train_config["held_out_share"] == HELD_OUT_SHARE
    res = lib.evaluate_evidence(n_windows=64)
    assert res.split == "held-out" and res.n_windows == len(held)
    res = lib.evaluate_evidence(n_windows=64, in_sample=True)
    assert res.split == "train" and res.n_windows == len(hashes) - len(held)
    cli = CliRunner().invoke(main, ["evidence", "eval", "-L", str(lib.path), "--windows", "64"])
    assert cli.exit_code == 0, cli.output
    assert f"{len(held)} windows of sounds held out of decoder training" in cli.output
    # resuming keeps the split; asking for another one says how to get it
    cli = CliRunner().invoke(main, ["evidence", "train", "-L", str(lib.path), "--steps", "3", "--held-out", "0.2"])
    assert cli.exit_code != 0 and "--held-out 0.1" in cli.output and "delete" in cli.output


def test_held_out_zero_trains_on_every_sound(tmp_path):
    from earmark.engine.library_evidence import load_trained

    lib = _split_lib(tmp_path)
    lib.train_evidence(steps=2, batch_size=2, held_out=0.0)
    assert load_trained(lib)[1].train_config["held_out_share"] == 0.0
    res = lib.evaluate_evidence(n_windows=64)
    assert res.split == "all" and res.n_windows == 24


def test_small_library_trains_on_everything_and_says_eval_is_in_sample(tmp_path):
    lib = _lib(tmp_path)
    lib.train_evidence(steps=2, batch_size=2)
    from earmark.engine.library_evidence import load_trained

    assert load_trained(lib)[1].train_config["held_out_share"] == 0.0
    res = lib.evaluate_evidence(n_windows=8)
    assert res.split == "all"
    cli = CliRunner().invoke(main, ["evidence", "eval", "-L", str(lib.path), "--json"])
    assert cli.exit_code == 0, cli.output
    assert '"split": "all"' in cli.output
    cli = CliRunner().invoke(main, ["evidence", "train", "-L", str(lib.path), "--held-out", "0.7"])
    assert cli.exit_code != 0 and "--held-out must be between 0 and 0.5" in cli.output


def test_explicit_held_out_on_a_small_library_is_refused(tmp_path):
    lib = _lib(tmp_path)
    cli = CliRunner().invoke(main, ["evidence", "train", "-L", str(lib.path), "--steps", "2", "--held-out", "0.2"])
    assert cli.exit_code != 0 and "needs at least 20 indexed sounds" in cli.output and "has 2" in cli.output
    assert not (lib.path / "models" / "lmac-decoder.pt").exists()


def test_cli_evidence_hit(tmp_path):
    lib = _lib(tmp_path)
    res = CliRunner().invoke(main, ["evidence", "tone_in_noise.wav", "-q", "a high beep", "--library", str(lib.path), "--json"])
    assert res.exit_code == 0, res.output
    assert '"method": "gradient-saliency"' in res.output


def test_cli_evidence_takes_the_library_option_first(tmp_path):
    """`earmark evidence -L LIB SOUND -q Q`, as the README writes it; subcommands still resolve."""
    lib = _lib(tmp_path)
    res = CliRunner().invoke(main, ["evidence", "-L", str(lib.path), "tone_in_noise.wav", "-q", "a high beep", "--json"])
    assert res.exit_code == 0, res.output
    assert '"method": "gradient-saliency"' in res.output
    res = CliRunner().invoke(main, ["evidence", "train", "--help"])
    assert res.exit_code == 0 and "Train" in res.output
