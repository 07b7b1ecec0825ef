"""The words that named each training label (engine/training/label_words.py)."""
from __future__ import annotations

from earmark.engine.training.label_words import action_words, alias_words, label_words


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


def test_a_labels_action_words_are_its_ing_words_before_any_preposition() -> None:
    assert action_words("a man screaming in pain") == ["screaming"]
    assert action_words("a door opening and closing") == ["opening", "closing"]
    assert action_words("birds chirping in a forest") == ["chirping"]
    assert action_words("frogs croaking in the rain") == ["croaking"]
    # nouns that end in -ing, "being", and labels with no action are left alone
    assert action_words("string instruments") == [] and action_words("a gun being reloaded") == []
    assert action_words("a level crossing bell ringing") == ["ringing"]
    assert action_words("a gunshot") == [] and action_words("Fire Crackling") == ["crackling"]


def test_alias_words_add_the_action_words_to_the_table_words_once() -> None:
    labels = ["a dog barking", "a man screaming in pain", "a gunshot", "hammering"]
    assert alias_words(labels, actions=False) == label_words(labels)
    both = alias_words(labels, actions=True)
    assert both["a dog barking"][:-1] == label_words(labels)["a dog barking"] and both["a dog barking"][-1] == "barking"
    assert both["a man screaming in pain"] == ["screaming"]  # no table names it
    assert both["hammering"].count("hammering") == 1  # a table word and an action word: once
    assert both["a gunshot"] == label_words(labels)["a gunshot"]
