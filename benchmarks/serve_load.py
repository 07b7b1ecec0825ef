"""Bounded load test of ``earmark serve`` search on loopback: requests/s and latency percentiles.

    python benchmarks/serve_load.py [--library DIR] [--segments 100000] [--seconds 30]
                                    [--clients 16] [--max-requests 20000] [--json OUT]

Builds (once, cached in DIR) a library of at least ``--segments`` segments from synthetic
sounds, starts the server in a subprocess on 127.0.0.1 (never another interface), and runs
``--clients`` concurrent clients issuing GET /api/search for at most ``--seconds`` seconds or
``--max-requests`` requests, whichever comes first. Any non-200 answer or transport error
counts as an error; the exit status is 1 when there was any.

The encoder is synthetic and cheap on purpose (a fixed random projection of 32 band energies
to 512 dimensions, the width of CLAP embeddings), so the figures measure the server, the
indexes and the ranking on a 100k-segment library — not the cost of a neural text tower.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # fake_encoder: the tests' deterministic band encoder

from fake_encoder import FakeEncoder  # noqa: E402

from earmark.engine.encoders.base import fingerprint_of, l2_normalise  # noqa: E402

LOOPBACK = "127.0.0.1"
WIDE_DIM = 512
FILE_SECONDS = 20.0
SAMPLE_RATE = 16000
HOP_SECONDS = 0.1  # dense hop: many segments from little audio, so the 100k library builds in minutes

TEXT_QUERIES = [
    "high beep tone", "low hum", "white noise", "noise burst", "a steady low hum with noise",
    "short high beeps", "engine rumble", "rain", "wind through trees", "door slam", "footsteps",
    "alarm tone", "bright metallic ring", "distant thunder", "crowd murmur",
]


class WideFakeEncoder(FakeEncoder):
    """FakeEncoder's band energies projected to 512 dimensions by a fixed random matrix."""

    name = "py:serve_load:WideFakeEncoder"
    dim = WIDE_DIM

    def __init__(self, device: str | None = None) -> None:
        super().__init__(device)
        self._proj = np.abs(np.random.default_rng(7).standard_normal((32, WIDE_DIM))).astype(np.float32)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(None, {"fake": 1, "bands": 32, "sr": self.sample_rate, "wide": WIDE_DIM, "seed": 7})

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        return l2_normalise(super().embed_audio(windows) @ self._proj)

    def embed_text(self, texts) -> np.ndarray:
        return l2_normalise(super().embed_text(texts) @ self._proj)


# ------------------------------------------------------------------------------- library
def segments_per_file() -> int:
    from earmark.engine.windows import window_count

    enc = FakeEncoder()
    return window_count(int(FILE_SECONDS * enc.sample_rate), enc.window_samples, int(HOP_SECONDS * enc.sample_rate))


def synth(rng: np.random.Generator) -> np.ndarray:
    """20 s of a few tones switching on and off over noise: varied, deterministic per seed."""
    n = int(FILE_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    out = rng.uniform(0.01, 0.2) * rng.standard_normal(n)
    for _ in range(rng.integers(1, 4)):
        f = float(np.exp(rng.uniform(np.log(60), np.log(6000))))
        gate = (np.sin(2 * np.pi * rng.uniform(0.05, 1.0) * t + rng.uniform(0, 6.3)) > rng.uniform(-0.5, 0.5))
        out += rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * f * t) * gate
    return (0.9 * out / max(1e-6, np.abs(out).max())).astype(np.float32)


def vocabulary_file(directory: Path, size: int) -> str:
    """The first ``size`` concepts of the shipped 'pruned' vocabulary as a file (0: the whole shipped one)."""
    from earmark.vocabularies.vocabulary import load_vocabulary, write_vocabulary

    if size <= 0:
        return "pruned"
    path = directory / f"pruned-{size}.txt"
    if not path.exists():
        concepts = list(load_vocabulary("pruned").concepts)[:size]
        write_vocabulary(path, concepts, {
            "name": f"pruned-{size}", "source": "the first concepts of earmark's shipped 'pruned' vocabulary",
            "method": "cut for the serve load benchmark", "size": str(len(concepts)),
            "licence": "as vocabularies/pruned.txt"})
    return str(path)


