"""The words that named each training label: extra lookup keys for one-word queries.

The corpus builder labels a file by the words in its name and folders (captions.KEYWORDS and
the packages' own word tables: "dog" → "a dog barking", "gun" → "a gunshot", "footstep" →
"footsteps"). The sound prototypes look a query up by the sentence embedding of each label's
captions, and a one-word query sits far from a multi-word caption in MiniLM's space: "dog"
reaches "a dog barking" at cosine 0.51, "footstep" reaches "footsteps" at 0.48, under the
0.6 gate, so such a query borrowed no training sounds at all. These words are the vocabulary
the corpus itself used for the label, so a query (nearly) equal to one of them names it
(SoundPrototypes' alias keys; docs/model-card.md, v13).
"""
from __future__ import annotations

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
