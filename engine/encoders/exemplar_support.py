"""A query's exemplar support: the labelled training sounds it names, and how they score a sound.

The embedded encoder finds them (sound_prototypes.SoundPrototypes.support); search and
`bench classify` add the term to a sound's cosine with the query's text vector. Plain numpy, so
the ranking code needs no torch.
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

    def nearest(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For (N, dim) sound vectors: (N, m) indices of each one's m most similar exemplars, best
        first, and their (N, m) cosines."""
        sims = np.asarray(vectors, np.float32) @ self.vectors.T
        m = min(self.top_m, sims.shape[1])
        idx = np.argpartition(-sims, m - 1, axis=1)[:, :m]
        top = np.take_along_axis(sims, idx, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        return np.take_along_axis(idx, order, axis=1), np.take_along_axis(top, order, axis=1)

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """(N,) support term of (N, dim) sound vectors: weight × the mean of each one's m highest
        cosines with the exemplars."""
        if len(vectors) == 0:
            return np.zeros(0, np.float32)
        return (self.weight * self.nearest(vectors)[1].mean(axis=1)).astype(np.float32)


def support_matrix(vectors: np.ndarray, supports: list[QuerySupport | None]) -> np.ndarray:
    """(N, K) support terms of (N, dim) sound vectors for K queries (0 where a query has none)."""
    out = np.zeros((len(vectors), len(supports)), np.float32)
    for j, sup in enumerate(supports):
        if sup is not None:
            out[:, j] = sup.scores(vectors)
    return out
