"""Vocabulary files, tag sources and the three build methods."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from earmark.vocabularies import SHIPPED, VocabularyError, load_vocabulary, shipped_vocabularies
from earmark.vocabularies.build import baseline, build_from_tag_file, clustered
from earmark.vocabularies.sources import read_tag_file


class WordEncoder:
    """Deterministic text encoder for tests: a tag's vector is the sum of its words' hash vectors."""

    name = "py:test:WordEncoder"
    fingerprint = "word-encoder-1"

    def embed_text(self, texts):
        out = []
        for t in texts:
            v = np.zeros(32)
            for w in t.split():
                seed = int.from_bytes(hashlib.sha256(w.encode()).digest()[:4], "little")
                v += np.random.default_rng(seed).standard_normal(32)
            out.append(v / np.linalg.norm(v))
        return np.array(out, np.float32)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_vocabularies_have_provenance(name: str) -> None:
    assert name in shipped_vocabularies()
    v = load_vocabulary(name)
    # ~2,000: pruning drops junk and merges synonyms, so pruned can end short of its size when the
    # pool of clean sound words runs out (1,974 of 2,000).
    assert 1850 <= len(v) <= 2000 and len(set(v.concepts)) == len(v)
    for key in ("sources", "method", "size", "licence"):
        assert v.header[key]
    assert v.header["method"] == name and int(v.header["size"]) == len(v)
    assert all(c == c.strip() and c and not c.startswith("#") for c in v.concepts)
    if name == "clustered":
        assert "fingerprint" in v.header["encoder"]
    assert len(v.hash) == 16 and v.hash == load_vocabulary(name).hash


def test_baseline_keeps_the_most_frequent_and_counts_parse(tmp_path) -> None:
    tags = tmp_path / "tags.txt"
    tags.write_text("dog bark\t10\nRain,7\nrain\nengine 3\n# comment\n\nwind\t1\nbird\nbird\n", encoding="utf-8")
    counts = dict(read_tag_file(tags))
    assert counts == {"dog bark": 10, "rain": 8, "engine 3": 1, "wind": 1, "bird": 2}
    assert baseline(read_tag_file(tags), 3) == ["dog bark", "rain", "bird"]
    out = build_from_tag_file(tags, "baseline", 3, tmp_path / "mine.txt")
    again = load_vocabulary(tmp_path / "mine.txt")
    assert again.concepts == out.concepts == ("dog bark", "rain", "bird")
    assert again.header["method"] == "baseline" and again.header["sources"] == "tag file tags.txt"


def test_pruned_drops_junk_and_merges_roots_and_synonyms(tmp_path) -> None:
    tags = tmp_path / "tags.txt"
    tags.write_text("\n".join([
        "dogs\t5", "dog\t4", "barking\t3", "bark\t2", "field-recording\t9", "1234\t50", "sdfgh\t40",
        "car\t6", "automobile\t2", "thunder\t3", "taxation\t30", "x\t10", "birds chirping\t8",
        "pig oinking\t7", "pigg oinking\t6",
    ]), encoding="utf-8")
    v = build_from_tag_file(tags, "pruned", 100, tmp_path / "p.txt")
    c = set(v.concepts)
    assert not c & {"1234", "sdfgh", "x", "taxation", "field-recording"}  # numbers, misspellings, non-sound words
    assert ("dogs" in c) != ("dog" in c)  # plural merged into one spelling (the more frequent group)
    assert ("barking" in c) != ("bark" in c)
    assert ("car" in c) != ("automobile" in c)  # synonyms merged
    assert "thunder" in c
    assert {"birds chirping", "pig oinking"} <= c  # inflected words are spelled right: their roots are known
    assert "pigg oinking" not in c


def test_clustered_is_deterministic_and_records_the_encoder(tmp_path) -> None:
    words = ["rain", "heavy rain", "light rain", "dog", "dog bark", "small dog", "engine", "car engine",
             "engine idle", "bird", "bird song", "wind"]
    tags = tmp_path / "tags.txt"
    tags.write_text("\n".join(words), encoding="utf-8")
    a = build_from_tag_file(tags, "clustered", 5, tmp_path / "a.txt", encoder=WordEncoder())
    b = build_from_tag_file(tags, "clustered", 5, tmp_path / "b.txt", encoder=WordEncoder())
    assert a.concepts == b.concepts and len(a) == 5 and set(a.concepts) <= set(words)
    assert "word-encoder-1" in a.header["encoder"]
    with pytest.raises(VocabularyError, match="needs an encoder"):
        build_from_tag_file(tags, "clustered", 5, tmp_path / "c.txt")
    with pytest.raises(VocabularyError, match="larger than the vocabulary"):
        clustered([(w, 1) for w in words], 50, WordEncoder().embed_text)


def test_errors_say_what_to_do(tmp_path) -> None:
    with pytest.raises(VocabularyError, match="use one of baseline"):
        load_vocabulary("nonexistent")
    dup = tmp_path / "dup.txt"
    dup.write_text("rain\nrain\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="duplicate"):
        load_vocabulary(dup)
    tags = tmp_path / "t.txt"
    tags.write_text("rain\n", encoding="utf-8")
    with pytest.raises(VocabularyError, match="unknown method"):
        build_from_tag_file(tags, "magic", 3, tmp_path / "o.txt")


def test_sound_sources_are_words_used_mostly_in_a_source_sense() -> None:
    """A noun counts as a sound source when most of its tagged uses are animal, vehicle, device …
    senses: a rare sense ("blue", a butterfly; "third", a gear) does not make a common word one."""
    from earmark.vocabularies.sources import wordnet_sound_terms

    sources = set(wordnet_sound_terms()["source"])
    assert {"dog", "car", "clock", "hammer", "typewriter", "horse", "chainsaw"} <= sources
    assert not {"stand", "back", "blue", "third", "objective", "tongue", "filling"} & sources
    pruned = set(load_vocabulary("pruned").concepts)
    assert not {"stand", "back", "blue", "third", "objective", "tongue", "filling"} & pruned


def test_sound_package_tags_come_from_the_corpus_manifest(tmp_path) -> None:
    import json

    from earmark.vocabularies.sources import read_tag_file, write_sound_package_tags

    rows = [("pkg-a", "a snare drum hit"), ("pkg-a", "a snare drum hit"), ("pkg-b", "an explosion"),
            ("synth", "a sine tone")]
    (tmp_path / "manifest.jsonl").write_text(
        "".join(json.dumps({"package": p, "label": lab}) + "\n" for p, lab in rows))
    out = write_sound_package_tags(tmp_path, tmp_path / "tags.txt")
    assert read_tag_file(out) == [("snare drum hit", 2), ("explosion", 1)]  # synthesised sounds left out
    assert "2 Debian sound packages (pkg-a, pkg-b)" in out.read_text().splitlines()[0]
    with pytest.raises(VocabularyError, match="build the training corpus first"):
        write_sound_package_tags(tmp_path / "nowhere")
