"""Milvus segment collection: dense and sparse vectors of a library in one Milvus collection.

The scale-out counterpart of :mod:`earmark.index.dense` + :mod:`earmark.index.sparse`. One
collection per library, one row per segment:

=============  =====================  ===================================================
field          type                   what
=============  =====================  ===================================================
segment_id     INT64, primary key     the store's segment id (never reused)
sound_id       INT64                  the sound the window belongs to
root_id        INT64                  the sound's root
start, end     FLOAT                  window bounds, seconds
duration       FLOAT                  the sound's duration, seconds
dense          FLOAT_VECTOR(dim)      the encoder embedding (unit norm), metric IP
code           SPARSE_FLOAT_VECTOR    the concept code (vocabulary position → weight), IP
concepts       ARRAY<INT32>           the code's concept positions, for exclusion filters
=============  =====================  ===================================================

Search goes through Milvus's own API: ``search`` on ``dense`` (with a ``filter`` expression for
allowed ids and metadata), ``search`` on ``code`` (inner product on the sparse vectors, the
same Σ_c q_c·w_{s,c} the postings compute) and ``hybrid_search`` with ``RRFRanker`` or
``WeightedRanker``. Results are :class:`~earmark.index.dense.Neighbours`, ties ordered by
smaller id like the FAISS backend.

pymilvus is imported on first use only: the default install does not need it.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp

from earmark.index.dense import Neighbours
from earmark.index.sparse import SegmentCode

log = logging.getLogger(__name__)

#: Milvus's largest ``limit`` (topk) for one search or query.
MAX_TOPK = 16_384
#: Capacity of the ``concepts`` array field; a code never has more non-zeros than this.
MAX_CODE_CONCEPTS = 4_096
#: Rows per upsert call: ~2 MB messages at d = 512, far under Milvus's 64 MiB limit. Milvus Lite
#: 2.5 here wrote ~1,200 rows/s with 500-row calls, ~950 with 1,000 and ~680 with 5,000.
INSERT_BATCH = 1_000
#: Ids per ``segment_id in [...]`` expression chunk when fetching rows.
GET_BATCH = 4_000

#: Dense index types and their build parameters (see docs/milvus.md for sizes). FLAT is exact:
#: the backend then returns the same neighbours as FAISS ``Flat``. Milvus Lite builds FLAT
#: whatever is asked.
DENSE_INDEX_TYPES: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "IVF_FLAT": {"nlist": 1024},
    "IVF_SQ8": {"nlist": 1024},
    "IVF_PQ": {"nlist": 1024, "m": 64, "nbits": 8},
    "HNSW": {"M": 16, "efConstruction": 200},
}
#: Search parameters per dense index type (recall ≈ 0.95 at 100M in Milvus's own benchmarks).
DENSE_SEARCH_PARAMS: dict[str, dict[str, Any]] = {
    "FLAT": {},
    "IVF_FLAT": {"nprobe": 64},
    "IVF_SQ8": {"nprobe": 64},
    "IVF_PQ": {"nprobe": 64},
    "HNSW": {"ef": 128},
}
#: Sparse index types: the inverted index is exact for inner product.
SPARSE_INDEX_TYPES = ("SPARSE_INVERTED_INDEX", "SPARSE_WAND")
FUSIONS = ("rrf", "weighted")


class MilvusError(Exception):
    """The Milvus backend cannot be used as asked."""


class MilvusUnavailable(MilvusError):
    """pymilvus (or milvus-lite for a local file URI) is not installed."""


def pymilvus():
    """The pymilvus module, or :class:`MilvusUnavailable` naming the extra to install."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # milvus-lite 2.5 imports the deprecated pkg_resources
            import pymilvus as pm
    except ImportError as exc:
        raise MilvusUnavailable(
            "the Milvus backend needs pymilvus: pip install 'earmark[milvus]' "
            "(pymilvus, and milvus-lite for a local .db file)") from exc
    return pm


def is_local_uri(uri: str) -> bool:
    """True for a Milvus Lite file (a path ending in .db), False for http(s)://host:port."""
    return "://" not in uri


def normalise_uri(uri: str) -> str:
    """An absolute path for a Milvus Lite file; a server URI unchanged."""
    if not uri:
        raise MilvusError("give a Milvus URI: a local file such as milvus.db (Milvus Lite) or http://host:19530")
    if is_local_uri(uri):
        p = Path(uri).expanduser().resolve()
        if p.suffix != ".db":
            raise MilvusError(f"a Milvus Lite URI is a file ending in .db, got {uri!r}")
        return str(p)
    return uri


_CLIENTS: dict[tuple[str, str | None], Any] = {}


