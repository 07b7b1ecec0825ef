"""FAISS + postings against Milvus Lite on the same synthetic library: ingest rate and query latency.

Synthetic segments like a real library's: d = 512 unit vectors, concept codes with ~40 non-zeros
over 2,000 concepts (popularity skewed like real tags), in one run on one machine:

* ingest: FAISS ``Flat`` (exact, the type the parity tests use) and the automatic type for the
  size (IVF above 20k vectors) plus the concept postings, against Milvus Lite (FLAT +
  SPARSE_INVERTED_INDEX, upsert in batches, then flush);
* query latency p50 / p99 (ms) of the searches earmark runs per query (k = 80 segments, i.e. 10
  sounds): dense, concept (sparse inner product) and fusion (FAISS: both + earmark's RRF;
  Milvus: one ``hybrid_search`` with RRFRanker(60), and earmark's RRF over two Milvus searches).

Usage::

    python benchmarks/backend_compare.py                 # 100k segments, 200 queries
    python benchmarks/backend_compare.py --n 20000 --queries 100 --json out.json

``--max-ingest-seconds`` bounds the Milvus ingest: when it runs out, the rows written so far are
searched and the report says how many. Results for this repository: docs/milvus.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

K_SEG = 80  # k = 10 sounds × SEGMENTS_PER_HIT


def synthetic(n: int, dim: int, n_concepts: int, nnz: int, seed: int = 0):
    """Unit vectors in loose clusters and skewed sparse codes (ids 1..n)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    x = centres[rng.integers(0, 256, n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    pop = 1.0 / np.arange(1, n_concepts + 1) ** 0.8  # Zipf-like concept popularity
    pop /= pop.sum()
    k = np.clip(rng.poisson(nnz, n), 5, 4 * nnz)
    cols = [np.sort(rng.choice(n_concepts, int(m), replace=False, p=pop)) for m in k]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in cols])])
    data = rng.gamma(2.0, 0.05, int(indptr[-1])).astype(np.float32)
    codes = sp.csr_matrix((data, np.concatenate(cols), indptr), shape=(n, n_concepts))
    return np.arange(1, n + 1, dtype=np.int64), x, codes


def queries(x: np.ndarray, codes: sp.csr_matrix, m: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(x), m)
    q = x[pick] + 0.3 * rng.standard_normal(x[pick].shape).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    cq = np.asarray(codes[pick].todense(), np.float32)
    return q, cq


def pct(times: list[float]) -> dict:
    a = np.array(times) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def timed(fn, items) -> list[float]:
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append(time.perf_counter() - t)
    return out


def bench_faiss(ids, x, codes, dq, cq, factory: str | None) -> dict:
    from earmark.engine.query.rank import fuse
    from earmark.index.dense import DenseIndex
    from earmark.index.sparse import ConceptPostings

    t = time.perf_counter()
    dense = DenseIndex.rebuild(ids, x, factory)
    postings = ConceptPostings.from_codes(ids, codes, codes.shape[1])
    ingest = time.perf_counter() - t

    def d(i):
        return dense.search(dq[i][None], K_SEG)

    def c(i):
        return postings.concept_search(cq[i], K_SEG)

    def f(i):
        s1, i1 = dense.search(dq[i][None], K_SEG)
        s2, i2 = postings.concept_search(cq[i], K_SEG)
        return fuse({int(a): float(b) for b, a in zip(s1[0], i1[0]) if a >= 0},
                    {int(a): float(b) for b, a in zip(s2[0], i2[0]) if a >= 0}, "fusion")

    rng = range(len(dq))
    for i in rng[:5]:
        f(i)  # warm caches
    return {"backend": f"faiss {dense.stats().kind} + postings", "rows": len(ids),
            "ingest_s": round(ingest, 2), "ingest_rows_per_s": round(len(ids) / ingest),
            "dense": pct(timed(d, rng)), "concept": pct(timed(c, rng)), "fusion": pct(timed(f, rng))}


