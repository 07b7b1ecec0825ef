"""Deterministic windowing: the same file and encoder always give the same windows.

CLAP tools often crop random windows, so embeddings differ from run to run. earmark cuts
windows of the encoder's native length at a fixed hop (half a window by default) starting
at 0; the final window and a file shorter than one window are zero-padded on the right.
For n samples, window W and hop H there are 1 window if n <= W, else ceil((n-W)/H) + 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np


@dataclass(frozen=True)
class Window:
    """One window: ``samples`` has exactly the window length; times in seconds."""

    index: int
    start: float
    end: float  # end of the real audio inside the window (before padding)
    samples: np.ndarray


def window_count(n: int, window: int, hop: int) -> int:
    """Number of windows for ``n`` samples."""
    if n <= 0:
        return 0
    if n <= window:
        return 1
    return -(-(n - window) // hop) + 1


def iter_windows(chunks: Iterable[np.ndarray], sample_rate: int, window: int, hop: int) -> Iterator[Window]:
    """Cut a stream of mono chunks into fixed windows without holding the whole stream."""
    if hop <= 0 or window <= 0 or hop > window:
        raise ValueError(f"need 0 < hop <= window, got window={window}, hop={hop}")
    buf = np.zeros(0, np.float32)
    buf_start = 0  # absolute sample index of buf[0]
    next_start = 0
    total = 0
    index = 0
    last_emitted_end = 0
    for chunk in chunks:
        buf = np.concatenate([buf, chunk.astype(np.float32, copy=False)])
        total += chunk.size
        while next_start + window <= total:
            a = next_start - buf_start
            yield Window(index, next_start / sample_rate, (next_start + window) / sample_rate, buf[a : a + window].copy())
            index += 1
            last_emitted_end = next_start + window
            next_start += hop
        drop = next_start - buf_start
        if drop > 0:
            buf = buf[drop:]
            buf_start = next_start
    if total == 0:
        return
    if index == 0 or last_emitted_end < total:
        a = next_start - buf_start
        tail = buf[a:]
        padded = np.zeros(window, np.float32)
        padded[: tail.size] = tail
        yield Window(index, next_start / sample_rate, total / sample_rate, padded)
