"""Consistency checks of a library: the SQLite store, then its derived index files.

``earmark check`` runs these; ``--repair`` rebuilds the derived indexes from the store (the
store itself is the source of truth and is never rewritten by a repair).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sqlalchemy import text
from sqlalchemy.orm import Session


@dataclass
class CheckReport:
    """Problems found; an empty ``problems`` list means the library is consistent."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def check_store(s: Session, dim: int) -> CheckReport:
    """Integrity of the store: pages and foreign keys (SQLite), vectors, segment ownership."""
    rep = CheckReport()
    conn = s.connection()
    if conn.dialect.name == "sqlite":
        integrity = conn.execute(text("PRAGMA integrity_check")).scalar()
        rep.checked.append("sqlite integrity")
        if integrity != "ok":
            rep.problems.append(f"sqlite integrity_check: {integrity}")
        fk = conn.execute(text("PRAGMA foreign_key_check")).fetchall()
        rep.checked.append("foreign keys")
        if fk:
            rep.problems.append(f"{len(fk)} rows violate foreign keys (first: {tuple(fk[0])})")
    # a database server checks its own pages and enforces foreign keys on every write
    bad_len = conn.execute(text("SELECT count(*) FROM segments WHERE length(embedding) != :n"), {"n": 4 * dim}).scalar()
    rep.checked.append("vector sizes")
    if bad_len:
        rep.problems.append(f"{bad_len} segments have vectors that are not {dim} float32 values")
    empty = conn.execute(text(
        "SELECT count(*) FROM sounds s WHERE s.status='indexed' AND NOT EXISTS "
        "(SELECT 1 FROM segments g WHERE g.sound_id = s.id)")).scalar()
    rep.checked.append("indexed sounds have segments")
    if empty:
        rep.problems.append(f"{empty} indexed sounds have no segments")
    orphans = conn.execute(text(
        "SELECT count(*) FROM segments g JOIN sounds s ON s.id = g.sound_id WHERE s.status != 'indexed'")).scalar()
    rep.checked.append("segments belong to indexed sounds")
    if orphans:
        rep.problems.append(f"{orphans} segments belong to sounds that are not indexed")
    dup = conn.execute(text(
        "SELECT count(*) FROM (SELECT root_id, path FROM sounds GROUP BY root_id, path HAVING count(*) > 1) AS twice")).scalar()
    rep.checked.append("each file once")
    if dup:
        rep.problems.append(f"{dup} files are recorded more than once")
    return rep
