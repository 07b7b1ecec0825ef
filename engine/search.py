"""Search: a parsed query → query vectors → index search → ranked sounds with explanations.

Pipeline (DESIGN.md, "Queries and explanations"):
1. parse the query (engine/query/parse.py): free text, +concept / -concept / concept:weight,
   like:FILE[@start-end], filters;
2. plan: one dense vector (text, example sound and explicit concepts embedded and summed) and
   one concept vector q over the vocabulary (the dense vector's own concept code, plus explicit
   terms); every query has a concept form, shown to the user as "what earmark understood";
3. search: dense (⟨z_q, z_s⟩) and/or concept (Σ_c q_c·w_{s,c}) through the library's index
   backend (FAISS + postings files, or Milvus), restricted to the segments the filters and
   -concepts allow;
4. rank: dense by default (or concept, or their reciprocal-rank fusion), aggregate windows to sounds (dense:
   each candidate sound re-scored by its windows pooled by power), show identical files once;
   the dense ranking of a free-text query also counts the encoder's exemplar support (the
   training sounds the text names, engine/encoders/exemplar_support.py): the sounds nearest
   those exemplars join the candidates, and every candidate scores its cosine plus the term;
5. explain: per hit, each shared concept's q_c, w_{s,c} and contribution (they sum exactly to
   the concept score), the hit's own top concepts, and the concept account of its dense score;
   of the sound as ranked (a pooled sound of several windows is decomposed at query time), or of
   its best window under the window aggregates.
"""
from __future__ import annotations

import fnmatch
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
from sqlalchemy import func, select

from ..index.store import Root, Segment, Sound
from .encoders.base import l2_normalise
from .encoders.exemplar_support import QuerySupport
from .query.explain import explain_concepts, explain_dense
from .query.parse import ParsedQuery, QuerySyntaxError, parse_query
from .query.rank import (DEFAULT_RANKING, RANKINGS, SegmentHit, aggregate_error, aggregate_segments, dedupe_by_hash,
                         default_aggregate)
from .window_pooling import embed_and_pool, pool_windows

if TYPE_CHECKING:
    from .library import Library

SEGMENTS_PER_HIT = 8  # segment candidates fetched per requested sound (several windows per file)
TOP_CONCEPTS = 8
# At most this many of a query's exemplars (those nearest its text vector) look for candidates of
# their own; every exemplar still scores every candidate. Each adds ~k candidate sounds to pool and
# score (at 100,000 segments, p50 of a query 31 ms with none, 38 ms with 4, 54 ms with 16;
# docs/query-language.md), and the text vector already leans towards the support's labels.
SUPPORT_SEARCHES = 4


_THREADPOOLS = None  # threadpoolctl's scan of the loaded BLAS libraries, made once


def _one_blas_thread():
    """A context in which numpy's BLAS runs on one thread. A query's products are small; OpenBLAS's
    threads would spin on after them and slow the next query's text tower ~2x (encode p50 18 → 38 ms
    at 100,000 segments)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


@dataclass
class ConceptWeight:
    concept: str
    weight: float


@dataclass
class BorrowedLabel:
    label: str
    weight: float


@dataclass
class QueryForm:
    """What earmark understood: the parsed parts and the concept form of the whole query."""

    text: str
    free_text: str
    concepts: list[ConceptWeight]  # the query's concept vector, heaviest first
    excluded: list[str]
    like: list[str]
    filters: dict
    ranking: str
    aggregate: str = "max"
    # Said when the ranking is not exactly what was asked for (e.g. sounds indexed before window
    # power was stored, which "pooled" ranks by their best window).
    notes: list[str] = field(default_factory=list)
    # Training labels whose mean sound the encoder blended into the free text's vector, with
    # their blend weights (the embedded encoder's sound prototypes; empty for other encoders,
    # and for text no training label is close to). Not about the library being searched.
    borrowed_from: list[BorrowedLabel] = field(default_factory=list)
    # The training sounds the free text names (its exemplar support), counted per label, most
    # first; empty when the encoder has none or the ranking does not use them (concept, fusion).
    support: list[SupportLabel] = field(default_factory=list)


@dataclass
class SupportLabel:
    label: str
    sounds: int


@dataclass
class SupportExample:
    """One of the training sounds a hit is nearest among its query's support."""

    label: str
    similarity: float


