"""Benchmark dataset readers: every supported format, detection, and clear errors."""
from __future__ import annotations

import csv
import json

import pytest

from bench_fixtures import (write_audiocaps, write_clotho, write_esc50, write_folders, write_generic_csv,
                            write_manifest, write_us8k)
from earmark.engine.bench import BenchError
from earmark.engine.bench.datasets import detect_format, read_dataset


def test_esc50_folder_and_csv(tmp_path):
    root = write_esc50(tmp_path / "ESC-50")
    ds = read_dataset(root)
    assert ds.format == "esc50" and len(ds) == 12
    assert ds.labels == ["beep", "hum", "noise"] and ds.folds == ["1", "2"]
    assert all(len(it.labels) == 1 and it.fold in ("1", "2") for it in ds.items)
    assert ds.items[0].path.endswith("audio/1-000-A-0.wav") and not ds.multi_label
    assert len(read_dataset(root / "meta" / "esc50.csv")) == 12  # pointing at the CSV works too


def test_us8k_reads_fold_folders(tmp_path):
    ds = read_dataset(write_us8k(tmp_path / "UrbanSound8K"))
    assert ds.format == "us8k" and len(ds) == 12 and ds.folds == ["1", "2"]
    assert all(f"/fold{it.fold}/" in it.path for it in ds.items)


def test_folders_layout(tmp_path):
    ds = read_dataset(write_folders(tmp_path / "classes"))
    assert ds.format == "folders" and ds.labels == ["beep", "hum", "noise"] and ds.folds == []


def test_generic_csv_labels_captions_folds(tmp_path):
    ds = read_dataset(write_generic_csv(tmp_path, with_captions=True))
    assert ds.format == "csv" and len(ds) == 12 and ds.folds == ["1", "2"]
    assert ds.items[0].labels == ("noise",) and ds.items[0].captions == ("static noise hiss number 0",)


def test_generic_csv_multi_label_and_repeated_rows(tmp_path):
    write_folders(tmp_path)
    with open(tmp_path / "multi.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "labels", "caption"])
        w.writerow(["beep/beep_0.wav", "beep;hum", "first caption"])
        w.writerow(["beep/beep_0.wav", "beep", "second caption"])
        w.writerow(["noise/noise_0.wav", "noise", ""])
    ds = read_dataset(tmp_path / "multi.csv")
    assert len(ds) == 2 and ds.multi_label
    assert ds.items[0].labels == ("beep", "hum") and ds.items[0].captions == ("first caption", "second caption")
    assert ds.items[1].captions == ()


def test_clotho_captions(tmp_path):
    ds = read_dataset(write_clotho(tmp_path))
    assert ds.format == "clotho" and len(ds) == 9 and ds.has_captions
    assert ds.items[0].captions == ("static noise hiss 0", "noise sound 0", "recording noise 0")
    assert "/evaluation/" in ds.items[0].path


def test_audiocaps_groups_captions_by_clip(tmp_path):
    ds = read_dataset(write_audiocaps(tmp_path))
    assert ds.format == "audiocaps" and len(ds) == 9
    assert ds.items[0].captions == ("static noise hiss 0 v0", "static noise hiss 0 v1")


def test_audiocaps_finds_youtube_id_with_start_time(tmp_path):
    csv_path = write_audiocaps(tmp_path)
    (tmp_path / "audio" / "ytnoise0.wav").rename(tmp_path / "audio" / "Yytnoise0_30.wav")
    assert read_dataset(csv_path).items[0].path.endswith("/audio/Yytnoise0_30.wav")


def test_manifest_splits_by_validation_package(tmp_path):
    path = write_manifest(tmp_path)
    val = read_dataset(path, split="val")
    assert val.format == "manifest" and len(val) == 6
    assert set(val.folds) == {"flare-game", "minetest-data"}
    assert read_dataset(path, split="train").items[0].labels == ("beep",)
    assert len(read_dataset(tmp_path, "manifest", split="all")) == 7


@pytest.mark.parametrize("writer,expected", [
    (lambda p: write_esc50(p), "esc50"),
    (lambda p: write_esc50(p) / "meta" / "esc50.csv", "esc50"),
    (lambda p: write_us8k(p), "us8k"),
    (lambda p: write_us8k(p) / "metadata" / "UrbanSound8K.csv", "us8k"),
    (lambda p: write_clotho(p), "clotho"),
    (lambda p: write_audiocaps(p), "audiocaps"),
    (lambda p: write_folders(p), "folders"),
    (lambda p: write_generic_csv(p), "csv"),
    (lambda p: write_manifest(p), "manifest"),
])
def test_detect_format(tmp_path, writer, expected):
    assert detect_format(writer(tmp_path / "d")) == expected


def test_missing_column_names_file_and_column(tmp_path):
    root = write_esc50(tmp_path / "esc")
    meta = root / "meta" / "esc50.csv"
    rows = list(csv.DictReader(open(meta)))
    with open(meta, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["filename", "fold"])
        w.writeheader()
        w.writerows({"filename": r["filename"], "fold": r["fold"]} for r in rows)
    with pytest.raises(BenchError, match=r"esc50.csv: missing column\(s\) category"):
        read_dataset(root, "esc50")
    clotho = write_clotho(tmp_path / "c")
    clotho.write_text("file_name,text\na.wav,x\n")
    with pytest.raises(BenchError, match="missing column.*caption_1"):
        read_dataset(clotho, "clotho")
    generic = tmp_path / "g.csv"
    generic.write_text("file,weight\na.wav,1\n")
    with pytest.raises(BenchError, match="missing column label, labels or caption"):
        read_dataset(generic, "csv")


def test_missing_audio_file_is_named_or_skipped(tmp_path):
    root = write_esc50(tmp_path / "esc")
    (root / "audio" / "1-000-A-0.wav").unlink()
    with pytest.raises(BenchError, match="1 listed audio file.*1-000-A-0.wav.*--skip-missing"):
        read_dataset(root)
    ds = read_dataset(root, skip_missing=True)
    assert len(ds) == 11 and ds.skipped[0].endswith("1-000-A-0.wav")


def test_missing_metadata_and_unknown_layout(tmp_path):
    with pytest.raises(BenchError, match="meta/esc50.csv: file not found"):
        read_dataset(tmp_path, "esc50")
    with pytest.raises(BenchError, match="no such file"):
        read_dataset(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(BenchError, match="cannot tell the dataset format"):
        read_dataset(tmp_path / "x.txt")
    bad = tmp_path / "m.jsonl"
    bad.write_text(json.dumps({"path": "a.wav"}) + "\n")
    with pytest.raises(BenchError, match="line 1: not a manifest record"):
        read_dataset(bad)


def test_audio_fingerprint_ignores_labels_not_files(tmp_path):
    path = write_generic_csv(tmp_path)
    fp = read_dataset(path).audio_fingerprint()
    path.write_text(path.read_text().replace(",noise,", ",static,"))
    assert read_dataset(path).audio_fingerprint() == fp
    import soundfile as sf
    import numpy as np

    sf.write(str(tmp_path / "clips" / "noise_0.wav"), np.zeros(16000, np.float32) + 0.1, 16000)
    assert read_dataset(path).audio_fingerprint() != fp
