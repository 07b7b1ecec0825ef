"""`earmark reembed`: a library moves to another encoder (or this earmark's new weights) and
fills what older rows lack, on real libraries, real audio files and real FAISS indexes."""
from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import TEST_VOCAB, earmark_argv, subprocess_env, write_known_sounds
from fake_encoder import FakeEncoder, NarrowFakeEncoder, VersionedFakeEncoder

from earmark.engine.library import EncoderMismatch, Library

NARROW = "py:fake_encoder:NarrowFakeEncoder"


def _vectors(db: Path) -> dict[tuple[str, float], np.ndarray]:
    """Every stored window: (sound path, start) → embedding."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT s.path, g.start, g.embedding FROM segments g JOIN sounds s ON s.id = g.sound_id").fetchall()
    finally:
        con.close()
    return {(p, round(a, 4)): np.frombuffer(e, np.float32) for p, a, e in rows}


def _fresh(tmp_path: Path, name: str, encoder, sounds: Path) -> Library:
    """A library built from scratch with ``encoder``: what a re-embedded one must equal."""
    lib = Library.init(tmp_path / name, encoder=encoder, vocabulary=str(TEST_VOCAB))
    lib.index([sounds])
    return lib


def _same_vectors(a: Path, b: Path) -> None:
    va, vb = _vectors(a / "earmark.db"), _vectors(b / "earmark.db")
    assert sorted(va) == sorted(vb)
    for key in va:
        np.testing.assert_allclose(va[key], vb[key], atol=1e-6, err_msg=str(key))


def _top(lib: Library, query: str) -> str:
    return lib.search(query, k=3).hits[0].path


def test_switch_to_another_encoder_of_another_dimension(tmp_path):
    sounds = write_known_sounds(tmp_path / "sounds")
    lib = _fresh(tmp_path, "lib", FakeEncoder(), sounds)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nsounds/beep.wav,beep\nsounds/white_noise.wav,noise\nsounds/hum.flac,hum\n")
    lib.adapt(labels)
    assert lib.setting("adapter_hash")
    assert _top(lib, "low hum") == "hum.flac"

    old_dictionaries = list((lib.path / "cache").glob(f"concepts-*-{FakeEncoder().fingerprint}.npy"))
    assert old_dictionaries
    rep = lib.reembed(NARROW)

    assert rep.switched and rep.sounds == rep.reembedded == 5 and rep.pending == 0
    # The old encoder's concept dictionaries are of no use any more: removed, the new one's kept.
    assert not any(p.exists() for p in old_dictionaries) and any("dictionaries" in n for n in rep.notes)
    assert list((lib.path / "cache").glob(f"concepts-*-{NarrowFakeEncoder().fingerprint}.npy"))
    assert not rep.failed and not rep.missing and not lib.search("noise").query.notes
    assert any("adapter" in n for n in rep.notes) and not lib.setting("adapter_hash")
    # The same windows, vectors and codes as a library built with the new encoder from the start.
    _same_vectors(lib.path, _fresh(tmp_path, "fresh", NarrowFakeEncoder(), sounds).path)
    con = sqlite3.connect(lib.path / "earmark.db")
    new_id = int(con.execute("SELECT value FROM settings WHERE key='encoder_id'").fetchone()[0])
    assert con.execute("SELECT count(*) FROM segments WHERE encoder_id != ?", (new_id,)).fetchone() == (0,)
    assert con.execute("SELECT encoder_id FROM codebooks ORDER BY id DESC LIMIT 1").fetchone() == (new_id,)
    n_seg = con.execute("SELECT count(*) FROM segments").fetchone()[0]
    assert con.execute("SELECT count(*) FROM codes c JOIN codebooks b ON b.id = c.codebook_id "
                       "WHERE b.encoder_id = ?", (new_id,)).fetchone() == (n_seg,)
    con.close()
    assert lib.indexes().dense.dim == 16
    assert lib.check().ok

    reopened = Library(lib.path)  # loads the encoder from the recorded spec
    assert reopened.encoder.fingerprint == NarrowFakeEncoder().fingerprint
    assert _top(reopened, "low hum") == "hum.flac"
    assert reopened.status().encoder == NARROW


def test_a_process_holding_the_old_encoder_follows_the_switch(tmp_path):
    """What `earmark serve` sees when another process re-embeds the library under it."""
    sounds = write_known_sounds(tmp_path / "sounds")
    Library.init(tmp_path / "lib", encoder="py:fake_encoder:FakeEncoder", vocabulary=str(TEST_VOCAB)).index([sounds])
    serving = Library(tmp_path / "lib")
    assert _top(serving, "low hum") == "hum.flac"
    Library(tmp_path / "lib").reembed(NARROW)
    result = serving.search("low hum", k=3)
    assert result.hits[0].path == "hum.flac"
    assert serving.encoder.dim == 16 and serving.indexes().dense.dim == 16


class _StopsAfter(NarrowFakeEncoder):
    """The new encoder, interrupted after ``calls`` batches (as a killed run would be)."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return super().embed_audio(windows)