def bench_milvus(ids, x, codes, dq, cq, workdir: Path, max_ingest_s: float) -> dict:
    from earmark.engine.query.rank import fuse
    from earmark.index.milvus import INSERT_BATCH, MilvusSegments, SegmentRows, close_clients

    store = MilvusSegments(str(workdir / "bench.db"), "bench", x.shape[1])
    t0 = time.perf_counter()
    store.drop()
    store.create()
    n = len(ids)
    written = 0
    zeros = np.zeros(n, np.float32)
    t = time.perf_counter()
    for lo in range(0, n, INSERT_BATCH):
        hi = min(lo + INSERT_BATCH, n)
        store.upsert(SegmentRows(ids[lo:hi], ids[lo:hi] // 4, np.zeros(hi - lo, np.int64), zeros[lo:hi],
                                 zeros[lo:hi] + 1.0, zeros[lo:hi] + 4.0, x[lo:hi], codes[lo:hi]))
        written = hi
        if written % 10_000 == 0:
            print(f"  milvus: {written} rows in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        if time.perf_counter() - t > max_ingest_s:
            break
    store.flush()
    ingest = time.perf_counter() - t
    rows = store.count()

    def d(i):
        return store.search_dense(dq[i], K_SEG)

    def c(i):
        return store.search_concepts(cq[i], K_SEG)

    def h(i):
        return store.hybrid_search(dq[i], cq[i], K_SEG, fusion="rrf")

    def e(i):
        a, b = store.search_dense(dq[i], K_SEG), store.search_concepts(cq[i], K_SEG)
        return fuse({int(u): float(v) for v, u in zip(a.scores[0], a.ids[0]) if u >= 0},
                    {int(u): float(v) for v, u in zip(b.scores[0], b.ids[0]) if u >= 0}, "fusion")

    rng = range(len(dq))
    for i in rng[:5]:
        h(i)  # loads segments, warms the server
    out = {"backend": "milvus-lite FLAT + SPARSE_INVERTED_INDEX", "rows": rows, "rows_requested": n,
           "ingest_complete": written == n, "setup_s": round(t - t0, 2),
           "ingest_s": round(ingest, 2), "ingest_rows_per_s": round(written / ingest),
           "dense": pct(timed(d, rng)), "concept": pct(timed(c, rng)),
           "fusion": pct(timed(h, rng)), "fusion_earmark_rrf": pct(timed(e, rng))}
    store.drop()
    close_clients()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="segments (default 100k)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--concepts", type=int, default=2000)
    ap.add_argument("--nnz", type=int, default=40, help="mean non-zeros per code")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--max-ingest-seconds", type=float, default=240.0, help="bound on the Milvus ingest")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    try:
        from earmark.index.milvus import pymilvus

        pymilvus()
    except Exception as exc:
        print(f"backend_compare: {exc}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    ids, x, codes = synthetic(args.n, args.dim, args.concepts, args.nnz)
    dq, cq = queries(x, codes, args.queries)
    print(f"{args.n} segments, d={args.dim}, {args.concepts} concepts, mean L0 {codes.nnz / args.n:.1f}; "
          f"{args.queries} queries, k={K_SEG} segments (generated in {time.perf_counter() - t:.1f} s)")
    results = [bench_faiss(ids, x, codes, dq, cq, "Flat")]
    from earmark.index.dense import DenseIndex

    auto = DenseIndex.auto_factory(args.n)
    if auto != "Flat":
        results.append(bench_faiss(ids, x, codes, dq, cq, auto))
    work = Path(tempfile.mkdtemp(prefix="earmark-milvus-bench-"))
    try:
        results.append(bench_milvus(ids, x, codes, dq, cq, work, args.max_ingest_seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'backend':44} {'rows':>7} {'ingest/s':>9} {'dense p50/p99 ms':>18} {'concept p50/p99':>16} "
          f"{'fusion p50/p99':>16}")
    for r in results:
        print(f"{r['backend']:44} {r['rows']:>7} {r['ingest_rows_per_s']:>9} "
              f"{r['dense']['p50_ms']:>8.2f}/{r['dense']['p99_ms']:<9.2f} {r['concept']['p50_ms']:>7.2f}/{r['concept']['p99_ms']:<8.2f} "
              f"{r['fusion']['p50_ms']:>7.2f}/{r['fusion']['p99_ms']:<8.2f}")
    mil, flat = results[-1], results[0]
    if "fusion_earmark_rrf" in mil:
        f = mil["fusion_earmark_rrf"]
        print(f"{'  (milvus, earmark RRF over two searches)':44} {'':>7} {'':>9} {'':>18} {'':>16} "
              f"{f['p50_ms']:>7.2f}/{f['p99_ms']:<8.2f}")
    ratios = {"ingest_faiss_flat_over_milvus": round(flat["ingest_rows_per_s"] / mil["ingest_rows_per_s"], 2)}
    for kind in ("dense", "concept", "fusion"):
        ratios[f"{kind}_p50_milvus_over_faiss_flat"] = round(mil[kind]["p50_ms"] / max(flat[kind]["p50_ms"], 1e-6), 2)
    print("ratios: " + ", ".join(f"{k} {v}x" for k, v in ratios.items()))
    if not mil["ingest_complete"]:
        print(f"note: Milvus ingest stopped at {mil['rows']} of {args.n} rows after {args.max_ingest_seconds:g} s")
    report = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
              "results": results, "ratios": ratios, "seconds": round(time.perf_counter() - t, 1)}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"total {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
