"""The CLI as a user runs it (click's runner in-process; a subprocess for the entry point)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from earmark.cli import main

from conftest import TEST_VOCAB

ENC = "py:fake_encoder:FakeEncoder"
INIT = ["--encoder", ENC, "--vocabulary", str(TEST_VOCAB)]


def test_help_lists_commands():
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("init", "index", "status", "ls", "rm", "migrate"):
        assert cmd in out


def test_console_script_entry_point():
    out = subprocess.run([sys.executable, "-m", "earmark.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "index" in out.stdout


def test_init_index_ls_rm_status(tmp_path, sound_dir):
    r = CliRunner()
    lib = str(tmp_path / "lib")
    res = r.invoke(main, ["init", lib, *INIT])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["index", "--library", lib, str(sound_dir), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["added"] == 4 and report["failed"] == []
    res = r.invoke(main, ["ls", "--json"], env={"EARMARK_LIBRARY": lib})
    sounds = json.loads(res.output)
    assert sorted(s["path"] for s in sounds) == ["beep.wav", "hum.flac", "noise.ogg", "sub/stereo.wav"]
    res = r.invoke(main, ["rm", "--library", lib, "hum.flac"])
    assert res.exit_code == 0 and "removed" in res.output
    st = json.loads(r.invoke(main, ["status", "--library", lib, "--json"]).output)
    assert st["sounds_indexed"] == 3
    # What the library is set to and holds, read from its store and folder.
    assert st["vocabulary"] == str(TEST_VOCAB) and st["concepts"] == 16
    assert st["lam"] == 0.15 and st["target_l0"] is None and st["adapter"] is None
    assert st["codes"] >= st["segments"] > 0 and 0 < st["mean_l0"] and 0 < st["mean_fidelity"] <= 1
    assert st["indexes"]["dense"]["vectors"] > 0 and st["index_backend"] == "faiss"
    assert st["evidence_decoder"] == "none"  # a test encoder: no shipped decoder is for it
    disk = st["disk_bytes"]
    assert disk["database"] > 0 and disk["indexes"] > 0 and disk["total"] == sum(
        v for k, v in disk.items() if k != "total")
    text = r.invoke(main, ["status", "--library", lib]).output
    assert "3 indexed" in text and "λ 0.15" in text and "gradient saliency" in text, text
    assert st["last_indexed"] and f"last indexed {st['last_indexed'][:10]}" in text


def test_status_and_check_read_the_store_without_importing_torch(tmp_path, sound_dir):
    """`earmark status`, `check` and `backend status` answer from the store, the folder and the
    index files; importing torch (and loading the encoder) would cost ~3 s."""
    lib = str(tmp_path / "lib")
    r = CliRunner()
    r.invoke(main, ["init", lib, *INIT])
    r.invoke(main, ["index", "--library", lib, str(sound_dir)])
    probe = ("import sys; from earmark.cli import main; "
             "main(['check', '--library', sys.argv[1]], standalone_mode=False); "
             "main(['backend', 'status', '--library', sys.argv[1]], standalone_mode=False); "
             "main(['status', '--library', sys.argv[1], '--json'], standalone_mode=False); "
             "print('torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", probe, lib], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "library is consistent" in out.stdout and out.stderr.strip().endswith("False"), out.stderr
    assert "backend faiss: 11 segments" in out.stdout, out.stdout  # 4 sounds, 11 windows
    assert json.loads(out.stdout[out.stdout.index("{"):])["sounds_indexed"] == 4


def test_index_reports_failures_with_exit_code_1(tmp_path, sound_dir):
    (sound_dir / "broken.wav").write_bytes(b"nope")
    r = CliRunner()
    lib = str(tmp_path / "lib")
    r.invoke(main, ["init", lib, *INIT])
    res = r.invoke(main, ["index", "--library", lib, str(sound_dir)])
    assert res.exit_code == 1
    assert "FAILED" in res.output and "broken.wav" in res.output
    # `ls` names the root once, each file by its path under it, and why a file failed.
    res = r.invoke(main, ["ls", "--library", lib])
    assert res.exit_code == 0 and f"in {sound_dir.resolve()}" in res.output
    assert "sub/stereo.wav" in res.output and "broken.wav" in res.output and "error" in res.output
    assert str(sound_dir.resolve()) + "/" not in res.output  # relative paths, not absolute ones


def test_missing_path_and_unknown_encoder_are_clear(tmp_path):
    r = CliRunner()
    res = r.invoke(main, ["init", str(tmp_path / "l"), "--encoder", "nope:x"])
    assert res.exit_code == 3 and "unknown encoder" in res.output
    lib = str(tmp_path / "lib")
    r.invoke(main, ["init", lib, *INIT])
    res = r.invoke(main, ["index", "--library", lib, str(tmp_path / "does-not-exist")])
    assert res.exit_code == 3 and "no such file" in res.output


def test_search_query_may_start_with_an_exclusion(tmp_path, sound_dir):
    """`earmark search -noise +beep`: a leading '-concept' is a query word, not an unknown option;
    the command's own options still work before, between and after the query words."""
    r = CliRunner()
    lib = str(tmp_path / "lib")
    r.invoke(main, ["init", lib, *INIT])
    r.invoke(main, ["index", "--library", lib, str(sound_dir)])
    for args in (["-noise", "+beep", "--library", lib, "-k", "2", "--json"],
                 ["-L", lib, "-noise", "--top=2", "+beep", "--json"],
                 ["--json", "-k", "2", "--library", lib, "--", "-noise", "+beep"]):
        res = r.invoke(main, ["search", *args])
        assert res.exit_code == 0, (args, res.output)
        out = json.loads(res.output)
        assert out["query"]["excluded"] == ["noise"] and len(out["hits"]) <= 2, args
        assert "noise.ogg" not in [h["path"] for h in out["hits"]]
    res = r.invoke(main, ["search", "--library", lib, "+beep", "-k"])
    assert res.exit_code == 2 and "'-k' requires an argument" in res.output
    # "-kick" and "-hum" are exclusions, not -k with "ick" or -h (help) with "um"
    res = r.invoke(main, ["search", "--library", lib, "--json", "+beep", "-hum"])
    assert res.exit_code == 0 and json.loads(res.output)["query"]["excluded"] == ["hum"], res.output
    res = r.invoke(main, ["search", "--library", lib, "+beep", "-kick"])
    assert res.exit_code == 2 and "unknown concept 'kick'" in res.output, res.output


