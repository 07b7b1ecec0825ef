"""The linear adapter: fitted toward label prompts, saved and loaded, applied before decomposition."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from earmark.engine.concepts.adapter import Adapter, AdapterError, train_adapter


def fake_text(texts):
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
        v = np.random.default_rng(seed).standard_normal(16)
        out.append(v / np.linalg.norm(v))
    return np.array(out, np.float32)


def labelled_audio(n_per: int = 30, seed: int = 0):
    """Audio embeddings = a fixed rotation of the label's text embedding plus noise (a modality gap)."""
    rng = np.random.default_rng(seed)
    rot, _ = np.linalg.qr(np.random.default_rng(99).standard_normal((16, 16)))  # the same gap for every draw
    labels = [lbl for lbl in ("dog bark", "rain", "engine") for _ in range(n_per)]
    text = fake_text([f"This is a sound of {lbl}" for lbl in labels])
    z = text @ rot.T + 0.1 * rng.standard_normal(text.shape)
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32), labels


def test_adapter_moves_audio_onto_its_label_prompt(tmp_path) -> None:
    z, labels = labelled_audio()
    ad = train_adapter(z, labels, fake_text, alpha=0.1, encoder_fingerprint="fp")
    assert ad.metrics["cos_after"] > 0.9 > ad.metrics["cos_before"] + 0.3
    # Held-out samples from the same labels move too (not memorised).
    z2, labels2 = labelled_audio(seed=1)
    t2 = fake_text([f"This is a sound of {lbl}" for lbl in labels2])
    assert np.mean(np.sum(ad.apply(z2) * t2, 1)) > 0.85
    np.testing.assert_allclose(np.linalg.norm(ad.apply(z2), axis=1), 1, atol=1e-5)
    path = ad.save(tmp_path / "adapter.npz")
    back = Adapter.load(path)
    np.testing.assert_array_equal(back.matrix, ad.matrix)
    assert back.prompt == ad.prompt and back.encoder_fingerprint == "fp" and back.metrics == ad.metrics


def test_large_alpha_keeps_the_identity() -> None:
    z, labels = labelled_audio()
    ad = train_adapter(z, labels, fake_text, alpha=1e6)
    np.testing.assert_allclose(ad.matrix, np.eye(16), atol=1e-3)


def test_adapter_errors(tmp_path) -> None:
    z, labels = labelled_audio()
    with pytest.raises(AdapterError, match="one label per embedding"):
        train_adapter(z, labels[:-1], fake_text)
    bad = tmp_path / "x.npz"
    np.savez(bad, matrix=np.eye(3))
    with pytest.raises(AdapterError, match="not an earmark concept adapter"):
        Adapter.load(bad)
    with pytest.raises(AdapterError, match="expects"):
        train_adapter(z, labels, fake_text).apply(np.ones((2, 3)))
