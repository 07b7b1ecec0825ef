"""Atomic, generation-tagged index files.

Every index file is written under a temporary name in its final directory, fsynced, renamed
over its final name and the directory fsynced, so a crash at any instant leaves either the old
file or the new one, never a torn one. Files carry the generation SQLite records for them
(``dense-000012.faiss``), so an old generation stays intact until the database commits the new
one and the caller removes the old file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

#: Index kinds and their file suffixes (the kinds match ``index_generations.kind``).
SUFFIXES: dict[str, str] = {"dense": ".faiss", "concept": ".faiss", "postings": ".npz"}
_NAME = re.compile(r"^(?P<kind>[a-z]+)-(?P<gen>\d{6,})(?P<suffix>\.[a-z]+)$")
_TMP_MARK = ".tmp-"


class IndexFileError(Exception):
    """An index file is missing, unreadable or misnamed; rebuild it from the database."""


@dataclass(frozen=True)
class GenerationFile:
    """One committed-looking index file on disk."""

    kind: str
    generation: int
    path: Path


def generation_name(kind: str, generation: int) -> str:
    """File name of ``kind`` at ``generation``, e.g. ``dense-000012.faiss``."""
    if kind not in SUFFIXES:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {sorted(SUFFIXES)}")
    if generation < 0:
        raise ValueError(f"generation must be >= 0, got {generation}")
    return f"{kind}-{generation:06d}{SUFFIXES[kind]}"


def parse_generation(path: str | os.PathLike) -> GenerationFile | None:
    """The kind and generation encoded in a file name, or None for other files."""
    p = Path(path)
    m = _NAME.match(p.name)
    if not m or m["kind"] not in SUFFIXES or SUFFIXES[m["kind"]] != m["suffix"]:
        return None
    return GenerationFile(m["kind"], int(m["gen"]), p)


def fsync_directory(directory: str | os.PathLike) -> None:
    """Flush a directory entry (the rename) to disk; a no-op where the OS cannot (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Write ``path`` atomically: ``write(tmp)`` fills a temporary file beside it, then fsync,
    rename over ``path`` and fsync the directory. On any error the temporary file is removed and
    ``path`` is untouched. Returns ``path``."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{_TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # the writer may have used its own handle (faiss)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(final.parent)
    return final


def list_generations(directory: str | os.PathLike, kind: str) -> list[GenerationFile]:
    """Files of ``kind`` in ``directory``, oldest generation first (temporaries excluded)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = [g for p in d.iterdir() if (g := parse_generation(p)) is not None and g.kind == kind]
    return sorted(found, key=lambda g: g.generation)


def remove_old_generations(directory: str | os.PathLike, kind: str, keep: set[int]) -> list[Path]:
    """Delete files of ``kind`` whose generation is not in ``keep``; returns what was deleted.

    Call only after SQLite has committed the generation(s) in ``keep``."""
    removed = []
    for g in list_generations(directory, kind):
        if g.generation not in keep:
            g.path.unlink(missing_ok=True)
            removed.append(g.path)
    if removed:
        fsync_directory(directory)
    return removed


def remove_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete leftover temporary files of interrupted writes (safe when no writer is running)."""
    d = Path(directory)
    if not d.is_dir():
        return []
    removed = [p for p in d.iterdir() if p.name.startswith(".") and _TMP_MARK in p.name]
    for p in removed:
        p.unlink(missing_ok=True)
    return removed