def build_library(directory: Path, target_segments: int, vocabulary_size: int = 256) -> Path:
    """A library of at least ``target_segments`` segments under ``directory`` (reused when there).

    Concept codes use ``vocabulary_size`` concepts: coding 100k windows over the full 2,000-concept
    vocabulary takes most of an hour on two CPU cores, which a load test of the server does not need.
    """
    import soundfile as sf

    from earmark.engine.library import Library

    lib_dir = directory / "lib"
    sounds = directory / "sounds"
    directory.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary_file(directory, vocabulary_size)
    if (lib_dir / "earmark.db").exists():
        lib = Library(lib_dir, encoder=WideFakeEncoder())
        have = lib.status().segments
        if have < target_segments:
            raise SystemExit(f"{lib_dir} has {have} < {target_segments} segments; delete {directory} to rebuild")
        if lib.setting("vocabulary") != vocab:
            print(f"recoding {have} segments with vocabulary {vocab}", flush=True)
            lib.use_vocabulary(vocab, progress=True)
        lib.index([sounds])  # unchanged files are skipped; finishes codes and index files left by a stopped run
        print(f"reusing {lib_dir}: {have} segments", flush=True)
        return lib_dir
    n_files = math.ceil(target_segments / segments_per_file())
    print(f"writing {n_files} synthetic sounds of {FILE_SECONDS:g} s to {sounds}", flush=True)
    rng = np.random.default_rng(2026)
    for i in range(n_files):
        path = sounds / f"set{i // 100:02d}" / f"sound{i:05d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = synth(rng)  # always drawn, so the sequence of sounds does not depend on what exists
        if not path.exists():
            sf.write(str(path), audio, SAMPLE_RATE, subtype="PCM_16")
    lib = Library.init(lib_dir, encoder=WideFakeEncoder(), hop_seconds=HOP_SECONDS, vocabulary=vocab)
    t0 = time.perf_counter()
    report = lib.index([sounds], workers=1)
    print(f"indexed in {time.perf_counter() - t0:.0f} s: {lib.status().segments} segments; "
          f"failed {len(report.to_dict().get('failed', []))}", flush=True)
    return lib_dir


# ------------------------------------------------------------------------------- server
def serve_forever(lib_dir: str, port: int) -> None:
    """The server subprocess: the benchmark library with its encoder, on loopback only."""
    import uvicorn

    from earmark.engine.library import Library
    from earmark.engine.server import create_app

    lib = Library(lib_dir, encoder=WideFakeEncoder())
    app = create_app(lib_dir, library=lib)
    uvicorn.run(app, host=LOOPBACK, port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def start_server(lib_dir: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(lib_dir), str(port)], env=env)
    url = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            if httpx.get(url + "/api/status", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("server did not answer within 120 s")


# ------------------------------------------------------------------------------- load
def make_queries(url: str, n: int) -> list[str]:
    """Text queries, concept queries from the library's vocabulary, and mixtures."""
    import httpx

    rng = random.Random(11)
    vocab = httpx.get(url + "/api/vocabulary", params={"limit": 5000}, timeout=30).json()["concepts"]
    concepts = ["_".join(w.split()) for w in vocab] or ["noise"]
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            out.append(rng.choice(TEXT_QUERIES))
        elif kind == 1:
            out.append(" ".join(f"+{rng.choice(concepts)}" for _ in range(rng.randint(1, 3))))
        else:
            out.append(f"{rng.choice(TEXT_QUERIES)} +{rng.choice(concepts)} -{rng.choice(concepts)}")
    return out


async def run_load(url: str, queries: list[str], clients: int, seconds: float, max_requests: int, k: int,
                   ranking: str) -> dict:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    issued = 0
    deadline = time.perf_counter() + seconds

    async def client(cid: int, http: httpx.AsyncClient) -> None:
        nonlocal issued
        i = cid
        while time.perf_counter() < deadline and issued < max_requests:
            issued += 1  # one event loop: no race between the check and the increment
            q = queries[i % len(queries)]
            i += clients
            t0 = time.perf_counter()
            try:
                resp = await http.get("/api/search", params={"q": q, "k": k, "ranking": ranking})
                ok = resp.status_code == 200 and "hits" in resp.json()
                if not ok:
                    errors.append(f"{resp.status_code} for {q!r}: {resp.text[:200]}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__} for {q!r}: {exc}")
            latencies.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, http) for c in range(clients)))
        wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1000
    return {
        "requests": len(latencies), "errors": len(errors), "error_samples": errors[:5], "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
        "latency_ms": {p: round(float(np.percentile(lat, q)), 1) for p, q in
                       (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))} if len(lat) else {},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--library", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "earmark-serve-load")
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--vocabulary-size", type=int, default=256,
                    help="concepts of the shipped 'pruned' vocabulary to code with (0: all 2,000)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--max-requests", type=int, default=20_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--ranking", default="fusion", choices=["fusion", "dense", "concept"])
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--serve", nargs=2, metavar=("LIB", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_forever(args.serve[0], int(args.serve[1]))
        return

    lib_dir = build_library(args.library, args.segments, args.vocabulary_size)
    proc, url = start_server(lib_dir)
    try:
        import httpx

        status = httpx.get(url + "/api/status", timeout=30).json()
        queries = make_queries(url, 600)
        for q in queries[:6]:  # warm-up: indexes loaded, caches filled; not measured
            r = httpx.get(url + "/api/search", params={"q": q, "k": args.k, "ranking": args.ranking}, timeout=300)
            r.raise_for_status()
        result = asyncio.run(run_load(url, queries, args.clients, args.seconds, args.max_requests, args.k, args.ranking))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {"library_segments": status["segments"], "library_sounds": status["sounds_indexed"],
              "encoder": WideFakeEncoder.name, "vocabulary_size": args.vocabulary_size or 2000, "clients": args.clients, "seconds_limit": args.seconds,
              "max_requests": args.max_requests, "k": args.k, "ranking": args.ranking, "cpus": os.cpu_count(),
              **result}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    sys.exit(1 if result["errors"] else 0)


if __name__ == "__main__":
    main()
