"""The shipped embedded encoder: weights, interface contract, STFT face, and sanity of its space."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from earmark.engine.encoders import load_encoder
from earmark.engine.encoders.base import EncoderError
from earmark.engine.encoders.embedded import EmbeddedEncoder, shipped_weights_path
from earmark.engine.training.features import load_mono

torch.set_num_threads(2)

WEIGHTS_DIR = shipped_weights_path().parent


@pytest.fixture(scope="module")
def enc() -> EmbeddedEncoder:
    e = load_encoder("embedded", device="cpu")
    assert isinstance(e, EmbeddedEncoder)
    return e


def test_shipped_weights_exist_within_budget_and_attributed() -> None:
    assert shipped_weights_path().exists()
    total = sum(p.stat().st_size for p in WEIGHTS_DIR.iterdir() if p.is_file())
    assert total <= 60 * 1024 * 1024, f"weights folder is {total / 2**20:.1f} MiB > 60 MiB"
    attribution = (WEIGHTS_DIR / "ATTRIBUTION.md").read_text()
    assert "CC-BY-4.0" in attribution and "aisfx" in attribution.lower()
    assert (WEIGHTS_DIR / "AISFX-LICENSE-CC-BY-4.0.txt").exists()


def test_contract_shapes_norms_determinism(enc: EmbeddedEncoder) -> None:
    assert enc.name == "embedded"
    assert (enc.dim, enc.sample_rate, enc.window_seconds) == (512, 44100, 2.3)
    assert enc.window_samples == 101430
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((3, enc.window_samples)) * 0.1).astype(np.float32)
    a1, a2 = enc.embed_audio(w), enc.embed_audio(w)
    assert a1.shape == (3, 512) and a1.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a1, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a1, a2), "same input must give bit-identical output on CPU"
    # batching must not change results beyond float noise
    np.testing.assert_allclose(enc.embed_audio(w[1:2])[0], a1[1], atol=1e-5)
    t = enc.embed_text(["rain on a roof", "a dog barking"])
    assert t.shape == (2, 512) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(t, enc.embed_text(["rain on a roof", "a dog barking"]))
    assert len(enc.fingerprint) == 16
    with pytest.raises(EncoderError):
        enc.embed_audio(np.zeros((1, 1000), np.float32))


def test_embed_from_magnitude_matches_embed_audio(enc: EmbeddedEncoder) -> None:
    rng = np.random.default_rng(1)
    t = np.arange(enc.window_samples) / enc.sample_rate
    w = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.05 * rng.standard_normal(len(t))]).astype(np.float32)
    p = enc.stft_params()
    assert p == {"n_fft": 2048, "hop_length": 1024, "win_length": 2048}
    x = torch.from_numpy(w)
    spec = torch.stft(x, n_fft=p["n_fft"], hop_length=p["hop_length"], win_length=p["win_length"],
                      window=torch.hann_window(p["win_length"]), center=True, pad_mode="constant",
                      return_complex=True)
    mag = spec.abs().requires_grad_(True)
    emb, maps = enc.embed_from_magnitude(mag)
    np.testing.assert_allclose(emb.detach().numpy(), enc.embed_audio(w), atol=1e-5)
    assert len(maps) == 4 and all(m.ndim == 4 and m.shape[0] == 2 for m in maps)
    emb[:, 0].sum().backward()  # differentiable down to the linear magnitude
    assert mag.grad is not None and float(mag.grad.abs().sum()) > 0
    tt = enc.text_tensor(["a beep"])
    assert isinstance(tt, torch.Tensor) and tuple(tt.shape) == (1, 512)


def _window(path: Path, enc: EmbeddedEncoder) -> np.ndarray:
    wave = load_mono(str(path), enc.sample_rate)
    n = enc.window_samples
    return wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))


@pytest.mark.skipif(shutil.which("sox") is None or shutil.which("espeak-ng") is None,
                    reason="needs sox and espeak-ng (apt-get install sox espeak-ng)")
def test_generated_sounds_land_on_their_captions(enc: EmbeddedEncoder, tmp_path: Path) -> None:
    sounds = {
        "a sine wave beep": ["sox", "-n", "-r", "44100", str(tmp_path / "beep.wav"), "synth", "0.25", "sine", "880",
                             "vol", "0.5", "pad", "0", "0.25", "repeat", "3"],
        "a man speaking": ["espeak-ng", "-v", "en+m3", "-w", str(tmp_path / "speech.wav"),
                           "Good evening, this is the news at nine o'clock."],
        "white noise": ["sox", "-n", "-r", "44100", str(tmp_path / "noise.wav"), "synth", "2", "whitenoise", "vol", "0.4"],
        "a drum hit": ["sox", "-n", "-r", "44100", str(tmp_path / "drum.wav"), "synth", "0.6", "sine", "160-45",
                       "fade", "q", "0.002", "0.6", "0.55", "vol", "0.9"],
    }
    distractors = ["a dog barking", "rain", "a car engine", "birds chirping", "applause", "glass breaking"]
    windows = []
    for cmd in sounds.values():
        subprocess.run(cmd, check=True, capture_output=True)
        out = Path(cmd[cmd.index("-w") + 1] if "-w" in cmd else cmd[4])
        windows.append(_window(out, enc))
    captions = list(sounds) + distractors
    sim = enc.embed_audio(np.stack(windows)) @ enc.embed_text(captions).T
    ranked = [captions[int(i)] for i in np.argmax(sim, axis=1)]
    assert ranked == list(sounds), f"nearest captions {ranked}"


def test_missing_weights_raise_a_helpful_error(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="train-encoder"):
        EmbeddedEncoder.load(str(tmp_path / "nope.pt"), device="cpu")


def test_soundfile_roundtrip_window(enc: EmbeddedEncoder, tmp_path: Path) -> None:
    """A real file written by soundfile at another rate is resampled and embedded like the array."""
    t = np.arange(22050 * 3) / 22050
    wave = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", wave, 22050, subtype="FLOAT")
    w = _window(tmp_path / "tone.wav", enc)
    ref = soxr.resample(wave, 22050, 44100, quality="HQ")[: enc.window_samples].astype(np.float32)
    np.testing.assert_allclose(enc.embed_audio(w[None]), enc.embed_audio(ref[None]), atol=1e-6)


def test_level_reference_keeps_a_turned_down_mask_visible(enc: EmbeddedEncoder) -> None:
    """The front end normalises loudness, so 0.3·X alone embeds like X; at X's level it does not."""
    t = np.arange(enc.window_samples) / enc.sample_rate
    w = (0.3 * np.sin(2 * np.pi * 440 * t) * (t < 1.0)).astype(np.float32)[None]  # a tone, then silence
    mag = enc.model.audio.frontend.stft_magnitude(torch.from_numpy(w))
    with torch.no_grad():
        full, _ = enc.embed_from_magnitude(mag)
        alone, _ = enc.embed_from_magnitude(0.3 * mag)
        at_level, _ = enc.embed_from_magnitude(0.3 * mag, level_reference=mag)
        same, _ = enc.embed_from_magnitude(mag, level_reference=mag)
    np.testing.assert_allclose(alone.numpy(), full.numpy(), atol=1e-5)  # level undone without a reference
    np.testing.assert_allclose(same.numpy(), full.numpy(), atol=1e-6)
    assert float((at_level * full).sum()) < 0.999  # a quieter sound is a different input


