"""Ogg Vorbis streams wrapped in a RIFF/WAVE file (format tags 0x674F–0x6771, "Vorbis in WAV").

Some Windows-era tools wrote Ogg Vorbis into a .wav (or misnamed .ogg) container: a RIFF header, a
``fmt `` chunk whose format tag says Vorbis, and a ``data`` chunk that holds a whole Ogg stream.
libsndfile rejects the container ("Malformed 'fmt ' chunk") although it decodes the stream inside
it, so :func:`find_wrapped_ogg` locates that stream and :class:`FileSlice` hands it to soundfile as
a read-only file object, without copying a possibly large file into memory.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

#: Format tags of the Vorbis-in-WAV ACM codecs (modes 1, 2, 3 and their "+" variants).
VORBIS_TAGS = frozenset({0x674F, 0x6750, 0x6751, 0x676F, 0x6770, 0x6771})

_MAX_CHUNKS = 64  # a RIFF header holds a handful; more means we are walking garbage


def find_wrapped_ogg(path: Path | str) -> tuple[int, int, int] | None:
    """(format tag, offset, length) of the Ogg stream in a Vorbis-in-WAV file, else None.

    None for anything that is not RIFF/WAVE with a Vorbis format tag. A Vorbis tag whose data
    chunk does not start an Ogg stream (modes that keep the codec headers in ``fmt ``) raises
    ValueError with the reason, because no decoder here can read it.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        size = Path(path).stat().st_size
        tag = None
        pos = 12
        for _ in range(_MAX_CHUNKS):
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                return None
            cid, clen = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"fmt ":
                body = f.read(2)
                if len(body) < 2:
                    return None
                tag = struct.unpack("<H", body)[0]
                if tag not in VORBIS_TAGS:
                    return None
            elif cid == b"data":
                if tag is None:
                    return None
                start = pos + 8
                length = min(clen, size - start)  # a header that overstates the data: read what is there
                if f.read(4) != b"OggS":
                    raise ValueError(f"Vorbis-in-WAV (format 0x{tag:04X}) whose data is not an Ogg stream: unsupported")
                return tag, start, length
            pos += 8 + clen + (clen & 1)  # chunks are padded to even sizes
        return None


class FileSlice(io.RawIOBase):
    """A read-only, seekable view of ``length`` bytes of a file from ``offset`` (what soundfile needs)."""

    def __init__(self, path: Path | str, offset: int, length: int) -> None:
        super().__init__()
        self._f = open(path, "rb")
        self._off, self._len, self._pos = offset, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._len}[whence]
        self._pos = max(0, min(self._len, base + pos))
        return self._pos

    def readinto(self, buf) -> int:
        n = max(0, min(len(buf), self._len - self._pos))
        if n == 0:
            return 0
        self._f.seek(self._off + self._pos)
        got = self._f.readinto(memoryview(buf)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()
