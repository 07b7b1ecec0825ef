"""Adding a few files to a large library: the checkpoint commit against rewriting every index file.

Copies a library built by benchmarks/query.py (100k segments by default), adds N sounds of
5 windows each straight into the store (as the indexer does: segments, vectors, concept codes,
data version), then in the same run times

- earmark's commit: the indexes catch up in memory and, with few changes since the last file,
  no file is written (engine/indexes.py, "checkpoints");
- the baseline, what earmark did before: the same commit forced to write every index as a
  new generation (``LibraryIndexes.commit(force=True)``);
- a fresh reader opening the library and answering its first query (it catches up from the
  store, the price of not writing);
- that fresh reader, in its own process, with the index files read into memory against mapped
  (``EARMARK_MMAP_BYTES=0``: index/layered.py, what libraries with files over 1 GiB get): open +
  first query time, the next queries' p50, and peak resident memory.

    python benchmarks/incremental_commit.py --library /work/cache/q100k --sounds 100
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def add_sounds(lib, n_sounds: int, seed: int) -> int:
    """Store ``n_sounds`` new sounds of 5 windows each with codes; returns segments added."""
    from sqlalchemy import insert, select

    from earmark.index.store import Root, Segment, Sound

    rng = np.random.default_rng(seed)
    enc_id = lib.encoder_record_id()
    with lib.session() as s, s.begin():
        root = s.scalars(select(Root)).first()
        base = np.stack([np.frombuffer(b, np.float32) for b in s.scalars(select(Segment.embedding).limit(2000))])
        sounds = [{"root_id": root.id, "path": f"new/{seed}-{i:05d}.wav", "content_hash": f"new{seed}-{i}", "size": 1,
                   "mtime": 0.0, "duration": 5.75, "status": "indexed", "encoder_id": enc_id} for i in range(n_sounds)]
        ids = [r[0] for r in s.execute(insert(Sound).returning(Sound.id), sounds)]
        n = 5 * n_sounds
        vecs = base[rng.integers(len(base), size=n)] + 0.35 * rng.standard_normal((n, base.shape[1])).astype(np.float32) / np.sqrt(base.shape[1])
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        rows = [{"sound_id": ids[i // 5], "start": (i % 5) * 1.15, "end": (i % 5) * 1.15 + 2.3,
                 "embedding": vecs[i].astype(np.float32).tobytes(), "encoder_id": enc_id} for i in range(n)]
        seg_ids = [r[0] for r in s.execute(insert(Segment).returning(Segment.id), rows)]
        lib.compute_codes(s, seg_ids, vecs)
        lib.bump_data_version(s)
    return n


READER = """
import json, sys, time


def peak_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024


t0 = time.perf_counter()
from earmark.engine.library import Library
lib = Library(sys.argv[1])
lib.search("rain on a tin roof", k=10)
first = time.perf_counter() - t0
times = []
for q in ["dog barking", "+bell -music", "footsteps on gravel", "thunder", "a car engine"] * 4:
    t = time.perf_counter(); lib.search(q, k=10); times.append(time.perf_counter() - t)
dense = lib.indexes().dense
print(json.dumps({"first_s": first, "p50_ms": 1000 * sorted(times)[len(times) // 2],
                  "rss_mb": peak_mb(),
                  "kind": type(dense).__name__, "delta": getattr(dense, "n_delta", None)}))
"""


def fresh_reader(work: Path, mapped: bool) -> dict:
    """Open + first query, later queries and peak RSS of a new process reading ``work``."""
    env = dict(os.environ, EARMARK_MMAP_BYTES="0" if mapped else str(1 << 40))
    out = subprocess.run([sys.executable, "-c", READER, str(work)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, default=Path("/work/cache/q100k"), help="built by benchmarks/query.py")
    ap.add_argument("--sounds", type=int, default=100)
    args = ap.parse_args()
    from earmark.engine.library import Library

    with tempfile.TemporaryDirectory(dir=args.library.parent) as tmp:
        work = Path(tmp) / "lib"
        shutil.copytree(args.library, work)
        Library(work, migrate=True)  # a copy made by an older earmark gets this one's schema
        results = {}
        for mode, seed in (("checkpoint", 1), ("rewrite", 2)):
            lib = Library(work)
            lib.indexes()  # loaded and current, as in a long-running indexer
            n = add_sounds(lib, args.sounds, seed)
            idx_dir = work / "indexes"
            before = {p.name: p.stat().st_mtime_ns for p in idx_dir.iterdir()}
            t0 = time.perf_counter()
            rep = lib._backend_indexes().sync()
            rep = lib._indexes.commit(rep, force=(mode == "rewrite"))
            dt = time.perf_counter() - t0
            written = [p for p in idx_dir.iterdir() if before.get(p.name) != p.stat().st_mtime_ns]
            results[mode] = (dt, sum(p.stat().st_size for p in written), rep)
            t0 = time.perf_counter()
            reader = Library(work)
            reader.search("rain on a tin roof", k=10)
            results[mode + "_reader"] = time.perf_counter() - t0
            total = lib.status().segments
        print(f"\n# Adding {args.sounds} sounds ({n} segments) to a library of {total} segments\n")
        print("| commit | time s | bytes written | generations written | deferred changes | fresh reader's first query s |")
        print("|---|---|---|---|---|---|")
        for mode in ("checkpoint", "rewrite"):
            dt, nbytes, rep = results[mode]
            print(f"| {mode} | {dt:.3f} | {nbytes:,} | {dict(rep.committed) or '-'} | {dict(rep.deferred) or '-'} | "
                  f"{results[mode + '_reader']:.2f} |")
        print(f"\nratio rewrite / checkpoint time = {results['rewrite'][0] / results['checkpoint'][0]:.1f}; "
              f"index directory {dir_bytes(work / 'indexes'):,} bytes")
        # The rewrite left nothing to catch up; add again so both readers carry a delta.
        lib = Library(work)
        lib.indexes()
        add_sounds(lib, args.sounds, 3)
        lib._indexes.commit(lib._backend_indexes().sync())
        read, mapped = fresh_reader(work, False), fresh_reader(work, True)
        print(f"\n# A fresh reader process, {args.sounds} sounds behind the files\n")
        print("| index files | open + first query s | later queries p50 ms | peak RSS MB | dense index |")
        print("|---|---|---|---|---|")
        for name, r in (("read into memory", read), ("memory-mapped + delta", mapped)):
            where = "caught up in place" if r["delta"] is None else f"{r['delta']} segments in the delta"
            print(f"| {name} | {r['first_s']:.2f} | {r['p50_ms']:.1f} | {r['rss_mb']:.0f} | {r['kind']} ({where}) |")
        print(f"\nratio read / mapped: first query {read['first_s'] / mapped['first_s']:.2f}, "
              f"peak RSS {read['rss_mb'] / mapped['rss_mb']:.2f}")


if __name__ == "__main__":
    main()