def test_band_limit_drops_the_top_of_the_spectrum_and_nothing_else() -> None:
    """With a band limit, a file's high band (present at 44.1 kHz, absent in an 11 kHz file) is
    not seen: a low tone plus a 15 kHz tone reads as the low tone alone, level included; off, the
    config (and so every fingerprint and feature-cache key) is what it was before the option."""
    from earmark.engine.encoders.embedded_model import AudioConfig, AudioFrontEnd

    t = np.arange(101_430) / 44_100
    low = 0.3 * np.sin(2 * np.pi * 440 * t)
    both = torch.from_numpy(np.stack([low, low + 0.3 * np.sin(2 * np.pi * 15_000 * t)]).astype(np.float32))
    limited, full = AudioFrontEnd(AudioConfig(band_limit_hz=11_025)), AudioFrontEnd(AudioConfig())
    with torch.no_grad():
        out_l = limited(limited.stft_magnitude(both))
        out_f = full(full.stft_magnitude(both))
    # Interior frames: at the zero-padded ends the tones start abruptly and splatter below 11 kHz.
    np.testing.assert_allclose(out_l[1, 2:-2].numpy(), out_l[0, 2:-2].numpy(), atol=1e-4)  # window leakage
    assert float((out_f[1] - out_f[0]).abs().max()) > 0.05  # without the limit the 15 kHz tone shows
    np.testing.assert_allclose(out_l[0, 2:-2].numpy(), out_f[0, 2:-2].numpy(), atol=1e-4)  # the low tone is untouched
    assert "band_limit_hz" not in AudioConfig().to_dict()
    assert AudioConfig(**AudioConfig(band_limit_hz=8000.0).to_dict()).band_limit_hz == 8000.0


