"""The concept vocabulary: paged listing and autocompletion for the search box."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from .state import ServerState, get_state

router = APIRouter(prefix="/api/vocabulary", tags=["vocabulary"])


def _vocabulary(state: ServerState) -> list[str]:
    with state.engine_lock:
        return list(state.library.vocabulary())


@router.get("", summary="The library's concept vocabulary, in order")
def vocabulary(offset: int = Query(0, ge=0), limit: int = Query(500, ge=1, le=5000),
               state: ServerState = Depends(get_state)) -> dict:
    words = _vocabulary(state)
    return {"total": len(words), "offset": offset, "concepts": words[offset:offset + limit]}


@router.get("/complete", summary="Concepts completing a prefix: prefix matches, then word starts, then substrings")
def complete(prefix: str = Query(..., min_length=1, max_length=200), limit: int = Query(10, ge=1, le=100),
             state: ServerState = Depends(get_state)) -> dict:
    return {"prefix": prefix, "completions": rank_completions(_vocabulary(state), prefix, limit)}


def rank_completions(words: list[str], prefix: str, limit: int) -> list[str]:
    """Case-insensitive completions of ``prefix`` ('_' and ' ' alike), best first, vocabulary order within a tier."""
    p = prefix.strip().lower().replace("_", " ")
    tiers: tuple[list[str], list[str], list[str]] = ([], [], [])
    for w in words:
        lw = w.lower().replace("_", " ")
        if lw.startswith(p):
            tiers[0].append(w)
        elif any(part.startswith(p) for part in lw.split()):
            tiers[1].append(w)
        elif p in lw:
            tiers[2].append(w)
    return [w for tier in tiers for w in tier][:limit]
