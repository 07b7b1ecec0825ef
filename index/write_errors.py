"""Name the storage faults a library write can hit (disk full, read-only, I/O error) in one line.

SQLite reports a full disk as ``OperationalError: database or disk is full`` and index-file
writes as ``OSError(ENOSPC)``; both reach the user as a traceback unless translated. Every write
is one transaction or an atomic rename, so the message can promise that nothing committed is lost.
"""
from __future__ import annotations

import errno
from pathlib import Path

__all__ = ["describe_write_error", "write_fault"]

_SQLITE_FULL = ("database or disk is full", "disk i/o error")
_SQLITE_READONLY = ("attempt to write a readonly database", "readonly database", "unable to open database file")
_OS_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_OS_READONLY = {errno.EROFS, errno.EACCES, errno.EPERM}

_KEPT = "everything committed before it is intact"


def _os_error(exc: BaseException) -> OSError | None:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def write_fault(exc: BaseException) -> str | None:
    """"disk-full", "read-only", or None when ``exc`` is not a storage fault of a write."""
    text = str(getattr(exc, "orig", None) or exc).lower()
    os_exc = _os_error(exc)
    if any(s in text for s in _SQLITE_FULL) or (os_exc is not None and os_exc.errno in _OS_FULL):
        return "disk-full"
    if any(s in text for s in _SQLITE_READONLY) or (os_exc is not None and os_exc.errno in _OS_READONLY):
        return "read-only"
    return None


def describe_write_error(exc: BaseException, library: str | Path | None = None, files: bool = True) -> str | None:
    """One clear line for a storage fault during a write, or None if ``exc`` is not one.

    ``files=False`` leaves file names out (for HTTP clients, who must not see server paths).
    """
    fault = write_fault(exc)
    if fault is None:
        return None
    where = f"library {library}" if library else "the library"
    os_exc = _os_error(exc)
    name = f" ({os_exc.filename})" if files and os_exc is not None and os_exc.filename else ""
    if fault == "disk-full":
        return (f"{where}: the disk is full{name}; the write in flight was rolled back and {_KEPT}. "
                "Free some space and run the command again: it resumes where it stopped")
    return (f"{where} cannot be written{name}: it is read-only or not yours; {_KEPT}. "
            "Searching works; to index, make the library directory and earmark.db writable")
