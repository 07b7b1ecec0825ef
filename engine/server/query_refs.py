"""``like:`` references in queries from the network must name sounds of the library.

The engine's query syntax lets ``like:PATH`` read any audio file the server can open; a client
must not be able to make it read files outside the library. References are rewritten to the
absolute path of the library sound they name (a sound id, a path relative to a root, or an
absolute path inside a root); then the engine's own parser reads the query and every example
file it would open is checked to lie, symlinks resolved, inside the library's roots.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..query.parse import parse_query
from .errors import ApiError
from .files import resolve_under, sound_file
from .state import ServerState

# like:REF, like:"REF WITH SPACES", each with an optional @START-END (the engine's syntax).
_LIKE = re.compile(r'(?<!\S)like:(?:"([^"]*)"|([^\s"@]+))(@[^\s"]*)?(?=\s|$)', re.IGNORECASE)


def checked_query(query: str, state: ServerState) -> str:
    """``query`` with every ``like:`` reference made absolute and checked (call under the engine lock)."""
    if "like" not in query.lower():
        return query
    roots = state.roots()

    def replace(m: re.Match[str]) -> str:
        path = _resolve(m.group(1) if m.group(1) is not None else m.group(2), state, roots)
        if '"' in path:
            raise ApiError(400, "like_not_in_library", "file names with double quotes cannot be used with like:")
        return f'like:"{path}"{m.group(3) or ""}'

    rewritten = _LIKE.sub(replace, query)
    # The authority on what the engine will open is its parser, not the pattern above.
    for clause in parse_query(rewritten, state.library.vocabulary()).like:
        p = Path(clause.path)
        if not p.is_absolute():
            raise ApiError(400, "like_not_in_library",
                           f"like:{clause.path} names no sound of this library; use a sound id or a path inside it")
        resolve_under(p, roots, "like: query")
    return rewritten


def _resolve(ref: str, state: ServerState, roots: list[str]) -> str:
    if ref.isdigit():
        return str(sound_file(state.sound(int(ref)), roots))
    p = Path(ref)
    if p.is_absolute():
        return str(resolve_under(p, roots, "like: query"))
    for root in roots:  # a root-relative path: the first root that has it
        candidate = Path(root) / p
        if candidate.exists():
            return str(resolve_under(candidate, roots, "like: query"))
    raise ApiError(400, "like_not_in_library",
                   f"like:{ref} names no sound of this library; use a sound id, a path inside the library, "
                   "or upload the example sound")
