"""The query language.

Grammar (tokens are separated by whitespace; double quotes group words)::

    query    := term+
    term     := '+' NAME                 a concept that must be there (weight 1)
              | '-' NAME                 a concept that must not be there (excludes hits)
              | NAME ':' NUMBER          a concept with a weight, e.g. rain:0.7 (negative = exclude)
              | 'like:' PATH ['@' START '-' END]     search by example, times in seconds
              | 'path:' GLOB | 'root:' NAME          metadata filters
              | 'dur:' ('>' N | '<' N | N '-' M)     duration filter in seconds
              | WORD                                  free text, embedded as a sentence
    NAME     := WORD | '"' words '"'     matched case-insensitively; '_' stands for a space

Examples: ``rain on a tin roof`` · ``+rain +thunder -music`` · ``rain:0.7 wind:0.3`` ·
``like:door.wav@1.5-4 -speech`` · ``footsteps path:*/gravel/* dur:<5``.

Errors are :class:`QuerySyntaxError` (with the position or field) and
:class:`UnknownConceptError` (with "did you mean" suggestions from the vocabulary).
"""
from __future__ import annotations

import difflib
import functools
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

MAX_QUERY_CHARS = 2000
MAX_WEIGHT = 10.0
FILTER_KEYS = ("path", "root", "dur")


class QuerySyntaxError(ValueError):
    """A query earmark cannot read; ``position`` (characters) or ``field`` says where."""

    def __init__(self, message: str, position: int | None = None, field: str | None = None) -> None:
        where = f" (at character {position})" if position is not None else ""
        super().__init__(message + where)
        self.position = position
        self.field = field


class UnknownConceptError(QuerySyntaxError):
    """A +concept / -concept / concept:weight that is not in the active vocabulary."""

    def __init__(self, concept: str, suggestions: list[str], position: int | None = None) -> None:
        hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
        super().__init__(f"unknown concept '{concept}'{hint}", position, field="concept")
        self.concept = concept
        self.suggestions = suggestions


@dataclass
class ConceptTerm:
    text: str  # the vocabulary's spelling
    index: int  # position in the vocabulary
    weight: float  # > 0 wanted, < 0 excluded


@dataclass
class LikeClause:
    path: str
    start: float | None = None  # seconds
    end: float | None = None


@dataclass
class Filters:
    path_glob: str | None = None
    min_duration: float | None = None  # seconds
    max_duration: float | None = None
    root: str | None = None

    def merge(self, **values: object) -> None:
        """Add filters given outside the query text (API/CLI options); the query's own win."""
        for key, value in values.items():
            if value is not None and getattr(self, key) is None:
                setattr(self, key, value)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ParsedQuery:
    free_text: str = ""
    concepts: list[ConceptTerm] = field(default_factory=list)
    like: list[LikeClause] = field(default_factory=list)
    filters: Filters = field(default_factory=Filters)


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_RANGE = re.compile(r"^(?P<a>\d+(\.\d*)?|\.\d+)-(?P<b>\d+(\.\d*)?|\.\d+)$")


def _decode(query: str | bytes) -> str:
    if isinstance(query, bytes):
        try:
            return query.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QuerySyntaxError(f"query is not valid UTF-8 (byte 0x{query[exc.start]:02x})", exc.start) from None
    if not isinstance(query, str):
        raise QuerySyntaxError(f"query must be text, got {type(query).__name__}", field="query")
    return query


