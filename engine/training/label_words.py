"""The words that named each training label: extra lookup keys for one-word queries.

The corpus builder labels a file by the words in its name and folders (captions.KEYWORDS and
the packages' own word tables: "dog" → "a dog barking", "gun" → "a gunshot", "footstep" →
"footsteps"). The sound prototypes look a query up by the sentence embedding of each label's
captions, and a one-word query sits far from a multi-word caption in MiniLM's space: "dog"
reaches "a dog barking" at cosine 0.51, "footstep" reaches "footsteps" at 0.48, under the
0.6 gate, so such a query borrowed no training sounds at all. These words are the vocabulary
the corpus itself used for the label, so a query (nearly) equal to one of them names it
(SoundPrototypes' alias keys; docs/model-card.md, v13).

Since v14 a label's own text gives words too: the action words of its caption, the "-ing" words
before any preposition ("screaming" for "a man screaming in pain", "chopping" for "an axe
chopping wood"). "screams" reaches "screaming" at cosine 0.87 but "a man screaming in pain" at
0.52, so the issue's own word for the category missed the corpus's 47 pain screams. Only the
action words: a label's nouns collide across labels ("fire" in "machine gun fire", "bell" in
"a ride cymbal bell", "hit" in "a snare drum hit"), its verbs rarely do.
"""
from __future__ import annotations

import re

from . import captions as C
from .corpus import GCOMPRIS, OVOS_ANIMALS, WIDELANDS

# Word tables that label files by a word of their name. Tables keyed by whole file names
# (teeworlds', openttd's) and the procedural generators' names are not vocabulary.
WORD_TABLES: tuple[dict[str, str | None], ...] = (C.KEYWORDS, GCOMPRIS, OVOS_ANIMALS, WIDELANDS)


def label_words(labels: list[str]) -> dict[str, list[str]]:
    """Label → the sorted words (underscores as spaces) that label files with it, for the
    labels of ``labels`` that any word table names."""
    wanted = set(labels)
    out: dict[str, set[str]] = {}
    for table in WORD_TABLES:
        for word, label in table.items():
            word = word.replace("_", " ").strip()
            if label in wanted and word:
                out.setdefault(label, set()).add(word)
    return {lab: sorted(words) for lab, words in sorted(out.items())}


# Words ending in -ing that name things, not actions, in the corpus's labels ("string instruments",
# "a building collapsing", "a level crossing bell ringing").
NOT_ACTIONS = frozenset({"string", "building", "crossing", "being"})
# A label's action words end at its first preposition: "a man groaning in pain", "birds chirping
# in a forest" ("pain", "forest" are circumstances; and nothing after them is an -ing word today).
PREPOSITIONS = frozenset({"in", "on", "at", "into", "through", "under", "over", "against", "from", "for", "of",
                          "with", "by"})


def action_words(label: str) -> list[str]:
    """The -ing words of ``label`` before its first preposition, in order ("a door opening and
    closing" → opening, closing; "a man screaming in pain" → screaming)."""
    out: list[str] = []
    for word in re.split(r"[\s,]+", label.lower()):
        if word in PREPOSITIONS:
            break
        if len(word) > 4 and word.endswith("ing") and word not in NOT_ACTIONS and word not in out:
            out.append(word)
    return out


def alias_words(labels: list[str], actions: bool) -> dict[str, list[str]]:
    """Label → its alias words: those of :func:`label_words`, and with ``actions`` its
    :func:`action_words` too (each word once per label, table words first)."""
    out = {lab: list(words) for lab, words in label_words(labels).items()}
    if actions:
        for lab in sorted(set(labels)):
            extra = [w for w in action_words(lab) if w not in out.get(lab, [])]
            if extra:
                out[lab] = out.get(lab, []) + extra
    return dict(sorted(out.items()))
