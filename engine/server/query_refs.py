"""``like:`` references in queries from the network must name sounds of the library.

The engine's query syntax lets ``like:PATH`` read any audio file; a client of the server must
not be able to make it open files outside the library. References are rewritten to the
absolute path of the library sound they name (by id, by root-relative path, or by an absolute
path inside a root), and refused otherwise.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import ApiError
from .files import resolve_under, sound_file
from .state import ServerState

# like:REF or like:REF@START-END, REF running to the next whitespace (the engine's own syntax).
_LIKE = re.compile(r"(?<!\S)like:(\S+?)(@[0-9.]+-[0-9.]+)?(?=\s|$)")


def checked_query(query: str, state: ServerState) -> str:
    """``query`` with every ``like:`` reference checked and made absolute."""

    def replace(m: re.Match[str]) -> str:
        return f"like:{_resolve(m.group(1), state)}{m.group(2) or ''}"

    return _LIKE.sub(replace, query)


def _resolve(ref: str, state: ServerState) -> str:
    roots = state.roots()
    if ref.isdigit():
        info = state.sound(int(ref))

        return str(sound_file(info, roots))
    p = Path(ref)
    if p.is_absolute():
        return str(resolve_under(p, roots, "like: query"))
    for root in roots:  # root-relative path: the first root that has it
        candidate = Path(root) / p
        if candidate.exists():
            return str(resolve_under(candidate, roots, "like: query"))
    raise ApiError(400, "like_not_in_library",
                   f"like:{ref} names no sound of this library; use a sound id, a path inside the library, "
                   "or upload the example sound")