def test_search_shows_which_training_sounds_the_query_borrowed(tmp_path):
    """With the shipped embedded encoder a free-text query reports the training labels whose
    sound prototypes shaped its vector, in the table and in --json."""
    from earmark.engine.demo import demo_sounds_dir

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for name in ("campfire.ogg", "birds.ogg", "footsteps.ogg"):
        shutil.copy(demo_sounds_dir() / name, sounds / name)
    r = CliRunner()
    lib = str(tmp_path / "lib")
    assert r.invoke(main, ["init", lib]).exit_code == 0
    assert r.invoke(main, ["index", "--library", lib, str(sounds)]).exit_code == 0
    res = r.invoke(main, ["search", "--library", lib, "--json", "a crackling campfire"])
    assert res.exit_code == 0, res.output
    borrowed = json.loads(res.output)["query"]["borrowed_from"]
    assert borrowed and borrowed[0]["label"] == "fire crackling" and 0 < borrowed[0]["weight"] <= 1
    # ... and the training sounds it was also ranked by (exemplar support, v12), per hit the nearest
    out = json.loads(res.output)
    assert out["query"]["support"][0]["label"] == "fire crackling" and out["query"]["support"][0]["sounds"] > 1
    top = out["hits"][0]
    assert top["path"] == "campfire.ogg" and top["support_examples"][0]["label"] == "fire crackling"
    assert top["score"] == pytest.approx(top["dense_score"] + top["support_score"], abs=1e-5)
    table = r.invoke(main, ["search", "--library", lib, "a crackling campfire"]).output
    assert "borrows the sound of: fire crackling" in table
    assert "training sounds of: fire crackling" in table and "≈ fire crackling" in table
    nothing = json.loads(r.invoke(main, ["search", "--library", lib, "--json", "qwxz zzkj vlorp"]).output)
    assert nothing["query"]["borrowed_from"] == [] and nothing["query"]["support"] == []


def _result(hits, concepts, ranking="fusion"):
    from earmark.engine.search import ConceptWeight, QueryForm, SearchResult

    q = QueryForm(text="q", free_text="q", concepts=[ConceptWeight(c, w) for c, w in concepts], excluded=[], like=[],
                  filters={}, ranking=ranking)
    return SearchResult(query=q, hits=hits, timing_ms={"total": 1.0})


