"""Text↔audio retrieval metrics, Clotho / AudioCaps protocol (pure numpy, no I/O).

Every distinct caption text is one text query and one text candidate; a caption is relevant to
every clip that carries it (Clotho: exactly one clip; template captions: all clips of a label).

- text→audio: each caption ranks all clips; R@k = share of captions with a relevant clip in the
  top k; mAP@10 = mean AP over the top 10 (normalised by min(10, relevant clips)).
- audio→text: each clip ranks all captions; the same figures with its own captions relevant.

The ranking metric itself is :func:`earmark.engine.training.evaluate.text_to_audio`, which works
for either direction (rows = queries, columns = candidates).
"""
from __future__ import annotations

import numpy as np

from ..training.evaluate import chance_text_to_audio, text_to_audio

__all__ = ["caption_relevance", "chance_retrieval", "ranking_metrics", "retrieval_metrics"]


def caption_relevance(clip_captions: list[tuple[str, ...]]) -> tuple[list[str], np.ndarray]:
    """(distinct captions in first-seen order, (C, N) bool: caption c describes clip n)."""
    index: dict[str, int] = {}
    for caps in clip_captions:
        for c in caps:
            index.setdefault(c, len(index))
    rel = np.zeros((len(index), len(clip_captions)), bool)
    for n, caps in enumerate(clip_captions):
        for c in caps:
            rel[index[c], n] = True
    return list(index), rel


def ranking_metrics(sim: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """(Q, N) similarities and relevance → r1, r5, r10, map10."""
    return text_to_audio(np.asarray(sim), np.asarray(relevant, bool))


def retrieval_metrics(audio: np.ndarray, caption_emb: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """Both directions from (N, d) clip and (C, d) caption embeddings and (C, N) relevance.

    Keys: t2a_r1, t2a_r5, t2a_r10, t2a_map10, a2t_r1, a2t_r5, a2t_r10, a2t_map10.
    """
    sim = np.asarray(caption_emb, np.float64) @ np.asarray(audio, np.float64).T  # (C, N)
    t2a = ranking_metrics(sim, relevant)
    a2t = ranking_metrics(sim.T, relevant.T)
    return {**{f"t2a_{k}": v for k, v in t2a.items()}, **{f"a2t_{k}": v for k, v in a2t.items()}}


def chance_retrieval(relevant: np.ndarray, seed: int = 0, draws: int = 50) -> dict[str, float]:
    """The same figures for a random ranker (R@k exact, mAP@10 by Monte Carlo with ``seed``)."""
    t2a = chance_text_to_audio(relevant, seed=seed, draws=draws)
    a2t = chance_text_to_audio(relevant.T, seed=seed, draws=draws)
    return {**{f"t2a_{k}": v for k, v in t2a.items()}, **{f"a2t_{k}": v for k, v in a2t.items()}}