def _interrupted_switch(tmp_path: Path, calls: int) -> tuple[Library, Path]:
    """A library of the known sounds whose move to NarrowFakeEncoder stopped after ``calls`` batches."""
    sounds = write_known_sounds(tmp_path / "sounds")
    lib = _fresh(tmp_path, "lib", FakeEncoder(), sounds)
    with pytest.raises(KeyboardInterrupt):
        lib.reembed(_StopsAfter(calls))
    return lib, sounds


def test_interrupted_reembed_answers_queries_and_resumes(tmp_path):
    lib, sounds = _interrupted_switch(tmp_path, 2)
    after_stop = Library(tmp_path / "lib")
    st = after_stop.status()
    assert st.sounds_indexed == 2 and st.sounds_pending == 3
    # Only the sounds already re-embedded are searchable, and only with the new encoder's vectors.
    hits = after_stop.search("noise", k=10).hits
    indexed = {s.path for s in after_stop.sounds(status="indexed")}
    assert hits and {h.path for h in hits} <= indexed
    assert any("3 sound(s) await re-embedding" in n for n in after_stop.search("noise").query.notes)
    assert after_stop.indexes().dense.dim == 16

    rep = after_stop.reembed()  # the recorded spec: the new encoder
    assert not rep.switched and rep.sounds == rep.reembedded == 3 and rep.pending == 0
    _same_vectors(lib.path, _fresh(tmp_path, "fresh", NarrowFakeEncoder(), sounds).path)
    assert after_stop.check().ok