def test_evidence_uses_the_models_learned_logit_scale(enc: EmbeddedEncoder) -> None:
    """L-MAC's softmax must use the scale the model was trained with, not the 100 assumed for unknown encoders."""
    from earmark.engine.evidence.objective import DEFAULT_LOGIT_SCALE, logit_scale_of

    learned = float(enc.model.logit_scale.detach().exp())
    assert 1.0 < learned < DEFAULT_LOGIT_SCALE
    assert logit_scale_of(enc) == pytest.approx(learned)


def test_borrowed_labels_are_exactly_what_the_text_vector_blends(enc: EmbeddedEncoder) -> None:
    """Rebuilding the query vector from the reported labels' prototypes and weights gives
    embed_text's vector, so the explanation cannot drift from what search uses."""
    protos = enc.prototypes
    assert protos is not None and protos.weight > 0
    for query in ("a horse galloping", "a glass door", "sword fight"):
        borrowed = enc.borrowed_labels(query, n=protos.top_k)
        assert borrowed, query
        weights = [w for _, w in borrowed]
        assert weights == sorted(weights, reverse=True) and all(w > 0 for w in weights)
        assert sum(weights) == pytest.approx(1.0, abs=1e-5)  # every label that passed the gate is listed
        with torch.no_grad():
            head = torch.nn.functional.normalize(enc.model.project_text(enc._prompt_sentences([query])).mean(0), dim=-1)
        index = {lab: i for i, lab in enumerate(protos.labels)}
        mix = sum(w * protos.prototypes[index[lab]] for lab, w in borrowed)
        rebuilt = torch.nn.functional.normalize(head + protos.weight * torch.nn.functional.normalize(mix, dim=-1), dim=-1)
        np.testing.assert_allclose(rebuilt.numpy(), enc.embed_text([query])[0], atol=1e-5)
    assert any("horse" in lab for lab, _ in enc.borrowed_labels("a horse galloping"))


def test_text_no_training_label_reaches_borrows_nothing(enc: EmbeddedEncoder) -> None:
    assert enc.borrowed_labels("qwxz zzkj vlorp") == []
    assert enc.borrowed_labels("   ") == []
    assert len(enc.borrowed_labels("sword fight", n=2)) == 2


def test_a_bare_lookup_borrows_by_the_query_not_its_templates(enc: EmbeddedEncoder) -> None:
    """With prompt ensembling on, prototypes marked ``bare_lookup`` are looked up by the bare
    query (as with ensembling off), while the head still reads the templated prompts."""
    import copy
    import dataclasses

    plain = copy.copy(enc)
    plain.prompt_ensemble, plain.prototypes = False, dataclasses.replace(enc.prototypes, bare_lookup=False)
    templated = copy.copy(plain)
    templated.prompt_ensemble = True
    bare = copy.copy(templated)
    bare.prototypes = dataclasses.replace(enc.prototypes, bare_lookup=True)
    queries = ["speech", "fire", "a crackling campfire", "birds singing"]
    for q in queries:  # the same labels and weights (up to the text tower's batching)
        got, want = bare.borrowed_labels(q), plain.borrowed_labels(q)
        assert [lab for lab, _ in got] == [lab for lab, _ in want]
        np.testing.assert_allclose([w for _, w in got], [w for _, w in want], atol=1e-5)
    assert [[lab for lab, _ in templated.borrowed_labels(q)] for q in queries] \
        != [[lab for lab, _ in plain.borrowed_labels(q)] for q in queries]
    # the head is templated in both ensembling encoders, so only the blend differs
    assert not np.allclose(bare.embed_text(["fire"]), plain.embed_text(["fire"]), atol=1e-3)
    assert not np.allclose(bare.embed_text(["fire"]), templated.embed_text(["fire"]), atol=1e-3)


def test_embed_query_is_embed_text_and_borrowed_labels_in_one_pass(enc: EmbeddedEncoder) -> None:
    for query in ("a horse galloping", "qwxz zzkj vlorp", "   "):
        vec, borrowed = enc.embed_query(query)
        np.testing.assert_allclose(vec, enc.embed_text([query])[0], atol=1e-6)
        assert borrowed == enc.borrowed_labels(query)
    # A blank text borrows nothing, in a batch too: its row is the text head's alone.
    batch = enc.embed_text(["   ", "a horse galloping"])
    np.testing.assert_allclose(batch[1], enc.embed_text(["a horse galloping"])[0], atol=1e-6)
    with torch.no_grad():
        head = torch.nn.functional.normalize(enc.model.project_text(enc._prompt_sentences(["   "])).mean(0), dim=-1)
    np.testing.assert_allclose(batch[0], head.numpy(), atol=1e-5)


