"""Opening a library's store: SQLite (WAL, foreign keys) or a database server; Alembic migrations.

The store is ``earmark.db`` in the library directory by default. A library created with a
database URL (``postgresql+psycopg://user@host:5432/db``) keeps that URL in the file
``database.url`` in its directory instead (mode 0600; prefer libpq's ``PGPASSWORD`` or
``~/.pgpass`` to a password in the URL). Everything else (index files, caches, models) stays
in the directory.

Opening never changes a library silently: a store behind the code's schema raises
:class:`MigrationRequired` unless the caller asked to migrate (``earmark migrate``).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

DB_NAME = "earmark.db"
DB_URL_FILE = "database.url"
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class StoreError(Exception):
    """The library's database cannot be opened or used."""


class MigrationRequired(StoreError):
    """The store's schema is older than this earmark; run ``earmark migrate``."""


def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL: readers see the last committed transaction while a writer works, never half a batch.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(db: Path | str) -> Engine:
    """A SQLAlchemy engine on a SQLite file path (with earmark's pragmas) or a database URL."""
    if isinstance(db, str) and "://" in db:
        if db.startswith("sqlite"):
            engine = create_engine(db, future=True)
            event.listen(engine, "connect", _on_connect)
            return engine
        try:
            # pre-ping: a server may drop idle connections between two commands of a long session
            return create_engine(db, future=True, pool_pre_ping=True)
        except Exception as exc:  # unknown dialect, driver not installed
            raise StoreError(f"cannot use database URL {_safe(db)}: {exc} "
                             "(PostgreSQL needs the 'postgres' extra: pip install 'earmark[postgres]')") from exc
    engine = create_engine(f"sqlite:///{db}", future=True)
    event.listen(engine, "connect", _on_connect)
    return engine


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparsable URL)"


def is_library(directory: Path) -> bool:
    """True if ``directory`` holds a library store (``earmark.db`` or ``database.url``)."""
    return (directory / DB_NAME).exists() or (directory / DB_URL_FILE).exists()


def store_url(directory: Path) -> str | None:
    """The database URL a library directory points to, or None for its ``earmark.db``."""
    f = directory / DB_URL_FILE
    return f.read_text(encoding="utf-8").strip() if f.exists() else None


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # (configparser would read a %-escape in a URL as interpolation)
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=True).replace("%", "%%"))
    return cfg


def head_revision(engine: Engine) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the store to ``revision``; returns (from, to)."""
    from alembic import command

    before = current_revision(engine)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    return before, current_revision(engine) or ""


def open_store(directory: Path, *, create: bool = False, migrate: bool = False,
               db_url: str | None = None) -> sessionmaker[Session]:
    """Open (or create) the store of ``directory`` and return a session factory.

    ``db_url`` (with ``create``) makes a library whose store is that database; its schema must
    be empty. Otherwise the URL recorded in ``database.url`` or the file ``earmark.db`` is used."""
    db_path = directory / DB_NAME
    if create and db_url:
        engine = make_engine(db_url)
        try:
            if inspect(engine).get_table_names():
                raise StoreError(f"{_safe(db_url)} already has tables; give an empty database")
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot connect to {_safe(db_url)}: {exc}") from exc
        f = directory / DB_URL_FILE
        f.write_text(db_url + "\n", encoding="utf-8")
        f.chmod(0o600)
        db_path = _safe(db_url)
    elif (url := store_url(directory)) is not None:
        engine = make_engine(url)
        db_path = _safe(url)
    else:
        if not db_path.exists() and not create:
            raise StoreError(f"{directory} is not an earmark library (no {DB_NAME}); run `earmark init` first")
        engine = make_engine(db_path)
    try:
        rev = current_revision(engine)
    except Exception as exc:  # not a SQLite database, unreadable, server unreachable
        raise StoreError(f"{db_path}: cannot read the library database: {exc}") from exc
    head = head_revision(engine)
    if rev is None:
        if inspect(engine).get_table_names() and not create:
            raise StoreError(f"{db_path}: has tables but no earmark schema version")
        upgrade(engine)
    elif rev != head:
        if not migrate:
            raise MigrationRequired(
                f"{directory}: library schema is at revision {rev}, this earmark needs {head}; "
                "run `earmark migrate` (back up the library first if you want to keep the old version)"
            )
        upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)
