"""The concept solver against sklearn's Lasso(positive=True), and the decompose API."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import Lasso

from earmark.engine.concepts.decompose import ConceptCodes, decompose, recompose
from earmark.engine.concepts.dictionary import ConceptDictionary, build_dictionary, centre_dictionary
from earmark.engine.concepts.solver import (SolverError, SolveStats, objective, prepare, sklearn_alpha,
                                            solve_active_set, solve_admm)

torch.set_num_threads(1)


def correlated_problem(k: int, d: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A dictionary with shared directions (like text embeddings of related words) and mixed targets."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((12, d))
    atoms = rng.standard_normal((k, 12)) @ base * 0.4 + rng.standard_normal((k, d))
    atoms, _ = centre_dictionary(atoms)
    w = np.zeros((n, k))
    for i in range(n):
        w[i, rng.choice(k, 12, replace=False)] = rng.random(12)
    z = w @ atoms + 0.2 * rng.standard_normal((n, d)) / np.sqrt(d)
    return atoms, (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def real_problem() -> tuple[np.ndarray, np.ndarray]:
    """Real text embeddings: MiniLM (the embedded encoder's text tower) of AudioSet class names."""
    from earmark.vocabularies.sources import audioset_labels
    from sentence_transformers import SentenceTransformer
    from earmark.engine.encoders.embedded_model import minilm_dir

    labels = [name for name, _ in audioset_labels()]
    model = SentenceTransformer(minilm_dir(), device="cpu")
    emb = model.encode(labels + [f"the sound of {l.lower()} and {m.lower()}" for l, m in zip(labels[:40], labels[200:240])],
                       batch_size=64, normalize_embeddings=True)
    atoms, mean = centre_dictionary(emb[: len(labels)])
    z = emb[len(labels):] - mean
    return atoms, (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(np.float32)


def sklearn_codes(atoms: np.ndarray, z: np.ndarray, lam: float) -> np.ndarray:
    model = Lasso(alpha=sklearn_alpha(lam, atoms.shape[1]), positive=True, fit_intercept=False,
                  max_iter=100000, tol=1e-9)
    out = []
    for row in z:
        model.fit(atoms.T.astype(np.float64), row.astype(np.float64))
        out.append(model.coef_.copy())
    return np.array(out)


def assert_matches_sklearn(atoms: np.ndarray, z: np.ndarray, w: np.ndarray, lam: float) -> None:
    ref = sklearn_codes(atoms, z, lam)
    a, zt = torch.from_numpy(atoms), torch.from_numpy(z)
    ours = objective(a, zt, torch.from_numpy(w), lam).numpy()
    theirs = objective(a, zt, torch.from_numpy(ref), lam).numpy()
    np.testing.assert_array_less(np.abs(ours - theirs) / theirs, 1e-4)
    # Same support: weights that matter (above 1e-5) on exactly the same concepts, nothing big on one side only.
    assert np.array_equal(w > 1e-5, ref > 1e-5) or np.abs(w - ref).max() < 1e-4
    assert ((w > 0) != (ref > 0)).sum() <= max(1, int(0.01 * (ref > 0).sum()))


METHODS = ["kernel", "torch"]  # the compiled CPU kernel and the batched torch path (the CUDA default)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("lam", [0.05, 0.25])
def test_random_matches_sklearn(lam: float, method: str) -> None:
    atoms, z = correlated_problem(k=300, d=64, n=8, seed=1)
    stats = SolveStats()
    w = solve_active_set(prepare(torch.from_numpy(atoms)), torch.from_numpy(z), lam, stats=stats,
                         method=method).numpy()
    assert stats.pivot_steps > 0
    assert (w >= 0).all() and (w > 0).sum(1).min() > 0
    assert_matches_sklearn(atoms, z, w, lam)


@pytest.mark.parametrize("method", METHODS)
def test_real_embeddings_match_sklearn(method: str) -> None:
    atoms, z = real_problem()
    prep = prepare(torch.from_numpy(atoms))
    for lam in (0.05, 0.15):
        w = solve_active_set(prep, torch.from_numpy(z[:8]), lam, method=method).numpy()
        assert (w > 0).sum(1).mean() > 3
        assert_matches_sklearn(atoms, z[:8], w, lam)


def test_kkt_conditions_hold_and_rows_are_independent() -> None:
    atoms, z = correlated_problem(k=500, d=96, n=40, seed=2)
    prep = prepare(torch.from_numpy(atoms))
    lam = 0.1
    w = solve_active_set(prep, torch.from_numpy(z), lam, batch_size=16).numpy()
    grad = (z - w @ atoms) @ atoms.T - lam / 2  # −∇ of ½‖z − Cᵀw‖² + (λ/2)‖w‖₁
    assert grad[w == 0].max() <= 1e-5
    assert np.abs(grad[w > 0]).max() <= 1e-4
    # A row's code does not depend on which other rows share its batch.
    alone = solve_active_set(prep, torch.from_numpy(z[7:8]), lam).numpy()
    np.testing.assert_allclose(alone[0], w[7], atol=1e-5)


def test_kernel_and_torch_paths_give_the_same_codes() -> None:
    atoms, z = correlated_problem(k=400, d=64, n=30, seed=5)
    prep = prepare(torch.from_numpy(atoms))
    lams = torch.linspace(0.03, 0.3, 30, dtype=torch.float64)
    a = solve_active_set(prep, torch.from_numpy(z), lams, method="kernel")
    b = solve_active_set(prep, torch.from_numpy(z), lams, method="torch")
    assert torch.equal(a > 1e-5, b > 1e-5)  # the same support up to the KKT tolerance
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)


def test_kernel_factor_updates_match_a_fresh_cholesky() -> None:
    """The kernel keeps its Cholesky factor across pivots: removing a concept by a rank-one
    update, and appending one, must give the factor of the reduced set computed from scratch
    (a wrong factor would give wrong support weights that the KKT check on zeros cannot see)."""
    from earmark.engine.concepts.active_set_kernel import _chol_delete, _factor_from

    rng = np.random.default_rng(3)
    atoms = rng.standard_normal((40, 24))
    g = atoms @ atoms.T / 24 + 0.1 * np.eye(40)
    idx = rng.permutation(40)[:30].astype(np.int64)
    low = np.zeros((31, 31))
    assert _factor_from(g, idx, 30, 0, low) == -1
    p = 30
    for pos in (29, 0, 11, 11):  # last, first and middle positions
        kept = np.delete(idx[:p], pos)
        p = _chol_delete(low, idx, p, pos)
        np.testing.assert_array_equal(idx[:p], kept)
        fresh = np.linalg.cholesky(g[np.ix_(kept, kept)] + 1e-10 * np.eye(p))
        np.testing.assert_allclose(np.tril(low[:p, :p]), fresh, atol=1e-10)
    outside = np.setdiff1d(np.arange(40), idx[:p])[0]
    idx[p] = outside  # an addition only extends the factor by one row
    assert _factor_from(g, idx, p + 1, p, low) == -1
    fresh = np.linalg.cholesky(g[np.ix_(idx[:p + 1], idx[:p + 1])] + 1e-10 * np.eye(p + 1))
    np.testing.assert_allclose(np.tril(low[:p + 1, :p + 1]), fresh, atol=1e-10)


def test_kernel_leaves_torch_thread_count_alone() -> None:
    """numba's OpenMP pool starts with every core; a fresh process shows whether torch's setting survives."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1); "
            "from earmark.engine.concepts.solver import prepare, solve_active_set; "
            "p = prepare(torch.randn(40, 8)); z = torch.nn.functional.normalize(torch.randn(4, 8), dim=1); "
            "solve_active_set(p, z, 0.05, method='kernel'); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip().splitlines()[-1] == "1"


def test_kernel_solves_on_the_float32_gram_and_falls_back_to_float64_when_it_stalls() -> None:
    """Real-sized dictionaries never leave the float32 Gram; a degenerate one (40 concepts in 8
    dimensions, where rounding noise stands in for zero pivots) stalls some rows on it, and those
    rows come back from the float64 Gram with the same optimum as sklearn."""
    atoms, z = correlated_problem(k=300, d=64, n=8, seed=1)
    stats = SolveStats()
    solve_active_set(prepare(torch.from_numpy(atoms)), torch.from_numpy(z), 0.05, stats=stats, method="kernel")
    assert stats.float64_rows == 0

    rng = np.random.default_rng(0)
    atoms = rng.standard_normal((40, 8)).astype(np.float32)
    z = rng.standard_normal((40, 8)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    stats = SolveStats()
    w = solve_active_set(prepare(torch.from_numpy(atoms)), torch.from_numpy(z), 0.05, stats=stats,
                         method="kernel").numpy()
    assert 0 < stats.float64_rows < len(z)
    assert_matches_sklearn(atoms, z, w, 0.05)


def test_duplicate_and_overcomplete_dictionary() -> None:
    """Exact duplicate concepts and more concepts than dimensions: still the optimum, weights split freely."""
    atoms, z = correlated_problem(k=120, d=24, n=10, seed=6)
    atoms = np.concatenate([atoms, atoms[:30]])  # 30 exact duplicates: a singular Gram matrix
    prep = prepare(torch.from_numpy(atoms))
    for method in METHODS:
        w = solve_active_set(prep, torch.from_numpy(z), 0.02, method=method).numpy()
        ref = sklearn_codes(atoms, z, 0.02)
        a, zt = torch.from_numpy(atoms), torch.from_numpy(z)
        ours, theirs = objective(a, zt, torch.from_numpy(w), 0.02), objective(a, zt, torch.from_numpy(ref), 0.02)
        assert float(((ours - theirs) / theirs).max()) < 1e-4, method


def test_per_row_lambda_and_monotone_sparsity() -> None:
    atoms, z = correlated_problem(k=200, d=48, n=6, seed=3)
    prep = prepare(torch.from_numpy(atoms))
    l0 = [(solve_active_set(prep, torch.from_numpy(z), lam).numpy() > 0).sum() for lam in (0.02, 0.1, 0.4)]
    assert l0[0] > l0[1] > l0[2]
    lams = torch.tensor([0.02, 0.4, 0.02, 0.4, 0.02, 0.4], dtype=torch.float64)
    mixed = solve_active_set(prep, torch.from_numpy(z), lams).numpy()
    for i, lam in enumerate(lams.tolist()):
        np.testing.assert_allclose(mixed[i], solve_active_set(prep, torch.from_numpy(z[i:i + 1]), lam).numpy()[0], atol=1e-5)


def test_admm_reference_reaches_the_same_objective() -> None:
    atoms, z = correlated_problem(k=150, d=40, n=5, seed=4)
    prep = prepare(torch.from_numpy(atoms))
    exact = solve_active_set(prep, torch.from_numpy(z), 0.1)
    admm = solve_admm(prep, torch.from_numpy(z), 0.1, tol=1e-7, max_iter=20000)
    a, zt = torch.from_numpy(atoms), torch.from_numpy(z)
    np.testing.assert_allclose(objective(a, zt, admm, 0.1).numpy(), objective(a, zt, exact, 0.1).numpy(), rtol=1e-4)


def test_bad_inputs_raise_named_errors() -> None:
    prep = prepare(torch.randn(10, 4))
    with pytest.raises(SolverError, match="embeddings must be"):
        solve_active_set(prep, torch.randn(3, 5), 0.1)
    with pytest.raises(SolverError, match="lam must be"):
        solve_active_set(prep, torch.randn(3, 4), -1.0)
    with pytest.raises(SolverError, match="NaN"):
        solve_active_set(prep, torch.full((2, 4), float("nan")), 0.1)
    with pytest.raises(SolverError, match="method must be"):
        solve_active_set(prep, torch.randn(3, 4), 0.1, method="fista")


# ---------------------------------------------------------------------------- decompose API
class TinyTextEncoder:
    """Deterministic stand-in for an Encoder's text side: words hash to fixed random vectors."""

    dim = 24
    fingerprint = "tiny-test-encoder"

    def embed_text(self, texts):
        import hashlib

        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            out.append(v / np.linalg.norm(v))
        return np.array(out, np.float32)


class TinyVocabulary:
    def __init__(self, concepts):
        self.concepts = tuple(concepts)
        self.hash = "h" + str(len(concepts))


def tiny_dictionary(tmp_path=None) -> ConceptDictionary:
    enc = TinyTextEncoder()
    vocab = TinyVocabulary([f"concept {i}" for i in range(60)])
    mean = enc.embed_text(["audio mean"])[0] * 0.3
    return build_dictionary(enc, vocab, audio_mean=mean, cache_dir=tmp_path)


def test_decompose_gives_csr_codes_with_l0_and_fidelity(tmp_path) -> None:
    d = tiny_dictionary(tmp_path)
    rng = np.random.default_rng(5)
    # Audio-like embeddings: the mean plus a few concepts.
    w_true = np.zeros((8, 60))
    for i in range(8):
        w_true[i, rng.choice(60, 3, replace=False)] = 1.0
    x = w_true @ d.atoms + d.audio_mean * 2
    codes = decompose(x, d, lam=0.05, device="cpu")
    assert isinstance(codes, ConceptCodes) and sp.isspmatrix_csr(codes.weights)
    assert codes.weights.shape == (8, 60) and (codes.weights.data > 0).all()
    np.testing.assert_array_equal(codes.l0, np.diff(codes.weights.indptr))
    rec = recompose(codes.weights, d)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    np.testing.assert_allclose(codes.fidelity, np.einsum("ij,ij->i", rec, xn), atol=1e-5)
    assert codes.fidelity.min() > 0.9
    for i in range(8):  # the three true concepts are the three heaviest
        assert {c for c, _ in codes.top(i, 3)} == {f"concept {j}" for j in np.flatnonzero(w_true[i])}
    # Sparser with a larger λ, and fidelity falls.
    sparse = decompose(x, d, lam=0.5, device="cpu")
    assert sparse.l0.sum() < codes.l0.sum() and sparse.fidelity.mean() < codes.fidelity.mean()


def test_target_l0_is_reached(tmp_path) -> None:
    d = tiny_dictionary()
    x = np.random.default_rng(6).standard_normal((10, 24)).astype(np.float32)
    codes = decompose(x, d, target_l0=5, device="cpu")
    assert np.abs(codes.l0 - 5).max() <= 1 and (codes.lam > 0).all()
    with pytest.raises(SolverError, match="not both"):
        decompose(x, d, lam=0.1, target_l0=5)


def test_dictionary_cache_is_keyed_by_vocabulary_and_encoder(tmp_path) -> None:
    first = tiny_dictionary(tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and "h60" in files[0].name and "tiny-test-encoder" in files[0].name
    # A cached dictionary is read back, not recomputed: poison the encoder and build again.
    class Broken(TinyTextEncoder):
        def embed_text(self, texts):
            raise AssertionError("cache not used")

    again = build_dictionary(Broken(), TinyVocabulary([f"concept {i}" for i in range(60)]), cache_dir=tmp_path)
    np.testing.assert_array_equal(again.atoms, first.atoms)
    np.testing.assert_allclose(np.linalg.norm(first.atoms, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(first.atoms.mean(0) @ first.atoms.mean(0), 0, atol=1e-2)