def test_query_parts_are_embed_query_and_query_support_in_one_pass(enc: EmbeddedEncoder) -> None:
    """The shipped weights (since v12) carry exemplars: a query naming a training label gets their support."""
    for query in ("a crackling campfire", "sheep", "qwxz zzkj vlorp", "   "):
        vec, borrowed, support = enc.query_parts(query)
        q_vec, q_borrowed = enc.embed_query(query)
        np.testing.assert_allclose(vec, q_vec, atol=1e-6)
        assert borrowed == q_borrowed
        (alone,) = enc.query_support([query])
        assert (support is None) == (alone is None)
        if support is not None:
            assert support.labels == alone.labels and np.allclose(support.vectors, alone.vectors)
    fire = enc.query_parts("a crackling campfire")[2]
    assert fire is not None and "fire crackling" in fire.labels and fire.weight > 0
    assert enc.query_parts("qwxz zzkj vlorp")[2] is None and enc.query_parts("   ")[2] is None
    assert enc.config()["sound_exemplars"]["sounds"] == len(enc.prototypes.exemplars)


def test_one_word_queries_reach_the_labels_their_word_named(enc: EmbeddedEncoder) -> None:
    """The shipped weights (v13) carry alias keys: a query that is one of the words that named a
    label's training files borrows that label and gets its support, though its sentence embedding
    is far from the label's captions; without the words it borrowed nothing."""
    import dataclasses

    protos = enc.prototypes
    assert protos.alias_keys is not None and len(protos.alias_words) == len(protos.alias_keys) > 100
    assert enc.config()["sound_prototypes"]["aliases"]["words"] == len(protos.alias_keys)
    expect = {"footstep": "footsteps", "gun": "a gunshot", "hen": "a chicken clucking", "birds": "birds chirping"}
    for word, label in expect.items():
        assert label in dict(enc.borrowed_labels(word)), word
        assert label in enc.query_support([word])[0].labels, word
    try:
        enc.prototypes = dataclasses.replace(protos, alias_keys=None, alias_labels=None, alias_words=None)
        assert all(enc.borrowed_labels(word) == [] for word in expect)  # why the words are there
    finally:
        enc.prototypes = protos


def test_the_labels_action_words_reach_labels_no_word_table_names(enc: EmbeddedEncoder) -> None:
    """v14: a label's own -ing words are aliases too. "screams" is far from "a man screaming in
    pain" (cosine 0.52) and no word table names that label; through "screaming" it is reached."""
    import dataclasses

    from earmark.engine.training.label_words import label_words

    protos = enc.prototypes
    pain = "a man screaming in pain"
    assert pain in protos.labels and "screaming" in protos.alias_words
    assert pain in enc.query_support(["screams"])[0].labels
    table = label_words(protos.labels)
    keep = [i for i, (lab, w) in enumerate(zip(protos.alias_labels.tolist(), protos.alias_words))
            if w in table.get(protos.labels[lab], ())]
    try:
        enc.prototypes = dataclasses.replace(protos, alias_keys=protos.alias_keys[keep],
                                             alias_labels=protos.alias_labels[keep],
                                             alias_words=[protos.alias_words[i] for i in keep])
        assert pain not in enc.query_support(["screams"])[0].labels  # why the action words are there
    finally:
        enc.prototypes = protos


def test_the_shipped_support_is_corrected_by_each_exemplars_hubness(enc: EmbeddedEncoder) -> None:
    """v14: every exemplar carries its mean cosine with its 100 nearest fellow exemplars, and a
    query's support subtracts it (× the weight) from that exemplar's cosines."""
    from earmark.engine.encoders.exemplar_support import hubness

    protos = enc.prototypes
    assert protos.exemplar_hub_weight == 1.0 and protos.exemplar_hub_k == 100
    assert enc.config()["sound_exemplars"]["hub_k"] == 100
    # computed at training time from float32 exemplars; the checkpoint keeps them in float16
    np.testing.assert_allclose(hubness(protos.exemplars.numpy(), 100), protos.exemplar_hubness.numpy(), atol=2e-3)
    sup = enc.query_support(["a crackling campfire"])[0]
    chosen = [i for i, lab in enumerate(protos.exemplar_labels.tolist()) if protos.labels[lab] in set(sup.labels)]
    assert sorted(sup.offsets.tolist()) == pytest.approx(sorted(protos.exemplar_hubness[chosen].tolist()))


