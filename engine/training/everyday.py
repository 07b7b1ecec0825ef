"""Everyday-category zero-shot: a stand-in for the product owner's hidden test.

The hidden test classifies the sounds of an unseen game library into 27 everyday categories
(rain, wind, fire, footsteps, horse, cow, sword, axe chopping, screams, ...). No such library
may be used here, so this module rebuilds the protocol from the training corpus itself:
every corpus label that names one of 27 everyday categories is mapped to it, and each package
with enough such sounds is held out in turn (leave-one-package-out). A model trained on the
other packages classifies the held-out package's sounds among all 27 category prompts.
The corpus labels are rule-made, so the mapping is only as clean as those rules.
"""
from __future__ import annotations

import re

import numpy as np

from ..encoders.exemplar_support import support_matrix
from .corpus import CorpusItem
from .features import FeatureSet
from .train import _rows_in, sound_embeddings

# Category → regular expression over corpus labels. Checked in this order, so "machine gun
# fire" is a gunshot, not fire, and "a cowbell" is no cow.
CATEGORIES: dict[str, str] = {
    "gunshot": r"gunshot|gun firing|machine gun|shotgun|pistol|rifle",
    "rain": r"\brain\b",
    "wind": r"\bwind\b",
    "fire crackling": r"fire crackling|\bfire\b|flames|burning",
    "footsteps": r"footstep",
    "horse": r"horse",
    "cow": r"\bcow\b|cow mooing|\bcattle",
    "sword": r"sword",
    "axe chopping wood": r"axe chopping|chopping wood",
    "scream": r"scream",
    "dog barking": r"\bdogs?\b",
    "birds chirping": r"bird",
    "sheep": r"sheep",
    "pig": r"\bpig\b",
    "chicken": r"chicken|\bhen\b|rooster",
    "wolf howling": r"wolf",
    "thunder": r"thunder",
    "running water": r"running water|water flowing|waves|splash of water",
    "door": r"\bdoor\b",
    "bell ringing": r"\bbell ringing|church bell",
    "explosion": r"explosion",
    "bow and arrow": r"arrow",
    "hammering": r"hammer",
    "glass breaking": r"glass",
    "engine": r"\bengine",
    "laughter": r"laugh",
    "cat meowing": r"\bcat\b",
}
MIN_SOUNDS = 40  # a package is a fold when it has at least this many everyday sounds

# How the categories are typed as queries. The hidden test's own wording is unknown (the issue
# writes "fire", "screams", "axe chopping"), so the stand-in is also scored with the categories
# typed otherwise, in CATEGORIES order; the lists were written down before they were scored.
WORDINGS: dict[str, tuple[str, ...]] = {
    # the category names above
    "stand-in": tuple(CATEGORIES),
    # one word each, as a user types a first query
    "one-word": ("gun", "rain", "wind", "fire", "footstep", "horse", "cow", "sword", "axe", "screams", "dog",
                 "birds", "sheep", "pig", "chicken", "wolf", "thunder", "water", "door", "bell", "explosions",
                 "arrow", "hammer", "glass", "engine", "laughing", "cat"),
    # the issue's words where it names the category, ESC-50's class names where it has one
    "issue/esc-50": ("gunshots", "rain", "wind", "fire", "footsteps", "horse", "cow", "sword", "axe chopping",
                     "screams", "dog", "chirping birds", "sheep", "pig", "hen", "wolf", "thunderstorm",
                     "water flowing", "door knock", "church bells", "explosion", "bow", "hammer", "glass breaking",
                     "engine", "laughing", "cat"),
}


def category_of(label: str) -> str | None:
    """The everyday category a corpus label belongs to, or None."""
    for cat, pattern in CATEGORIES.items():
        if re.search(pattern, label):
            return cat
    return None


def folds(items: list[CorpusItem], fs: FeatureSet, min_sounds: int = MIN_SOUNDS) -> dict[str, list[int]]:
    """Package → indices of its sounds (with a plain window) that map to a category."""
    out: dict[str, set[int]] = {}
    for i in {int(x) for x in fs.item[fs.kind == 0]}:
        if category_of(items[i].label):
            out.setdefault(items[i].package, set()).add(i)
    return {p: sorted(s) for p, s in sorted(out.items()) if len(s) >= min_sounds}


