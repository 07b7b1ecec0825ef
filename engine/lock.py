"""An exclusive writer lock per library, so two `earmark index` runs never interleave."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LibraryLocked(Exception):
    """Another process is writing to this library."""


class WriterLock:
    """``fcntl.flock`` on ``LIBRARY/.lock``; released automatically if the process dies."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".lock"
        self._fd: int | None = None

    def acquire(self, wait: bool = False) -> "WriterLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LibraryLocked(
                f"library {self.path.parent} is being written by pid {holder}; "
                "wait for it to finish (or pass --wait)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
