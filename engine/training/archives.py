"""Readers for the sound containers inside allowed game packages.

The corpus needs the audio members of three container formats that no installed library reads:
zip archives (.wz, .pk3: the standard library's zipfile), compiled Qt resource files (.rcc, used
by gcompris-qt-data) and OpenTTD's sound catalogue (.cat, openttd-opensfx). Each reader yields
(member name, bytes) for the audio members only; `extract_audio` writes them under a folder.
"""
from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac", ".mp3")


class ArchiveError(Exception):
    """A container is malformed; the message names the file and what is wrong."""


def zip_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Audio members of a zip archive (.wz, .pk3)."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            if name.lower().endswith(AUDIO_SUFFIXES):
                yield name, zf.read(name)


# Qt resource file layout (qtbase src/corelib/kernel/qresource.cpp, rcc format versions 1-3):
# header "qres", version, then big-endian offsets of the tree, data and names sections.
_RCC_DIR, _RCC_ZLIB, _RCC_ZSTD = 0x02, 0x01, 0x04


def rcc_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Audio members of a compiled Qt resource file (.rcc); zstd-compressed members are skipped."""
    blob = path.read_bytes()
    if blob[:4] != b"qres" or len(blob) < 20:
        raise ArchiveError(f"{path}: not a Qt resource file (no 'qres' header)")
    version, tree_off, data_off, names_off = struct.unpack(">4I", blob[4:20])
    if version not in (1, 2, 3):
        raise ArchiveError(f"{path}: unsupported rcc version {version}")
    entry = 14 if version == 1 else 22  # version 2+ adds an 8-byte modification time

    def name_at(off: int) -> str:
        (n,) = struct.unpack(">H", blob[names_off + off : names_off + off + 2])
        raw = blob[names_off + off + 6 : names_off + off + 6 + 2 * n]  # after length and hash
        return raw.decode("utf-16-be", errors="replace")

    def walk(node: int, prefix: str, depth: int) -> Iterator[tuple[str, bytes]]:
        if depth > 32:
            raise ArchiveError(f"{path}: resource tree deeper than 32 levels")
        base = tree_off + node * entry
        name_off, flags = struct.unpack(">IH", blob[base : base + 6])
        name = name_at(name_off) if node else ""
        full = f"{prefix}/{name}" if prefix else name
        if flags & _RCC_DIR:
            count, first = struct.unpack(">II", blob[base + 6 : base + 14])
            for child in range(first, first + count):
                yield from walk(child, full, depth + 1)
            return
        if not full.lower().endswith(AUDIO_SUFFIXES) or flags & _RCC_ZSTD:
            return
        (off,) = struct.unpack(">I", blob[base + 10 : base + 14])
        (size,) = struct.unpack(">I", blob[data_off + off : data_off + off + 4])
        data = blob[data_off + off + 4 : data_off + off + 4 + size]
        if len(data) != size:
            raise ArchiveError(f"{path}: member {full} runs past the end of the file")
        if flags & _RCC_ZLIB:
            data = zlib.decompress(data[4:])  # qCompress prefix: 4-byte big-endian length
        yield full, data

    try:
        yield from walk(0, "", 0)
    except (struct.error, zlib.error) as exc:  # offsets past the end, a damaged zlib stream
        raise ArchiveError(f"{path}: damaged resource file ({exc})") from exc


def cat_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """The WAV files of an OpenTTD sound catalogue (.cat).

    Layout (OpenTTD src/sound.cpp): a table of little-endian (offset, size) uint32 pairs whose
    first offset, with bit 31 set in new-style files, gives the table size; each entry starts
    with a one-byte name length and the name (OpenSFX writes a description with author and
    licence there), followed by a RIFF WAV.
    """
    blob = path.read_bytes()
    if len(blob) < 8:
        raise ArchiveError(f"{path}: too short for a sound catalogue")
    (first,) = struct.unpack("<I", blob[:4])
    count = (first & 0x7FFFFFFF) // 8
    if count == 0 or count * 8 > len(blob):
        raise ArchiveError(f"{path}: bad catalogue table ({count} entries)")
    for i in range(count):
        off, size = struct.unpack("<II", blob[8 * i : 8 * i + 8])
        off &= 0x7FFFFFFF
        if off + size > len(blob) or size == 0:
            raise ArchiveError(f"{path}: entry {i} runs past the end of the file")
        n = blob[off]
        name = blob[off + 1 : off + 1 + n].rstrip(b"\0").decode("latin-1").strip()
        title = re.match(r'"([^"]*)"', name)  # OpenSFX: '"Title". Original ... License: ...'
        title_text = (title.group(1) if title else name).replace("/", "_").strip()
        wav = blob[off + 1 + n : off + size]
        if wav[:4] == b"RIFF":
            yield f"{i:02d} {title_text}.wav", wav


READERS = {".wz": zip_members, ".pk3": zip_members, ".rcc": rcc_members, ".cat": cat_members}


def safe_member_path(name: str) -> str:
    """A member name usable as a relative path: no parent references, no absolute root."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)


def extract_audio(archive: Path, dest: Path) -> int:
    """Write the audio members of ``archive`` under ``dest``; return how many were written."""
    reader = READERS[archive.suffix.lower()]
    n = 0
    for name, data in reader(archive):
        rel = safe_member_path(name)
        if not rel:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        n += 1
    return n
