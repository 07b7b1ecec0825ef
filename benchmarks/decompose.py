"""Concept-decomposition throughput: earmark's solver vs sklearn one-at-a-time vs plain batched ADMM.

All three solve the same problem (min ‖z − Cᵀw‖² + λ‖w‖₁, w ≥ 0, SpLiCE's scale) on the same
rows; throughput is reported in embeddings per second at equal objective: earmark's solver is
exact to a KKT tolerance of 1e-6, sklearn runs with SpLiCE's settings (tol 1e-6, max_iter
10,000) and ADMM runs until every row is within 1e-4 of earmark's objective. The slow
references run on a subset and their per-embedding rate is reported.

Data:
- d = 512: the embedded encoder's text embeddings of the 2,000 concepts of the baseline
  vocabulary, and real audio embeddings (the embedded encoder's projection of the cached CNN
  features of the training corpus in $EARMARK_CORPUS/features, default
  /work/cache/earmark-corpus), both centred as `decompose` does.
- d = 1024: no 1,024-d encoder ships, so a synthetic dictionary with shared directions
  (like related words) and targets mixing 12 concepts plus noise.

Usage: python benchmarks/decompose.py [--n 10000] [--ref-n 500] [--threads 1] [--lam 0.05 0.15]

One thread by default: on a shared 2-core machine, two torch threads thrash (measured 20x slower).
"""
from __future__ import annotations

import argparse
import glob
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from earmark.engine.user_cache import cache_root


def corpus_audio_embeddings(encoder, n: int) -> np.ndarray:
    """Up to ``n`` real audio embeddings: cached CNN features → the encoder's projection head."""
    root = Path(os.environ.get("EARMARK_CORPUS", "/work/cache/earmark-corpus")) / "features"
    rows = []
    for path in sorted(glob.glob(str(root / "*.np[yz]"))):
        data = np.load(path)
        arr = data if isinstance(data, np.ndarray) else data[data.files[0]]
        rows.append(np.asarray(arr, np.float32).reshape(-1, 512))
        if sum(len(r) for r in rows) >= n:
            break
    if not rows:
        raise SystemExit(f"no cached features under {root}: set EARMARK_CORPUS or build the training corpus")
    feats = torch.from_numpy(np.concatenate(rows)[:n])
    with torch.no_grad():
        return encoder.model.project_audio_features(feats.to(encoder.device)).cpu().numpy()


def machine_line(threads: int) -> str:
    """What the ratios depend on: the CPU model, the core count and the versions of both solvers' stacks.

    sklearn's coordinate descent is latency-bound and moves more between CPUs than the kernel
    does (2026-12-04: 8.0/s on one 2-core machine, 24.8/s on another, same rows), so a ratio
    is only meaningful with the machine it was taken on.
    """
    import platform

    import numba
    import sklearn

    cpu = platform.processor() or platform.machine()
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, {threads} threads; torch {torch.__version__}, numba {numba.__version__}, "
            f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")


CACHE = Path(os.environ.get("EARMARK_CONCEPT_CACHE", cache_root() / "concepts"))


def real_problem(n: int):
    from earmark.engine.concepts.dictionary import build_dictionary
    from earmark.engine.encoders import load_encoder
    from earmark.engine.encoders.base import l2_normalise
    from earmark.vocabularies import load_vocabulary

    enc = load_encoder("embedded", device="cpu")
    atoms = build_dictionary(enc, load_vocabulary("baseline"), cache_dir=CACHE).atoms
    audio = corpus_audio_embeddings(enc, n)
    z = l2_normalise(audio - audio.mean(0))
    return atoms, z, f"embedded encoder {enc.fingerprint}, baseline vocabulary, {len(z)} corpus audio windows"


def synthetic_problem(k: int, d: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((40, d))
    atoms = rng.standard_normal((k, 40)) @ base * 0.5 + rng.standard_normal((k, d))
    atoms -= atoms.mean(0)
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    w = np.zeros((n, k))
    for i in range(n):
        w[i, rng.choice(k, 12, replace=False)] = rng.random(12)
    z = w @ atoms + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d)
    return atoms.astype(np.float32), (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32), \
        f"synthetic correlated dictionary, {n} mixtures of 12 concepts"