def test_upgrade_under_the_same_spec_through_the_cli(tmp_path):
    sounds = write_known_sounds(tmp_path / "sounds")
    lib_dir = tmp_path / "lib"
    v1, v2 = subprocess_env(FAKE_ENCODER_VERSION="1"), subprocess_env(FAKE_ENCODER_VERSION="2")
    for args in (("init", str(lib_dir), "--encoder", "py:fake_encoder:VersionedFakeEncoder", "--vocabulary", str(TEST_VOCAB)),
                 ("index", "--library", str(lib_dir), str(sounds))):
        subprocess.run(earmark_argv(*args), env=v1, check=True, capture_output=True)
    before = _vectors(lib_dir / "earmark.db")

    # The "upgraded" earmark refuses to mix vectors and says what to do.
    res = subprocess.run(earmark_argv("search", "-L", str(lib_dir), "beep"), env=v2, capture_output=True, text=True)
    assert res.returncode != 0 and "earmark reembed" in res.stderr
    # Without --yes and nobody to answer, nothing is dropped.
    res = subprocess.run(earmark_argv("reembed", "-L", str(lib_dir)), env=v2, capture_output=True, text=True, input="")
    assert res.returncode != 0 and "Drop the vectors of its 5 indexed sounds" in res.stderr
    assert _vectors(lib_dir / "earmark.db").keys() == before.keys()

    res = subprocess.run(earmark_argv("reembed", "-L", str(lib_dir), "--yes", "--json"), env=v2,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["switched"] and rep["reembedded"] == 5 and rep["pending"] == 0
    # New weights: every stored vector is the old one with its bands reversed.
    after = _vectors(lib_dir / "earmark.db")
    assert after.keys() == before.keys()
    for key, v in before.items():
        np.testing.assert_allclose(after[key], v[::-1], atol=1e-6)
    res = subprocess.run(earmark_argv("search", "-L", str(lib_dir), "low hum", "--json"), env=v2,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["hits"][0]["path"] == "hum.flac"
    # A second run has nothing left to do.
    res = subprocess.run(earmark_argv("reembed", "-L", str(lib_dir), "--json"), env=v2, capture_output=True, text=True)
    assert res.returncode == 0 and json.loads(res.stdout)["sounds"] == 0


def test_reembed_fills_window_power_of_rows_older_than_0007(tmp_path):
    sounds = write_known_sounds(tmp_path / "sounds")
    lib = _fresh(tmp_path, "lib", FakeEncoder(), sounds)
    con = sqlite3.connect(lib.path / "earmark.db")
    hum_id = con.execute("SELECT id FROM sounds WHERE path='hum.flac'").fetchone()[0]
    others = con.execute("SELECT id, embedding FROM segments WHERE sound_id != ? ORDER BY id", (hum_id,)).fetchall()
    hum_vectors = [e for (e,) in con.execute("SELECT embedding FROM segments WHERE sound_id = ? ORDER BY start", (hum_id,))]
    con.execute("UPDATE segments SET power = NULL WHERE sound_id = ?", (hum_id,))  # as an older earmark stored it
    con.commit()
    assert any("before window power" in n for n in lib.search("low hum").query.notes)

    rep = lib.reembed()

    assert not rep.switched and rep.sounds == rep.reembedded == 1
    assert con.execute("SELECT count(*) FROM segments WHERE power IS NULL").fetchone() == (0,)
    assert [e for (e,) in con.execute("SELECT embedding FROM segments WHERE sound_id = ? ORDER BY start", (hum_id,))] == hum_vectors
    # The other sounds were not touched: same rows, same vectors.
    assert con.execute("SELECT id, embedding FROM segments WHERE sound_id != ? ORDER BY id", (hum_id,)).fetchall() == others
    con.close()
    assert not lib.search("low hum").query.notes
    assert lib.check().ok


def test_missing_and_corrupt_files_are_reported_and_nothing_else_is_lost(tmp_path):
    sounds = write_known_sounds(tmp_path / "sounds")
    lib = _fresh(tmp_path, "lib", FakeEncoder(), sounds)
    (sounds / "hum.flac").unlink()
    (sounds / "white_noise.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")

    rep = lib.reembed(NARROW)

    assert rep.reembedded == 3 and rep.pending == 1
    assert rep.missing == [str(sounds / "hum.flac")]
    assert [f.path for f in rep.failed] == [str(sounds / "white_noise.wav")]
    by_path = {s.path: s for s in lib.sounds()}
    assert by_path["hum.flac"].status == "pending" and by_path["white_noise.wav"].status == "failed"
    assert by_path["white_noise.wav"].error
    assert _top(lib, "a high beep") in ("beep.wav", "sub/beep_copy.wav", "sub/beep_then_noise.wav")
    # `index --prune` forgets the missing sound; nothing stays pending.
    lib.index([sounds], prune=True)
    assert lib.status().sounds_pending == 0 and lib.sounds(status="removed")[0].path == "hum.flac"


def test_the_old_encoder_is_refused_with_the_way_out(tmp_path, monkeypatch):
    sounds = write_known_sounds(tmp_path / "sounds")
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "1")
    Library.init(tmp_path / "lib", encoder="py:fake_encoder:VersionedFakeEncoder",
                 vocabulary=str(TEST_VOCAB)).index([sounds])
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "2")
    lib = Library(tmp_path / "lib")
    with pytest.raises(EncoderMismatch, match="earmark reembed"):
        lib.search("beep")
    assert VersionedFakeEncoder().fingerprint != lib.encoder_record().fingerprint
    assert lib.reembed().switched
    assert lib.encoder_record().fingerprint == VersionedFakeEncoder().fingerprint


def test_earmark_index_of_the_roots_also_finishes_an_interrupted_switch(tmp_path):
    lib, sounds = _interrupted_switch(tmp_path, 1)
    again = Library(tmp_path / "lib")
    report = again.index([sounds])
    assert report.updated == 4 and again.status().sounds_pending == 0
    _same_vectors(lib.path, _fresh(tmp_path, "fresh", NarrowFakeEncoder(), sounds).path)


