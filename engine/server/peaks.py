"""Waveform thumbnails: per-bucket minimum and maximum sample values, read in bounded blocks."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_POINTS = 2000
_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class Peaks:
    """``points`` buckets over the whole file; values in [-1, 1], all channels together."""

    duration: float  # seconds
    points: int
    min: list[float]
    max: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def waveform_peaks(path: Path, points: int) -> Peaks:
    """Min/max per bucket of ``path`` (cached on path, size and modification time)."""
    st = path.stat()
    return _peaks(str(path), st.st_size, st.st_mtime_ns, points)


@lru_cache(maxsize=512)
def _peaks(path: str, _size: int, _mtime_ns: int, points: int) -> Peaks:
    import soundfile as sf

    from ..audio import AudioError, open_sound

    try:
        with open_sound(path) as f:
            return _reduce(f, points)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise AudioError(path, f"not a readable audio file ({exc})") from exc


def _reduce(f, points: int) -> Peaks:
    """Min and max of each of ``points`` equal runs of frames of the open sound file ``f``."""
    frames, rate = int(f.frames), f.samplerate
    points = max(1, min(points, MAX_POINTS, frames or 1))
    bucket = max(1, math.ceil(frames / points))
    lo = np.full(points, np.inf, np.float32)
    hi = np.full(points, -np.inf, np.float32)
    pos = 0
    for block in f.blocks(blocksize=max(_BLOCK_FRAMES, bucket), dtype="float32", always_2d=True):
        n = block.shape[0]
        idx = np.minimum((pos + np.arange(n)) // bucket, points - 1)  # bucket of every frame
        # Frames are in order, so each bucket is one contiguous run: reduce runs, not frames.
        starts = np.r_[0, np.flatnonzero(np.diff(idx)) + 1]
        b = idx[starts]
        lo[b] = np.minimum(lo[b], np.minimum.reduceat(block.min(axis=1), starts))
        hi[b] = np.maximum(hi[b], np.maximum.reduceat(block.max(axis=1), starts))
        pos += n
    # Buckets never reached (a header that overstates the length) and NaN samples show as silence.
    lo = np.nan_to_num(np.clip(np.where(np.isfinite(lo), lo, 0.0), -1, 1))
    hi = np.nan_to_num(np.clip(np.where(np.isfinite(hi), hi, 0.0), -1, 1))
    return Peaks(duration=frames / rate if rate else 0.0, points=points,
                 min=[round(float(x), 4) for x in lo], max=[round(float(x), 4) for x in hi])
