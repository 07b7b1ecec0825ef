"""Concept codes in a library: vocabulary switch without re-embedding, the adapter, CLI."""
from __future__ import annotations

import csv
import json

from click.testing import CliRunner
from sqlalchemy import func, select

from conftest import TEST_VOCAB, TESTS_DIR, noise, tone, write
from earmark.cli import main
from earmark.index.store import Code, Segment


def _corpus(d):
    for i in range(3):
        write(d / f"noise{i}.wav", noise(1.5, 16000, seed=i), 16000)
        write(d / f"beep{i}.wav", tone(1800 + 100 * i, 1.5, 16000), 16000)
        write(d / f"hum{i}.wav", tone(80 + 10 * i, 1.5, 16000), 16000)


def test_vocabulary_switch_recomputes_codes_without_reembedding(library, tmp_path):
    _corpus(tmp_path / "c")
    library.index([tmp_path / "c"])
    with library.session() as s:
        before = dict(s.execute(select(Segment.id, Segment.embedding)).all())
    small = tmp_path / "small.txt"
    small.write_text("# method: manual\nnoise\nbeep\nhum\n")
    n = library.use_vocabulary(str(small), lam=0.05)
    assert n == len(before)
    assert library.vocabulary() == ["noise", "beep", "hum"]
    with library.session() as s:
        assert dict(s.execute(select(Segment.id, Segment.embedding)).all()) == before
        assert s.scalar(select(func.count()).select_from(Code)) == len(before)  # old codes gone
    assert library.check().ok
    assert [h.path for h in library.search("+hum", ranking="concept").hits][0].startswith("hum")


def test_target_l0(library, tmp_path):
    _corpus(tmp_path / "c")
    library.index([tmp_path / "c"])
    library.use_vocabulary(str(TEST_VOCAB), target_l0=3)
    prof = library.concepts_of("noise0.wav")
    assert prof["target_l0"] == 3 and 1 <= prof["l0"] <= 4


def test_adapter_trains_and_recodes(library, tmp_path):
    d = tmp_path / "c"
    _corpus(d)
    library.index([d])
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label"])
        for i in range(3):
            w.writerow([str(d / f"noise{i}.wav"), "white noise"])
            w.writerow([str(d / f"beep{i}.wav"), "beep"])
            w.writerow([str(d / f"hum{i}.wav"), "hum"])
    res = library.adapt(labels)
    assert res["recoded_segments"] > 0 and res["labels"] == ["beep", "hum", "white noise"]
    assert res["metrics"]  # before/after cosines reported by the adapter
    assert library.active_codebook().adapter is not None
    assert library.check().ok
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nx,y\n")
    import pytest

    from earmark.engine.library import LibraryError

    with pytest.raises(LibraryError, match="missing column"):
        library.adapt(bad)


def test_vocab_cli(tmp_path):
    r = CliRunner()
    res = r.invoke(main, ["vocab", "show", str(TEST_VOCAB), "--limit", "3"])
    assert res.exit_code == 0 and "noise" in res.output
    tags = tmp_path / "tags.txt"
    tags.write_text("rain\t50\nthunder\t20\nrain\t5\ndog bark\t9\n1234\t99\n")
    out = tmp_path / "v.txt"
    res = r.invoke(main, ["vocab", "build", "--tags", str(tags), "--method", "baseline", "--size", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and "method: baseline" in out.read_text()


def test_vocab_ls_says_when_the_library_holds_an_earlier_shipped_version(tmp_path, fake_encoder, sound_dir):
    """A library keeps the vocabulary it was coded with; a later earmark may ship another version."""
    from sqlalchemy import update

    from earmark.engine.library import Library
    from earmark.index.store import Vocabulary as VocabularyRow

    lib = Library.init(tmp_path / "lib", encoder=fake_encoder, vocabulary="pruned")
    lib.index([sound_dir])
    r = CliRunner()
    out = r.invoke(main, ["vocab", "ls", "--library", str(lib.path)]).output
    assert "* pruned" in out and "earlier" not in out
    with lib.session() as s, s.begin():  # as if coded by an earlier release of pruned.txt
        s.execute(update(VocabularyRow).where(VocabularyRow.name == "pruned").values(hash="0123456789abcdef"))
    out = r.invoke(main, ["vocab", "ls", "--library", str(lib.path)]).output
    assert "the library's codes use an earlier pruned (0123456789abcdef)" in out
    assert "earmark vocab use pruned" in out
    data = json.loads(r.invoke(main, ["vocab", "ls", "--library", str(lib.path), "--json"]).output)
    assert [row["library_has_other_version"] for row in data["shipped"] if row["name"] == "pruned"] == [True]