def _hit(rank, contributions=(), dense=()):
    from earmark.engine.search import Contribution, Hit

    return Hit(rank=rank, sound_id=rank, path=f"s{rank}.wav", abs_path=f"/lib/s{rank}.wav", score=1.0 / rank,
               dense_score=None, concept_score=None, start=0.0, end=1.0, segment_id=rank, duration=1.0,
               contributions=[Contribution(c, 1.0, x, x) for c, x in contributions],
               dense_contributions=[Contribution(c, 1.0, x, x) for c, x in dense])


def test_table_hides_minor_concepts_and_scales_bars_across_hits(capsys):
    """A weak hit's 1 %-of-the-top concept is noise at a glance: the table leaves it out (and says
    so), bars share one scale per kind of contribution, and --json keeps every number."""
    from earmark.cli import print_result

    res = _result([_hit(1, [("rain", 0.40), ("drizzle", 0.10)]),
                   _hit(2, [("thunder", 0.20), ("smut", 0.004)]),
                   _hit(3, dense=[("white noise", 0.30), ("broody hen", 0.002)])],
                  [("rain", 0.7), ("water", 0.15), ("smut", 0.05)])
    print_result(res, as_json=False)
    out = capsys.readouterr().out
    assert "understood as: rain +0.70, water +0.15 (+1 more)" in out
    assert "smut" not in out.split("\n", 1)[1] and "broody hen" not in out
    assert "████████████ +0.400 rain" in out and "██████······ +0.200 thunder" in out
    assert "███········· +0.100 drizzle" in out
    assert "████████████ +0.300 white noise" in out  # dense accounts on their own scale
    assert "(2 matched concepts under 10% of the largest are not shown" in out
    # shared concepts that contribute nothing are no explanation: the dense account is shown
    print_result(_result([_hit(1, [("rain", 0.40)]), _hit(2, [("stir", 0.001)], dense=[("low drone", 0.09)])],
                         [("rain", 0.7)]), as_json=False)
    out = capsys.readouterr().out
    assert "████████████ +0.090 low drone" in out and "stir" not in out.split("\n", 1)[1]
    assert "(1 matched concepts under 10% of the largest are not shown" in out
    # under dense ranking every hit shows the concept account of the dense score that ranked it
    print_result(_result([_hit(1, [("rain", 0.40)], dense=[("drizzle", 0.2)]), _hit(2, [("stir", 0.3)], dense=[("low drone", 0.09)])],
                         [("rain", 0.7)], ranking="dense"), as_json=False)
    out = capsys.readouterr().out.split("\n", 1)[1]
    assert "████████████ +0.200 drizzle" in out and "█████······· +0.090 low drone" in out
    assert "rain +" not in out and "stir" not in out and "not shown" not in out
    print_result(res, as_json=True)
    data = json.loads(capsys.readouterr().out)
    assert [c["concept"] for c in data["hits"][1]["contributions"]] == ["thunder", "smut"]
    assert len(data["query"]["concepts"]) == 3


def test_table_keeps_the_file_name_of_a_long_path(capsys, monkeypatch):
    """A deep path is cut from the left at a folder, so the file name stays in view; --json keeps it whole."""
    from dataclasses import replace

    from earmark.cli import _path_tail, print_result

    deep = "usr/share/games/widelands/data/sound/farm/ox_01.ogg"
    assert _path_tail(deep, 80) == deep
    assert _path_tail(deep, 24) == "…/sound/farm/ox_01.ogg" and len(_path_tail(deep, 24)) <= 24
    assert _path_tail("a" * 40 + ".wav", 24).endswith(".wav")  # no folder to cut at: the tail itself
    monkeypatch.setenv("COLUMNS", "80")
    hit = replace(_hit(1, [("cow", 0.2)]), path=deep, abs_path="/lib/" + deep)
    print_result(_result([hit], [("cow", 0.7)]), as_json=False)
    out = capsys.readouterr().out
    assert "ox_01.ogg" in out and "usr/share/games" not in out.split("\n", 1)[1]
    print_result(_result([hit], [("cow", 0.7)]), as_json=True)
    assert json.loads(capsys.readouterr().out)["hits"][0]["path"] == deep
