"""Search routes: text / concept / like queries, query-by-example uploads, and similar sounds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile

from ..query.rank import AGGREGATES, DEFAULT_RANKING, RANKINGS
from .errors import ApiError
from .query_refs import checked_query
from .state import ServerState, get_state
from .uploads import saved_upload

router = APIRouter(prefix="/api", tags=["search"])

MAX_K = 200
MAX_QUERY_CHARS = 2000
Ranking = Literal[RANKINGS]  # type: ignore[valid-type]  # Literal of the tuple's strings
Aggregate = Literal[AGGREGATES]  # type: ignore[valid-type]


@dataclass
class SearchOptions:
    """Ranking and filters shared by every search route (query string parameters)."""

    k: int = Query(10, ge=1, le=MAX_K, description="number of sounds to return")
    ranking: Ranking = Query(DEFAULT_RANKING, description="score by dense similarity (default), concept similarity, or their fusion")
    aggregate: Aggregate | None = Query(None, description="how a sound's windows combine: pooled by loudness (dense "
                                        "ranking's default), best window (the others' default), or mean of the best three")
    path_glob: str | None = Query(None, max_length=500, description="only sounds whose path matches this glob")
    min_duration: float | None = Query(None, ge=0, description="only sounds at least this long (seconds)")
    max_duration: float | None = Query(None, ge=0, description="only sounds at most this long (seconds)")
    root: str | None = Query(None, max_length=4096, description="only sounds under this library root")

    def kwargs(self) -> dict[str, Any]:
        return {"k": self.k, "ranking": self.ranking, "aggregate": self.aggregate, "path_glob": self.path_glob,
                "min_duration": self.min_duration, "max_duration": self.max_duration, "root": self.root}


def with_links(result: dict) -> dict:
    """Add the URLs a client needs to play and draw each hit."""
    for hit in result.get("hits", []):
        sid = hit["sound_id"]
        hit["audio_url"] = f"/api/sounds/{sid}/audio"
        hit["peaks_url"] = f"/api/sounds/{sid}/peaks"
    return result


@router.get("/search", summary="Search by free text, +concept / -concept / concept:weight terms, like:SOUND")
def search(q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS,
                          description="e.g. 'rain on a tin roof +thunder -music' or 'like:12'"),
           opts: SearchOptions = Depends(), state: ServerState = Depends(get_state)) -> dict:
    with state.engine_lock:
        result = state.library.search(checked_query(q, state), **opts.kwargs())
    return with_links(result.to_dict())


@router.post("/search/upload", summary="Search by an uploaded example sound (multipart field 'file')")
def search_upload(file: UploadFile = File(..., description="an audio file (WAV, FLAC, OGG, MP3, ...)"),
                  q: str = Form("", max_length=MAX_QUERY_CHARS, description="text or concept terms to add"),
                  opts: SearchOptions = Depends(), state: ServerState = Depends(get_state)) -> dict:
    with saved_upload(file, state.upload_dir, state.max_upload_bytes) as path:
        with state.engine_lock:
            # The upload lies in the library directory, not in a root: only the client's own terms are checked.
            query = f'like:"{path}" {checked_query(q, state)}'.strip()
            result = state.library.search(query, **opts.kwargs())
    out = with_links(result.to_dict())
    # The temporary file is gone; do not hand its name back as if it meant something.
    out.setdefault("query", {})
    if isinstance(out["query"], dict):
        out["query"]["example_upload"] = file.filename
    return out


@router.get("/sounds/{sound_id}/similar", tags=["sounds"], summary="Sounds most like this one (itself left out)")
def similar(sound_id: int, k: int = Query(10, ge=1, le=MAX_K),
            ranking: Ranking = Query("dense", description="dense similarity by default"),
            start: float | None = Query(None, ge=0, description="compare only this part of the sound (seconds)"),
            end: float | None = Query(None, gt=0, description="end of that part (seconds)"),
            state: ServerState = Depends(get_state)) -> dict:
    state.sound(sound_id)  # 404 for unknown ids before the engine runs
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "bad_range", f"end ({end} s) must be after start ({start} s)")
    with state.engine_lock:
        result = state.library.similar(sound_id, k=k, ranking=ranking, start=start, end=end)
    return with_links(result.to_dict())
