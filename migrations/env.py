"""Alembic environment: runs on the connection earmark hands over (see index/db.py)."""
from __future__ import annotations

from alembic import context

from earmark.index.store import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # plain `alembic` CLI use: build an engine from the URL
        from sqlalchemy import create_engine

        connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()
    # render_as_batch: SQLite cannot ALTER most things; batch mode recreates tables safely.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
