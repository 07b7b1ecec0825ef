"""Audio decoding: soundfile blocks → mono float32 → soxr resampling, streamed.

Files are read in blocks so memory does not grow with duration (a 2-hour file never sits
in memory as float64). Every error names the file and says what is wrong with it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .riff_ogg import FileSlice, find_wrapped_ogg

#: File extensions earmark indexes by default (libsndfile decodes all of them).
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
    ".au", ".snd", ".caf", ".w64", ".rf64",
)

BLOCK_FRAMES = 1 << 16  # frames read per block: bounded memory at any sample rate


class AudioError(Exception):
    """A file cannot be decoded; ``reason`` is a short human-readable cause."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    """What the file's header says (seconds, Hz)."""

    path: str
    frames: int
    sample_rate: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@contextmanager
def open_sound(path: Path | str):
    """An open ``soundfile.SoundFile`` of ``path``; closed on exit.

    A file libsndfile rejects is checked for an Ogg Vorbis stream wrapped in RIFF/WAVE (see
    :mod:`earmark.engine.riff_ogg`), which is then decoded in place; anything else re-raises
    libsndfile's error for the caller to word.
    """
    import soundfile as sf

    view = None
    try:
        snd = sf.SoundFile(str(path))
    except (RuntimeError, sf.LibsndfileError) as exc:
        try:
            found = find_wrapped_ogg(path)
        except ValueError as why:
            raise AudioError(path, str(why)) from exc
        if found is None:
            raise
        view = FileSlice(path, found[1], found[2])
        try:
            snd = sf.SoundFile(view)
        except BaseException:
            view.close()
            raise
    try:
        with snd:
            yield snd
    finally:
        if view is not None:
            view.close()


def probe(path: Path | str) -> AudioInfo:
    """Read the header of ``path``; raise :class:`AudioError` with a clear reason."""
    import soundfile as sf

    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise AudioError(p, f"cannot stat file: {exc.strerror or exc}") from exc
    if size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    try:
        with open_sound(p) as f:
            frames, rate, channels, fmt = f.frames, f.samplerate, f.channels, f.format
    except PermissionError as exc:
        raise AudioError(p, "permission denied") from exc
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        why = _short(exc)
        if "does not exist or is not a regular file" in why:  # libsndfile's words for data it cannot parse
            why = "unrecognised or truncated data"
        raise AudioError(p, f"not a readable audio file ({why})") from exc
    if rate <= 0 or channels <= 0:
        raise AudioError(p, f"invalid header (rate {rate} Hz, {channels} channels)")
    if frames == 0:
        raise AudioError(p, "no audio samples (0 frames)")
    return AudioInfo(str(p), int(frames), int(rate), int(channels), str(fmt))


def _short(exc: BaseException) -> str:
    """libsndfile's message without the path it repeats."""
    import re

    text = str(exc).strip().splitlines()
    msg = text[-1] if text else type(exc).__name__
    return re.sub(r"^Error opening '.*?': ", "", msg).rstrip(".")


def stream_mono(path: Path | str, target_rate: int, info: AudioInfo | None = None) -> Iterator[np.ndarray]:
    """Yield consecutive mono float32 chunks of ``path`` resampled to ``target_rate`` Hz.

    Multi-channel audio is averaged to mono. Non-finite samples raise :class:`AudioError`
    (they would poison every embedding and score downstream).
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    info = info or probe(p)
    resampler = (
        soxr.ResampleStream(info.sample_rate, target_rate, 1, dtype="float32", quality="HQ")
        if info.sample_rate != target_rate
        else None
    )
    try:
        with open_sound(p) as f:
            while True:
                block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
                last = block.shape[0] < BLOCK_FRAMES
                mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
                if not np.all(np.isfinite(mono)):
                    raise AudioError(p, "contains NaN or Inf samples")
                if resampler is not None:
                    mono = resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
                if mono.size:
                    yield np.ascontiguousarray(mono, dtype=np.float32)
                if last:
                    break
    except AudioError:
        raise
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
        raise AudioError(p, f"decoding failed, file truncated or corrupt ({_short(exc)})") from exc


def load_mono(path: Path | str, target_rate: int, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """Whole (or [start, end) seconds of) a file as mono float32 at ``target_rate``."""
    chunks = list(stream_mono(path, target_rate))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    a = int(round(start * target_rate))
    b = None if end is None else int(round(end * target_rate))
    return audio[a:b]
