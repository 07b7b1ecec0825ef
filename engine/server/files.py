"""Which files the server may send: only regular files that really lie under a library root."""
from __future__ import annotations

import mimetypes
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..library import SoundInfo
from .errors import ApiError

# Types browsers know; mimetypes' own table misses several audio formats on minimal systems.
_AUDIO_TYPES = {
    ".wav": "audio/wav", ".wave": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
    ".oga": "audio/ogg", ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".aif": "audio/aiff",
    ".aiff": "audio/aiff", ".aifc": "audio/aiff", ".au": "audio/basic", ".snd": "audio/basic",
    ".caf": "audio/x-caf", ".w64": "audio/x-w64", ".rf64": "audio/wav",
}


def audio_media_type(path: Path) -> str:
    return _AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def inside(path: Path, directories: Iterable[Path]) -> bool:
    """True when the fully resolved ``path`` lies in one of the resolved ``directories``."""
    return any(path == d or path.is_relative_to(d) for d in directories)


def resolve_under(candidate: Path, directories: Iterable[str | Path], what: str) -> Path:
    """``candidate`` with every symlink resolved, if it is a regular file inside ``directories``.

    Raises 404 when it does not exist and 403 when it (or a symlink on its way) leads outside.
    """
    try:
        real = candidate.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise ApiError(404, "file_missing", f"the {what} file is missing on disk; re-index the library") from None
    except (OSError, RuntimeError):  # symlink loops, permission problems
        raise ApiError(403, "file_refused", f"the {what} file cannot be opened safely") from None
    real_dirs = []
    for d in directories:
        try:
            real_dirs.append(Path(d).resolve(strict=True))
        except (OSError, RuntimeError):
            continue
    if not inside(real, real_dirs):
        raise ApiError(403, "outside_roots", f"the {what} file lies outside the library's folders; refused")
    if not real.is_file():
        raise ApiError(404, "file_missing", f"the {what} is not a regular file")
    return real


def sound_file(info: SoundInfo, roots: list[str]) -> Path:
    """The on-disk file of ``info``, checked to lie (symlinks resolved) inside the library roots."""
    if info.root not in roots:
        raise ApiError(403, "outside_roots", "this sound's folder is not a root of the library; refused")
    rel = PurePosixPath(info.path)
    if rel.is_absolute() or ".." in rel.parts:
        raise ApiError(403, "outside_roots", "this sound's stored path leaves its root; refused")
    return resolve_under(Path(info.root) / rel, roots, "sound")
