"""Library-wide routes: status, and the token-protected writes (index a path, remove sounds)."""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from .auth import require_token
from .errors import ApiError
from .state import ServerState, get_state

router = APIRouter(prefix="/api", tags=["library"])


@router.get("/status", summary="Library status: counts, encoder, roots; and what this server allows")
def status(state: ServerState = Depends(get_state)) -> dict:
    return {**state.library.status().to_dict(),
            "server": {"writes_enabled": state.writes_enabled, "max_upload_bytes": state.max_upload_bytes}}


class IndexRequest(BaseModel):
    paths: list[str] = Field(min_length=1, max_length=1000, description="files or folders on the server to index")
    include: list[str] = Field(default_factory=list, description="glob patterns of files to include")
    exclude: list[str] = Field(default_factory=list, description="glob patterns of files to leave out")
    prune: bool = Field(False, description="forget sounds whose files are gone from the indexed folders")


class RemoveRequest(BaseModel):
    refs: list[str | int] = Field(min_length=1, max_length=10000, description="sound ids or paths")


@router.post("/index", dependencies=[Depends(require_token)],
             summary="Index files and folders (needs the server token); answers when the run ends")
def index(body: IndexRequest, state: ServerState = Depends(get_state)) -> dict:
    missing = [p for p in body.paths if not Path(p).expanduser().exists()]
    if missing:
        raise ApiError(400, "path_not_found", f"no such file or folder on the server: {', '.join(missing[:5])}")
    with state.engine_lock:
        report = state.library.index(body.paths, include=body.include, exclude=body.exclude, prune=body.prune)
    return report.to_dict()


@router.post("/remove", dependencies=[Depends(require_token)],
             summary="Forget sounds (needs the server token); files on disk are not touched")
def remove(body: RemoveRequest, state: ServerState = Depends(get_state)) -> dict:
    with state.engine_lock:
        removed = state.library.remove(body.refs)
    return {"removed": [s.to_dict() for s in removed]}
