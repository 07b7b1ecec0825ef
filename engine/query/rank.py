"""Ranking: fusing dense and concept scores, windows → sounds, identical files once.

Rankings (of windows):
- ``dense`` (default): score = ⟨z_q, z_s⟩ (cosine of unit vectors).
- ``concept``: score = Σ_c q_c · w_{s,c} over the query's concepts.
- ``fusion``: reciprocal-rank fusion, score = Σ_lists 1 / (RRF_K + rank), rank from 1, over the
  dense and concept lists (a segment in only one list gets that list's term). RRF needs no
  calibration between the two score scales, which differ by an order of magnitude.

Aggregates (windows → a sound's score):
- ``pooled`` (dense ranking's default): the cosine of the query and the sound's windows pooled by
  power (engine/window_pooling.py), the clip vector `bench` and search by example use. The window
  search finds the candidate sounds, their stored windows re-rank them.
- ``max`` (the other rankings' default): the best window's score.
- ``topk-mean``: the mean of the best ``TOPK_MEAN`` windows' scores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

RANKINGS = ("fusion", "dense", "concept")
# Dense by default: on unseen libraries with the embedded encoder it ranks best, mAP 0.600 pooled
# (0.577 by the best window) against 0.480 for fusion and 0.401 for concept codes alone with v11
# (v9: 0.552, 0.516, 0.438 by the best window; v8: 0.562, 0.528, 0.455 by the best window; v7: 0.519, 0.515, 0.427; v6: 0.533, 0.520, 0.397; v5: 0.539, 0.513, 0.419;
# v4: 0.525, 0.445, 0.357; docs/model-card.md, "Text search on an unseen library"). Concept
# explanations are computed whatever the ranking.
DEFAULT_RANKING = "dense"
AGGREGATES = ("pooled", "max", "topk-mean")
# Pooled by default for dense ranking: on unseen libraries it ranks best, mAP 0.600 against 0.577
# for the best window with encoder v11 (v9: 0.583 against 0.552; v8: 0.580 against 0.562; v7: 0.572 against 0.519; v6: 0.577 against 0.533; v5: 0.571
# against 0.539; v4: 0.553 against 0.525; docs/query-language.md). The best window favours
# files with many windows (the max of more noisy scores is higher) and lets a near-silent tail
# window decide. The concept and fusion rankings score windows only, so they aggregate by the
# best window.
POOLED_RANKINGS = ("dense",)
RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the very top ranks
TOPK_MEAN = 3  # windows averaged per sound in "topk-mean" aggregation


def default_aggregate(ranking: str) -> str:
    """The aggregate a ranking uses when none is asked for."""
    return "pooled" if ranking in POOLED_RANKINGS else "max"


def aggregate_error(ranking: str, aggregate: str) -> str | None:
    """Why ``aggregate`` cannot go with ``ranking`` (None when it can)."""
    if aggregate not in AGGREGATES:
        return f"aggregate must be one of {', '.join(AGGREGATES)}, got '{aggregate}'"
    if aggregate == "pooled" and ranking not in POOLED_RANKINGS:
        return (f"aggregate 'pooled' scores a sound's pooled embedding, so it needs ranking "
                f"{' or '.join(repr(r) for r in POOLED_RANKINGS)}, not '{ranking}'")
    return None


@dataclass
class SegmentHit:
    segment_id: int
    sound_id: int
    score: float
    start: float
    end: float


@dataclass
class SoundHit:
    """A sound's aggregated score and its best window."""

    sound_id: int
    score: float
    segment_id: int
    start: float
    end: float
    duplicates: list[int] = field(default_factory=list)


def _ranked(scores: dict[int, float]) -> list[int]:
    return sorted(scores, key=lambda i: (-scores[i], i))


def fuse(dense: dict[int, float], concept: dict[int, float], mode: str) -> dict[int, float]:
    """Segment id → ranking score for ``mode`` ('dense', 'concept' or 'fusion')."""
    if mode == "dense":
        return dict(dense)
    if mode == "concept":
        return dict(concept)
    out: dict[int, float] = {}
    for scores in (dense, concept):
        for rank, sid in enumerate(_ranked(scores), 1):
            out[sid] = out.get(sid, 0.0) + 1.0 / (RRF_K + rank)
    return out


def aggregate_segments(hits: Sequence[SegmentHit], mode: str = "max", k: int = TOPK_MEAN,
                       pooled: dict[int, float] | None = None) -> list[SoundHit]:
    """Windows → sounds, best first. ``max``: the best window's score; ``topk-mean``: the mean
    of the sound's best ``k`` windows (rewards sounds that match throughout); ``pooled``:
    ``pooled[sound_id]``, the score of the sound's pooled embedding (a sound missing from it
    keeps its best window's score). The reported window is always the best one."""
    by_sound: dict[int, list[SegmentHit]] = {}
    for h in hits:
        by_sound.setdefault(h.sound_id, []).append(h)
    out = []
    for sound_id, segs in by_sound.items():
        segs.sort(key=lambda h: (-h.score, h.start))
        best = segs[0]
        if mode == "topk-mean":
            score = sum(h.score for h in segs[:k]) / min(k, len(segs))
        elif mode == "pooled" and pooled is not None and sound_id in pooled:
            score = pooled[sound_id]
        else:
            score = best.score
        out.append(SoundHit(sound_id, score, best.segment_id, best.start, best.end))
    out.sort(key=lambda h: (-h.score, h.sound_id))
    return out


def dedupe_by_hash(hits: Sequence[SoundHit], hashes: dict[int, str | None]) -> list[SoundHit]:
    """Keep the best-ranked of each set of identical files; the others are listed as duplicates."""
    seen: dict[str, SoundHit] = {}
    out = []
    for h in hits:
        digest = hashes.get(h.sound_id)
        if digest and digest in seen:
            seen[digest].duplicates.append(h.sound_id)
            continue
        if digest:
            seen[digest] = h
        out.append(h)
    return out
