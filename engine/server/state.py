"""What every request shares: the open library, the server's settings and a lock for the engine."""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from sqlalchemy import func, select

from ..library import Library, SoundInfo
from ...index.store import Root, Segment, Sound
from .errors import ApiError

DEFAULT_MAX_UPLOAD_MB = 20.0
UPLOAD_DIR_NAME = "server-uploads"  # under the library directory; emptied as each query ends
EVIDENCE_CACHE_SIZE = 64  # rendered evidence results remembered per server


@dataclass
class ServerState:
    """Settings and shared objects of one running server."""

    library: Library
    token: str | None
    max_upload_bytes: int
    # Search, similarity, concepts, evidence and writes go through the engine one at a time:
    # the engine's in-memory indexes and encoder are not promised to be thread-safe, and the
    # machine's cores are better spent inside one query than on contention between several.
    engine_lock: threading.Lock = field(default_factory=threading.Lock)
    _evidence: "OrderedDict[tuple, Any]" = field(default_factory=OrderedDict)
    _cache_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def upload_dir(self) -> Path:
        return self.library.path / UPLOAD_DIR_NAME

    @property
    def writes_enabled(self) -> bool:
        return bool(self.token)

    def roots(self) -> list[str]:
        with self.library.session() as s:
            return list(s.scalars(select(Root.path).order_by(Root.id)))

    def sound(self, sound_id: int) -> SoundInfo:
        """One sound by id (an indexed primary-key lookup, not a scan of the library)."""
        with self.library.session() as s:
            row = s.execute(
                select(Sound, Root.path).join(Root, Root.id == Sound.root_id).where(Sound.id == sound_id)
            ).first()
            if row is None:
                raise ApiError(404, "sound_not_found", f"no sound with id {sound_id} in this library")
            snd, root = row
            n = s.scalar(select(func.count()).select_from(Segment).where(Segment.sound_id == sound_id)) or 0
        return SoundInfo(snd.id, root, snd.path, snd.status, snd.duration, snd.sample_rate, snd.channels,
                         int(n), snd.error, snd.content_hash)

    def cached_evidence(self, key: tuple) -> Any | None:
        with self._cache_lock:
            if key in self._evidence:
                self._evidence.move_to_end(key)
                return self._evidence[key]
        return None

    def remember_evidence(self, key: tuple, value: Any) -> None:
        with self._cache_lock:
            self._evidence[key] = value
            self._evidence.move_to_end(key)
            while len(self._evidence) > EVIDENCE_CACHE_SIZE:
                self._evidence.popitem(last=False)


def get_state(request: Request) -> ServerState:
    """FastAPI dependency: the state of the app serving this request."""
    return request.app.state.earmark
