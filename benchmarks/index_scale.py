"""Index scale benchmark: DenseIndex / ConceptPostings against brute force and sqlite-vec.

Synthetic data (what simple uniform noise would hide): ``--clusters`` cluster centres, unit
vectors in d dimensions; each segment is ``normalise(centre + s·noise)`` with a per-cluster
spread ``s`` drawn in [0.6, 1.4]·``--spread``, so neighbourhoods are dense near centres and thin
at the edges, like embeddings of a sound library (many takes of similar sounds). Queries are
fresh points from the same generator (not in the index). Concept codes: each cluster prefers 80
of the ``--concepts`` concepts; a segment has ``--nnz`` non-zeros, 3/4 drawn from its cluster's
preferred concepts and 1/4 from the whole vocabulary, with exponential weights. The concept
dictionary is random unit vectors; the concept FAISS index holds ``normalise(C w)``.

Run:  nice python benchmarks/index_scale.py --n 100000
      nice python benchmarks/index_scale.py --n 1000000 --skip-hnsw   (docs figures)
Prints a Markdown report (also written to --out). Single-query latencies use one FAISS thread.
"""
from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import scipy.sparse as sp

from earmark.index.dense import DenseIndex
from earmark.index.sparse import ConceptPostings, recompose


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def clustered(n: int, d: int, centres: np.ndarray, spreads: np.ndarray, rng,
              subs: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around the centres; returns (vectors float32 [n, d], cluster ids).
    With ``subs`` > 0, each cluster has ``subs`` sub-centres (variants of one sound) and points
    scatter around a sub-centre with half the spread."""
    if subs:
        sub = unit(np.repeat(centres, subs, axis=0) + np.repeat(spreads, subs)[:, None]
                   * rng.standard_normal((len(centres) * subs, d), dtype=np.float32) / np.sqrt(d))
        pts, sl = clustered(n, d, sub, np.repeat(spreads, subs) * 0.5, rng)
        return pts, sl // subs
    lab = rng.integers(0, len(centres), n)
    out = np.empty((n, d), np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        noise = rng.standard_normal((hi - lo, d), dtype=np.float32) / np.sqrt(d)
        out[lo:hi] = unit(centres[lab[lo:hi]] + spreads[lab[lo:hi], None] * noise)
    return out, lab


def concept_codes(lab: np.ndarray, n_concepts: int, nnz: int, n_clusters: int, rng) -> sp.csr_matrix:
    pref = np.stack([rng.choice(n_concepts, 80, replace=False) for _ in range(n_clusters)])
    n = len(lab)
    own = nnz * 3 // 4
    cols = np.concatenate(
        [pref[lab][np.arange(n)[:, None], rng.integers(0, 80, (n, own))],
         rng.integers(0, n_concepts, (n, nnz - own))], axis=1)
    rows = np.repeat(np.arange(n), nnz)
    w = sp.csr_matrix((rng.exponential(1.0, n * nnz).astype(np.float32), (rows, cols.reshape(-1))),
                      shape=(n, n_concepts))
    w.sum_duplicates()  # repeated picks add up: ~nnz distinct concepts per segment
    return w


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Row:
    name: str
    build_s: float
    mem_mb: float
    p50_ms: float
    p99_ms: float
    recall: float
    note: str = ""


def latencies(fn, queries: np.ndarray) -> tuple[np.ndarray, list]:
    times, outs = [], []
    for q in queries:
        t = time.perf_counter()
        outs.append(fn(q[None, :]))
        times.append((time.perf_counter() - t) * 1000)
    return np.array(times), outs


def exact_topk(q: np.ndarray, x: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k ids by inner product (ground truth), in query batches to bound memory."""
    out = []
    for lo in range(0, len(q), 32):
        s = q[lo : lo + 32] @ x.T
        top = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1)
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--spread", type=float, default=1.0)
    ap.add_argument("--subclusters", type=int, default=20, help="0: one level of clusters")
    ap.add_argument("--concepts", type=int, default=2000)
    ap.add_argument("--nnz", type=int, default=40)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--slow-queries", type=int, default=20, help="for brute force and sqlite-vec")
    ap.add_argument("--skip-hnsw", action="store_true")
    ap.add_argument("--skip-sqlite-vec", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    n, d, k = a.n, a.d, 10
    lines = [f"## n = {n:,}, d = {d}, {a.clusters} clusters, {a.concepts} concepts, ~{a.nnz} nnz, "
             f"{a.subclusters} sub-clusters per cluster, spread {a.spread}",
             f"FAISS {faiss.__version__}, {os.cpu_count()} cores, single-query latencies on 1 thread", ""]

    t = time.perf_counter()
    centres = unit(rng.standard_normal((a.clusters, d)).astype(np.float32))
    spreads = (a.spread * rng.uniform(0.6, 1.4, a.clusters)).astype(np.float32)
    x, lab = clustered(n, d, centres, spreads, np.random.default_rng(1), a.subclusters)
    q, qlab = clustered(n + a.queries, d, centres, spreads, np.random.default_rng(1), a.subclusters)
    q, qlab = q[n:], qlab[n:]  # same generator, points not in the index
    ids = np.arange(n, dtype=np.int64)
    raw_mb = x.nbytes / 2**20
    truth = exact_topk(q, x, k)
    lines.append(f"data generated in {time.perf_counter() - t:.1f} s; raw float32 vectors {raw_mb:.0f} MiB; "
                 f"mean top-1 cosine {np.mean(np.sum(q * x[truth[:, 0]], axis=1)):.2f}")
    rows: list[Row] = []
    qs = q[: a.slow_queries]

    # brute force numpy matmul over all vectors (what simple CLAP search tools do)
    def brute(v):
        s = v @ x.T
        top = np.argpartition(-s[0], k)[:k]
        return top[np.argsort(-s[0, top])]
    tms, outs = latencies(brute, qs)
    rows.append(Row("numpy brute force (matmul + argpartition)", 0.0, raw_mb, np.percentile(tms, 50),
                    np.percentile(tms, 99), recall_at(np.stack(outs), truth[: len(qs)])))
    brute_p50 = rows[-1].p50_ms

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    types = [None, "Flat"] + ([] if a.skip_hnsw else ["HNSW32"]) + [f"IVF{2 ** round(np.log2(2 * np.sqrt(n)))},SQ8"]
    nprobe_sweep: list[str] = []
    for factory in types:
        gc.collect()
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        t = time.perf_counter()
        idx = DenseIndex.rebuild(ids, x, factory)
        build = time.perf_counter() - t
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            path = idx.save(tmp, 1)
            mem = path.stat().st_size / 2**20  # serialised size = resident size for these types
            t = time.perf_counter()
            mapped = DenseIndex.load(path, mmap=True)
            open_ms = (time.perf_counter() - t) * 1000
            del mapped
        faiss.omp_set_num_threads(1)
        name = factory or f"auto: {DenseIndex.auto_factory(n)}"
        if idx.nprobe is not None and factory is None:
            default = idx.nprobe
            for npb in (8, 16, 32, 64):
                idx.nprobe = npb
                tms, outs = latencies(lambda v: idx.search(v, k).ids[0], q)
                nprobe_sweep.append(f"| {npb} | {np.percentile(tms, 50):.2f} | {np.percentile(tms, 99):.2f} | "
                                    f"{recall_at(np.stack(outs), truth):.3f} |")
            idx.nprobe = default
        qq = qs if factory == "Flat" else q  # exact scan: the slow-query subset is enough
        tms, outs = latencies(lambda v: idx.search(v, k).ids[0], qq)
        st = idx.stats()
        note = f"nprobe {st.nprobe}" if st.nprobe else (f"efSearch {st.ef_search}" if st.ef_search else "")
        rows.append(Row(f"DenseIndex {name}", build, mem, np.percentile(tms, 50), np.percentile(tms, 99),
                        recall_at(np.stack(outs), truth[: len(qq)]), f"{note}; mmap open {open_ms:.0f} ms".strip("; ")))
        # filtered search: 1% of the library allowed
        allowed = ids[::100]
        tms, _ = latencies(lambda v: idx.search(v, k, allowed_ids=allowed), q[:50])
        rows[-1].note += f"; 1%-filtered p50 {np.percentile(tms, 50):.1f} ms"
        print(rows[-1], flush=True)
        del idx
    gc.collect()

    if not a.skip_sqlite_vec:
        import apsw
        import sqlite_vec
        db = apsw.Connection(":memory:")
        db.enable_load_extension(True)
        db.load_extension(sqlite_vec.loadable_path())
        rss0 = rss_mb()
        t = time.perf_counter()
        db.execute(f"create virtual table v using vec0(embedding float[{d}] distance_metric=cosine)")
        with db:
            for lo in range(0, n, 10_000):
                db.executemany("insert into v(rowid, embedding) values (?, ?)",
                               ((int(i) + 1, x[i].tobytes()) for i in range(lo, min(n, lo + 10_000))))
        build = time.perf_counter() - t
        mem = rss_mb() - rss0
        def sv(v):
            r = db.execute("select rowid from v where embedding match ? and k = ?", (v[0].tobytes(), k)).fetchall()
            return np.array([i - 1 for (i,) in r])
        tms, outs = latencies(sv, qs)
        rows.append(Row(f"sqlite-vec {sqlite_vec.__version__ if hasattr(sqlite_vec, '__version__') else ''} vec0 (exact scan)",
                        build, mem, np.percentile(tms, 50), np.percentile(tms, 99),
                        recall_at(np.stack(outs), truth[: len(qs)]), "in-memory DB; memory = RSS growth"))
        print(rows[-1], flush=True)
        db.close()
        del db

    lines += ["", "### Dense top-10", "",
              "| method | build s | memory MiB | × raw | p50 ms | p99 ms | recall@10 | speed-up vs brute p50 | notes |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.build_s:.1f} | {r.mem_mb:.0f} | {r.mem_mb / raw_mb:.2f} | {r.p50_ms:.2f} | "
                     f"{r.p99_ms:.2f} | {r.recall:.3f} | {brute_p50 / r.p50_ms:.1f}× | {r.note} |")
    if nprobe_sweep:
        lines += ["", "### Auto IVF: nprobe sweep", "", "| nprobe | p50 ms | p99 ms | recall@10 |",
                  "|---|---|---|---|"] + nprobe_sweep

    # ---- concepts
    gc.collect()
    t = time.perf_counter()
    codes_all = concept_codes(np.concatenate([lab, qlab]), a.concepts, a.nnz, a.clusters, rng)
    codes, qcodes = codes_all[:n], codes_all[n:]
    gen_s = time.perf_counter() - t
    t = time.perf_counter()
    post = ConceptPostings.from_codes(ids, codes)
    post_build = time.perf_counter() - t
    post_mb = (codes.data.nbytes + codes.indices.nbytes + codes.indptr.nbytes) * 2 / 2**20  # CSR + CSC
    cq = []
    for i in range(a.queries):
        w = np.zeros(a.concepts, np.float32)
        pos = rng.choice(a.concepts, 1 + i % 3, replace=False)
        w[pos] = rng.uniform(0.5, 1.0, len(pos))
        if i % 4 == 3:
            w[rng.integers(0, a.concepts)] = -0.5  # a "-concept"
        cq.append(w)
    tms = []
    for w in cq:
        t0 = time.perf_counter()
        post.concept_search(w, k)
        tms.append((time.perf_counter() - t0) * 1000)
    tms = np.array(tms)
    excl_t = []
    for w in cq[:50]:
        t0 = time.perf_counter()
        post.concept_search(w, k, exclude=[int(np.argmax(w))])
        excl_t.append((time.perf_counter() - t0) * 1000)
    # brute reference for postings: dense scan of all codes
    t0 = time.perf_counter()
    for w in cq[: a.slow_queries]:
        codes @ w
    scan_ms = (time.perf_counter() - t0) * 1000 / a.slow_queries
    lines += ["", "### Concept queries", "",
              f"codes generated in {gen_s:.1f} s: {codes.nnz / n:.1f} non-zeros per segment on average", "",
              "| method | build s | memory MiB | p50 ms | p99 ms | notes |", "|---|---|---|---|---|---|",
              f"| ConceptPostings.concept_search (1-3 concepts, 1 in 4 with a -concept) | {post_build:.1f} | "
              f"{post_mb:.0f} | {np.percentile(tms, 50):.2f} | {np.percentile(tms, 99):.2f} | exact; "
              f"with exclude p50 {np.percentile(excl_t, 50):.2f} ms; full CSR scan (codes @ q) {scan_ms:.1f} ms |"]
    print(lines[-1], flush=True)
    del post
    gc.collect()

    # concept FAISS index over recomposed embeddings normalise(C w)
    dictionary = unit(rng.standard_normal((a.concepts, d)).astype(np.float32))
    t = time.perf_counter()
    cx = np.empty((n, d), np.float32)
    for lo in range(0, n, 100_000):
        cx[lo : lo + 100_000] = recompose(codes[lo : lo + 100_000], dictionary)
    rec_s = time.perf_counter() - t
    del x
    gc.collect()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    t = time.perf_counter()
    cidx = DenseIndex.rebuild(ids, cx, None)
    cbuild = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    for label, qv in (("query by example: recomposed code of a held-out segment",
                       recompose(qcodes, dictionary)),
                      ("1-3 concept query, recomposed (positive weights)",
                       recompose(sp.csr_matrix(np.maximum(np.stack(cq), 0)), dictionary))):
        ctruth = exact_topk(qv[:100], cx, k)
        tms, outs = latencies(lambda v: cidx.search(v, k).ids[0], qv[:100])
        lines.append(f"| concept DenseIndex auto ({DenseIndex.auto_factory(n)}, nprobe {cidx.nprobe}) over "
                     f"normalise(C w); {label} | {cbuild:.1f} (+{rec_s:.1f} recompose) | {raw_mb:.0f} | "
                     f"{np.percentile(tms, 50):.2f} | {np.percentile(tms, 99):.2f} | "
                     f"recall@10 {recall_at(np.stack(outs), ctruth):.3f} |")
    lines.append("")
    lines.append(f"peak RSS of the benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")
    report = "\n".join(lines)
    print(report)
    if a.out:
        a.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
