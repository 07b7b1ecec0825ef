"""Per-sound routes: metadata, audio (with HTTP range requests), waveform peaks, concepts, evidence."""
from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import FileResponse

from ..library_evidence import decoder_state
from .errors import ApiError
from .files import audio_media_type, resolve_under, sound_file
from .peaks import MAX_POINTS, waveform_peaks
from .state import ServerState, get_state

router = APIRouter(prefix="/api/sounds", tags=["sounds"])

MAX_LIST = 1000
SoundStatus = Literal["indexed", "pending", "failed", "removed"]


@router.get("", summary="List sounds, ordered by root and path")
def list_sounds(status: SoundStatus | None = Query(None), limit: int = Query(100, ge=1, le=MAX_LIST),
                state: ServerState = Depends(get_state)) -> dict:
    sounds = state.library.sounds(status=status, limit=limit)
    return {"sounds": [s.to_dict() for s in sounds], "count": len(sounds), "limit": limit}


@router.get("/{sound_id}", summary="One sound's metadata")
def sound(sound_id: int, state: ServerState = Depends(get_state)) -> dict:
    return state.sound(sound_id).to_dict()


@router.head("/{sound_id}/audio", include_in_schema=False)
@router.get("/{sound_id}/audio", response_class=FileResponse,
            summary="The sound's file (HEAD too); supports Range requests for seeking")
def audio(sound_id: int, state: ServerState = Depends(get_state)) -> FileResponse:
    path = sound_file(state.sound(sound_id), state.roots())
    # FileResponse answers Range / If-Range itself (206, multi-range, 416), with ETag and Last-Modified.
    return FileResponse(path, media_type=audio_media_type(path), content_disposition_type="inline",
                        filename=path.name)


@router.get("/{sound_id}/peaks", summary="Waveform thumbnail: min and max per bucket over the whole file")
def peaks(sound_id: int, points: int = Query(200, ge=1, le=MAX_POINTS),
          state: ServerState = Depends(get_state)) -> dict:
    path = sound_file(state.sound(sound_id), state.roots())
    return {"sound_id": sound_id, **waveform_peaks(path, points).to_dict()}


@router.get("/{sound_id}/concepts", summary="The sound's strongest concepts, with its code's fidelity and L0")
def concepts(sound_id: int, top: int = Query(20, ge=1, le=500), state: ServerState = Depends(get_state)) -> dict:
    state.sound(sound_id)
    with state.engine_lock:
        return state.library.concepts_of(sound_id, top=top)


EvidenceFile = Literal["in.wav", "out.wav", "png"]


def _evidence(state: ServerState, sound_id: int, start: float | None, end: float | None, q: str):
    info = state.sound(sound_id)
    sound_file(info, state.roots())  # the engine reads this file: it must be one the server may read
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "bad_range", f"end ({end} s) must be after start ({start} s)")
    if start is None and end is not None:
        raise ApiError(400, "bad_range", "give start with end (seconds), or neither for the best window")
    if info.duration is not None and start is not None and start >= info.duration:
        raise ApiError(400, "bad_range", f"start ({start} s) is past the sound's end ({info.duration:.3f} s)")
    # a decoder trained (or retrained) while the server runs makes other masks
    key = (sound_id, start, end, q, state.library.data_version, decoder_state(state.library))
    ev = state.cached_evidence(key)
    if ev is None:
        with state.engine_lock:
            ev = state.library.evidence(sound_id, q, start=start, end=end)
        state.remember_evidence(key, ev)
    return ev


def _evidence_query(start: float | None, end: float | None, q: str) -> str:
    parts = [f"q={quote(q, safe='')}"]
    if start is not None:
        parts.append(f"start={start:g}")
    if end is not None:
        parts.append(f"end={end:g}")
    return "&".join(parts)


@router.get("/{sound_id}/evidence", summary="Listenable evidence for a time range of a hit and a query")
def evidence(sound_id: int,
             start: float | None = Query(None, ge=0, description="seconds; leave out for the best window"),
             end: float | None = Query(None, gt=0, description="seconds"),
             q: str = Query(..., min_length=1, max_length=2000, description="the query (or concept) to explain"),
             state: ServerState = Depends(get_state)) -> dict:
    ev = _evidence(state, sound_id, start, end, q)
    qs = _evidence_query(start, end, q)
    base = f"/api/sounds/{sound_id}/evidence"
    info = {k: v for k, v in ev.to_dict().items()
            if k not in ("mask_in_wav", "mask_out_wav", "png", "path")}  # server paths stay on the server
    # The data version (and the library decoder's state) in the URLs keeps browsers from showing
    # evidence of an older library state or decoder.
    tag = "-".join(str(x) for x in (state.library.data_version, *decoder_state(state.library)))
    return {**info, "query": q,
            "mask_in_url": f"{base}/in.wav?{qs}&v={tag}", "mask_out_url": f"{base}/out.wav?{qs}&v={tag}",
            "png_url": f"{base}/png?{qs}&v={tag}"}


@router.get("/{sound_id}/evidence/{kind}", summary="One evidence file: masked-in WAV, masked-out WAV or PNG",
            response_class=FileResponse)
def evidence_file(sound_id: int, kind: EvidenceFile, start: float | None = Query(None, ge=0),
                  end: float | None = Query(None, gt=0),
                  q: str = Query(..., min_length=1, max_length=2000),
                  state: ServerState = Depends(get_state)) -> FileResponse:
    ev = _evidence(state, sound_id, start, end, q)
    raw = {"in.wav": ev.mask_in_wav, "out.wav": ev.mask_out_wav, "png": ev.png}[kind]
    # Evidence is rendered inside the library directory; anything else is not ours to send.
    path = resolve_under(Path(raw), [state.library.path], "evidence")
    media = "image/png" if kind == "png" else "audio/wav"
    return FileResponse(path, media_type=media, content_disposition_type="inline",
                        filename=f"sound{sound_id}-{ev.method}.{kind}")
