"""One conformance suite for every encoder backend, on tiny models built locally.

Each backend is one entry of ``BACKENDS``: a builder that returns the spec string that loads
it and a spec that points at a missing checkpoint. Audio goes through earmark's real audio
layer (soundfile decode, soxr resampling to the encoder's rate, deterministic windows).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from earmark.engine.audio import stream_mono
from earmark.engine.encoders import Encoder, EncoderError, load_encoder
from earmark.engine.windows import iter_windows


@dataclass(frozen=True)
class BackendCase:
    spec: str  # loads the backend's tiny (or shipped) model
    missing_spec: str  # same backend, checkpoint that does not exist
    missing_name: str  # what the error message must mention


def _hf_case(tmp: Path) -> BackendCase:
    from encoder_fixtures import build_tiny_hf_clap

    d = build_tiny_hf_clap(tmp / "tiny-hf")
    return BackendCase(f"hf:{d}", f"hf:{tmp / 'no-such-model'}", "no-such-model")


def _laion_case(tmp: Path) -> BackendCase:
    import importlib.util

    # find_spec, not import: importing laion_clap itself reaches for the hub (see engine/encoders/laion.py)
    if importlib.util.find_spec("laion_clap") is None:
        pytest.skip("laion-clap is not installed here; run .ci/laion.sh")
    from encoder_fixtures import build_tiny_laion_checkpoint

    ckpt, cfg, roberta = build_tiny_laion_checkpoint(tmp / "tiny-laion")
    opts = f"?amodel={cfg}&text={roberta}"
    return BackendCase(f"laion:{ckpt}{opts}", f"laion:{tmp / 'missing.pt'}{opts}", "missing.pt")


def _embedded_case(tmp: Path) -> BackendCase:
    from earmark.engine.encoders.embedded import shipped_weights_path

    if not shipped_weights_path().exists():
        pytest.skip(f"embedded weights not built yet ({shipped_weights_path()})")
    return BackendCase("embedded", f"embedded:{tmp / 'missing.pt'}", "missing.pt")


# Adding a backend to the suite is one line here.
BACKENDS: dict[str, Callable[[Path], BackendCase]] = {
    "hf": _hf_case,
    "laion": _laion_case,
    "embedded": _embedded_case,
}
PARAMS = [pytest.param(n, id=n, marks=[pytest.mark.laion] if n == "laion" else []) for n in BACKENDS]


@pytest.fixture(scope="module", params=PARAMS)
def case(request, tmp_path_factory) -> BackendCase:
    import torch

    torch.set_num_threads(1)
    return BACKENDS[request.param](tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def enc(case: BackendCase) -> Encoder:
    return load_encoder(case.spec, device="cpu")


def _tone(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(seconds: float, sr: int, seed: int) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).uniform(-1, 1, int(round(seconds * sr)))).astype(np.float32)


def _windows_of(path: Path, enc: Encoder) -> np.ndarray:
    """What indexing does: decode, resample with soxr to the encoder's rate, cut windows."""
    w = enc.window_samples
    return np.stack([x.samples for x in iter_windows(stream_mono(path, enc.sample_rate), enc.sample_rate, w, w // 2)])


def _assert_unit_rows(v: np.ndarray, n: int, enc: Encoder) -> None:
    assert v.dtype == np.float32 and v.shape == (n, enc.dim)
    assert np.all(np.isfinite(v))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)


def test_info_and_fingerprint(case: BackendCase, enc: Encoder) -> None:
    info = enc.info
    assert info.name == case.spec and info.dim > 0 and info.sample_rate > 0 and info.window_seconds > 0
    assert len(enc.fingerprint) == 16 and int(enc.fingerprint, 16) >= 0
    assert load_encoder(case.spec, device="cpu").fingerprint == enc.fingerprint  # stable across loads


def test_audio_shape_and_unit_norm(enc: Encoder) -> None:
    sr, secs = enc.sample_rate, enc.window_seconds
    batch = np.stack([_tone(440, secs, sr), _noise(secs, sr, 1), _tone(3000, secs, sr, 0.1)])[:, : enc.window_samples]
    v = enc.embed_audio(batch)
    _assert_unit_rows(v, 3, enc)
    assert not np.allclose(v[0], v[1], atol=1e-4), "different sounds must not embed identically"
    assert enc.embed_audio(np.zeros((0, enc.window_samples), np.float32)).shape == (0, enc.dim)


def test_batch_of_one_equals_item_in_batch_of_many(enc: Encoder) -> None:
    sr, secs = enc.sample_rate, enc.window_seconds
    batch = np.stack([_noise(secs, sr, s) for s in range(5)])[:, : enc.window_samples]
    many = enc.embed_audio(batch)
    for i in (0, 3):
        one = enc.embed_audio(batch[i : i + 1])
        # Same maths; only BLAS blocking may differ with the batch size, so allow float32 rounding.
        np.testing.assert_allclose(one[0], many[i], atol=2e-5, rtol=0)
    texts = ["rain on a roof", "a dog barks", "engine"]
    many_t = enc.embed_text(texts)
    np.testing.assert_allclose(enc.embed_text(texts[1:2])[0], many_t[1], atol=2e-5, rtol=0)


def test_same_file_twice_is_bit_identical(enc: Encoder, tmp_path: Path) -> None:
    path = tmp_path / "mix.wav"
    sf.write(path, _tone(660, 2.5 * enc.window_seconds, enc.sample_rate) + _noise(2.5 * enc.window_seconds, enc.sample_rate, 7),
             enc.sample_rate, subtype="FLOAT")
    a = enc.embed_audio(_windows_of(path, enc))
    b = enc.embed_audio(_windows_of(path, enc))
    assert a.shape[0] >= 4
    assert np.array_equal(a, b)
    assert np.array_equal(enc.embed_text(["thunder"]), enc.embed_text(["thunder"]))


@pytest.mark.parametrize("kind", ["long", "short", "silent"])
def test_long_short_silent_files(enc: Encoder, tmp_path: Path, kind: str) -> None:
    sr, secs = enc.sample_rate, enc.window_seconds
    audio = {
        "long": _noise(3.2 * secs, sr, 3),
        "short": _tone(500, 0.1 * secs, sr),
        "silent": np.zeros(int(1.5 * secs * sr), np.float32),
    }[kind]
    path = tmp_path / f"{kind}.wav"
    sf.write(path, audio, sr)
    windows = _windows_of(path, enc)
    assert windows.shape[0] == {"long": 6, "short": 1, "silent": 2}[kind]
    _assert_unit_rows(enc.embed_audio(windows), windows.shape[0], enc)


@pytest.mark.parametrize("file_rate", [8000, 22050, 44100, 96000])
def test_other_sample_rates_are_resampled(enc: Encoder, tmp_path: Path, file_rate: int) -> None:
    secs = enc.window_seconds
    native = tmp_path / "native.wav"
    sf.write(native, _tone(300, secs, enc.sample_rate), enc.sample_rate, subtype="FLOAT")
    other = tmp_path / f"at{file_rate}.wav"
    sf.write(other, _tone(300, secs, file_rate), file_rate, subtype="FLOAT")
    a = enc.embed_audio(_windows_of(native, enc))
    b = enc.embed_audio(_windows_of(other, enc))
    _assert_unit_rows(b, 1, enc)
    # A 300 Hz tone survives any of these rates, so it must land where the native file lands.
    assert float(a[0] @ b[0]) > 0.98


def test_text_shape_norm_and_distinct(enc: Encoder) -> None:
    v = enc.embed_text(["rain", "a dog barks", "rain"])
    _assert_unit_rows(v, 3, enc)
    assert np.array_equal(v[0], v[2]) or np.allclose(v[0], v[2], atol=2e-5)
    assert not np.allclose(v[0], v[1], atol=1e-4)
    assert enc.embed_text([]).shape == (0, enc.dim)


def test_wrong_window_length_is_refused(enc: Encoder) -> None:
    with pytest.raises(EncoderError, match="samples"):
        enc.embed_audio(np.zeros((1, enc.window_samples + 1), np.float32))


def test_missing_checkpoint_is_a_clear_error(case: BackendCase) -> None:
    with pytest.raises(EncoderError) as err:
        load_encoder(case.missing_spec, device="cpu")
    assert case.missing_name in str(err.value)