def test_pinning_the_same_weights_under_another_spec_rebinds_without_reembedding(tmp_path):
    """A library built with one spec and moved to another spec of the *same* weights (e.g. the
    previous release's weights file, kept to pin a library to them; here the other way round)
    keeps its vectors and loads its encoder from the new spec from then on."""
    import shutil

    from earmark.engine.encoders.embedded import shipped_weights_path

    sounds = write_known_sounds(tmp_path / "sounds")
    copy = tmp_path / "pinned-clap.pt"
    shutil.copy(shipped_weights_path(), copy)
    lib = Library.init(tmp_path / "lib", encoder=f"embedded:{copy}", vocabulary=str(TEST_VOCAB))
    lib.index([sounds])
    before = _vectors(tmp_path / "lib" / "earmark.db")
    rep = lib.reembed("embedded")
    assert not rep.switched and rep.sounds == 0
    assert any("now loads its encoder as 'embedded'" in n for n in rep.notes), rep.notes
    copy.unlink()  # the old spec's file is gone: only the new spec can load the encoder now
    reopened = Library(tmp_path / "lib")
    assert reopened.encoder_record().name == "embedded"
    assert reopened.search("a low hum", k=5).hits
    after = _vectors(tmp_path / "lib" / "earmark.db")
    assert after.keys() == before.keys() and all(np.array_equal(after[k], before[k]) for k in before)


def _codes(db: Path) -> dict[tuple[str, float], tuple[bytes, bytes]]:
    """Every stored window's concept code under the library's active codebook (none without one)."""
    con = sqlite3.connect(db)
    try:
        book = con.execute("SELECT value FROM settings WHERE key = 'codebook_id'").fetchone()[0]
        if not book:  # no active codebook: no codes to read
            return {}
        rows = con.execute("SELECT s.path, g.start, c.concept_ids, c.weights FROM codes c JOIN segments g ON g.id = "
                           "c.segment_id JOIN sounds s ON s.id = g.sound_id WHERE c.codebook_id = ?", (int(book),)).fetchall()
    finally:
        con.close()
    return {(p, round(a, 4)): (i, w) for p, a, i, w in rows}


def test_a_text_side_upgrade_keeps_the_vectors_and_recomputes_the_codes(tmp_path, monkeypatch):
    """New weights whose audio side is the old one's (as v13's alias words left v12's audio tower):
    a few sounds are embedded again to prove it, every stored window stays (same rows, same
    vectors) and only the concept codes and indexes are made again: as a fresh library's."""
    from fake_encoder import TextVersionedFakeEncoder

    sounds = write_known_sounds(tmp_path / "sounds")
    monkeypatch.setenv("FAKE_ENCODER_TEXT_VERSION", "1")
    lib = _fresh(tmp_path, "lib", "py:fake_encoder:TextVersionedFakeEncoder", sounds)
    db = lib.path / "earmark.db"
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, sound_id, start, embedding, power FROM segments ORDER BY id").fetchall()
    con.close()
    old_codes = _codes(db)
    monkeypatch.setenv("FAKE_ENCODER_TEXT_VERSION", "2")
    lib = Library(tmp_path / "lib")
    with pytest.raises(EncoderMismatch):
        lib.search("beep")

    rep = lib.reembed()

    assert rep.switched and rep.kept_vectors and rep.reembedded == 0 and rep.pending == 0
    assert any("stored vectors are kept" in n for n in rep.notes), rep.notes
    assert lib.encoder_record().fingerprint == TextVersionedFakeEncoder().fingerprint
    con = sqlite3.connect(db)
    assert con.execute("SELECT id, sound_id, start, embedding, power FROM segments ORDER BY id").fetchall() == rows
    assert con.execute("SELECT count(DISTINCT encoder_id) FROM segments").fetchone() == (1,)
    con.close()
    fresh = _fresh(tmp_path, "fresh", "py:fake_encoder:TextVersionedFakeEncoder", sounds)
    new_codes, fresh_codes = _codes(db), _codes(fresh.path / "earmark.db")
    assert new_codes.keys() == fresh_codes.keys() == old_codes.keys()
    for key in new_codes:  # the codes are the new encoder's, as a library built with it has them
        np.testing.assert_allclose(np.frombuffer(new_codes[key][1], np.float32),
                                   np.frombuffer(fresh_codes[key][1], np.float32), atol=1e-5)
        assert new_codes[key][0] == fresh_codes[key][0]
    assert any(new_codes[k] != old_codes[k] for k in new_codes)  # and not the old ones
    assert lib.search("a high beep", k=3).hits[0].path == fresh.search("a high beep", k=3).hits[0].path
    assert lib.check().ok


