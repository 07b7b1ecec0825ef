"""The SQLite store: Alembic migrations from nothing and from an old revision, WAL, pragmas."""
from __future__ import annotations

import sqlite3

import pytest
from click.testing import CliRunner

from earmark.cli import main
from earmark.engine.library import Library
from earmark.index import db


def test_migrations_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from earmark.index.store import Base

    engine = db.make_engine(tmp_path / "x.db")
    db.upgrade(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_store_uses_wal_and_foreign_keys(library):
    with library.session() as s:
        conn = s.connection().connection.dbapi_connection
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def _old_library(tmp_path):
    """A library made at the first revision, with a root, an encoder, a sound and a segment."""
    lib_dir = tmp_path / "old"
    lib_dir.mkdir()
    engine = db.make_engine(lib_dir / db.DB_NAME)
    db.upgrade(engine, "0001")
    con = sqlite3.connect(lib_dir / db.DB_NAME)
    con.executescript(
        """
        INSERT INTO roots (id, path, include, exclude, added_at) VALUES (1, '/snd', '[]', '[]', '2026-01-01');
        INSERT INTO encoders (id, name, dim, fingerprint, sample_rate, window_seconds, config, created_at)
            VALUES (1, 'py:fake_encoder:FakeEncoder', 32, 'abc', 16000, 1.0, '{}', '2026-01-01');
        INSERT INTO settings VALUES ('encoder_id', '1'), ('encoder_spec', 'py:fake_encoder:FakeEncoder'),
            ('hop_seconds', '0.5'), ('data_version', '3');
        INSERT INTO sounds (id, root_id, path, content_hash, size, mtime, duration, status)
            VALUES (7, 1, 'rain.wav', 'h1', 10, 1.0, 2.5, 'indexed');
        INSERT INTO segments (id, sound_id, start, "end", embedding, encoder_id) VALUES (11, 7, 0.0, 1.0, x'0000803f', 1);
        """
    )
    con.commit()
    con.close()
    return lib_dir


def test_old_library_is_not_changed_silently(tmp_path):
    lib_dir = _old_library(tmp_path)
    with pytest.raises(db.MigrationRequired, match="earmark migrate"):
        Library(lib_dir)
    assert db.current_revision(db.make_engine(lib_dir / db.DB_NAME)) == "0001"


def test_migrate_upgrades_first_revision_and_keeps_data(tmp_path):
    lib_dir = _old_library(tmp_path)
    result = CliRunner().invoke(main, ["migrate", "--library", str(lib_dir)])
    assert result.exit_code == 0, result.output
    assert "0001 -> 0007" in result.output
    con = sqlite3.connect(lib_dir / db.DB_NAME)
    assert con.execute("SELECT path, duration FROM sounds WHERE id = 7").fetchone() == ("rain.wav", 2.5)
    assert con.execute("SELECT sound_id, embedding, power FROM segments WHERE id = 11").fetchone() == (
        7, b"\x00\x00\x80?", None)  # the window's power is unknown: its audio is not in the store
    assert con.execute("SELECT count(*) FROM index_generations").fetchone() == (0,)
    con.close()
    st = Library(lib_dir).status()
    assert (st.sounds_indexed, st.segments, st.data_version) == (1, 1, 3)


def test_not_a_library_gives_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["status", "--library", str(tmp_path / "nowhere")])
    assert result.exit_code == 3
    assert "earmark init" in result.output


def test_check_finds_a_corrupted_vector(library, sound_dir):
    from sqlalchemy import text

    library.index([sound_dir])
    assert library.check().ok
    with library.session() as s, s.begin():
        s.execute(text("UPDATE segments SET embedding = x'00' WHERE id = (SELECT min(id) FROM segments)"))
    rep = library.check()
    assert not rep.ok and any("float32" in p for p in rep.problems)
