"""Tiny benchmark datasets in every format `earmark bench` reads, written with soundfile.

Clips are 2 kHz-ish beeps, low hums and white noise at 16 kHz, so the FakeEncoder's prompts
("noise" → flat, "beep" → ~2 kHz, "hum" → below 200 Hz) classify every clip correctly.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from conftest import noise, tone, write

SR = 16000
BEEP_HZ = (1800, 2000, 2200, 2500)
HUM_HZ = (60, 80, 110, 150)


def clip(label: str, i: int, seconds: float = 1.2) -> np.ndarray:
    if label == "beep":
        return tone(BEEP_HZ[i % len(BEEP_HZ)], seconds, SR)
    if label == "hum":
        return tone(HUM_HZ[i % len(HUM_HZ)], seconds, SR)
    return noise(seconds, SR, seed=i)


LABELS = ("noise", "beep", "hum")
CAPTIONS = {"noise": "static noise hiss", "beep": "a high beep tone", "hum": "a low electrical hum"}


def clips(per_label: int = 4) -> list[tuple[str, int]]:
    return [(lab, i) for i in range(per_label) for lab in LABELS]


def write_esc50(root: Path, per_label: int = 4) -> Path:
    rows = []
    for n, (lab, i) in enumerate(clips(per_label)):
        name = f"{i % 2 + 1}-{n:03d}-A-{LABELS.index(lab)}.wav"
        write(root / "audio" / name, clip(lab, i), SR)
        rows.append({"filename": name, "fold": i % 2 + 1, "target": LABELS.index(lab), "category": lab,
                     "esc10": "False", "src_file": n, "take": "A"})
    _write_csv(root / "meta" / "esc50.csv", rows)
    return root


def write_us8k(root: Path, per_label: int = 4) -> Path:
    rows = []
    for n, (lab, i) in enumerate(clips(per_label)):
        fold = i % 2 + 1
        name = f"{n}-{LABELS.index(lab)}-0-0.wav"
        write(root / "audio" / f"fold{fold}" / name, clip(lab, i), SR)
        rows.append({"slice_file_name": name, "fsID": n, "start": 0, "end": 1.2, "salience": 1, "fold": fold,
                     "classID": LABELS.index(lab), "class": lab})
    _write_csv(root / "metadata" / "UrbanSound8K.csv", rows)
    return root


def write_folders(root: Path, per_label: int = 4) -> Path:
    for lab, i in clips(per_label):
        write(root / lab / f"{lab}_{i}.wav", clip(lab, i), SR)
    return root


def write_generic_csv(root: Path, per_label: int = 4, with_captions: bool = False) -> Path:
    rows = []
    for lab, i in clips(per_label):
        name = f"clips/{lab}_{i}.wav"
        write(root / name, clip(lab, i), SR)
        row = {"file": name, "label": lab, "fold": i % 2 + 1}
        if with_captions:
            row["caption"] = f"{CAPTIONS[lab]} number {i}"
        rows.append(row)
    path = root / "labels.csv"
    _write_csv(path, rows)
    return path


def write_clotho(root: Path, per_label: int = 3) -> Path:
    """clotho_captions_evaluation.csv + evaluation/*.wav; 3 captions per clip, the first one unique."""
    rows = []
    for lab, i in clips(per_label):
        name = f"{lab}_{i}.wav"
        write(root / "evaluation" / name, clip(lab, i), SR)
        rows.append({"file_name": name, "caption_1": f"{CAPTIONS[lab]} {i}", "caption_2": f"{lab} sound {i}",
                     "caption_3": f"recording {lab} {i}"})
    path = root / "clotho_captions_evaluation.csv"
    _write_csv(path, rows)
    return path


def write_audiocaps(root: Path, per_label: int = 3) -> Path:
    """test.csv with two caption rows per clip, audio as audio/<youtube_id>.wav."""
    rows = []
    n = 0
    for lab, i in clips(per_label):
        yid = f"yt{lab}{i}"
        write(root / "audio" / f"{yid}.wav", clip(lab, i), SR)
        for j in range(2):
            n += 1
            rows.append({"audiocap_id": n, "youtube_id": yid, "start_time": 30, "caption": f"{CAPTIONS[lab]} {i} v{j}"})
    path = root / "test.csv"
    _write_csv(path, rows)
    return path


def write_manifest(root: Path, per_label: int = 2) -> Path:
    """A corpus manifest.jsonl: one validation package per label pair, plus a training package."""
    lines = []
    for lab, i in clips(per_label):
        p = write(root / "snd" / f"{lab}_{i}.wav", clip(lab, i), SR)
        package = "flare-game" if i % 2 == 0 else "minetest-data"
        lines.append({"path": str(p), "package": package, "licence": "test", "label": lab, "rule": "test",
                      "captions": [lab, f"the sound of {lab}"]})
    p = write(root / "snd" / "train_only.wav", clip("beep", 0), SR)
    lines.append({"path": str(p), "package": "scratch", "licence": "test", "label": "beep", "rule": "test",
                  "captions": ["beep"]})
    path = root / "manifest.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