def test_bench_prompts_are_the_bare_label_and_the_sentence_unless_the_checkpoint_templates(enc: EmbeddedEncoder) -> None:
    # v4 and v5 embed text as typed, so bench averages both; a templating checkpoint gets the label alone
    assert enc.default_prompts == (("{}",) if enc.prompt_ensemble else ("{}", "This is a sound of {}"))


def test_a_library_on_other_embedded_weights_reopens_with_them(tmp_path: Path, monkeypatch) -> None:
    """`--encoder embedded:PATH` (e.g. weights from `earmark train-encoder`) is what the library
    records, as an absolute path, so it reopens with those weights, not the shipped ones."""
    import shutil

    import torch

    from earmark.engine.library import Library

    payload = torch.load(shipped_weights_path(), map_location="cpu", weights_only=True)
    name = next(k for k, v in payload["state"].items() if v.is_floating_point())
    payload["state"][name] = payload["state"][name] * 1.01  # other weights: another fingerprint
    (tmp_path / "mine").mkdir()
    torch.save(payload, tmp_path / "mine" / "weights.pt")
    monkeypatch.chdir(tmp_path)
    lib = Library.init(tmp_path / "lib", encoder="embedded:mine/weights.pt")
    fingerprint = lib.encoder.fingerprint
    monkeypatch.chdir(tmp_path / "mine")  # the relative path no longer names the file
    again = Library(tmp_path / "lib")
    assert again.encoder.fingerprint == fingerprint
    assert again.encoder.name == f"embedded:{tmp_path / 'mine' / 'weights.pt'}"
    shutil.rmtree(tmp_path / "mine")
    with pytest.raises(Exception, match="weights.pt"):
        Library(tmp_path / "lib").encoder


