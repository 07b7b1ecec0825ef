"""End-to-end query latency on a large library: earmark against brute-force CLAP search.

Builds (or reuses) a library of N segments whose vectors are real embedded-encoder embeddings of
the demo sounds' windows, perturbed and renormalised (so text queries land among realistic
vectors), with concept codes computed by the library's own codebook. Then runs distinct text and
concept queries through `Library.search` (text encoding + concept decomposition + FAISS/postings
search + ranking + explanations) and, in the same run, the baseline that simple CLAP search tools
use: embed the text, one numpy matmul over all vectors, argsort.

    python benchmarks/query.py --segments 100000 --dir /tmp/earmark-bench-100k
"""
from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from earmark.engine.query.rank import AGGREGATES, DEFAULT_RANKING, RANKINGS

QUERIES = [
    "birds singing", "a crackling campfire", "rain on a tin roof", "footsteps on gravel", "a dog barking",
    "a door slams", "church bells", "thunder rumbling", "a man speaking", "a woman laughing",
    "water running from a tap", "wind howling", "a car engine starting", "glass breaking", "an explosion",
    "a drum beat", "piano music", "a crowd cheering", "a telephone ringing", "a cat meowing",
    "+bell", "+speech -music", "+drum +percussion", "+water", "+wind -speech",
    "metal clang", "a siren", "keyboard typing", "a baby crying", "sword fight",
]


def build(directory: Path, n_segments: int, seed: int = 0) -> "Library":
    from sqlalchemy import insert

    from earmark.engine.audio import load_mono
    from earmark.engine.demo import demo_sounds_dir
    from earmark.engine.library import Library
    from earmark.engine.window_pooling import window_power
    from earmark.engine.windows import iter_windows
    from earmark.index.store import Root, Segment, Sound

    if (directory / "earmark.db").exists():
        lib = Library(directory)
        if lib.status().segments >= n_segments:
            return lib
        raise SystemExit(f"{directory} holds a smaller library; remove it or pick another --dir")
    lib = Library.init(directory)
    enc = lib.encoder
    base, base_power = [], []
    for f in sorted(demo_sounds_dir().glob("*.ogg")):
        x = load_mono(f, enc.sample_rate)
        wins = np.stack([w.samples for w in iter_windows([x], enc.sample_rate, enc.window_samples, lib.hop_samples)])
        base.append(enc.embed_audio(wins))
        base_power.append(window_power(wins))
    base, base_power = np.concatenate(base), np.concatenate(base_power)
    rng = np.random.default_rng(seed)
    per_sound = 10
    enc_id = lib.encoder_record_id()
    t0 = time.perf_counter()
    with lib.session() as s, s.begin():
        root = Root(path=str(directory / "synthetic"), include=[], exclude=[])
        s.add(root)
        s.flush()
        for lo in range(0, n_segments, 10_000):
            n = min(10_000, n_segments - lo)
            sounds = [{"root_id": root.id, "path": f"s{(lo + i) // per_sound:07d}.wav", "content_hash": f"h{(lo + i) // per_sound}",
                       "size": 1, "mtime": 0.0, "duration": per_sound * enc.window_seconds / 2, "status": "indexed",
                       "encoder_id": enc_id} for i in range(0, n, per_sound)]
            res = s.execute(insert(Sound).returning(Sound.id), sounds)
            ids = [r[0] for r in res]
            which = rng.integers(len(base), size=n)
            pick, power = base[which], base_power[which]
            vecs = pick + 0.35 * rng.standard_normal(pick.shape).astype(np.float32) / np.sqrt(pick.shape[1])
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            s.execute(insert(Segment), [{"sound_id": ids[i // per_sound], "start": (i % per_sound) * enc.window_seconds / 2,
                                         "end": (i % per_sound) * enc.window_seconds / 2 + enc.window_seconds,
                                         "embedding": vecs[i].astype(np.float32).tobytes(), "encoder_id": enc_id,
                                         "power": float(power[i])}
                                        for i in range(n)])
        lib.bump_data_version(s)
    print(f"stored {n_segments} segments in {time.perf_counter() - t0:.1f} s; computing concept codes ...")
    t0 = time.perf_counter()
    lib.ensure_codes(progress=True)
    print(f"codes in {time.perf_counter() - t0:.1f} s; building indexes ...")
    t0 = time.perf_counter()
    lib.commit_indexes()
    print(f"indexes in {time.perf_counter() - t0:.1f} s")
    return lib


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/earmark-bench-query"))
    ap.add_argument("--repeats", type=int, default=2, help="passes over the query list")
    ap.add_argument("--ranking", choices=RANKINGS, default=DEFAULT_RANKING,
                    help="search's ranking (default: the product's, dense; docs/query-language.md's recorded "
                         "run used fusion, the default before 2026-12-06)")
    ap.add_argument("--aggregate", choices=AGGREGATES, default=None,
                    help="windows → sounds (default: the ranking's own, pooled for dense)")
    ap.add_argument("--no-exemplars", action="store_true",
                    help="rank without the embedded encoder's exemplar support (v12), to time what it costs")
    args = ap.parse_args()
    from sqlalchemy import select

    from earmark.index.store import Segment

    lib = build(args.dir, args.segments)
    protos = getattr(lib.encoder, "prototypes", None)
    if args.no_exemplars and protos is not None:
        import dataclasses

        lib.encoder.prototypes = dataclasses.replace(protos, exemplar_weight=0.0)
    exemplars = protos is not None and lib.encoder.prototypes.has_support
    lib.search("warm up", k=10, ranking=args.ranking, aggregate=args.aggregate)  # loads the indexes and the dictionary once
    stages: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for q in QUERIES:
            res = lib.search(q, k=10, ranking=args.ranking, aggregate=args.aggregate)
            if res.query.notes:
                raise SystemExit(f"{args.dir}: {res.query.notes[0]}; build a fresh library with another --dir")
            for k, v in res.timing_ms.items():
                stages.setdefault(k, []).append(v)
    # Baseline: embed the text, matmul over every stored vector, argsort (no explanations).
    with lib.session() as s:
        rows = s.execute(select(Segment.embedding)).scalars().all()
    mat = np.frombuffer(b"".join(rows), np.float32).reshape(len(rows), -1)
    base_ms = []
    for _ in range(args.repeats):
        for q in QUERIES:
            t0 = time.perf_counter()
            z = lib.encoder.embed_text([q.lstrip("+").split(" -")[0]])[0]
            top = np.argsort(-(mat @ z))[:100]
            base_ms.append((time.perf_counter() - t0) * 1000)
            assert len(top)
    n = lib.status().segments
    print(f"\n# earmark query latency, {n} segments, {len(QUERIES) * args.repeats} queries, ranking "
          f"{res.query.ranking}/{res.query.aggregate}, exemplar support {'on' if exemplars else 'off'}, "
          f"{datetime.now(timezone.utc):%Y-%m-%d}\n")
    print("| stage | p50 ms | p90 ms | p99 ms |\n|---|---|---|---|")
    for k in ("parse", "encode", "search", "rank", "explain", "total"):
        v = stages[k]
        print(f"| {k} | {pct(v, 50):.1f} | {pct(v, 90):.1f} | {pct(v, 99):.1f} |")
    print(f"| brute force (text + numpy matmul + argsort, no explanations) | {pct(base_ms, 50):.1f} | "
          f"{pct(base_ms, 90):.1f} | {pct(base_ms, 99):.1f} |")
    print(f"\nratio earmark p50 / brute-force p50 = {statistics.median(stages['total']) / statistics.median(base_ms):.2f}")


if __name__ == "__main__":
    main()
