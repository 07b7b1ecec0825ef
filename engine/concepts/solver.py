"""Batched non-negative lasso over a concept dictionary (pure maths, no I/O).

Problem, per row z of Z (SpLiCE's scale, so λ values from the paper carry over):

    min_w  ‖z − Cᵀw‖² + λ‖w‖₁   subject to  w ≥ 0

with C the (k, d) dictionary, one concept per row. Halved, this is ½‖z − Cᵀw‖² + μ‖w‖₁ with
μ = λ/2, the form used below. sklearn's ``Lasso(alpha, positive=True, fit_intercept=False)``
minimises (1/2d)‖z − Xw‖² + alpha‖w‖₁, so it solves the same problem with alpha = λ/(2d)
(SpLiCE, splice/model.py: ``l1_penalty / (2 * image_mean.shape[0])``; its ADMM builds
Q = 2CCᵀ + ρI, i.e. the un-halved square).

Fast path on CPU (:func:`solve_active_set`, the default): a compiled per-row active-set
kernel (``active_set_kernel``, numba) that pays only for the support each row needs; see that
module for the method. One GEMM computes the correlations of the whole batch first.

Batched path (``method="torch"``, the default on CUDA): touch the dictionary rarely. One GEMM gives the
correlations b = Cz; each row keeps a candidate set of M concepts (its current support plus
the highest gradients); on the candidates the problem is a small non-negative QP over the
cached Gram matrix G = CCᵀ, solved exactly by block Lawson–Hanson steps, all rows in one
batched Cholesky per step; one more GEMM checks the KKT conditions on the whole dictionary,
and rows with violators get more candidates.

Reference path (:func:`solve_admm`): plain batched ADMM with one cached Cholesky factor of
(G + ρI), as SpLiCE does, on every concept at every iteration.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import SolverError

__all__ = [
    "PreparedDictionary",
    "SolverError",
    "SolveStats",
    "objective",
    "penalty",
    "prepare",
    "sklearn_alpha",
    "solve_active_set",
    "solve_admm",
]


def penalty(lam: float | torch.Tensor) -> float | torch.Tensor:
    """μ of the halved objective ½‖z − Cᵀw‖² + μ‖w‖₁ for a λ on SpLiCE's scale: μ = λ/2."""
    return lam / 2


def sklearn_alpha(lam: float, dim: int) -> float:
    """sklearn ``Lasso`` alpha that solves the same problem as λ on SpLiCE's scale: λ/(2d)."""
    return lam / (2 * dim)


@dataclass(frozen=True)
class PreparedDictionary:
    """A dictionary with its Gram matrix, on one device, ready for many solves.

    ``atoms`` is (k, d) in the compute dtype (float32); ``gram`` is (k, k) in float64 because
    the torch path's small pivoting systems are ill-conditioned when concepts are near-synonyms.
    ``kernel_gram`` (CPU only) is the same Gram rounded to float32 for the compiled kernel, which
    computes in float64 but reads the matrix at random: 16 MB stays in a 32 MB L3 where 32 MB
    did not (8–17 % a row), and its inputs, the correlations, are float32 anyway.
    """

    atoms: torch.Tensor
    gram: torch.Tensor
    kernel_gram: torch.Tensor | None = None

    @property
    def n_atoms(self) -> int:
        return int(self.atoms.shape[0])

    @property
    def dim(self) -> int:
        return int(self.atoms.shape[1])

    @property
    def device(self) -> torch.device:
        return self.atoms.device


def prepare(atoms: torch.Tensor, device: str | torch.device | None = None) -> PreparedDictionary:
    """Move a (k, d) dictionary to ``device`` and compute its Gram matrix once."""
    if atoms.ndim != 2 or atoms.shape[0] == 0:
        raise SolverError(f"dictionary must be a non-empty (concepts, dim) matrix, got shape {tuple(atoms.shape)}")
    if not torch.isfinite(atoms).all():
        raise SolverError("dictionary contains NaN or Inf: rebuild it from the vocabulary")
    a = atoms.to(device=device or atoms.device, dtype=torch.float32).contiguous()
    a64 = a.double()
    gram = (a64 @ a64.T).contiguous()
    return PreparedDictionary(atoms=a, gram=gram, kernel_gram=gram.float() if a.device.type == "cpu" else None)


