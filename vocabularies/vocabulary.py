"""A vocabulary file: ``# key: value`` header lines, then one concept a line.

The hash covers the concepts in order (not the header), so a dictionary cached for a
vocabulary stays valid when only its provenance text changes.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

SHIPPED_DIR = Path(__file__).resolve().parent
SHIPPED = ("baseline", "pruned", "clustered")

__all__ = ["SHIPPED", "Vocabulary", "VocabularyError", "load_vocabulary", "shipped_vocabularies", "write_vocabulary"]


class VocabularyError(Exception):
    """A vocabulary cannot be read or built; the message says what to fix."""


def concepts_hash(concepts: tuple[str, ...]) -> str:
    """16 hex digits of sha256 over the concepts joined by newlines."""
    return hashlib.sha256("\n".join(concepts).encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Vocabulary:
    """An ordered list of concept strings with its provenance header."""

    name: str
    concepts: tuple[str, ...]
    header: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return concepts_hash(self.concepts)

    def __len__(self) -> int:
        return len(self.concepts)

    def index(self, concept: str) -> int:
        """Position of ``concept`` (exact string); raises VocabularyError if absent."""
        try:
            return self.concepts.index(concept)
        except ValueError:
            raise VocabularyError(f"'{concept}' is not in vocabulary '{self.name}'") from None


def parse_vocabulary(text: str, name: str) -> Vocabulary:
    """Parse the file format: '# key: value' header lines, blank lines ignored, one concept a line."""
    header: dict[str, str] = {}
    concepts: list[str] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and not concepts:
                header[key.strip()] = value.strip()
            continue
        if line in seen:
            raise VocabularyError(f"vocabulary '{name}' line {lineno}: duplicate concept '{line}'")
        seen.add(line)
        concepts.append(line)
    if not concepts:
        raise VocabularyError(f"vocabulary '{name}' has no concepts: one concept a line, '#' for header lines")
    return Vocabulary(name=name, concepts=tuple(concepts), header=header)


def shipped_vocabularies() -> list[str]:
    """Names of the vocabularies shipped with earmark that are present on disk."""
    return [n for n in SHIPPED if (SHIPPED_DIR / f"{n}.txt").exists()]


def load_vocabulary(name_or_path: str | Path) -> Vocabulary:
    """Load a shipped vocabulary by name (``baseline``, ``pruned``, ``clustered``) or any file path."""
    path = Path(name_or_path)
    if str(name_or_path) in SHIPPED:
        path = SHIPPED_DIR / f"{name_or_path}.txt"
        name = str(name_or_path)
    else:
        name = path.stem
    if not path.is_file():
        raise VocabularyError(
            f"no vocabulary '{name_or_path}': use one of {', '.join(SHIPPED)} or a path to a text file "
            f"with one concept a line"
        )
    return parse_vocabulary(path.read_text(encoding="utf-8"), name)


def format_vocabulary(concepts: list[str] | tuple[str, ...], header: dict[str, str]) -> str:
    """The file text: header lines, then one concept a line."""
    bad = [c for c in concepts if not c.strip() or c != c.strip() or "\n" in c or c.startswith("#")]
    if bad:
        raise VocabularyError(f"concepts must be non-empty single lines not starting with '#': {bad[:5]}")
    head = [f"# {k}: {v}" for k, v in header.items()]
    return "\n".join(head + list(concepts)) + "\n"


def write_vocabulary(path: str | Path, concepts: list[str] | tuple[str, ...], header: dict[str, str]) -> Vocabulary:
    """Write a vocabulary file atomically and return it as loaded back."""
    path = Path(path)
    text = format_vocabulary(concepts, header)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return parse_vocabulary(text, path.stem)