def _tokens(text: str) -> list[tuple[int, str, bool]]:
    """(position, token, had quotes) triples; quotes group words and may sit inside a token."""
    out: list[tuple[int, str, bool]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, buf, quoted = i, [], False
        while i < n and not text[i].isspace():
            if text[i] == '"':
                close = text.find('"', i + 1)
                if close < 0:
                    raise QuerySyntaxError("unbalanced double quote", i)
                buf.append(text[i + 1:close])
                quoted = True
                i = close + 1
            else:
                buf.append(text[i])
                i += 1
        out.append((start, "".join(buf), quoted))
    return out


class _Vocab:
    def __init__(self, concepts: Sequence[str]) -> None:
        self.concepts = list(concepts)
        self.lookup = {self.norm(c): i for i, c in enumerate(self.concepts)}

    @staticmethod
    def norm(s: str) -> str:
        return " ".join(s.replace("_", " ").lower().split())

    def find(self, name: str, pos: int) -> int:
        key = self.norm(name)
        if not key:
            raise QuerySyntaxError("an operator needs a concept after it", pos)
        if key in self.lookup:
            return self.lookup[key]
        keys = list(self.lookup)
        close = difflib.get_close_matches(key, keys, n=5, cutoff=0.6)
        close += [k for k in keys if key in k and k not in close][: max(0, 5 - len(close))]
        raise UnknownConceptError(name, [self.concepts[self.lookup[k]] for k in close], pos)


def _seconds(value: str, pos: int, what: str) -> float:
    if not _NUMBER.match(value) or value.startswith(("+", "-")):
        raise QuerySyntaxError(f"{what}: '{value}' is not a number of seconds", pos, field=what)
    return float(value)


@functools.lru_cache(maxsize=8)
def _vocab(concepts: tuple[str, ...]) -> _Vocab:
    """The lookup table of a vocabulary, built once (2,000 normalised names took 4 ms a query)."""
    return _Vocab(concepts)


def parse_query(query: str | bytes, vocabulary: Sequence[str]) -> ParsedQuery:
    """Parse ``query`` against the active vocabulary (see the module docstring)."""
    text = _decode(query)
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}", field="query")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text):
        raise QuerySyntaxError("query contains control characters", next(i for i, ch in enumerate(text) if ord(ch) < 32 and ch not in "\t\n\r"))
    vocab = _vocab(tuple(vocabulary))
    out = ParsedQuery()
    words: list[str] = []
    for pos, tok, quoted in _tokens(text):
        if not quoted and tok in ("+", "-"):
            raise QuerySyntaxError(f"'{tok}' needs a concept right after it (no space)", pos)
        if not quoted and tok[:2] in ("++", "+-", "-+", "--"):
            raise QuerySyntaxError(f"unknown operator '{tok[:2]}'", pos)
        if tok.startswith(("+", "-")) and len(tok) > 1 and not _NUMBER.match(tok):
            if not vocab.concepts:
                raise QuerySyntaxError("concept operators need a vocabulary; this library has no concept codes yet", pos)
            idx = vocab.find(tok[1:], pos + 1)
            out.concepts.append(ConceptTerm(vocab.concepts[idx], idx, 1.0 if tok[0] == "+" else -1.0))
            continue
        key, sep, value = tok.partition(":")
        if sep and key and key[0].isalpha():
            key_l = key.lower()
            if key_l == "like":
                out.like.append(_like(value, pos))
                continue
            if key_l in FILTER_KEYS:
                _filter(out.filters, key_l, value, pos)
                continue
            if _NUMBER.match(value):
                if not vocab.concepts:
                    raise QuerySyntaxError("concept weights need a vocabulary; this library has no concept codes yet", pos)
                idx = vocab.find(key, pos)
                weight = float(value)
                if weight == 0 or abs(weight) > MAX_WEIGHT:
                    raise QuerySyntaxError(f"weight of '{key}' must be non-zero and within ±{MAX_WEIGHT:g}", pos)
                out.concepts.append(ConceptTerm(vocab.concepts[idx], idx, weight))
                continue
            if re.fullmatch(r"[A-Za-z_]+", key or "") and value and not quoted:
                raise QuerySyntaxError(
                    f"unknown operator '{key}:' (use like:, path:, root:, dur: or concept:WEIGHT)", pos)
        words.append(tok)
    out.free_text = " ".join(words).strip()
    if not (out.free_text or out.like or any(t.weight > 0 for t in out.concepts)):
        raise QuerySyntaxError("nothing to search for: give some text, a +concept or like:FILE", field="query")
    return out


def _like(value: str, pos: int) -> LikeClause:
    if not value:
        raise QuerySyntaxError("like: needs a file, e.g. like:door.wav or like:door.wav@1.5-4", pos, field="like")
    path, at, span = value.rpartition("@") if "@" in value else (value, "", "")
    if not at:
        return LikeClause(value)
    m = _RANGE.match(span)
    if not path or not m:
        raise QuerySyntaxError(f"like: time range '@{span}' must be START-END in seconds, e.g. @1.5-4", pos, field="like")
    a, b = float(m["a"]), float(m["b"])
    if b <= a:
        raise QuerySyntaxError(f"like: time range '@{span}' ends before it starts", pos, field="like")
    return LikeClause(path, a, b)


def _filter(f: Filters, key: str, value: str, pos: int) -> None:
    if not value:
        raise QuerySyntaxError(f"{key}: needs a value", pos, field=key)
    if key == "path":
        f.path_glob = value
    elif key == "root":
        f.root = value
    else:
        if value.startswith(">"):
            f.min_duration = _seconds(value[1:], pos, "dur")
        elif value.startswith("<"):
            f.max_duration = _seconds(value[1:], pos, "dur")
        elif _RANGE.match(value):
            m = _RANGE.match(value)
            f.min_duration, f.max_duration = float(m["a"]), float(m["b"])
            if f.max_duration < f.min_duration:
                raise QuerySyntaxError(f"dur: range '{value}' ends before it starts", pos, field="dur")
        else:
            raise QuerySyntaxError(f"dur: '{value}' must be >N, <N or N-M seconds", pos, field="dur")