def client_for(uri: str, token: str | None = None):
    """One MilvusClient per (uri, token) in this process (Milvus Lite runs one server per file)."""
    key = (uri, token)
    if key not in _CLIENTS:
        pm = pymilvus()
        if is_local_uri(uri):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    import milvus_lite  # noqa: F401
            except ImportError as exc:
                raise MilvusUnavailable(
                    f"{uri} is a Milvus Lite file, which needs milvus-lite: pip install 'earmark[milvus]'") from exc
        kw = {"token": token} if token else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _CLIENTS[key] = pm.MilvusClient(uri=uri, **kw)
        except Exception as exc:  # pymilvus raises its own MilvusException and gRPC errors
            raise MilvusError(f"cannot connect to Milvus at {uri}: {exc}") from exc
    return _CLIENTS[key]


def close_clients() -> None:
    """Close every cached client (stops Milvus Lite servers this process started)."""
    while _CLIENTS:
        _, c = _CLIENTS.popitem()
        try:
            c.close()
        except Exception:  # closing is best effort
            pass


@dataclass
class SegmentRows:
    """Rows to write: per segment its ids, metadata (seconds), dense vector and concept code."""

    ids: np.ndarray  # int64 [n]
    sound_ids: np.ndarray  # int64 [n]
    root_ids: np.ndarray  # int64 [n]
    starts: np.ndarray  # float32 [n], seconds
    ends: np.ndarray  # float32 [n], seconds
    durations: np.ndarray  # float32 [n], seconds (the sound's)
    dense: np.ndarray  # float32 [n, dim], unit norm
    codes: sp.csr_matrix  # float32 [n, n_concepts], rows may be empty

    def __len__(self) -> int:
        return len(self.ids)


