"""`earmark bench classify|retrieve` as a user runs them (click's runner, the FakeEncoder plug-in)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from bench_fixtures import write_audiocaps, write_esc50, write_us8k
from conftest import TEST_VOCAB
from earmark.cli import main

ENC = "py:fake_encoder:FakeEncoder"


def test_bench_classify_json_and_files(tmp_path):
    root = write_esc50(tmp_path / "ESC-50")
    out = tmp_path / "out"
    args = ["bench", "classify", str(root), "--encoder", ENC, "--vocabulary", str(TEST_VOCAB), "--lam", "0.05",
            "--lam", "0.2", "--adapter", "--seed", "3", "--cache", str(tmp_path / "cache"), "--out", str(out), "--json"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    prov = data["provenance"]
    assert prov["command"].startswith("earmark bench classify ") and "--format" not in prov["command"]
    for part in ("--lam 0.05 --lam 0.2", "--adapter", "--seed 3", f"--encoder {ENC}"):
        assert part in prov["command"]
    assert prov["encoder"] == ENC and len(prov["encoder_fingerprint"]) == 16 and prov["seed"] == 3
    assert prov["prompts"] == ["This is a sound of {}"]  # the test encoder's default: the CLAP paper's
    assert len(prov["vocabularies"]["test_vocab"]) == 16
    assert data["dataset"]["format"] == "esc50" and data["dataset"]["folds"] == ["1", "2"]
    labels = [r["label"] for r in data["rows"]]
    assert labels[:3] == ["dense", "concept test_vocab λ=0.05", "concept test_vocab λ=0.2"]
    assert "dense+adapter" in labels and data["rows"][0]["metrics"]["accuracy"] == 1.0
    names = {p.name for p in out.iterdir()}
    assert names == {"classify-ESC-50.json", "classify-ESC-50.md", "classify-ESC-50-l0.png",
                     "classify-ESC-50-per-class.png"}
    saved = json.loads((out / "classify-ESC-50.json").read_text())
    assert saved["provenance"]["command"] == prov["command"]


def test_bench_classify_table_and_format_option(tmp_path):
    root = write_us8k(tmp_path / "us8k")
    res = CliRunner().invoke(main, ["bench", "classify", str(root), "--format", "us8k", "--encoder", ENC,
                                    "--vocabulary", str(TEST_VOCAB), "--target-l0", "3", "--folds", "1",
                                    "--cache", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert "| dense | – | – | 1.000 |" in res.output and "concept test_vocab L0→3" in res.output
    assert "classify us8k (us8k, 6 clips)" in res.output and "prompts: 'This is a sound of {}'\n" in res.output


def test_bench_classify_averages_repeated_prompts_and_rejects_one_without_a_slot(tmp_path):
    root = write_esc50(tmp_path / "ESC-50")
    base = ["bench", "classify", str(root), "--encoder", ENC, "--cache", str(tmp_path / "c"), "--json"]
    res = CliRunner().invoke(main, [*base, "--prompt", "{}", "--prompt", "a {} sound"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["provenance"]["prompts"] == ["{}", "a {} sound"]
    assert "--prompt '{}' --prompt 'a {} sound'" in data["provenance"]["command"]
    table = CliRunner().invoke(main, [*base[:-1], "--prompt", "{}", "--prompt", "a {} sound"])
    assert "prompts: '{}' + 'a {} sound', averaged" in table.output
    bad = CliRunner().invoke(main, [*base, "--prompt", "rain"])
    assert bad.exit_code != 0 and "--prompt must contain '{}'" in bad.output and "'rain'" in bad.output


def test_bench_retrieve(tmp_path):
    csv_path = write_audiocaps(tmp_path, per_label=1)
    res = CliRunner().invoke(main, ["bench", "retrieve", str(csv_path), "--encoder", ENC, "--vocabulary",
                                    str(TEST_VOCAB), "--lam", "0.1", "--cache", str(tmp_path / "c"), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["task"] == "retrieve" and data["dataset"]["captions"] == 6
    assert data["rows"][0]["metrics"]["t2a_r1"] == 1.0 and data["rows"][0]["metrics"]["a2t_map10"] == 1.0


def test_bench_errors_exit_2_with_file_and_column(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("file,weight\na.wav,1\n")
    res = CliRunner().invoke(main, ["bench", "classify", str(bad), "--encoder", ENC, "--cache", str(tmp_path / "c")])
    assert res.exit_code == 2 and "labels.csv: missing column label, labels or caption" in res.output
    res = CliRunner().invoke(main, ["bench", "retrieve", str(tmp_path / "missing"), "--encoder", ENC])
    assert res.exit_code == 2 and "no such file or folder" in res.output
    res = CliRunner().invoke(main, ["bench", "classify", str(write_esc50(tmp_path / "e")), "--encoder", "nope:x"])
    assert res.exit_code == 3 and "unknown encoder" in res.output