def _plain_rows(fs: FeatureSet, sounds: list[int]) -> np.ndarray:
    """The plain-window rows of ``sounds`` (no augmentations): what a sound is scored by."""
    return np.where((fs.kind == 0) & np.isin(fs.item, sounds))[0]


def _categorised_sounds(model, fs: FeatureSet, items: list[CorpusItem],
                        packages: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """One embedding per sound of ``packages`` and its everyday category ("" for none), in sound order."""
    sound_ids, audio = sound_embeddings(model, fs, _rows_in(fs, items, packages, (0,)))
    return audio, np.asarray([category_of(items[s].label) or "" for s in sound_ids])


def zero_shot_fold(model, fs: FeatureSet, items: list[CorpusItem], sounds: list[int],
                   category_emb: np.ndarray, pool: str = "mean", centre: np.ndarray | None = None) -> np.ndarray:
    """Per-sound correctness (bool) of nearest-category classification, sorted by sound index
    (:func:`zero_shot_predictions` compared with each sound's category)."""
    pred, truth = zero_shot_predictions(model, fs, items, sounds, category_emb, pool, centre)
    return pred == truth


def zero_shot_predictions(model, fs: FeatureSet, items: list[CorpusItem], sounds: list[int],
                          category_emb: np.ndarray, pool: str = "mean", centre: np.ndarray | None = None,
                          support: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) category per sound of nearest-category classification, sorted by sound index.

    ``pool``: "mean" scores the mean of a sound's window embeddings (the model card's figure);
    "max" scores each category by its best window, as search ranks a sound by its best window.
    ``centre``: a (dim,) vector subtracted from every sound's embedding (renormalised) before
    scoring, e.g. a weighted :func:`library_mean` (transductive centring, a hubness correction).
    ``support``: each category's exemplar support (train.label_support), added as search adds it.
    """
    cats = np.asarray(list(CATEGORIES))
    rows = _plain_rows(fs, sounds)
    if pool not in ("mean", "max"):
        raise ValueError(f"pool must be 'mean' or 'max', not {pool!r}")
    sound_ids, audio = sound_embeddings(model, fs, rows, per_window=pool == "max")
    if centre is not None:
        audio = audio - centre
        audio /= np.maximum(np.linalg.norm(audio, axis=1, keepdims=True), 1e-12)
    scores = audio @ category_emb.T
    if support is not None:
        scores = scores + support_matrix(audio, support)
    if pool == "max":  # per-window scores → each sound's best window per category
        scores = np.stack([scores[fs.item[rows] == s].max(0) for s in sound_ids])
    pred = cats[np.argmax(scores, axis=1)]
    truth = np.asarray([category_of(items[s].label) for s in sound_ids])
    return pred, truth


def neighbour_smoothed_predictions(model, fs: FeatureSet, items: list[CorpusItem], sounds: list[int],
                                   category_emb: np.ndarray, library: list[int], k: int = 5,
                                   alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true) category per sound of ``sounds`` (sorted), each sound's category scores
    plus ``alpha`` × the mean scores of its ``k`` nearest sounds of ``library`` (itself left out).

    Label propagation over the library being classified (transductive: it reads the library's
    unlabelled sounds, never their labels): a game's sounds of one category share its recording
    chain, so a sound the prompts score wrongly may sit among neighbours they score rightly.
    """
    cats = np.asarray(list(CATEGORIES))
    sound_ids, audio = sound_embeddings(model, fs, _plain_rows(fs, sounds))
    lib_ids, lib = sound_embeddings(model, fs, _plain_rows(fs, library))
    sim = audio @ lib.T
    sim[np.asarray(sound_ids)[:, None] == np.asarray(lib_ids)[None, :]] = -np.inf  # not its own neighbour
    nearest = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    scores = audio @ category_emb.T + alpha * (lib @ category_emb.T)[nearest].mean(1)
    truth = np.asarray([category_of(items[s].label) for s in sound_ids])
    return cats[np.argmax(scores, axis=1)], truth