@dataclass
class Contribution:
    concept: str
    query_weight: float
    hit_weight: float
    contribution: float


@dataclass
class Hit:
    """One sound found, with where and why."""

    rank: int
    sound_id: int
    path: str
    abs_path: str
    score: float  # the ranking score (fusion: RRF; dense: cosine, of the pooled sound or the window; concept: Σ q·w)
    dense_score: float | None  # ⟨z_q, z⟩ of what ``explains`` names
    concept_score: float | None  # Σ q·w over the code of what ``explains`` names
    start: float  # best window, seconds
    end: float
    segment_id: int
    duration: float | None
    contributions: list[Contribution] = field(default_factory=list)
    top_concepts: list[ConceptWeight] = field(default_factory=list)
    dense_explained: float | None = None  # share of the dense score the concept account covers
    dense_contributions: list[Contribution] = field(default_factory=list)  # concept account of the dense score
    duplicates: list[str] = field(default_factory=list)
    # What the scores and concepts describe: "sound" (the sound's windows pooled by power, as the
    # "pooled" aggregate ranks it) or "window" (the best window, start–end). start–end is always
    # the best window, the part to listen to.
    explains: str = "window"
    # The exemplar support term in ``score`` (score = dense_score + support_score) and the
    # training sounds behind it, nearest first; None / empty when the query has no support.
    support_score: float | None = None
    support_examples: list[SupportExample] = field(default_factory=list)


@dataclass
class SearchResult:
    query: QueryForm
    hits: list[Hit]
    timing_ms: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Plan:
    parsed: ParsedQuery
    dense: np.ndarray | None
    concept: np.ndarray | None  # (V,) float32, negatives for excluded concepts
    exclude: list[int]
    borrowed: list[tuple[str, float]] = field(default_factory=list)
    support: QuerySupport | None = None


def _like_vector(lib: "Library", path: str, start: float | None, end: float | None) -> np.ndarray:
    """A file's windows in [start, end) pooled by power (stored vectors when it is indexed).

    Indexed or not, the same file gives the same vector: both pool with window_pooling's rule.
    Rows indexed before the store recorded window power (migration 0007) cannot be weighted, so
    such a file is embedded from its audio.
    """
    from .audio import AudioError, probe, stream_mono
    from .windows import iter_windows

    p = Path(path).expanduser()
    if not p.is_file():
        raise QuerySyntaxError(f"like: file '{path}' does not exist", field="like")
    stored = _stored_vectors(lib, p.resolve(), start, end)
    if stored is not None:
        return pool_windows(*stored)
    enc = lib.encoder
    try:
        info = probe(p)
        chunks = stream_mono(p, enc.sample_rate, info)
        sr = enc.sample_rate
        a = int(round((start or 0.0) * sr))
        b = None if end is None else int(round(end * sr))

        def cut():
            pos = 0
            for c in chunks:
                lo, hi = pos, pos + c.size
                pos = hi
                s0 = max(a - lo, 0)
                s1 = c.size if b is None else min(b - lo, c.size)
                if s1 > s0:
                    yield c[s0:s1]

        pooled = embed_and_pool(enc, (w.samples for w in iter_windows(cut(), sr, enc.window_samples,
                                                                        lib.hop_samples)))
    except AudioError as exc:
        raise QuerySyntaxError(f"like: {exc}", field="like") from exc
    if pooled is None:
        raise QuerySyntaxError(f"like: '{path}' has no audio in the requested range", field="like")
    return pooled


