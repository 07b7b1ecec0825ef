"""Opening a library's SQLite store: WAL, foreign keys, Alembic migrations.

Opening never changes a library silently: a store behind the code's schema raises
:class:`MigrationRequired` unless the caller asked to migrate (``earmark migrate``).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import Session, sessionmaker

DB_NAME = "earmark.db"
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


def make_engine(db_path: Path) -> Engine:
    """A SQLAlchemy engine on ``db_path`` with earmark's pragmas."""
    engine = create_engine(f"sqlite:///{db_path}", future=True)
    event.listen(engine, "connect", _on_connect)
    return engine


def alembic_config(engine: Engine):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", str(engine.url))
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


def open_store(directory: Path, *, create: bool = False, migrate: bool = False) -> sessionmaker[Session]:
    """Open (or create) the store in ``directory`` and return a session factory."""
    db_path = directory / DB_NAME
    if not db_path.exists() and not create:
        raise StoreError(f"{directory} is not an earmark library (no {DB_NAME}); run `earmark init` first")
    engine = make_engine(db_path)
    try:
        rev = current_revision(engine)
    except Exception as exc:  # not a SQLite database, or unreadable
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