def run(atoms: np.ndarray, z: np.ndarray, lam: float, ref_n: int, label: str, admm_iters: int = 20000) -> dict:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import Lasso

    from earmark.engine.concepts.solver import SolveStats, objective, prepare, sklearn_alpha, solve_active_set, solve_admm

    k, d = atoms.shape
    prep = prepare(torch.from_numpy(atoms))
    zt = torch.from_numpy(z)
    # Untimed warm-up: the first call of a fresh install compiles the numba kernel (seconds),
    # a one-off cost that would otherwise be billed to whichever row of the table runs first.
    solve_active_set(prep, zt[:8], lam)
    stats = SolveStats()
    t0 = time.perf_counter()
    w = solve_active_set(prep, zt, lam, stats=stats)
    t_ours = time.perf_counter() - t0
    f_ours = objective(prep.atoms, zt, w, lam)

    sub = slice(0, min(ref_n, len(z)))
    model = Lasso(alpha=sklearn_alpha(lam, d), positive=True, fit_intercept=False, max_iter=10000, tol=1e-6)
    ref = []
    # Rows where sklearn stops at max_iter short of its own tol are counted, not hidden: its
    # objective is still compared (gap skl), and the timing includes those full 10,000 sweeps.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        for row in z[sub]:
            model.fit(atoms.T, row)
            ref.append(model.coef_.copy())
        t_skl = time.perf_counter() - t0
    skl_unconverged = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    f_skl = objective(prep.atoms, zt[sub], torch.tensor(np.array(ref)), lam)

    t0 = time.perf_counter()
    ast = SolveStats()
    w_admm = solve_admm(prep, zt[sub], lam, rho=5.0, max_iter=admm_iters, stop_objective=f_ours[sub], rtol=1e-4, stats=ast)
    t_admm = time.perf_counter() - t0
    f_admm = objective(prep.atoms, zt[sub], w_admm, lam)

    n_sub = sub.stop
    res = {
        "label": label, "k": k, "d": d, "lam": lam, "n": len(z), "ref_n": n_sub,
        "ours_per_s": len(z) / t_ours, "sklearn_per_s": n_sub / t_skl, "admm_per_s": n_sub / t_admm,
        "l0": float((w > 0).sum(1).float().mean()), "outer_steps": stats.pivot_steps, "admm_iters": ast.iterations,
        "gap_vs_sklearn": float(((f_ours[sub] - f_skl) / f_skl).max()),
        "gap_admm": float(((f_admm - f_ours[sub]) / f_ours[sub]).max()),
        "skl_unconverged": skl_unconverged,
    }
    res["x_sklearn"] = res["ours_per_s"] / res["sklearn_per_s"]
    res["x_admm"] = res["ours_per_s"] / res["admm_per_s"]
    return res


def fidelity_table(n: int, lams: list[float]) -> None:
    """L0 and cosine fidelity of `decompose` per shipped vocabulary and λ on real audio embeddings."""
    from earmark.engine.concepts.decompose import decompose
    from earmark.engine.concepts.dictionary import build_dictionary
    from earmark.engine.encoders import load_encoder
    from earmark.vocabularies import load_vocabulary, shipped_vocabularies

    enc = load_encoder("embedded", device="cpu")
    audio = corpus_audio_embeddings(enc, n)
    mean = audio.mean(0)
    print(f"embedded encoder {enc.fingerprint}, {len(audio)} corpus audio windows, audio mean = their mean")
    print(f"{'vocabulary':>10} {'lam':>5} {'L0 mean':>8} {'L0 p10-p90':>11} {'fidelity':>9} {'dense cos to mean':>18}")
    base = float(np.mean(audio @ (mean / np.linalg.norm(mean))))
    for name in shipped_vocabularies():
        d = build_dictionary(enc, load_vocabulary(name), audio_mean=mean, cache_dir=CACHE)
        for lam in lams:
            c = decompose(audio, d, lam=lam, device="cpu")
            p10, p90 = np.percentile(c.l0, [10, 90])
            print(f"{name:>10} {lam:>5} {c.l0.mean():>8.1f} {p10:>5.0f}-{p90:<5.0f} {c.fidelity.mean():>9.3f} {base:>18.3f}",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--ref-n", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--admm-iters", type=int, default=20000, help="ADMM gives up here; the gap column then shows how far it was")
    ap.add_argument("--lam", type=float, nargs="+", default=[0.05, 0.15])
    ap.add_argument("--dims", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--fidelity", action="store_true", help="print the L0 / fidelity table instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.fidelity:
        fidelity_table(args.n, [0.05, 0.1, 0.15, 0.25])
        return
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    print(machine_line(args.threads))
    header = (f"{'d':>5} {'lam':>5} {'L0':>6} {'ours/s':>8} {'sklearn/s':>9} {'admm/s':>7} {'x skl':>6} {'x admm':>7} "
              f"{'gap skl':>9} {'gap admm':>9} {'skl maxit':>9}  data")
    rows = []
    for d in args.dims:
        atoms, z, label = real_problem(args.n) if d == 512 else synthetic_problem(2000, d, args.n)
        for lam in args.lam:
            r = run(atoms, z, lam, args.ref_n, label, args.admm_iters)
            rows.append(r)
            if len(rows) == 1:
                print(header)
            print(f"{r['d']:>5} {lam:>5} {r['l0']:>6.1f} {r['ours_per_s']:>8.0f} {r['sklearn_per_s']:>9.1f} "
                  f"{r['admm_per_s']:>7.1f} {r['x_sklearn']:>6.1f} {r['x_admm']:>7.1f} {r['gap_vs_sklearn']:>9.1e} "
                  f"{r['gap_admm']:>9.1e} {r['skl_unconverged']:>9d}  {label} (n={r['n']}, refs on {r['ref_n']})", flush=True)
    print("gap skl = max relative objective of earmark minus sklearn's (negative: earmark lower); "
          "gap admm = ADMM's max relative excess over earmark at stop; "
          "skl maxit = reference rows where sklearn hit max_iter before its tol")


if __name__ == "__main__":
    main()
