"""Readers for local copies of public benchmark datasets → one typed :class:`Dataset`.

Formats (``read_dataset(path, fmt)``; ``fmt=None`` detects it):

- ``esc50``: the ESC-50 folder (``meta/esc50.csv`` + ``audio/``); label = ``category``, fold 1–5.
- ``us8k``: the UrbanSound8K folder (``metadata/UrbanSound8K.csv`` + ``audio/foldN/``); label =
  ``class``, fold 1–10.
- ``clotho``: a Clotho captions CSV (``file_name, caption_1..caption_5``); audio in the folder
  named after the split next to it (``clotho_captions_evaluation.csv`` → ``evaluation/``), or
  ``audio_dir``.
- ``audiocaps``: an AudioCaps CSV (``audiocap_id, youtube_id, start_time, caption``; several rows
  per clip); audio files named ``<youtube_id>``, ``Y<youtube_id>`` or ``[Y]<youtube_id>_<start>``
  in ``audio_dir`` (default: the CSV's folder and its ``audio/`` subfolder, searched recursively).
- ``folders``: one subfolder per class, audio files anywhere below it.
- ``csv``: a generic CSV with a ``file`` column and ``label`` / ``labels`` (several separated by
  ``;``) and/or ``caption`` (or ``caption_1``…; a file may also repeat on several rows), and an
  optional ``fold`` column. Paths are relative to the CSV or absolute.
- ``manifest``: the embedded encoder's training corpus ``manifest.jsonl``
  (engine/training/corpus.py); ``split`` ``val`` keeps the validation packages
  (engine/training/train.py VAL_PACKAGES), ``train`` the others, ``all`` everything. Fold = package.

Nothing is downloaded. Missing files and columns raise :class:`BenchError` naming them.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from .errors import BenchError

__all__ = ["FORMATS", "Dataset", "Item", "detect_format", "fold_sort_key", "read_dataset"]

FORMATS = ("esc50", "us8k", "clotho", "audiocaps", "folders", "csv", "manifest")
SPLITS = ("val", "train", "all")
LABEL_SEPARATOR = ";"


def fold_sort_key(fold: str) -> tuple:
    """Natural order of fold names: "2" before "10", numbers before names."""
    return (0, int(fold), "") if fold.isdigit() else (1, 0, fold)


@dataclass(frozen=True)
class Item:
    """One clip: absolute audio path, its labels and captions, and its fold (None: no folds)."""

    path: str
    labels: tuple[str, ...] = ()
    captions: tuple[str, ...] = ()
    fold: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A benchmark dataset: items in a fixed order (the order of the source file)."""

    name: str
    format: str
    source: str  # the file or folder it was read from
    items: tuple[Item, ...]
    multi_label: bool = False  # True when some clip has more than one label (AudioSet style)
    skipped: tuple[str, ...] = field(default=())  # files listed but absent (only with skip_missing)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> list[str]:
        """The distinct labels, sorted."""
        return sorted({lab for it in self.items for lab in it.labels})

    @property
    def folds(self) -> list[str]:
        """The distinct folds in natural order ("2" before "10"); empty when the dataset has none."""
        found = {it.fold for it in self.items if it.fold is not None}
        return sorted(found, key=fold_sort_key)

    @property
    def has_captions(self) -> bool:
        return any(it.captions for it in self.items)

    def audio_fingerprint(self) -> str:
        """16 hex digits over (path, size, mtime) of every clip, in order.

        Labels and captions are left out: relabelling a dataset does not invalidate its cached
        embeddings, replacing or touching an audio file does.
        """
        h = hashlib.sha256()
        for it in self.items:
            st = os.stat(it.path)
            h.update(f"{it.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]

    def subset(self, keep: list[int]) -> "Dataset":
        return Dataset(self.name, self.format, self.source, tuple(self.items[i] for i in keep), self.multi_label,
                       self.skipped)


# ---------------------------------------------------------------------------- helpers

def _read_csv(path: Path, required: set[str], what: str) -> list[dict[str, str]]:
    if not path.is_file():
        raise BenchError(f"{path}: file not found ({what})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = sorted(required - set(columns))
            if missing:
                raise BenchError(f"{path}: missing column(s) {', '.join(missing)} ({what}; "
                                 f"found: {', '.join(columns) or 'no header'})")
            return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from exc


def _check_files(items: list[Item], source: Path, skip_missing: bool) -> tuple[list[Item], tuple[str, ...]]:
    present, missing = [], []
    for it in items:
        (present if os.path.isfile(it.path) else missing).append(it)
    if missing and not skip_missing:
        shown = ", ".join(m.path for m in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise BenchError(f"{source}: {len(missing)} listed audio file(s) not found: {shown}{more} "
                         f"(point at a complete local copy, or pass --skip-missing)")
    if not present:
        raise BenchError(f"{source}: no audio files found")
    return present, tuple(m.path for m in missing)


def _dataset(name: str, fmt: str, source: Path, items: list[Item], skip_missing: bool) -> Dataset:
    items, skipped = _check_files(items, source, skip_missing)
    multi = any(len(it.labels) > 1 for it in items)
    return Dataset(name, fmt, str(source), tuple(items), multi, skipped)


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


# ---------------------------------------------------------------------------- readers

def read_esc50(path: Path, skip_missing: bool = False) -> Dataset:
    """ESC-50: ``path`` is the dataset folder or its ``meta/esc50.csv``."""
    root = path.parent.parent if path.is_file() else path
    meta = path if path.is_file() else root / "meta" / "esc50.csv"
    rows = _read_csv(meta, {"filename", "fold", "category"}, "ESC-50 metadata")
    items = [Item(str((root / "audio" / r["filename"]).resolve()), (r["category"],), (), r["fold"]) for r in rows]
    return _dataset(root.name or "esc50", "esc50", meta, items, skip_missing)


def read_us8k(path: Path, skip_missing: bool = False) -> Dataset:
    """UrbanSound8K: ``path`` is the dataset folder or its ``metadata/UrbanSound8K.csv``."""
    root = path.parent.parent if path.is_file() else path
    meta = path if path.is_file() else root / "metadata" / "UrbanSound8K.csv"
    rows = _read_csv(meta, {"slice_file_name", "fold", "class"}, "UrbanSound8K metadata")
    items = [Item(str((root / "audio" / f"fold{r['fold']}" / r["slice_file_name"]).resolve()), (r["class"],), (),
                  r["fold"]) for r in rows]
    return _dataset(root.name or "urbansound8k", "us8k", meta, items, skip_missing)


def _clotho_audio_dir(csv_path: Path) -> Path:
    split = csv_path.stem.removeprefix("clotho_captions_")
    for cand in (csv_path.parent / split, csv_path.parent / "audio" / split, csv_path.parent / "audio"):
        if cand.is_dir():
            return cand
    return csv_path.parent


def read_clotho(path: Path, audio_dir: Path | None = None, skip_missing: bool = False) -> Dataset:
    """Clotho: a captions CSV with ``file_name`` and ``caption_1``…``caption_5``."""
    rows = _read_csv(path, {"file_name", "caption_1"}, "Clotho captions")
    base = Path(audio_dir) if audio_dir else _clotho_audio_dir(path)
    items = []
    for r in rows:
        caps = tuple(r[k] for k in sorted((k for k in r if k.startswith("caption_")), key=lambda k: int(k[8:] or 0))
                     if r[k])
        items.append(Item(str((base / r["file_name"]).resolve()), (), caps, None))
    return _dataset(path.stem, "clotho", path, items, skip_missing)


def read_audiocaps(path: Path, audio_dir: Path | None = None, skip_missing: bool = False) -> Dataset:
    """AudioCaps: rows of (youtube_id, start_time, caption), grouped by clip in first-seen order."""
    rows = _read_csv(path, {"youtube_id", "caption"}, "AudioCaps captions")
    dirs = [Path(audio_dir)] if audio_dir else [path.parent / "audio", path.parent]
    by_stem: dict[str, Path] = {}
    for d in dirs:
        if d.is_dir():
            for f in _audio_files(d):
                by_stem.setdefault(f.stem, f)
    clips: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        clips.setdefault((r["youtube_id"], r.get("start_time", "")), []).append(r["caption"])
    items = []
    for (yid, start), caps in clips.items():
        names = [yid, f"Y{yid}"]
        if start:
            starts = {start, str(int(float(start)))} if _is_number(start) else {start}
            names += [f"{prefix}{yid}_{s}" for s in sorted(starts) for prefix in ("", "Y")]
        found = next((by_stem[n] for n in names if n and n in by_stem), None)
        target = found or (dirs[0] / f"{yid}.wav")
        items.append(Item(str(target.resolve()), (), tuple(c for c in caps if c), None))
    return _dataset(path.stem, "audiocaps", path, items, skip_missing)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_folders(path: Path, skip_missing: bool = False) -> Dataset:
    """One subfolder per class; the subfolder's name is the label."""
    if not path.is_dir():
        raise BenchError(f"{path}: not a folder (the folders format needs one subfolder per class)")
    items = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in _audio_files(sub):
            items.append(Item(str(f.resolve()), (sub.name,), (), None))
    if not items:
        raise BenchError(f"{path}: no audio files in class subfolders (expected {path}/CLASS/FILE.wav)")
    return _dataset(path.name, "folders", path, items, skip_missing)


def read_generic_csv(path: Path, skip_missing: bool = False) -> Dataset:
    """A CSV with ``file`` and ``label``/``labels`` and/or ``caption``/``caption_N``, optional ``fold``."""
    rows = _read_csv(path, {"file"}, "generic CSV")
    cols = set(rows[0]) if rows else set()
    cap_cols = sorted((c for c in cols if c == "caption" or c.startswith("caption_")))
    label_col = "labels" if "labels" in cols else ("label" if "label" in cols else None)
    if label_col is None and not cap_cols:
        raise BenchError(f"{path}: missing column label, labels or caption (generic CSV: file plus labels or captions)")
    merged: dict[str, dict] = {}
    for n, r in enumerate(rows, 2):
        if not r["file"]:
            raise BenchError(f"{path} line {n}: empty file column")
        fp = Path(r["file"]).expanduser()
        full = str((fp if fp.is_absolute() else path.parent / fp).resolve())
        entry = merged.setdefault(full, {"labels": [], "captions": [], "fold": None})
        if label_col:
            for lab in (x.strip() for x in r[label_col].split(LABEL_SEPARATOR)):
                if lab and lab not in entry["labels"]:
                    entry["labels"].append(lab)
        entry["captions"] += [r[c] for c in cap_cols if r[c]]
        if r.get("fold"):
            entry["fold"] = r["fold"]
    items = [Item(p, tuple(e["labels"]), tuple(e["captions"]), e["fold"]) for p, e in merged.items()]
    return _dataset(path.stem, "csv", path, items, skip_missing)


def read_manifest(path: Path, split: str = "val", skip_missing: bool = False) -> Dataset:
    """The training corpus manifest (JSON lines with path, package, label, captions); fold = package."""
    from ..training.train import VAL_PACKAGES

    if split not in SPLITS:
        raise BenchError(f"unknown split '{split}': use one of {', '.join(SPLITS)}")
    file = path / "manifest.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise BenchError(f"{file}: file not found (build the corpus with `earmark train-encoder` or "
                         f"benchmarks/validation.py)")
    items = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            p, package, label = rec["path"], rec["package"], rec["label"]
        except (ValueError, KeyError, TypeError) as exc:
            raise BenchError(f"{file} line {n}: not a manifest record with path, package, label ({exc})") from exc
        in_val = package in VAL_PACKAGES
        if split == "all" or (split == "val") == in_val:
            items.append(Item(str(Path(p).resolve()), (label,), tuple(rec.get("captions") or ()), package))
    if not items:
        raise BenchError(f"{file}: no sounds in split '{split}' (validation packages: {', '.join(VAL_PACKAGES)})")
    base = file.parent.name if file.stem == "manifest" else file.stem  # <name>/manifest.jsonl → <name>
    return _dataset(f"{base}-{split}", "manifest", file, items, skip_missing)


# ---------------------------------------------------------------------------- detection

def _csv_header(path: Path) -> set[str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return {c.strip() for c in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BenchError(f"cannot read {path}: {exc}") from exc


def detect_format(path: str | Path) -> str:
    """The format of ``path`` from its layout or CSV header; BenchError when none fits."""
    p = Path(path)
    if not p.exists():
        raise BenchError(f"{p}: no such file or folder")
    if p.is_dir():
        if (p / "meta" / "esc50.csv").is_file():
            return "esc50"
        if (p / "metadata" / "UrbanSound8K.csv").is_file():
            return "us8k"
        if (p / "manifest.jsonl").is_file():
            return "manifest"
        if any(sub.is_dir() for sub in p.iterdir()):
            return "folders"
        raise BenchError(f"{p}: cannot tell the dataset format (no meta/esc50.csv, metadata/UrbanSound8K.csv, "
                         f"manifest.jsonl or class subfolders); pass --format")
    if p.suffix.lower() == ".jsonl":
        return "manifest"
    if p.suffix.lower() == ".csv":
        cols = _csv_header(p)
        if {"filename", "fold", "category"} <= cols:
            return "esc50"
        if {"slice_file_name", "class"} <= cols:
            return "us8k"
        if {"file_name", "caption_1"} <= cols:
            return "clotho"
        if {"youtube_id", "caption"} <= cols:
            return "audiocaps"
        if "file" in cols:
            return "csv"
        raise BenchError(f"{p}: cannot tell the CSV format from its columns ({', '.join(sorted(cols))}); pass --format")
    raise BenchError(f"{p}: cannot tell the dataset format (expected a folder, .csv or .jsonl); pass --format")


def read_dataset(path: str | Path, fmt: str | None = None, *, split: str = "val", audio_dir: str | Path | None = None,
                 skip_missing: bool = False) -> Dataset:
    """Read a local dataset copy in format ``fmt`` (None: detected); see the module docstring."""
    p = Path(path).expanduser()
    fmt = fmt or detect_format(p)
    if fmt not in FORMATS:
        raise BenchError(f"unknown dataset format '{fmt}': use one of {', '.join(FORMATS)}")
    if not p.exists():
        raise BenchError(f"{p}: no such file or folder")
    ad = Path(audio_dir).expanduser() if audio_dir else None
    if fmt == "esc50":
        return read_esc50(p, skip_missing)
    if fmt == "us8k":
        return read_us8k(p, skip_missing)
    if fmt == "clotho":
        return read_clotho(p, ad, skip_missing)
    if fmt == "audiocaps":
        return read_audiocaps(p, ad, skip_missing)
    if fmt == "folders":
        return read_folders(p, skip_missing)
    if fmt == "csv":
        return read_generic_csv(p, skip_missing)
    return read_manifest(p, split, skip_missing)
