"""Indexing runs on real folders: formats, broken files, idempotence, moves, duplicates, prune."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from sqlalchemy import func, select

from conftest import noise, tone, write
from earmark.index.store import Segment, Sound

FORMATS = [("wav", {}), ("flac", {}), ("ogg", {"format": "OGG", "subtype": "VORBIS"}), ("aiff", {}),
           ("mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"})]
RATES = [8000, 16000, 22050, 44100, 48000]


def make_corpus(d):
    """45 good files over 5 formats × rates × 1–3 channels, and 5 broken ones."""
    good = []
    for i in range(45):
        ext, kw = FORMATS[i % 5]
        sr = RATES[(i // 5) % 5]
        ch = 1 + i % 3 if ext != "mp3" else 1 + i % 2  # MP3 holds at most 2 channels
        base = tone(200 + 40 * i, 0.5 + (i % 4) * 0.7, sr) if i % 2 else noise(0.5 + (i % 4) * 0.7, sr, seed=i)
        audio = np.stack([base * (0.5 + 0.2 * c) for c in range(ch)], axis=1) if ch > 1 else base
        good.append(write(d / f"g{i % 3}" / f"s{i:02d}.{ext}", audio, sr, **kw))
    broken = {
        "empty.wav": b"",
        "text.flac": b"definitely not a flac file\n" * 20,
        "header_only.wav": b"RIFF\x24\x00\x00\x00WAVEfmt ",
    }
    for name, data in broken.items():
        (d / name).write_bytes(data)
    trunc = write(d / "trunc_src.ogg", noise(2.0, 16000, seed=99), 16000, format="OGG", subtype="VORBIS")
    (d / "truncated.ogg").write_bytes(trunc.read_bytes()[:200])
    trunc.unlink()
    (d / "wrong_ext.mp3").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)
    return good, 5


def test_index_fifty_files_then_nothing(library, tmp_path):
    d = tmp_path / "corpus"
    good, n_broken = make_corpus(d)
    rep = library.index([d], workers=2)
    assert rep.scanned == len(good) + n_broken
    assert rep.added == len(good)
    assert len(rep.failed) == n_broken
    assert all(f.reason for f in rep.failed)
    failed_names = sorted(os.path.basename(f.path) for f in rep.failed)
    assert failed_names == ["empty.wav", "header_only.wav", "text.flac", "truncated.ogg", "wrong_ext.mp3"]
    st = library.status()
    assert (st.sounds_indexed, st.sounds_failed) == (len(good), n_broken)
    # every indexed sound has segments covering its duration
    for s in library.sounds(status="indexed"):
        assert s.segments >= 1 and s.duration > 0
    version = library.data_version
    again = library.index([d], workers=2)
    assert (again.added, again.updated, again.unchanged, len(again.failed)) == (0, 0, len(good) + n_broken, 0)
    assert library.data_version == version


def test_move_is_recorded_as_a_move(library, tmp_path):
    d = tmp_path / "m"
    write(d / "a" / "rain.wav", noise(1.2, 16000, seed=3), 16000)
    write(d / "b.wav", tone(1000, 1.0, 16000), 16000)
    library.index([d])
    before = {s.path: s for s in library.sounds()}
    (d / "c").mkdir()
    shutil.move(d / "a" / "rain.wav", d / "c" / "storm.wav")
    rep = library.index([d])
    assert rep.moved == [("a/rain.wav", "c/storm.wav")]
    assert rep.added == 0
    after = {s.path: s for s in library.sounds()}
    assert after["c/storm.wav"].id == before["a/rain.wav"].id  # same sound, same vectors
    assert "a/rain.wav" not in after


def test_duplicates_copy_vectors_and_changes_reembed(library, tmp_path):
    d = tmp_path / "dup"
    src = write(d / "one.wav", noise(1.5, 16000, seed=5), 16000)
    library.index([d])
    shutil.copy(src, d / "two.wav")
    rep = library.index([d])
    assert rep.duplicates == 1 and rep.added == 0
    with library.session() as s:
        vecs = {}
        for snd in s.scalars(select(Sound)):
            vecs[snd.path] = [seg.embedding for seg in snd.segments]
    assert vecs["one.wav"] == vecs["two.wav"]
    write(d / "one.wav", tone(3000, 2.5, 16000), 16000)  # new content, same path
    rep = library.index([d])
    assert rep.updated == 1
    with library.session() as s:
        assert s.scalar(select(func.count()).select_from(Segment)) == 2 + 4  # two.wav: 1.5 s → 2 windows; one.wav: 2.5 s → 4


def test_prune_and_missing(library, tmp_path):
    d = tmp_path / "p"
    write(d / "x.wav", noise(1.0, 16000, seed=1), 16000)
    write(d / "y.wav", noise(1.0, 16000, seed=2), 16000)
    library.index([d])
    (d / "x.wav").unlink()
    rep = library.index([d])
    assert rep.missing == [str(d.resolve() / "x.wav")] and rep.pruned == 0
    rep = library.index([d], prune=True)
    assert rep.pruned == 1
    assert [s.path for s in library.sounds(status="removed")] == ["x.wav"]
    assert library.status().segments == 1


def test_include_exclude_globs(library, tmp_path):
    d = tmp_path / "g"
    write(d / "keep" / "a.wav", noise(0.5, 16000), 16000)
    write(d / "skip" / "b.wav", noise(0.5, 16000, seed=2), 16000)
    write(d / "keep" / "c.flac", noise(0.5, 16000, seed=3), 16000)
    rep = library.index([d], include=["*.wav"], exclude=["skip/*"])
    assert rep.scanned == 1 and [s.path for s in library.sounds()] == ["keep/a.wav"]


def test_failed_reread_keeps_indexed_data(library, tmp_path):
    d = tmp_path / "r"
    p = write(d / "ok.wav", noise(1.0, 16000), 16000)
    library.index([d])
    p.write_bytes(b"garbage" * 50)
    rep = library.index([d])
    assert len(rep.failed) == 1
    (snd,) = library.sounds()
    assert snd.status == "indexed" and snd.segments == 1 and "re-index failed" in snd.error


def test_second_writer_is_refused(library, tmp_path):
    from earmark.engine.lock import LibraryLocked, WriterLock

    with WriterLock(library.path):
        with pytest.raises(LibraryLocked, match="being written"):
            library.index([tmp_path])
