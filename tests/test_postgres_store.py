"""The metadata store on PostgreSQL: migrations, init, index, search — the same as on SQLite.

The fixture starts a throwaway PostgreSQL server (Debian's ``postgresql`` package: initdb and
pg_ctl under /usr/lib/postgresql/*/bin) in a temporary directory on a free port, as the
``postgres`` user when the tests run as root (PostgreSQL refuses to run as root). Skipped with
the reason when the server or the driver (extra ``postgres``) is not installed.
"""
from __future__ import annotations

import glob
import math
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import TEST_VOCAB, write_known_sounds


def _pg_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(dirs[-1]).parent if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server():
    """Start a server; yields a function dbname → SQLAlchemy URL of a fresh database."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("no PostgreSQL driver: pip install 'earmark[postgres]' (psycopg)")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql gives initdb and pg_ctl)")
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses root: run it as the postgres user
        runuser = shutil.which("runuser")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            runuser = None
        if runuser is None:
            pytest.skip("running as root without a 'postgres' user and runuser: cannot start PostgreSQL")
        prefix = [runuser, "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="earmark-pg-"))
    if prefix:
        shutil.chown(base, "postgres")
    data, port = base / "data", _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off", "start")
    except subprocess.CalledProcessError as exc:
        log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')} {log}")

    def make_db(name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

    yield make_db
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def test_migrations_run_on_postgresql_and_match_the_models(pg_server):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from earmark.index import db
    from earmark.index.store import Base

    engine = db.make_engine(pg_server("earmark_migrations"))
    assert db.upgrade(engine, "0003") == (None, "0003")  # an old library, then the later revisions
    assert db.upgrade(engine) == ("0003", db.head_revision(engine))
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []
    with engine.connect() as conn:  # sounds over 2 GiB fit
        from sqlalchemy import text

        assert conn.execute(text("SELECT data_type FROM information_schema.columns "
                                 "WHERE table_name='sounds' AND column_name='size'")).scalar() == "bigint"


def test_library_on_postgresql_searches_like_sqlite(pg_server, tmp_path):
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library, LibraryError
    from earmark.index.db import StoreError

    d = write_known_sounds(tmp_path / "known")
    url = pg_server("earmark_lib")
    pg = Library.init(tmp_path / "pg", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB), db_url=url)
    lite = Library.init(tmp_path / "lite", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB))
    assert not (tmp_path / "pg" / "earmark.db").exists() and (tmp_path / "pg" / "database.url").read_text().strip() == url
    ra, rb = pg.index([d]), lite.index([d])
    assert (ra.added, ra.duplicates, ra.segments) == (rb.added, rb.duplicates, rb.segments)
    reopened = Library(tmp_path / "pg")  # the directory points to the database
    for q in ("+noise", "a high beep", "+beep -noise", "noise path:sub/*"):
        for ranking in ("dense", "concept", "fusion"):
            a, b = reopened.search(q, ranking=ranking), lite.search(q, ranking=ranking)
            assert [(h.path, h.start, h.end) for h in a.hits] == [(h.path, h.start, h.end) for h in b.hits]
            for x, y in zip(a.hits, b.hits):
                assert math.isclose(x.score, y.score, rel_tol=1e-6, abs_tol=1e-7)
                assert [c.concept for c in x.contributions] == [c.concept for c in y.contributions]
    st = reopened.status()
    assert st.schema_revision == lite.status().schema_revision and st.segments == lite.status().segments
    assert reopened.check().ok
    reopened.remove(["hum.flac"])
    assert "hum.flac" not in [h.path for h in reopened.search("low hum", ranking="dense").hits]
    with pytest.raises((LibraryError, StoreError), match="already has tables"):
        Library.init(tmp_path / "again", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB), db_url=url)


def test_postgresql_store_with_milvus_indexes(pg_server, tmp_path):
    """The whole scale-out arrangement: PostgreSQL store, Milvus indexes; same hits as SQLite + FAISS."""
    try:
        from earmark.index.milvus import close_clients, pymilvus

        pymilvus()
    except Exception as exc:
        pytest.skip(f"Milvus backend not installed: {exc}")
    from fake_encoder import FakeEncoder

    from earmark.engine.library import Library

    d = write_known_sounds(tmp_path / "known")
    big = Library.init(tmp_path / "big", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB),
                       db_url=pg_server("earmark_milvus"), backend="milvus", milvus_uri=str(tmp_path / "m.db"))
    small = Library.init(tmp_path / "small", encoder=FakeEncoder(), vocabulary=str(TEST_VOCAB))
    big.index([d])
    small.index([d])
    try:
        for q in ("+noise", "a high beep", "+beep -noise"):
            for ranking in ("dense", "concept", "fusion"):
                a, b = big.search(q, ranking=ranking), small.search(q, ranking=ranking)
                assert [(h.path, h.segment_id) for h in a.hits] == [(h.path, h.segment_id) for h in b.hits]
                for x, y in zip(a.hits, b.hits):
                    assert math.isclose(x.score, y.score, rel_tol=1e-5, abs_tol=1e-6)
        assert big.backend_info().database.startswith("postgresql+psycopg://")
        assert big.check().ok
    finally:
        close_clients()
