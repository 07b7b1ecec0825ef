"""Bad input: each file gets a clear per-file error or is indexed correctly; the run goes on."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import TESTS_DIR, noise, tone, write


def _lying_wav(path, claimed_frames: int, real: np.ndarray) -> None:
    """A 16-bit mono WAV whose header claims more data than the file holds."""
    pcm = (real * 32767).astype("<i2").tobytes()
    data_bytes = claimed_frames * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    path.write_bytes(header + pcm)


def test_bad_input_corpus(library, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    good = {
        "one_sample.wav": (np.array([0.5], np.float32), 16000),
        "rate_8k.wav": (tone(500, 1.2, 8000), 8000),
        "rate_192k.flac": (tone(3000, 0.6, 192000), 192000),
        "eight_channels.wav": (np.stack([noise(1.0, 16000, seed=c) for c in range(8)], axis=1), 16000),
        "silence.wav": (np.zeros(16000, np.float32), 16000),
        ("x" * 200 + ".wav"): (tone(700, 0.5, 16000), 16000),
    }
    for name, (audio, sr) in good.items():
        write(d / name, audio, sr)
    _lying_wav(d / "lying_header.wav", claimed_frames=10 * 16000, real=tone(440, 1.0, 16000))
    nan = tone(300, 1.0, 16000)
    nan[5000:5010] = np.inf
    write(d / "inf_float.wav", nan, 16000, subtype="FLOAT")
    (d / "zero.wav").write_bytes(b"")
    (d / "not_audio.ogg").write_bytes(os.urandom(2048))
    loop = d / "loop.wav"
    os.symlink(loop, loop)  # a symlink to itself
    os.symlink(d, d / "dir_loop")  # a directory loop: must not be followed
    locked = write(d / "locked.wav", tone(900, 0.5, 16000), 16000)
    os.chmod(locked, 0)
    bad_name = os.fsencode(str(d)) + b"/caf\xe9.wav"  # Latin-1 bytes: not valid UTF-8
    with open(bad_name, "wb") as f:
        sf.write(f, tone(800, 0.5, 16000), 16000, format="WAV")

    rep = library.index([d])
    failed = {os.path.basename(f.path): f.reason for f in rep.failed}
    indexed = {s.path for s in library.sounds(status="indexed")}

    for name in good:
        assert name in indexed, (name, failed.get(name))
    assert "lying_header.wav" in indexed  # libsndfile reads the frames that exist
    assert "NaN or Inf" in failed["inf_float.wav"]
    assert "empty file" in failed["zero.wav"]
    assert "not a readable audio file" in failed["not_audio.ogg"]
    assert "symbolic links" in failed["loop.wav"]
    assert "UTF-8" in failed["caf\\xe9.wav"]
    if os.geteuid() != 0:  # root reads anything; the check only means something for users
        assert "permission denied" in failed["locked.wav"].lower()
    # the one-sample file became one padded window; the lying header was cut to the real audio
    by_path = {s.path: s for s in library.sounds()}
    assert by_path["one_sample.wav"].segments == 1
    assert by_path["lying_header.wav"].segments >= 1
    # nothing is indexed twice and a second run changes nothing
    version = library.data_version
    rep2 = library.index([d])
    assert rep2.added == rep2.updated == 0 and library.data_version == version


def test_file_changing_while_read_is_not_half_indexed(library, tmp_path):
    """A file rewritten between two runs is re-embedded from its new content, never mixed."""
    d = tmp_path / "chg"
    p = write(d / "c.wav", noise(2.0, 16000, seed=1), 16000)
    library.index([d])
    write(p, tone(2000, 1.0, 16000), 16000)
    rep = library.index([d])
    assert rep.updated == 1
    (snd,) = library.sounds()
    assert snd.segments == 1 and snd.duration == pytest.approx(1.0)


@pytest.mark.slow
def test_two_hour_file_streams_in_bounded_memory(tmp_path):
    """Index a 2-hour 8 kHz file in a subprocess and bound its peak RSS."""
    sr, seconds = 8000, 2 * 3600
    path = tmp_path / "long.wav"
    with sf.SoundFile(path, "w", sr, 1, subtype="PCM_16") as f:
        block = tone(440, 60.0, sr) * 0.3
        for _ in range(seconds // 60):
            f.write(block)
    code = f"""
import resource, sys
sys.path.insert(0, {str(TESTS_DIR)!r})
from fake_encoder import FakeEncoder
from earmark.engine.library import Library
lib = Library.init({str(tmp_path / 'lib')!r}, encoder=FakeEncoder(), vocabulary={str(TESTS_DIR / 'data' / 'test_vocab.txt')!r})
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rep = lib.index([{str(path)!r}])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(rep.segments, base, peak)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    segments, base_kb, peak_kb = map(int, out.stdout.split())
    assert segments == 2 * seconds - 1
    # the whole file as float64 at 16 kHz would be 920 MB; streaming must stay far below
    print(f"\n2-hour file: {segments} segments, peak RSS growth {(peak_kb - base_kb) / 1024:.0f} MB over a {base_kb / 1024:.0f} MB base")
    assert (peak_kb - base_kb) < 300 * 1024


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def test_truncated_and_misnamed_files(library, tmp_path):
    """Truncated WAV/FLAC/OGG/MP3 and files whose extension lies: a clear error or a correct index."""
    d = tmp_path / "cut"
    audio = noise(3.0, 16000, seed=3)
    kinds = {"wav": {}, "flac": {}, "ogg": {"format": "OGG", "subtype": "VORBIS"}}
    if "MP3" in sf.available_formats():
        kinds["mp3"] = {"format": "MP3", "subtype": "MPEG_LAYER_III"}
    for ext, kw in kinds.items():
        for keep in (0.5, 0.02):
            _truncate(write(d / f"cut{int(keep * 100)}.{ext}", audio, 16000, **kw), keep)
    write(d / "flac_named.wav", audio, 16000, format="FLAC")  # libsndfile reads the content, not the name
    write(d / "wav_named.ogg", audio, 16000, format="WAV")
    (d / "text_named.flac").write_text("not a sound at all\n" * 50)
    intact = write(tmp_path / "ok" / "intact.wav", tone(500, 2.0, 16000), 16000)
    library.index([intact.parent])

    rep = library.index([d])
    failed = {os.path.basename(f.path): f.reason for f in rep.failed}
    by_path = {s.path: s for s in library.sounds()}
    assert by_path["intact.wav"].status == "indexed"  # the rest of the library is untouched
    for name in ("flac_named.wav", "wav_named.ogg"):
        assert by_path[name].status == "indexed" and by_path[name].duration == pytest.approx(3.0), name
    assert "not a readable audio file" in failed["text_named.flac"]
    for ext in kinds:
        for keep in (50, 2):
            name = f"cut{keep}.{ext}"
            if name in failed:  # a clear reason that names what is wrong
                assert failed[name] and "Traceback" not in failed[name], (name, failed[name])
            else:  # or the part that is there, indexed, with the duration that decodes (not the header's)
                decoded = len(sf.read(str(d / name))[0]) / 16000
                assert by_path[name].status == "indexed", name
                assert by_path[name].duration == pytest.approx(decoded, abs=0.02), (name, by_path[name].duration, decoded)
    assert {s.path for s in library.sounds(status="indexed")} >= {"intact.wav", "flac_named.wav", "wav_named.ogg"}
    assert library.check().ok
    print("\ntruncated/misnamed:", {n: (failed[n] if n in failed else f"indexed {by_path[n].duration:.2f} s")
                                     for n in sorted(set(failed) | set(by_path)) if n != "intact.wav"})
