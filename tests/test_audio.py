"""Decoding, resampling and deterministic windowing on real files written by soundfile."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import noise, tone, write
from earmark.engine.audio import AudioError, load_mono, probe, stream_mono
from earmark.engine.windows import iter_windows, window_count


@pytest.mark.parametrize("n,expected", [(1, 1), (16000, 1), (16001, 2), (24000, 2), (24001, 3), (40000, 4)])
def test_window_count_rule(n, expected):
    assert window_count(n, 16000, 8000) == expected


@pytest.mark.parametrize("n", [1, 500, 16000, 16001, 31999, 40000, 100003])
def test_windows_cover_signal_and_pad_with_zeros(n):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    chunks = np.array_split(x, 7) if n > 7 else [x]
    wins = list(iter_windows(chunks, 16000, 16000, 8000))
    assert len(wins) == window_count(n, 16000, 8000)
    for w in wins:
        a = int(round(w.start * 16000))
        b = int(round(w.end * 16000))
        assert w.samples.shape == (16000,)
        np.testing.assert_array_equal(w.samples[: b - a], x[a:b])
        assert not w.samples[b - a :].any()
    assert wins[-1].end == pytest.approx(n / 16000)


def test_windows_do_not_depend_on_chunking():
    x = np.random.default_rng(1).standard_normal(50000).astype(np.float32)
    a = [w.samples for w in iter_windows([x], 16000, 16000, 4000)]
    b = [w.samples for w in iter_windows(np.array_split(x, 13), 16000, 16000, 4000)]
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_resample_and_downmix(tmp_path):
    sr = 44100
    stereo = np.stack([tone(440, 2.0, sr), tone(440, 2.0, sr)], axis=1)
    p = write(tmp_path / "st.flac", stereo, sr)
    info = probe(p)
    assert (info.sample_rate, info.channels) == (sr, 2)
    y = load_mono(p, 16000)
    assert abs(y.size - 32000) <= 2
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / y.size - 440) < 2


def test_decoding_is_deterministic(tmp_path):
    p = write(tmp_path / "n.wav", noise(3.0, 48000), 48000)
    a = np.concatenate(list(stream_mono(p, 16000)))
    b = np.concatenate(list(stream_mono(p, 16000)))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"this is not audio at all" * 10), "not a readable audio file"),
    ],
)
def test_bad_files_raise_named_errors(tmp_path, make, reason):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError) as err:
        probe(p)
    assert reason in err.value.reason and err.value.path == str(p)


def test_nan_samples_are_rejected(tmp_path):
    x = tone(300, 1.0, 16000)
    x[100] = np.nan
    p = write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(stream_mono(p, 16000))


def test_truncated_file_is_an_error_or_shorter_never_garbage(tmp_path):
    p = write(tmp_path / "t.flac", noise(2.0, 16000), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    try:
        y = load_mono(p, 16000)
    except AudioError as exc:
        assert "t.flac" in str(exc)
    else:
        assert np.all(np.isfinite(y)) and y.size < 32000


def _vorbis_in_wav(dest, ogg: bytes, tag: int = 0x674F, sr: int = 16000, pad_chunk: bool = True):
    """A RIFF/WAVE file as old ACM Vorbis codecs wrote it: Vorbis format tag, the Ogg stream as data."""
    import struct

    fmt = struct.pack("<HHIIHHH", tag, 1, sr, 4000, 1, 16, 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if pad_chunk:  # an odd-sized chunk before data, to exercise the padding rule
        chunks += b"fact" + struct.pack("<I", 3) + b"abc\0"
    chunks += b"data" + struct.pack("<I", len(ogg)) + ogg
    dest.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)
    return dest


def test_vorbis_wrapped_in_wav_decodes_like_the_ogg_inside(tmp_path):
    """lmms-common ships such files (kick04.ogg, ...): libsndfile rejects the container, earmark
    reads the stream in place, and gets the same samples as from the plain Ogg."""
    from earmark.engine.server.peaks import _peaks

    ogg = write(tmp_path / "plain.ogg", tone(440, 1.5, 16000), 16000, format="OGG", subtype="VORBIS")
    p = _vorbis_in_wav(tmp_path / "wrapped.wav", ogg.read_bytes())
    with pytest.raises(sf.LibsndfileError):
        sf.info(str(p))
    info = probe(p)
    assert (info.sample_rate, info.channels, info.frames) == (16000, 1, sf.info(str(ogg)).frames)
    np.testing.assert_array_equal(load_mono(p, 16000), load_mono(ogg, 16000))
    assert _peaks(str(p), 0, 0, 10).max == _peaks(str(ogg), 0, 0, 10).max


def test_vorbis_in_wav_without_an_ogg_stream_is_a_named_error(tmp_path):
    p = _vorbis_in_wav(tmp_path / "mode3.wav", b"\x01vorbis" + b"\0" * 200, tag=0x6751)
    with pytest.raises(AudioError, match="0x6751.*not an Ogg stream") as err:
        probe(p)
    assert err.value.path == str(p)