def _transformers_sentences(texts: list[str]) -> "torch.Tensor":
    """MiniLM sentence embeddings the way transformers computes them (the reference)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    from earmark.engine.encoders.embedded_model import minilm_dir

    model = AutoModel.from_pretrained(minilm_dir(), local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


def test_traced_text_tower_is_transformers_bit_for_bit_and_cached(tmp_path: Path, monkeypatch) -> None:
    """The traced MiniLM (no transformers import once cached) gives exactly transformers' numbers
    for any batch size and length, truncation included; an unreadable cache file is traced again."""
    import subprocess
    import sys

    import torch

    from earmark.engine.encoders.embedded_model import SentenceEncoder, minilm_dir
    from earmark.engine.encoders.text_tower_cache import traced_path

    monkeypatch.setenv("EARMARK_CACHE_DIR", str(tmp_path))
    batches = [["a dog barking"], ["x", "footsteps on gravel", "rain on a tin roof " * 20],
               ["a", "b", "c", "d", "e", "a crackling campfire at night"]]
    enc = SentenceEncoder(minilm_dir())
    assert traced_path(minilm_dir()).is_file()
    with torch.no_grad():
        for texts in batches:
            assert torch.equal(enc(texts), _transformers_sentences(texts)), texts
    # a fresh process loads the cached file and never imports transformers
    code = ("import sys, torch; from earmark.engine.encoders.embedded_model import SentenceEncoder, minilm_dir; "
            "e = SentenceEncoder(minilm_dir()); v = e(['a dog barking']); "
            "print('transformers' in sys.modules, ' '.join(f'{x:.9g}' for x in v[0, :8].tolist()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "EARMARK_CACHE_DIR": str(tmp_path)}).stdout.split()
    assert out[0] == "False"
    with torch.no_grad():
        here = enc(["a dog barking"])[0, :8].tolist()
    # (equal up to the thread count's float rounding: this process may run torch on one thread)
    np.testing.assert_allclose([float(x) for x in out[1:]], here, atol=1e-6)
    traced_path(minilm_dir()).write_bytes(b"not a torchscript file")
    with torch.no_grad():
        assert torch.equal(SentenceEncoder(minilm_dir())(batches[1]), _transformers_sentences(batches[1]))


def test_the_shipped_lmac_decoder_is_for_these_weights_and_its_masks_keep_the_match(enc: EmbeddedEncoder) -> None:
    """The decoder shipped beside the weights was trained for exactly them (retraining the
    encoder without its decoder fails here), and on the demo sounds, each with its own name as
    the target, the masked-in part keeps the match and the masked-out rest loses it, with masks
    that leave part of the sound out (an all-ones mask would also keep the match)."""
    from earmark.engine.audio import load_mono
    from earmark.engine.demo import demo_sounds_dir
    from earmark.engine.evidence.render import compute_mask
    from earmark.engine.library_evidence import SHIPPED_DECODER, load_shipped, shipped_fingerprint

    assert SHIPPED_DECODER.is_file() and SHIPPED_DECODER.stat().st_size < 5_000_000
    shipped = load_shipped(enc)
    assert shipped is not None, "the embedded weights changed: retrain the shipped decoder (docs/evidence.md)"
    decoder, meta = shipped
    assert shipped_fingerprint() == enc.fingerprint == meta.encoder_fingerprint  # the sidecar agrees
    kept, masks = [], []
    sounds = sorted(demo_sounds_dir().glob("*.ogg"))
    for path in sounds:
        wave = load_mono(str(path), enc.sample_rate, 0.0, enc.window_seconds)
        m = compute_mask(enc, wave, enc.sample_rate, path.stem.replace("_", " "), decoder, precision="fp32")
        kept.append(m.similarity_in >= 0.9 * m.similarity_original and m.similarity_in > m.similarity_out)
        masks.append(float(m.mask.mean()))
    assert sum(kept) >= 0.85 * len(sounds), [p.stem for p, k in zip(sounds, kept) if not k]
    assert np.mean(masks) < 0.8, masks


def test_weights_are_saved_whole_and_as_a_direct_save_writes_them(tmp_path) -> None:
    """save_atomically writes the bytes torch.save writes to the final name (torch names the
    archive inside after the file, so a plain temporary name would change them, and with them the
    reproduction check); a save that fails half-way leaves the old file and no temporary one."""
    import hashlib

    from earmark.engine.training.train import save_atomically

    payload = {"state": {"w": torch.arange(6.0).reshape(2, 3)}, "labels": ["rain", "wind"]}
    direct = tmp_path / "direct"
    direct.mkdir()
    torch.save(payload, direct / "model.pt")
    save_atomically(payload, tmp_path / "model.pt")
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(tmp_path / "model.pt") == digest(direct / "model.pt")
    before = (tmp_path / "model.pt").read_bytes()
    with pytest.raises(Exception):  # a lambda cannot be pickled: torch.save fails mid-write
        save_atomically({"state": payload["state"], "bad": lambda: None}, tmp_path / "model.pt")
    assert (tmp_path / "model.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["direct", "model.pt"]


def test_a_training_run_says_whether_it_reproduced_the_shipped_weights(enc: EmbeddedEncoder, tmp_path) -> None:
    """`earmark train-encoder` ends with the new model's fingerprint and whether its file is the
    shipped one: byte for byte, up to another CPU's rounding (~1e-7 relative, as a fresh machine's
    rerun of the shipped recipe gave), or not at all (the model card's reproduction check, without
    comparing by hand)."""
    from earmark.engine.encoders.embedded import shipped_weights_path
    from earmark.engine.training.model_card import against_shipped

    same = tmp_path / "same.pt"
    shutil.copyfile(shipped_weights_path(), same)
    line = against_shipped(same)
    assert line.startswith(f"encoder fingerprint {enc.fingerprint};") and "byte for byte" in line

    def changed(name: str, how) -> str:
        payload = torch.load(shipped_weights_path(), weights_only=False)
        key = next(iter(payload["state"]))
        payload["state"][key] = how(payload["state"][key])
        torch.save(payload, tmp_path / name)
        return against_shipped(tmp_path / name)

    rounded = changed("rounded.pt", lambda t: t * (1 + 3e-7))  # another summation order
    assert "up to floating-point rounding" in rounded and "reproduced them" in rounded
    assert enc.fingerprint not in rounded
    other = changed("other.pt", lambda t: t + 1e-3)  # one tensor off: other weights
    assert "not the shipped weights" in other and "reproduced" not in other
    payload = torch.load(shipped_weights_path(), weights_only=False)
    payload["sound_prototypes"]["labels"] = payload["sound_prototypes"]["labels"][::-1]  # same tensors, other labels
    torch.save(payload, tmp_path / "relabelled.pt")
    assert "not the shipped weights" in against_shipped(tmp_path / "relabelled.pt")
