"""The words that named each training label (engine/training/label_words.py)."""
from __future__ import annotations

from earmark.engine.training.label_words import label_words


def test_the_corpus_word_tables_name_their_labels() -> None:
    words = label_words(["a dog barking", "an axe chopping wood", "a gunshot", "a label no table names"])
    assert {"dog", "bark", "puppy"} <= set(words["a dog barking"])  # captions.KEYWORDS
    assert {"woodcutting", "fast woodcutting", "axe", "chop"} <= set(words["an axe chopping wood"])  # widelands'
    assert {"gun", "gunshot", "pistol"} <= set(words["a gunshot"])
    assert "a label no table names" not in words
    assert all(ws == sorted(set(ws)) for ws in words.values())


def test_only_the_labels_asked_for_are_returned() -> None:
    assert set(label_words(["a cat meowing"])) == {"a cat meowing"}
    assert label_words([]) == {}
