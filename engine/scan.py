"""Finding sound files under a root: recursive walk, include/exclude globs, content hashes."""
from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .audio import AUDIO_EXTENSIONS

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FoundFile:
    """A candidate file: ``rel`` is relative to the root with POSIX separators."""

    root: Path
    rel: str
    size: int  # bytes
    mtime: float  # seconds since the epoch

    @property
    def path(self) -> Path:
        return self.root / self.rel


@dataclass(frozen=True)
class ScanProblem:
    """Something under the root that could not be examined (named, with the reason)."""

    rel: str
    reason: str


def matches(rel: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether ``rel`` passes the globs (matched against the relative path and the file name).

    Without include globs, files with a known audio extension are included.
    """
    name = rel.rsplit("/", 1)[-1]

    def hit(patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)

    if exclude and hit(exclude):
        return False
    if include:
        return hit(include)
    return name.lower().endswith(AUDIO_EXTENSIONS)


def scan(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> tuple[list[FoundFile], list[ScanProblem]]:
    """Walk ``root`` recursively (directory symlinks are not followed, so loops cannot trap us)."""
    found: list[FoundFile] = []
    problems: list[ScanProblem] = []

    def onerror(err: OSError) -> None:
        rel = os.path.relpath(err.filename, root) if err.filename else "."
        problems.append(ScanProblem(rel, f"cannot list directory: {err.strerror or err}"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        dirnames.sort()
        for fname in sorted(filenames):
            abs_path = os.path.join(dirpath, fname)
            rel = Path(os.path.relpath(abs_path, root)).as_posix()
            if not matches(rel, include, exclude):
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                # Undecodable bytes in the name (surrogate-escaped): the store keeps UTF-8 text.
                shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                problems.append(ScanProblem(shown, "file name is not valid UTF-8; rename the file to index it"))
                continue
            try:
                st = os.stat(abs_path)  # follows file symlinks; a dangling or looping link fails here
            except OSError as exc:
                problems.append(ScanProblem(rel, f"cannot stat: {exc.strerror or exc}"))
                continue
            if not os.path.isfile(abs_path):
                continue
            found.append(FoundFile(root, rel, int(st.st_size), float(st.st_mtime)))
    return found, problems


def content_hash(path: Path) -> str:
    """SHA-256 of the file's bytes (hex): sees renames, moves and duplicates."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


