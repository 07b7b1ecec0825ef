"""Encode throughput: audio-seconds embedded per wall-second, per backend and device.

    python benchmarks/encode.py                      # embedded (real weights) + tiny hf + tiny laion
    python benchmarks/encode.py --encoder hf:/models/clap-htsat-unfused --seconds 120

Default backends: ``embedded`` with its shipped weights; ``hf`` and ``laion`` with tiny,
randomly initialised models built locally (tests/encoder_fixtures.py), because no real
checkpoint can be fetched here — their rates measure the wrapper and feature pipeline on a toy
network, not a real CLAP. ``laion`` runs only where laion-clap is installed (.ci/laion.sh's
environment). Runs on CPU, and on CUDA as well when a GPU is present.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tiny-model builders


@dataclass(frozen=True)
class EncodeRate:
    """One measurement."""

    backend: str
    device: str
    weights: str
    audio_seconds: float
    wall_seconds: float

    @property
    def rate(self) -> float:
        """Audio-seconds embedded per wall-second."""
        return self.audio_seconds / self.wall_seconds


def synthetic_windows(encoder, seconds: float, seed: int = 0) -> np.ndarray:
    """Back-to-back windows covering ``seconds`` of noise + tones at the encoder's rate."""
    n = max(1, int(np.ceil(seconds / encoder.window_seconds)))
    rng = np.random.default_rng(seed)
    t = np.arange(encoder.window_samples) / encoder.sample_rate
    tones = np.sin(2 * np.pi * rng.uniform(100, 4000, (n, 1)) * t)
    return (0.3 * tones + 0.1 * rng.uniform(-1, 1, (n, encoder.window_samples))).astype(np.float32)


def measure(spec: str, device: str, weights: str, seconds: float) -> EncodeRate:
    from earmark.engine.encoders import load_encoder

    enc = load_encoder(spec, device=device)
    windows = synthetic_windows(enc, seconds)
    enc.embed_audio(windows[:1])  # warm-up: lazy init, CUDA kernels
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    enc.embed_audio(windows)
    wall = time.perf_counter() - start
    return EncodeRate(spec.split(":")[0], device, weights, len(windows) * enc.window_seconds, wall)


def default_specs(workdir: Path) -> list[tuple[str, str]]:
    """(spec, weights description) for the built-in comparison; skipped ones are reported."""
    import importlib.util

    from earmark.engine.encoders.embedded import shipped_weights_path
    from encoder_fixtures import build_tiny_hf_clap, build_tiny_laion_checkpoint

    specs = []
    if shipped_weights_path().exists():
        specs.append(("embedded", "shipped (real)"))
    else:
        print(f"# embedded: skipped, no weights at {shipped_weights_path()}")
    specs.append((f"hf:{build_tiny_hf_clap(workdir / 'hf')}", "tiny random (not a real CLAP)"))
    if importlib.util.find_spec("laion_clap") is not None:
        ckpt, cfg, roberta = build_tiny_laion_checkpoint(workdir / "laion")
        specs.append((f"laion:{ckpt}?amodel={cfg}&text={roberta}", "tiny random PANN-6 (not a real CLAP)"))
    else:
        print("# laion: skipped, laion-clap not installed here (run in .ci/laion.sh's environment)")
    return specs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", action="append", help="spec to measure (repeatable); default: built-in set")
    ap.add_argument("--seconds", type=float, default=60.0, help="audio seconds per measurement")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args(argv)

    import torch

    from earmark.engine.encoders import EncoderError

    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        specs = [(s, "given") for s in args.encoder] if args.encoder else default_specs(Path(tmp))
        print(f"# {args.seconds:g} s of synthetic audio per row; CPU threads {args.threads}; "
              f"torch {torch.__version__}; devices {devices}")
        print(f"{'backend':<9} {'device':<6} {'audio s':>8} {'wall s':>8} {'audio-s/s':>10}  weights")
        for spec, weights in specs:
            for device in devices:
                try:
                    r = measure(spec, device, weights, args.seconds)
                except EncoderError as exc:  # e.g. embedded's text wheel absent in the laion env
                    print(f"# {spec.split(':')[0]} on {device}: skipped, {exc}")
                    continue
                print(f"{r.backend:<9} {r.device:<6} {r.audio_seconds:>8.1f} {r.wall_seconds:>8.2f} "
                      f"{r.rate:>10.1f}  {r.weights}")


if __name__ == "__main__":
    main()
