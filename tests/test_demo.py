"""`earmark demo` (engine/demo.py): builds, reuses and, after an encoder upgrade, re-embeds its
own library, on the shipped demo sounds and a real library directory."""
from __future__ import annotations

import pytest

from conftest import TEST_VOCAB, write_known_sounds

from earmark.engine.demo import demo_sounds_dir, run_demo
from earmark.engine.library import EncoderMismatch, Library

VERSIONED = "py:fake_encoder:VersionedFakeEncoder"


def test_demo_library_of_an_earlier_encoder_is_embedded_again(tmp_path, monkeypatch):
    n_sounds = len(list(demo_sounds_dir().glob("*.ogg")))
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "1")
    first = run_demo(tmp_path / "demo", ["a low hum"], encoder=VERSIONED, progress=False)
    assert first.indexed == n_sounds and first.reembedded == 0 and first.results[0].hits
    old = Library(tmp_path / "demo").encoder_record().fingerprint

    monkeypatch.setenv("FAKE_ENCODER_VERSION", "2")  # "an upgrade" that ships other weights
    again = run_demo(tmp_path / "demo", ["a low hum"], progress=False)
    assert again.reembedded == n_sounds and again.indexed == n_sounds and again.results[0].hits
    lib = Library(tmp_path / "demo")
    assert lib.encoder_record().fingerprint != old and lib.status().sounds_pending == 0


def test_a_library_that_is_not_the_demo_keeps_the_refusal(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "1")
    lib = Library.init(tmp_path / "lib", encoder=VERSIONED, vocabulary=str(TEST_VOCAB))
    lib.index([write_known_sounds(tmp_path / "sounds")])
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "2")
    with pytest.raises(EncoderMismatch, match="earmark reembed"):
        run_demo(tmp_path / "lib", ["a low hum"], progress=False)
    assert Library(tmp_path / "lib").status().sounds_pending == 0  # nothing was dropped


def test_the_demo_renders_evidence_for_its_first_text_querys_top_hit(tmp_path):
    """With an encoder that exposes its spectrogram face, the first query with text to explain
    gets its top hit's evidence files (a like: query has none, so it is skipped)."""
    from pathlib import Path

    import soundfile as sf

    like = f"like:{demo_sounds_dir() / 'bell.ogg'}"
    run = run_demo(tmp_path / "demo", [like, "a high beep"], encoder="py:evidence_toy_encoder:ToyBandEncoder",
                   progress=False)
    ev = run.evidence
    assert ev is not None and ev.target == "a high beep"
    assert ev.sound_id == run.results[1].hits[0].sound_id
    for p in (ev.mask_in_wav, ev.mask_out_wav, ev.png):
        assert Path(p).is_file() and Path(p).is_relative_to(tmp_path / "demo" / "evidence")
    assert sf.info(ev.mask_in_wav).frames > 0


def test_the_demo_skips_evidence_for_an_encoder_without_a_spectrogram_face(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "1")
    run = run_demo(tmp_path / "demo", ["a low hum"], encoder=VERSIONED, progress=False)
    assert run.results[0].hits and run.evidence is None