def _id_list(ids: Iterable[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in ids) + "]"


def _ordered(scores: np.ndarray, ids: np.ndarray, k: int) -> Neighbours:
    """[1, k] neighbours best first, ties by smaller id (the FAISS backend's order downstream)."""
    order = np.lexsort((ids, -scores))[:k]
    out_s = np.full((1, k), -np.inf, np.float32)
    out_i = np.full((1, k), -1, np.int64)
    out_s[0, : len(order)] = scores[order]
    out_i[0, : len(order)] = ids[order]
    return Neighbours(out_s, out_i)


def _empty(k: int) -> Neighbours:
    return Neighbours(np.full((1, k), -np.inf, np.float32), np.full((1, k), -1, np.int64))


class MilvusSegments:
    """One library's segment collection in Milvus (create, write, search)."""

    def __init__(self, uri: str, collection: str, dim: int, *, token: str | None = None,
                 index_type: str = "FLAT", sparse_index: str = "SPARSE_INVERTED_INDEX",
                 consistency: str = "Strong", shards: int = 1, replicas: int = 1) -> None:
        index_type = index_type.upper()
        if index_type not in DENSE_INDEX_TYPES:
            raise MilvusError(f"dense index type must be one of {', '.join(DENSE_INDEX_TYPES)}, got {index_type!r}")
        if sparse_index not in SPARSE_INDEX_TYPES:
            raise MilvusError(f"sparse index type must be one of {', '.join(SPARSE_INDEX_TYPES)}")
        self.uri = normalise_uri(uri)
        self.collection = collection
        self.dim = int(dim)
        self.token = token
        self.index_type = index_type
        self.sparse_index = sparse_index
        # Strong: a search right after a write sees it (earmark commits, then answers queries).
        self.consistency = consistency
        self.shards = int(shards)  # DML channels: write parallelism (fixed at creation)
        self.replicas = int(replicas)  # in-memory copies on query nodes: read throughput, availability

    @property
    def client(self):
        return client_for(self.uri, self.token)

    def _call(self, what: str, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except MilvusError:
            raise
        except Exception as exc:  # pymilvus.MilvusException, gRPC errors
            raise MilvusError(f"Milvus {what} on collection {self.collection} at {self.uri} failed: {exc}") from exc

    # ----------------------------------------------------------------- collection
    def exists(self) -> bool:
        return bool(self._call("has_collection", self.client.has_collection, self.collection))

    def create(self) -> None:
        """Create the collection and its indexes (FLOAT_VECTOR + SPARSE_FLOAT_VECTOR), loaded."""
        pm = pymilvus()
        DataType = pm.DataType
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False,
                                           description="earmark segments: dense embedding + concept code")
        schema.add_field("segment_id", DataType.INT64, is_primary=True)
        schema.add_field("sound_id", DataType.INT64)
        schema.add_field("root_id", DataType.INT64)
        schema.add_field("start", DataType.FLOAT)
        schema.add_field("end", DataType.FLOAT)
        schema.add_field("duration", DataType.FLOAT)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("code", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("concepts", DataType.ARRAY, element_type=DataType.INT32, max_capacity=MAX_CODE_CONCEPTS)
        params = self.client.prepare_index_params()
        params.add_index("dense", index_type=self.index_type, metric_type="IP",
                         params=dict(DENSE_INDEX_TYPES[self.index_type]))
        params.add_index("code", index_type=self.sparse_index, metric_type="IP",
                         params={"drop_ratio_build": 0.0})  # keep every weight: exact inner products
        extra = {"num_shards": self.shards} if self.shards != 1 else {}
        self._call("create_collection", self.client.create_collection, self.collection, schema=schema,
                   index_params=params, consistency_level=self.consistency, **extra)
        self.load()

    def load(self) -> None:
        """Load the collection on the query nodes (``replicas`` copies)."""
        extra = {"replica_number": self.replicas} if self.replicas != 1 else {}
        self._call("load_collection", self.client.load_collection, self.collection, **extra)

    def drop(self) -> None:
        if self.exists():
            self._call("drop_collection", self.client.drop_collection, self.collection)

    def count(self) -> int:
        """Live rows (a count(*) query: exact, unlike the flushed-row statistics)."""
        res = self._call("count", self.client.query, self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"]) if res else 0

    def ids(self) -> np.ndarray:
        """Every segment id in the collection (int64, ascending), paged by primary key."""
        return self._query_ids("segment_id >= 0")

    def _query_ids(self, expr: str) -> np.ndarray:
        out: list[int] = []
        last = -1
        while True:
            # Paging by primary key (milvus-lite 2.5's query_iterator fails on ARRAY fields).
            rows = self._call("query", self.client.query, self.collection,
                              filter=f"segment_id > {last} and ({expr})", output_fields=["segment_id"],
                              limit=MAX_TOPK)
            if not rows:
                break
            got = sorted(int(r["segment_id"]) for r in rows)
            out.extend(got)
            last = got[-1]
            if len(rows) < MAX_TOPK:
                break
        return np.array(sorted(set(out)), np.int64)

    # ----------------------------------------------------------------- writing
    def upsert(self, rows: SegmentRows) -> int:
        """Insert or replace rows (by segment id); returns how many were written."""
        codes = sp.csr_matrix(rows.codes, dtype=np.float32)
        codes.sort_indices()
        n = len(rows)
        for lo in range(0, n, INSERT_BATCH):
            hi = min(lo + INSERT_BATCH, n)
            batch = []
            for r in range(lo, hi):
                a, b = codes.indptr[r], codes.indptr[r + 1]
                cols = codes.indices[a:b]
                if len(cols) > MAX_CODE_CONCEPTS:
                    raise MilvusError(f"segment {int(rows.ids[r])} has {len(cols)} concepts; "
                                      f"the collection holds at most {MAX_CODE_CONCEPTS}")
                batch.append({
                    "segment_id": int(rows.ids[r]), "sound_id": int(rows.sound_ids[r]),
                    "root_id": int(rows.root_ids[r]), "start": float(rows.starts[r]), "end": float(rows.ends[r]),
                    "duration": float(rows.durations[r]), "dense": rows.dense[r].astype(np.float32).tolist(),
                    "code": {int(c): float(w) for c, w in zip(cols, codes.data[a:b])},
                    "concepts": [int(c) for c in cols],
                })
            self._call("upsert", self.client.upsert, self.collection, batch)
        return n

    def delete(self, ids: np.ndarray) -> int:
        ids = np.asarray(ids, np.int64).reshape(-1)
        for lo in range(0, len(ids), GET_BATCH):
            self._call("delete", self.client.delete, self.collection, ids=[int(i) for i in ids[lo:lo + GET_BATCH]])
        return len(ids)

    def flush(self) -> None:
        self._call("flush", self.client.flush, self.collection)

    # ----------------------------------------------------------------- reading
    def codes_of(self, ids: Iterable[int]) -> dict[int, SegmentCode]:
        """Stored concept codes by segment id (ids absent from the collection are left out)."""
        ids = [int(i) for i in ids]
        out: dict[int, SegmentCode] = {}
        for lo in range(0, len(ids), GET_BATCH):
            rows = self._call("get", self.client.get, self.collection, ids=ids[lo:lo + GET_BATCH],
                              output_fields=["segment_id", "code"])
            for r in rows:
                code = r.get("code") or {}
                c = np.array(sorted(int(x) for x in code), np.int32)
                w = np.array([code[int(x)] for x in c], np.float32)
                out[int(r["segment_id"])] = SegmentCode(c, w)
        return out

    def segments_with_concepts(self, concept_ids: Iterable[int]) -> np.ndarray:
        """Ids of segments whose code has a weight on any of ``concept_ids``."""
        cs = sorted({int(c) for c in concept_ids})
        if not cs:
            return np.zeros(0, np.int64)
        return self._query_ids(f"array_contains_any(concepts, {_id_list(cs)})")

    @staticmethod
    def _filter(allowed: np.ndarray | None, banned: np.ndarray | None, expr: str | None) -> str | None:
        """A filter expression, or None when the allowed set is empty (no hit possible)."""
        parts = []
        banned = np.zeros(0, np.int64) if banned is None else np.asarray(banned, np.int64)
        if allowed is not None:
            allowed = np.setdiff1d(np.asarray(allowed, np.int64), banned)
            if len(allowed) == 0:
                return None
            parts.append(f"segment_id in {_id_list(allowed)}")
        elif len(banned):
            # milvus-lite 2.5 has no `not array_contains_any`: exclusions are resolved to ids first
            parts.append(f"segment_id not in {_id_list(np.unique(banned))}")
        if expr:
            parts.append(f"({expr})")
        return " and ".join(parts)

    def _dense_params(self) -> dict:
        return {"metric_type": "IP", "params": dict(DENSE_SEARCH_PARAMS[self.index_type])}

    @staticmethod
    def _sparse_query(q: np.ndarray) -> dict[int, float]:
        q = np.asarray(q, np.float32).reshape(-1)
        pos = np.flatnonzero(q > 0)
        return {int(c): float(q[c]) for c in pos}

    @staticmethod
    def _limit(k: int) -> int:
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        return min(int(k), MAX_TOPK)

    def _hits(self, res, k: int) -> Neighbours:
        hits = res[0] if res else []
        if not hits:
            return _empty(k)
        scores = np.array([h["distance"] for h in hits], np.float32)
        ids = np.array([h["id"] for h in hits], np.int64)
        return _ordered(scores, ids, k)

    def search_dense(self, query: np.ndarray, k: int, allowed_ids: np.ndarray | None = None,
                     banned_ids: np.ndarray | None = None, expr: str | None = None) -> Neighbours:
        """Top-``k`` inner products of one unit query vector (float32 [dim]) with ``dense``."""
        flt = self._filter(allowed_ids, banned_ids, expr)
        if flt is None:
            return _empty(k)
        q = np.asarray(query, np.float32).reshape(-1)
        res = self._call("search", self.client.search, self.collection, data=[q.tolist()], anns_field="dense",
                         limit=self._limit(k), filter=flt, search_params=self._dense_params(), output_fields=[])
        return self._hits(res, k)

    def search_concepts(self, query_weights: np.ndarray, k: int, allowed_ids: np.ndarray | None = None,
                        banned_ids: np.ndarray | None = None, expr: str | None = None) -> Neighbours:
        """Top-``k`` segments by Σ_c q_c·w_{s,c} over the query's positive concepts (sparse IP).

        Candidates are the segments sharing a positive concept with the query, as in
        :meth:`ConceptPostings.concept_search`; negative weights are not sent (earmark's query
        language turns them into exclusions, ``banned_ids``)."""
        flt = self._filter(allowed_ids, banned_ids, expr)
        sq = self._sparse_query(query_weights)
        if flt is None or not sq:
            return _empty(k)
        res = self._call("search", self.client.search, self.collection, data=[sq], anns_field="code",
                         limit=self._limit(k), filter=flt, search_params={"metric_type": "IP", "params": {}},
                         output_fields=[])
        return self._hits(res, k)

    def hybrid_search(self, dense_query: np.ndarray, concept_query: np.ndarray, k: int, *,
                      allowed_ids: np.ndarray | None = None, banned_ids: np.ndarray | None = None,
                      fusion: str = "rrf", rrf_k: int = 60, weights: tuple[float, float] = (0.5, 0.5),
                      expr: str | None = None) -> Neighbours:
        """Milvus ``hybrid_search`` over ``dense`` and ``code``, each list ``k`` long, fused by
        ``RRFRanker(rrf_k)`` (Σ 1/(rrf_k + rank), the FAISS backend's fusion) or
        ``WeightedRanker(*weights)``. Returns up to 2k fused segments."""
        if fusion not in FUSIONS:
            raise MilvusError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        flt = self._filter(allowed_ids, banned_ids, expr)
        sq = self._sparse_query(concept_query)
        if flt is None:
            return _empty(2 * k)
        pm = pymilvus()
        limit = self._limit(k)
        reqs = [pm.AnnSearchRequest(data=[np.asarray(dense_query, np.float32).reshape(-1).tolist()],
                                    anns_field="dense", param=self._dense_params(), limit=limit, expr=flt or None)]
        if sq:
            reqs.append(pm.AnnSearchRequest(data=[sq], anns_field="code", param={"metric_type": "IP", "params": {}},
                                            limit=limit, expr=flt or None))
        ranker = pm.RRFRanker(rrf_k) if fusion == "rrf" else pm.WeightedRanker(*weights[: len(reqs)])
        res = self._call("hybrid_search", self.client.hybrid_search, self.collection, reqs, ranker,
                         limit=self._limit(2 * k), output_fields=[])
        return self._hits(res, 2 * k)
