"""A query's exemplar support: the labelled training sounds it names, and how they score a sound.

The embedded encoder finds them (sound_prototypes.SoundPrototypes.support); search and
`bench classify` add the term to a sound's cosine with the query's text vector. Plain numpy, so
the ranking code needs no torch.

Since v14 each exemplar may carry an *offset* subtracted from its cosines: α times its hubness,
the mean cosine with its K nearest fellow exemplars (computed at training time,
SoundPrototypes.exemplar_hubness). An exemplar in a dense part of the corpus (one game's many
near-identical footsteps, a procedural generator's eight variants, generic noisy impacts) is
near many sounds of every kind, so its cosine says less about what a sound is than the cosine
of a distinctive exemplar; the offset rates a sound by how much nearer it is to an exemplar
than that exemplar's own neighbours are, as CSLS (Lample et al. 2018) corrects hubs in
nearest-neighbour retrieval. docs/model-card.md, v14.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QuerySupport:
    """The training sounds one query names (its support) and how they score a sound."""

    vectors: np.ndarray  # (S, dim) unit audio embeddings of the exemplars
    labels: list[str]  # each exemplar's training label
    top_m: int
    weight: float
    # (S,) subtracted from each exemplar's cosines before the m best are taken (None: 0): α × the
    # exemplar's hubness, see the module docstring
    offsets: np.ndarray | None = None

    def _ranked(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, m) indices of each sound's m best exemplars by cosine less offset, best first, their
        cosines and their cosines less offsets."""
        sims = np.asarray(vectors, np.float32) @ self.vectors.T
        rated = sims if self.offsets is None else sims - self.offsets[None, :]
        m = min(self.top_m, sims.shape[1])
        idx = np.argpartition(-rated, m - 1, axis=1)[:, :m]
        order = np.argsort(-np.take_along_axis(rated, idx, axis=1), axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        return idx, np.take_along_axis(sims, idx, axis=1), np.take_along_axis(rated, idx, axis=1)

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For (N, dim) sound vectors: (N, m) indices of the m exemplars behind each one's support
        term, best first (the most similar ones when there are no offsets), and their (N, m) cosines."""
        idx, sims, _ = self._ranked(vectors)
        return idx, sims

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) support term of (N, dim) sound vectors: weight × the mean of each one's m highest
        cosines with the exemplars, each less its offset."""
        if len(vectors) == 0:
            return np.zeros(0, np.float32)
        return (self.weight * self._ranked(vectors)[2].mean(axis=1)).astype(np.float32)


def support_matrix(vectors: np.ndarray, supports: list[QuerySupport | None]) -> np.ndarray:
    """(N, K) support terms of (N, dim) sound vectors for K queries (0 where a query has none)."""
    out = np.zeros((len(vectors), len(supports)), np.float32)
    for j, sup in enumerate(supports):
        if sup is not None:
            out[:, j] = sup.scores(vectors)
    return out


def hubness(exemplars: np.ndarray, k: int) -> np.ndarray:
    """(S,) each exemplar's mean cosine with its ``k`` nearest other exemplars (of any label) of
    (S, dim) unit ``exemplars``: how crowded its part of the corpus is. Computed in blocks, so a
    corpus of many thousand exemplars needs no S × S matrix."""
    ex = np.asarray(exemplars, np.float32)
    n = len(ex)
    if n < 2:
        return np.zeros(n, np.float32)
    k = min(k, n - 1)
    out = np.empty(n, np.float32)
    for start in range(0, n, 1024):
        sims = ex[start:start + 1024] @ ex.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
        out[start:start + len(sims)] = np.partition(sims, n - k, axis=1)[:, n - k:].mean(axis=1)
    return out