def confusions(pred: np.ndarray, truth: np.ndarray, top: int = 3) -> dict[str, list[tuple[str, int]]]:
    """Per true category (in CATEGORIES order), the categories its misclassified sounds were
    given, most frequent first (at most ``top``)."""
    out: dict[str, list[tuple[str, int]]] = {}
    for cat in CATEGORIES:
        wrong = pred[(truth == cat) & (pred != truth)]
        if (truth == cat).any():
            names, counts = np.unique(wrong, return_counts=True)
            order = sorted(zip(names.tolist(), counts.tolist()), key=lambda x: (-x[1], x[0]))
            out[cat] = order[:top]
    return out


class RawFeatures:
    """Stands in for a model whose audio head is the identity: scores the frozen CNN features
    themselves (model-independent rows of the ceiling table)."""

    @staticmethod
    def project_audio_features(x):
        return x


def category_centroids(model, fs: FeatureSet, items: list[CorpusItem], packages: set[str]) -> np.ndarray:
    """(27, dim) unit mean embedding of ``packages``' sounds of each category (zeros where a
    category has none), in CATEGORIES order.

    Classifying held-out sounds by these instead of by text prompts is what the training sounds'
    own labels support: a text→audio map that sent each prompt exactly to its category's
    centroid would score this (a nearest-centroid rule, not a strict bound: other vectors can
    score higher on one package). Where prompts already score as high, what is missing is on
    the audio side (the held-out package's sounds are not near the other packages' sounds of
    their category), not in the text tower or the prototypes.
    """
    audio, cat = _categorised_sounds(model, fs, items, packages)
    out = np.zeros((len(CATEGORIES), audio.shape[1]), np.float32)
    for i, c in enumerate(CATEGORIES):
        if (cat == c).any():
            m = audio[cat == c].mean(0)
            out[i] = m / max(float(np.linalg.norm(m)), 1e-12)
    return out


def library_mean(model, fs: FeatureSet, items: list[CorpusItem], package: str) -> np.ndarray:
    """(dim,) mean embedding of every sound of ``package`` (everyday or not): the "library" a
    held-out fold stands for, without its labels (what `decompose` centres concept codes with)."""
    audio, _ = _categorised_sounds(model, fs, items, {package})
    return audio.mean(0)


def supervised_fold(model, fs: FeatureSet, items: list[CorpusItem], train_packages: set[str], sounds: list[int],
                    method: str) -> np.ndarray:
    """Per-sound correctness of a classifier *trained on the labelled everyday sounds* of
    ``train_packages`` (one embedding per sound, as :func:`zero_shot_fold`), for ``sounds``.

    A supervised ceiling for the zero-shot prompts: what the training corpus's labels support on
    these audio features when the text side is taken out. ``method``: "lr:C" (multinomial
    logistic regression, inverse regularisation C; scikit-learn) or "knn:K" (majority of the K
    nearest training sounds by cosine, ties to the nearest).
    """
    kind, _, arg = method.partition(":")
    if kind not in ("lr", "knn"):
        raise ValueError(f"method must be 'lr:C' or 'knn:K', not {method!r}")
    train_audio, train_cat = _categorised_sounds(model, fs, items, train_packages)
    keep = train_cat != ""
    train_audio, train_cat = train_audio[keep], train_cat[keep]
    sound_ids, audio = sound_embeddings(model, fs, _plain_rows(fs, sounds))
    truth = np.asarray([category_of(items[s].label) for s in sound_ids])
    if kind == "lr":
        from sklearn.linear_model import LogisticRegression

        pred = LogisticRegression(C=float(arg), max_iter=5000).fit(train_audio, train_cat).predict(audio)
    elif kind == "knn":
        nearest = np.argsort(-(audio @ train_audio.T), axis=1, kind="stable")[:, : int(arg)]
        # max() keeps the first of equally frequent categories, and the row is in nearest-first order
        pred = np.asarray([max(list(r), key=list(r).count) for r in train_cat[nearest]])
    return pred == truth