@dataclass
class SolveStats:
    """What a solve cost: outer (pivot) steps, the final worst KKT violation (torch path, in gradient
    units), ADMM iterations, and kernel rows solved again on the float64 Gram."""

    pivot_steps: int = 0
    max_violation: float = 0.0
    iterations: int = 0  # ADMM only
    float64_rows: int = 0  # kernel rows that stalled on the float32 Gram and were solved on the float64 one


def objective(atoms: torch.Tensor, z: torch.Tensor, w: torch.Tensor, lam: float | torch.Tensor) -> torch.Tensor:
    """Per-row objective ‖z − Cᵀw‖² + λ‖w‖₁ (SpLiCE scale), in float64: (n,)."""
    a = atoms.double()
    r = z.double() - w.double() @ a
    lam_t = torch.as_tensor(lam, dtype=torch.float64, device=z.device)
    return (r * r).sum(1) + lam_t * w.double().abs().sum(1)


def _lam_rows(lam: float | torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
    lam_t = torch.as_tensor(lam, dtype=torch.float64, device=device).reshape(-1)
    if lam_t.numel() == 1:
        lam_t = lam_t.expand(n)
    if lam_t.numel() != n:
        raise SolverError(f"lam must be a scalar or one value per row ({n}), got {lam_t.numel()} values")
    if not torch.isfinite(lam_t).all() or (lam_t <= 0).any():
        raise SolverError("lam must be finite and > 0 (the paper uses 0.05 to 0.25)")
    return lam_t


def _check_rows(prep: PreparedDictionary, z: torch.Tensor) -> torch.Tensor:
    if z.ndim != 2 or z.shape[1] != prep.dim:
        raise SolverError(f"embeddings must be (n, {prep.dim}), got shape {tuple(z.shape)}")
    if not torch.isfinite(z).all():
        raise SolverError("embeddings contain NaN or Inf")
    return z.to(device=prep.device, dtype=torch.float32)


def _passive_solve(prep: PreparedDictionary, corr: torch.Tensor, mu: torch.Tensor,
                   passive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solve G_FF x_F = b_F − μ for each row's passive set F ((B, k) bool).

    Systems are compacted to P = the largest |F| in the batch (padding gets identity rows),
    so the Cholesky costs P³/3 per row however large the dictionary is.

    Returns:
        order (B, P) concept indices, x (B, P) float64 values (0 on padding), valid (B, P) bool.
    """
    dev = passive.device
    count = passive.sum(1)
    p = max(1, int(count.max()))
    order = torch.argsort((~passive).to(torch.int8), dim=1, stable=True)[:, :p]  # passive indices first
    valid = torch.arange(p, device=dev).unsqueeze(0) < count.unsqueeze(1)
    k = prep.n_atoms
    # (B, P, P) sub-matrices of the cached Gram, by flat index (much faster than 2-D fancy indexing).
    g = prep.gram.view(-1)[(order.unsqueeze(2) * k + order.unsqueeze(1)).view(-1)].view(order.shape[0], p, p)
    vv = valid.unsqueeze(2) & valid.unsqueeze(1)
    eye = torch.eye(p, dtype=g.dtype, device=dev)
    # A tiny ridge keeps Cholesky defined for near-duplicate concepts without moving the answer.
    a = g.masked_fill(~vv, 0.0) + eye * (~valid).unsqueeze(1) + 1e-10 * eye
    rhs = (corr.gather(1, order) - mu.unsqueeze(1)).masked_fill(~valid, 0.0).unsqueeze(2)
    chol, info = torch.linalg.cholesky_ex(a)
    if bool((info != 0).any()):
        # Rank-deficient passive set (more atoms than dimensions, or exact duplicates).
        bad = info != 0
        chol[bad] = torch.linalg.cholesky(a[bad] + 1e-6 * eye)
    x = torch.cholesky_solve(rhs, chol).squeeze(2).masked_fill(~valid, 0.0)
    return order, x, valid


def solve_active_set(prep: PreparedDictionary, z: torch.Tensor, lam: float | torch.Tensor, *,
                     tol: float = 1e-6, batch_size: int = 256, max_steps: int = 1000,
                     stats: SolveStats | None = None, method: str = "auto") -> torch.Tensor:
    """Exact solve of min ‖z − Cᵀw‖² + λ‖w‖₁, w ≥ 0 for every row of ``z``.

    ``method``: "kernel" (compiled per-row active set, CPU), "torch" (batched, any device) or
    "auto" (kernel on CPU, torch elsewhere). Both are exact to ``tol`` and give the same codes.

    The torch path is a block Lawson–Hanson active-set method on the QP ½wᵀGw − (b − μ)ᵀw, w ≥ 0:
    each outer step computes the gradient on the whole dictionary with one GEMM through the
    residual and moves the largest KKT violators (up to a per-row block, which doubles while
    additions stick and halves when they do not) into the support; the inner loop solves
    G_FF w_F = b_F − μ by a compact Cholesky and steps back to the boundary, dropping concepts
    whose weight would go negative. Weights stay feasible and the objective never increases,
    which keeps the method safe on the rank-deficient Gram of 2,000 concepts in 512 dimensions.

    Args:
        prep: dictionary from :func:`prepare`.
        z: (n, d) centred, normalised embeddings.
        lam: λ on SpLiCE's scale, a scalar or one per row.
        tol: KKT tolerance on the gradient of the halved objective: at the returned w every
            concept with weight 0 has ⟨c_j, z − Cᵀw⟩ − λ/2 ≤ tol, every other has it ≈ 0.
        batch_size: rows solved together (bounds memory: batch · k floats, batch · |F|² doubles).
    Returns:
        (n, k) float32 weights, dense (the caller sparsifies).
    """
    z = _check_rows(prep, z)
    n, k = z.shape[0], prep.n_atoms
    lam_all = _lam_rows(lam, n, prep.device)
    stats = stats if stats is not None else SolveStats()
    if method not in ("auto", "kernel", "torch"):
        raise SolverError(f"method must be auto, kernel or torch, got {method!r}")
    if method == "kernel" and prep.device.type != "cpu":
        raise SolverError("the compiled kernel runs on CPU; use method='torch' on CUDA")
    if method == "kernel" or (method == "auto" and prep.device.type == "cpu"):
        return _solve_kernel(prep, z, lam_all / 2, tol, max_steps, stats)
    out = torch.zeros((n, k), dtype=torch.float32, device=prep.device)
    for start in range(0, n, batch_size):
        sl = slice(start, min(n, start + batch_size))
        out[sl] = _solve_chunk(prep, z[sl], lam_all[sl] / 2, tol, max_steps, stats)
    return out


_KERNEL_CHUNK = 1024  # rows per kernel call: bounds the float32 correlations to 1024 · k floats per call
_KERNEL_BLOCK = 32  # first candidate block per row (then 1.5 × the support; 32 beat 64 and 128, 2026-12-06)
_KERNEL_SWEEPS = 40  # at most this many coordinate-descent sweeps before the exact steps
_KERNEL_PATIENCE = 3  # ... stopped once the support has not changed for this many sweeps


def _solve_kernel(prep: PreparedDictionary, z: torch.Tensor, mu: torch.Tensor, tol: float, max_steps: int,
                  stats: SolveStats) -> torch.Tensor:
    import numba

    # Same thread budget as torch, so `torch.set_num_threads(1)` means one core here too.
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        return _run_kernel(prep, z, mu, tol, max_steps, stats)
    finally:
        # numba's OpenMP layer starts its pool with omp_set_num_threads(all cores), which is the
        # same libgomp setting torch reads: without this, one solve turns a 1-thread torch into 2.
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _run_kernel(prep: PreparedDictionary, z: torch.Tensor, mu: torch.Tensor, tol: float, max_steps: int,
                stats: SolveStats) -> torch.Tensor:
    from .active_set_kernel import solve_rows

    n, k = z.shape[0], prep.n_atoms
    out = torch.zeros((n, k), dtype=torch.float32)
    for start in range(0, n, _KERNEL_CHUNK):
        sl = slice(start, min(n, start + _KERNEL_CHUNK))
        corr = (z[sl] @ prep.atoms.T).numpy()  # float32; the kernel widens it row by row
        mu_rows = mu[sl].double().numpy()
        block = out[sl].numpy()
        # float32 Gram first (kernel_gram is set for every CPU dictionary; solve_active_set keeps
        # CUDA away). It converges on real dictionaries; on a degenerate one (more concepts than
        # dimensions, exactly dependent subsets) rounding noise of ~1e-7 can stand in for a zero
        # pivot and stall a row, which is then solved again, from zero, on the float64 Gram.
        steps = solve_rows(prep.kernel_gram.numpy(), corr, mu_rows, tol, _KERNEL_BLOCK, max_steps, _KERNEL_SWEEPS,
                           _KERNEL_PATIENCE, block)
        stalled = np.flatnonzero(steps < 0)
        if len(stalled):
            again = np.zeros((len(stalled), k), np.float32)
            steps[stalled] = solve_rows(prep.gram.numpy(), np.ascontiguousarray(corr[stalled]), mu_rows[stalled], tol,
                                        _KERNEL_BLOCK, max_steps, _KERNEL_SWEEPS, _KERNEL_PATIENCE, again)
            block[stalled] = again
            stats.float64_rows += len(stalled)
        failed = int((steps < 0).sum())
        if failed:
            raise SolverError(f"active-set kernel did not converge in {max_steps} outer steps for {failed} rows; "
                              f"raise max_steps or tol")
        stats.pivot_steps += int(steps.sum())
    return out


def _solve_chunk(prep: PreparedDictionary, z: torch.Tensor, mu: torch.Tensor, tol: float, max_steps: int,
                 stats: SolveStats) -> torch.Tensor:
    n, k = z.shape[0], prep.n_atoms
    dev = prep.device
    mu32 = mu.float().unsqueeze(1)
    corr = (z @ prep.atoms.T).double()  # b = Cz, reused by every small solve
    w = torch.zeros((n, k), dtype=torch.float64, device=dev)
    passive = torch.zeros((n, k), dtype=torch.bool, device=dev)
    block = torch.full((n,), 16, dtype=torch.long, device=dev)
    grad = corr.float() - mu32  # −∇ of the halved objective at w = 0
    todo = torch.arange(n, device=dev)
    steps = 0
    while steps < max_steps:
        # Outer step: KKT check on the whole dictionary, add the largest violators.
        g_off = grad.masked_fill(passive[todo], -float("inf"))
        viol = g_off > tol
        stats.max_violation = max(stats.max_violation, float(g_off.max().clamp_min(0)))
        keep = viol.any(1)
        todo, g_off, viol = todo[keep], g_off[keep], viol[keep]
        if not todo.numel():
            break
        steps += 1
        blk = block[todo]
        kk = int(min(k, int(blk.max())))
        top = g_off.topk(kk, dim=1)
        pick = (top.values > tol) & (torch.arange(kk, device=dev).unsqueeze(0) < blk.unsqueeze(1))
        added = torch.zeros_like(viol).scatter_(1, top.indices, pick)
        f = passive[todo] | added
        wr = w[todo]
        cr, mr = corr[todo], mu[todo]
        # Inner loop: solve on F, step back to stay feasible, drop zeros; only rows that need it.
        inner = torch.arange(todo.numel(), device=dev)
        while inner.numel():
            order, xp, valid = _passive_solve(prep, cr[inner], mr[inner], f[inner])
            x = torch.zeros((inner.numel(), k), dtype=torch.float64, device=dev).scatter_(1, order, xp)
            fi, wi = f[inner], wr[inner]
            neg = fi & (x <= 0)
            ok = ~neg.any(1)
            wr[inner[ok]] = x[ok]
            if bool(ok.all()):
                break
            bad = inner[~ok]
            x, fi, wi, neg = x[~ok], fi[~ok], wi[~ok], neg[~ok]
            # Concepts still at zero that come out negative are simply not added (no step needed);
            # stepping back on them would give α = 0 and throw away the good additions too.
            fresh = neg & (wi <= 0)
            has_fresh = fresh.any(1)
            if bool(has_fresh.any()):
                f[bad[has_fresh]] = fi[has_fresh] & ~fresh[has_fresh]
                x, fi, wi, neg = x[~has_fresh], fi[~has_fresh], wi[~has_fresh], neg[~has_fresh]
                stepped = bad[~has_fresh]
                inner = bad[has_fresh]
            else:
                stepped, inner = bad, bad[:0]
            if not stepped.numel():
                continue
            # Largest step α ∈ [0, 1) from w toward x that keeps every weight ≥ 0.
            ratio = (wi / (wi - x).clamp_min(1e-300)).masked_fill(~neg, float("inf"))
            alpha = ratio.min(1, keepdim=True).values.clamp(0, 1)
            wn = wi + alpha * (x - wi)
            wn = wn.masked_fill(~fi, 0.0)
            fn = fi & (wn > 1e-12 * wn.abs().amax(1, keepdim=True).clamp_min(1e-30))
            wr[stepped] = wn.masked_fill(~fn, 0.0)
            f[stepped] = fn
            inner = torch.cat([inner, stepped])
        stuck = ~((wr > 0) & added).any(1)  # none of the additions survived: add fewer next time
        block[todo] = torch.where(stuck, (blk // 2).clamp_min(1), (blk * 2).clamp_max(k))
        passive[todo] = f & (wr > 0)
        w[todo] = wr.masked_fill(~passive[todo], 0.0)
        grad = (z[todo] - w[todo].float() @ prep.atoms) @ prep.atoms.T - mu32[todo]
    stats.pivot_steps += steps
    if todo.numel() and steps >= max_steps:
        raise SolverError(f"active-set solver did not converge in {max_steps} steps for {todo.numel()} rows; "
                          f"raise max_steps or tol")
    return w.float()


def solve_admm(prep: PreparedDictionary, z: torch.Tensor, lam: float | torch.Tensor, *, rho: float = 1.0,
               tol: float = 1e-6, max_iter: int = 5000, stop_objective: torch.Tensor | None = None,
               rtol: float = 1e-4, stats: SolveStats | None = None) -> torch.Tensor:
    """Plain batched ADMM (reference): x-update with one cached Cholesky factor of 2G + ρI.

    Splitting x = w on the un-halved objective ‖z − Cᵀx‖² + λ‖w‖₁ + ι(w ≥ 0); stops when the
    primal and dual residuals of every row are below ``tol``, or (benchmarks) when every row's
    objective is within ``rtol`` of ``stop_objective``. Touches all k concepts per step.
    """
    z = _check_rows(prep, z)
    n, k = z.shape[0], prep.n_atoms
    lam_all = _lam_rows(lam, n, prep.device).float().unsqueeze(1)
    stats = stats if stats is not None else SolveStats()
    g = prep.gram.float()
    chol = torch.linalg.cholesky(2 * g + rho * torch.eye(k, device=prep.device))
    cb2 = 2 * (z @ prep.atoms.T)  # (n, k)
    w = torch.zeros((n, k), device=prep.device)
    u = torch.zeros_like(w)
    it = 0
    for it in range(1, max_iter + 1):
        x = torch.cholesky_solve((cb2 + rho * (w - u)).T, chol).T
        w_old = w
        w = (x + u - lam_all / rho).clamp_min(0)
        u = u + x - w
        if it % 10 == 0:
            if stop_objective is not None:
                gap = objective(prep.atoms, z, w, lam_all.squeeze(1).double()) / stop_objective - 1
                if float(gap.max()) <= rtol:
                    break
                continue
            prim = (x - w).norm(dim=1).max()
            dual = (rho * (w - w_old)).norm(dim=1).max()
            if prim < tol and dual < tol:
                break
    stats.iterations += it
    return w