def _stored_vectors(lib: "Library", path: Path, start: float | None, end: float | None
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """((n, d) stored window vectors, (n,) their power) in [start, end) of an indexed file.

    None when the file is not indexed, no window overlaps the range, or a window's power is
    unknown (indexed before migration 0007).
    """
    with lib.session() as s:
        q = (select(Segment.start, Segment.end, Segment.embedding, Segment.power)
             .join(Sound, Sound.id == Segment.sound_id)
             .join(Root, Root.id == Sound.root_id).where(Sound.status == "indexed"))
        rows = [r for r in s.execute(q.where(Root.path == str(path.parent))
                                     .where(Sound.path == path.name))]
        if not rows:
            for root in s.scalars(select(Root.path)):
                try:
                    rel = path.relative_to(root).as_posix()
                except ValueError:
                    continue
                rows = list(s.execute(q.where(Root.path == root).where(Sound.path == rel)))
                if rows:
                    break
    lo, hi = start or 0.0, end if end is not None else float("inf")
    chosen = [(e, pw) for a, b, e, pw in rows if a < hi and b > lo]
    if not chosen or any(pw is None for _, pw in chosen):
        return None
    return np.stack([np.frombuffer(e, np.float32) for e, _ in chosen]), np.array([pw for _, pw in chosen])


def plan_query(lib: "Library", parsed: ParsedQuery) -> _Plan:
    """Turn a parsed query into a dense vector and a concept vector."""
    book = lib.active_codebook()
    vocab = book.concepts if book else ()
    parts: list[np.ndarray] = []
    enc = lib.encoder
    borrowed: list[tuple[str, float]] = []
    support = None
    if parsed.free_text:
        vec, borrowed, support = enc.query_parts(parsed.free_text)
        parts.append(vec)
    for like in parsed.like:
        parts.append(_like_vector(lib, like.path, like.start, like.end))
    positives = [t for t in parsed.concepts if t.weight > 0]
    if positives:
        emb = enc.embed_text([vocab[t.index] for t in positives])
        parts.append(l2_normalise((emb * np.array([[t.weight] for t in positives], np.float32)).sum(0, keepdims=True))[0])
    dense = l2_normalise(np.sum(parts, axis=0, keepdims=True))[0] if parts else None
    concept = None
    exclude: list[int] = []
    if book is not None:
        concept = np.zeros(len(vocab), np.float32)
        if dense is not None and (parsed.free_text or parsed.like):
            # audio-only queries go through the adapter like the library's audio did
            code = book.decompose(dense[None, :], audio=bool(parsed.like) and not parsed.free_text).weights
            concept[code.indices] = code.data
        scale = float(concept.max()) if concept.max() > 0 else 1.0
        for t in parsed.concepts:
            if t.weight > 0:
                concept[t.index] = max(concept[t.index], t.weight * scale)
            else:
                concept[t.index] = t.weight * scale
                exclude.append(t.index)
    return _Plan(parsed, dense, concept, exclude, borrowed, support)


def _allowed_segments(lib: "Library", parsed: ParsedQuery) -> np.ndarray | None:
    f = parsed.filters
    if not (f.path_glob or f.min_duration is not None or f.max_duration is not None or f.root):
        return None
    with lib.session() as s:
        q = (select(Segment.id, Sound.path, Sound.duration, Root.path).join(Sound, Sound.id == Segment.sound_id)
             .join(Root, Root.id == Sound.root_id))
        if f.min_duration is not None:
            q = q.where(Sound.duration >= f.min_duration)
        if f.max_duration is not None:
            q = q.where(Sound.duration <= f.max_duration)
        ids = []
        for sid, path, _dur, root in s.execute(q):
            if f.root and not (root == f.root or Path(root).name == f.root or root.startswith(f.root.rstrip("/") + "/")):
                continue
            if f.path_glob and not (fnmatch.fnmatch(path, f.path_glob) or fnmatch.fnmatch(str(Path(root) / path), f.path_glob)):
                continue
            ids.append(sid)
    return np.array(ids, np.int64)


def search(lib: "Library", query: str | bytes, *, k: int = 10, ranking: str = DEFAULT_RANKING, aggregate: str | None = None,
           path_glob: str | None = None, min_duration: float | None = None, max_duration: float | None = None,
           root: str | None = None, exclude_sounds: Sequence[int] = (),
           only_sounds: Sequence[int] | None = None) -> SearchResult:
    """Run a query against ``lib`` (see module docstring); ``exclude_sounds`` are never hits,
    ``only_sounds`` (when given) are the only candidates; ``aggregate`` None is the ranking's default."""
    if ranking not in RANKINGS:
        raise QuerySyntaxError(f"ranking must be one of {', '.join(RANKINGS)}, got '{ranking}'", field="ranking")
    aggregate = aggregate or default_aggregate(ranking)
    if (why := aggregate_error(ranking, aggregate)) is not None:
        raise QuerySyntaxError(why, field="aggregate")
    if not 1 <= k <= 1000:
        raise QuerySyntaxError(f"k must be between 1 and 1000, got {k}", field="k")
    t = {"start": time.perf_counter()}
    # Loading the encoder and the concept book (the first query of a process: seconds of imports
    # and weights) is its own stage, so "parse" times the parse.
    book = lib.active_codebook()
    t["load"] = time.perf_counter()
    parsed = parse_query(query, book.concepts if book else ())
    parsed.filters.merge(path_glob=path_glob, min_duration=min_duration, max_duration=max_duration, root=root)
    t["parse"] = time.perf_counter()
    plan = plan_query(lib, parsed)
    if ranking != "dense" and plan.concept is None:
        ranking = "dense"  # a library without concept codes yet: said in the query form
    t["encode"] = time.perf_counter()
    idx = lib.indexes()
    allowed = _allowed_segments(lib, parsed)
    if only_sounds is not None:
        with lib.session() as s:
            mine = np.array(s.scalars(select(Segment.id).where(Segment.sound_id.in_([int(x) for x in only_sounds]))).all(), np.int64)
        allowed = mine if allowed is None else np.intersect1d(allowed, mine)
    k_seg = k * SEGMENTS_PER_HIT
    want_dense = ranking in ("dense", "fusion") and plan.dense is not None
    want_concept = ranking in ("concept", "fusion") and plan.concept is not None and bool((plan.concept > 0).any())
    # The index backend (FAISS files or Milvus) searches, excludes -concepts and fuses.
    found = idx.search_segments(plan.dense if want_dense else None, plan.concept if want_concept else None, k_seg,
                                ranking=ranking, allowed_ids=allowed, exclude=plan.exclude)
    dense_hits, concept_hits, scored = found.dense, found.concept, found.fused
    support = plan.support if ranking == "dense" and want_dense else None
    supported: dict[int, tuple[float, float, np.ndarray]] = {}  # segment → (cosine, support term, vector)
    if support is not None:
        with _one_blas_thread():
            supported = _supported_segments(lib, idx, plan, support, set(dense_hits), k, allowed)
        dense_hits = {sid: cos for sid, (cos, _, _) in supported.items()}
        scored = {sid: cos + term for sid, (cos, term, _) in supported.items()}
    t["search"] = time.perf_counter()
    seg_ids = list(scored)
    meta = _segment_meta(lib, seg_ids)
    seg_hits = [SegmentHit(sid, meta[sid]["sound_id"], scored[sid], meta[sid]["start"], meta[sid]["end"])
                for sid in seg_ids if sid in meta]
    notes: list[str] = []
    pooled: dict[int, tuple[np.ndarray, int]] = {}
    if aggregate == "pooled" and plan.dense is not None:
        pooled, unweighted = _pooled_vectors(lib, {h.sound_id for h in seg_hits})
        if unweighted:
            notes.append(f"{unweighted} candidate sound(s) indexed before window power was stored (migration 0007) "
                         f"are ranked by their best window")
    with lib.session() as s:
        waiting = s.scalar(select(func.count()).select_from(Sound).where(Sound.status == "pending")) or 0
    if waiting:
        notes.append(f"{waiting} sound(s) await re-embedding with this library's encoder and are not searched yet "
                     "(`earmark reembed`)")
    pooled_scores = {sid: float(v @ plan.dense) for sid, (v, _) in pooled.items()}
    pooled_support: dict[int, float] = {}
    if support is not None and pooled:
        ids = list(pooled)
        with _one_blas_thread():
            pooled_support = dict(zip(ids, support.scores(np.stack([pooled[i][0] for i in ids])).tolist()))
        pooled_scores = {sid: sc + pooled_support[sid] for sid, sc in pooled_scores.items()}
    excluded = set(exclude_sounds)
    sounds = [h for h in aggregate_segments(seg_hits, mode=aggregate, pooled=pooled_scores) if h.sound_id not in excluded]
    sound_meta = _sound_meta(lib, [h.sound_id for h in sounds])
    sounds = dedupe_by_hash(sounds, {sid: m["content_hash"] for sid, m in sound_meta.items()})[:k]
    t["rank"] = time.perf_counter()
    hits = _explain(lib, idx, plan, sounds, sound_meta, dense_hits, concept_hits, book, pooled)
    if support is not None:
        with _one_blas_thread():
            _explain_support(support, hits, pooled, pooled_support, supported)
    t["explain"] = time.perf_counter()
    form = _query_form(query, parsed, plan, book, ranking, aggregate, notes, support)
    stages = ["load", "parse", "encode", "search", "rank", "explain"]
    timing, prev = {}, t["start"]
    for st in stages:
        timing[st] = round((t[st] - prev) * 1000, 3)
        prev = t[st]
    timing["total"] = round((t["explain"] - t["start"]) * 1000, 3)
    return SearchResult(form, hits, timing)


def _segment_meta(lib: "Library", seg_ids: Sequence[int]) -> dict[int, dict]:
    if not seg_ids:
        return {}
    with lib.session() as s:
        rows = s.execute(select(Segment.id, Segment.sound_id, Segment.start, Segment.end)
                         .where(Segment.id.in_([int(i) for i in seg_ids])))
        return {r[0]: {"sound_id": r[1], "start": r[2], "end": r[3]} for r in rows}


def _sound_meta(lib: "Library", sound_ids: Sequence[int]) -> dict[int, dict]:
    if not sound_ids:
        return {}
    with lib.session() as s:
        rows = s.execute(select(Sound.id, Sound.path, Root.path, Sound.content_hash, Sound.duration)
                         .join(Root, Root.id == Sound.root_id).where(Sound.id.in_([int(i) for i in sound_ids])))
        return {r[0]: {"path": r[1], "root": r[2], "content_hash": r[3], "duration": r[4]} for r in rows}


def _abs_path(meta: dict) -> str:
    # Built only for the hits shown (a query looks up ~150 candidate sounds for de-duplication).
    return str(Path(meta["root"]) / meta["path"])


def _codes(idx, book, hits, pooled: dict[int, tuple[np.ndarray, int]]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Sound id → (concept ids, weights) that explain each hit: a pooled sound of several
    windows is coded as the sound it was ranked as (its pooled vector, decomposed now); any other
    hit by its best window's stored code."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    many = [h.sound_id for h in hits if h.sound_id in pooled and pooled[h.sound_id][1] > 1]
    if many:
        codes = book.decompose(np.stack([pooled[sid][0] for sid in many])).weights.tocsr()
        for row, sid in enumerate(many):
            lo, hi = codes.indptr[row], codes.indptr[row + 1]
            out[sid] = (codes.indices[lo:hi], codes.data[lo:hi])
    for h in hits:
        if h.sound_id not in out and idx.postings is not None and h.segment_id in idx.postings:
            code = idx.postings.codes_of(h.segment_id)
            out[h.sound_id] = (np.asarray(code.concept_ids), np.asarray(code.weights))
    return out


def _explain(lib, idx, plan: _Plan, sounds, sound_meta, dense_hits, concept_hits, book,
             pooled: dict[int, tuple[np.ndarray, int]]) -> list[Hit]:
    hits = []
    # windows the dense search did not score (a pooled sound's score is already its dense score)
    missing = [h.segment_id for h in sounds if dense_hits.get(h.segment_id) is None and h.sound_id not in pooled]
    dense_of = _dense_scores(lib, missing, plan.dense) if plan.dense is not None and book is not None else {}
    codes = _codes(idx, book, sounds, pooled) if book is not None else {}
    for rank, h in enumerate(sounds, 1):
        m = sound_meta[h.sound_id]
        as_sound = h.sound_id in pooled
        hit = Hit(rank=rank, sound_id=h.sound_id, path=m["path"], abs_path=_abs_path(m), score=float(h.score),
                  dense_score=float(pooled[h.sound_id][0] @ plan.dense) if as_sound else dense_hits.get(h.segment_id),
                  concept_score=None if as_sound else concept_hits.get(h.segment_id),
                  start=float(h.start), end=float(h.end), segment_id=h.segment_id, duration=m["duration"],
                  duplicates=[_abs_path(sound_meta[d]) for d in h.duplicates if d in sound_meta],
                  explains="sound" if as_sound else "window")
        if h.sound_id in codes:
            c_ids, c_w = codes[h.sound_id]
            order = np.argsort(-c_w, kind="stable")[:TOP_CONCEPTS]
            hit.top_concepts = [ConceptWeight(book.concepts[int(c_ids[i])], float(c_w[i])) for i in order]
            if plan.concept is not None:
                exp = explain_concepts(plan.concept, c_ids, c_w, book.concepts)
                hit.contributions = [Contribution(c.concept, c.query_weight, c.hit_weight, c.contribution)
                                     for c in exp.contributions]
                if hit.concept_score is None:
                    hit.concept_score = exp.score
            if plan.dense is not None:
                dense = hit.dense_score if hit.dense_score is not None else dense_of[h.segment_id]
                hit.dense_score = dense
                dexp = explain_dense(plan.dense, dense, c_ids, c_w, book.dictionary, book.concepts)
                hit.dense_explained = dexp.share
                hit.dense_contributions = [Contribution(c.concept, c.query_weight, c.hit_weight, c.contribution)
                                           for c in dexp.contributions]
        hits.append(hit)
    return hits


def _supported_segments(lib: "Library", idx, plan: _Plan, support: QuerySupport, found: set[int], k: int,
                        allowed: np.ndarray | None) -> dict[int, tuple[float, float, np.ndarray]]:
    """Segment → (cosine with the query vector, exemplar support term, stored vector) for the dense search's
    segments and the ``k`` (the sounds asked for) nearest each of the SUPPORT_SEARCHES exemplars
    nearest the query vector, within ``allowed``, without segments carrying an excluded concept."""
    order = np.argsort(-(support.vectors @ plan.dense), kind="stable")[:SUPPORT_SEARCHES]
    nb = idx.dense.search(support.vectors[order], k, allowed_ids=allowed)
    candidates = found | {int(i) for i in nb.ids.ravel() if i >= 0}
    banned = idx.excluded_segments(plan.exclude)
    if len(banned):
        candidates -= {int(i) for i in banned}
    if not candidates:
        return {}
    with lib.session() as s:
        rows = list(s.execute(select(Segment.id, Segment.embedding).where(Segment.id.in_(sorted(candidates)))))
    if not rows:
        return {}
    vectors = np.stack([np.frombuffer(blob, np.float32) for _, blob in rows])
    cos = vectors @ plan.dense
    terms = support.scores(vectors)
    return {int(sid): (float(c), float(t), v) for (sid, _), c, t, v in zip(rows, cos, terms, vectors)}


def _explain_support(support: QuerySupport, hits: list[Hit], pooled: dict[int, tuple[np.ndarray, int]],
                     pooled_support: dict[int, float], supported: dict[int, tuple[float, float, np.ndarray]]) -> None:
    """Each hit's support term and the exemplars behind it, of what it was ranked as: its pooled
    vector, or its best window (every ranked window is one of ``supported``'s segments)."""
    for h in hits:
        if h.sound_id in pooled:
            vector, h.support_score = pooled[h.sound_id][0], pooled_support[h.sound_id]
        else:
            _, h.support_score, vector = supported[h.segment_id]
        idx, sims = support.nearest(vector[None, :])
        h.support_examples = [SupportExample(support.labels[int(i)], float(c)) for i, c in zip(idx[0], sims[0])]


def _pooled_vectors(lib: "Library", sound_ids: set[int]) -> tuple[dict[int, tuple[np.ndarray, int]], int]:
    """(sound id → (its windows pooled by power, how many windows), how many sounds could not be pooled).

    All of a sound's stored windows count, not only those the window search returned, so a
    sound scores the same in every query. A sound with a window of unknown power (indexed before
    migration 0007) is left out and counted.
    """
    if not sound_ids:
        return {}, 0
    windows: dict[int, list[tuple[bytes, float | None]]] = {}
    with lib.session() as s:
        rows = s.execute(select(Segment.sound_id, Segment.embedding, Segment.power)
                         .where(Segment.sound_id.in_([int(i) for i in sound_ids])).order_by(Segment.id))
        for sound_id, blob, power in rows:
            windows.setdefault(sound_id, []).append((blob, power))
    out: dict[int, tuple[np.ndarray, int]] = {}
    for sound_id, ws in windows.items():
        if any(p is None for _, p in ws):
            continue
        emb = np.stack([np.frombuffer(b, np.float32) for b, _ in ws])
        out[sound_id] = (pool_windows(emb, np.array([p for _, p in ws])), len(ws))
    return out, len(windows) - len(out)


def _dense_scores(lib: "Library", segment_ids: Sequence[int], q: np.ndarray) -> dict[int, float]:
    """⟨stored vector, q⟩ of hits the dense search did not return, in one query."""
    if not segment_ids:
        return {}
    with lib.session() as s:
        rows = s.execute(select(Segment.id, Segment.embedding).where(Segment.id.in_([int(i) for i in segment_ids])))
        return {sid: float(np.frombuffer(blob, np.float32) @ q) for sid, blob in rows}


def _query_form(text, parsed: ParsedQuery, plan: _Plan, book, ranking: str, aggregate: str,
                notes: list[str], support: QuerySupport | None = None) -> QueryForm:
    concepts: list[ConceptWeight] = []
    if plan.concept is not None and book is not None:
        nz = np.flatnonzero(plan.concept)
        order = nz[np.argsort(-np.abs(plan.concept[nz]), kind="stable")]
        concepts = [ConceptWeight(book.concepts[int(i)], float(plan.concept[i])) for i in order[:20]]
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return QueryForm(text=shown, free_text=parsed.free_text, concepts=concepts,
                     excluded=[book.concepts[i] for i in plan.exclude] if book else [],
                     like=[c.path for c in parsed.like], filters=parsed.filters.to_dict(), ranking=ranking,
                     aggregate=aggregate, notes=notes, borrowed_from=[BorrowedLabel(lab, w) for lab, w in plan.borrowed],
                     support=_support_labels(support))


def _support_labels(support: QuerySupport | None) -> list[SupportLabel]:
    if support is None:
        return []
    labels, counts = np.unique(np.asarray(support.labels), return_counts=True)
    order = sorted(zip(labels.tolist(), counts.tolist()), key=lambda x: (-x[1], x[0]))
    return [SupportLabel(lab, int(n)) for lab, n in order]