def test_any_difference_in_the_audio_side_drops_the_vectors(tmp_path, monkeypatch):
    from earmark.engine.reembed import audio_unchanged
    from fake_encoder import TextVersionedFakeEncoder

    sounds = write_known_sounds(tmp_path / "sounds")
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "1")
    lib = _fresh(tmp_path, "lib", "py:fake_encoder:VersionedFakeEncoder", sounds)
    monkeypatch.setenv("FAKE_ENCODER_VERSION", "2")  # its audio vectors change too
    assert audio_unchanged(lib, VersionedFakeEncoder()) == 0
    assert audio_unchanged(lib, NarrowFakeEncoder()) == 0  # another window and dimension
    assert audio_unchanged(lib, TextVersionedFakeEncoder()) > 0  # v1's audio is FakeEncoder's
    for f in sounds.rglob("*.*"):
        f.unlink()  # nothing left to check against: no proof, so no shortcut
    assert audio_unchanged(lib, TextVersionedFakeEncoder()) == 0
    rep = lib.reembed(VersionedFakeEncoder())
    assert rep.switched and not rep.kept_vectors and rep.pending == 5


def test_the_cli_asks_nothing_when_no_vector_is_dropped(tmp_path):
    sounds = write_known_sounds(tmp_path / "sounds")
    lib_dir = tmp_path / "lib"
    v1, v2 = subprocess_env(FAKE_ENCODER_TEXT_VERSION="1"), subprocess_env(FAKE_ENCODER_TEXT_VERSION="2")
    for args in (("init", str(lib_dir), "--encoder", "py:fake_encoder:TextVersionedFakeEncoder", "--vocabulary",
                  str(TEST_VOCAB)), ("index", "--library", str(lib_dir), str(sounds))):
        subprocess.run(earmark_argv(*args), env=v1, check=True, capture_output=True)
    res = subprocess.run(earmark_argv("reembed", "-L", str(lib_dir)), env=v2, capture_output=True, text=True, input="")
    assert res.returncode == 0, res.stderr
    assert "vectors kept" in res.stdout and "0 of 0 sounds embedded again" in res.stdout


def test_a_kept_vectors_switch_stopped_before_its_codes_is_finished_by_running_again(tmp_path, monkeypatch):
    """The switch commits first; a run stopped before the codes were made again leaves a library on
    the new encoder with no codes: `earmark reembed` again makes them and the concept indexes."""
    from earmark.engine.reembed import audio_unchanged, keep_vectors_for
    from fake_encoder import TextVersionedFakeEncoder

    sounds = write_known_sounds(tmp_path / "sounds")
    monkeypatch.setenv("FAKE_ENCODER_TEXT_VERSION", "1")
    lib = _fresh(tmp_path, "lib", "py:fake_encoder:TextVersionedFakeEncoder", sounds)
    monkeypatch.setenv("FAKE_ENCODER_TEXT_VERSION", "2")
    lib = Library(tmp_path / "lib")
    target = TextVersionedFakeEncoder()
    keep_vectors_for(lib, target, audio_unchanged(lib, target))  # ... and the run stops here
    assert _codes(lib.path / "earmark.db") == {}

    rep = Library(tmp_path / "lib").reembed()

    assert not rep.switched and rep.reembedded == 0
    fresh = _fresh(tmp_path, "fresh", "py:fake_encoder:TextVersionedFakeEncoder", sounds)
    assert _codes(lib.path / "earmark.db").keys() == _codes(fresh.path / "earmark.db").keys()
    again = Library(tmp_path / "lib")
    assert [h.path for h in again.search("+noise", k=2).hits] == [h.path for h in fresh.search("+noise", k=2).hits]
    assert again.check().ok
