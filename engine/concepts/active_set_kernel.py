"""Compiled per-row active-set solver for the non-negative lasso (CPU; numba).

Each row solves the QP  min ½wᵀGw − cᵀw,  w ≥ 0  with G = CCᵀ (the cached Gram matrix of the
dictionary) and c = Cz − μ, which is the halved lasso ½‖z − Cᵀw‖² + μ‖w‖₁ in Gram form.

Why a compiled per-row kernel rather than the batched torch path: a code at λ = 0.05 has ~100
concepts that are spread over the whole correlation ranking (support members rank up to
~1,900 of 2,000 in ⟨c_j, z⟩, because the non-negative lasso cancels near-synonyms), so the
batched method pads every row to the largest support in its batch and re-factors it for every
pivot of every row. Per row, the work is only what that row needs:

1. candidates A = the current support plus the largest KKT violators of the whole dictionary
   (a block that doubles every outer step);
2. on A, a few sweeps of coordinate descent (warm, cheap, O(|A|²) each) guess the support,
   then Lawson–Hanson steps with a Cholesky solve on the passive set make it exact: a
   negative weight steps back to the boundary (feasible, monotone), new concepts that come
   out negative are not added, and violators inside A are added until none is left;
3. one pass over the Gram rows of the support gives the exact gradient on the whole
   dictionary for the next KKT check. The row is done when no zero weight has gradient > tol.

Everything is float64; G is read in its upper triangle only through contiguous rows.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["solve_rows"]

_RIDGE = 1e-10  # keeps near-duplicate concepts factorable without moving the answer
_PIVOT_MIN = 1e-11  # below this a concept is linearly dependent on the passive set before it


@njit(cache=True, fastmath=True)
def _cholesky_solve(g: np.ndarray, passive: np.ndarray, p: int, rhs: np.ndarray, x: np.ndarray,
                    low: np.ndarray) -> int:
    """Solve g[P, P] x = rhs[P] for the first ``p`` indices P; -1, or the position that is dependent."""
    for i in range(p):
        pi = passive[i]
        for j in range(i + 1):
            s = g[pi, passive[j]]
            for k in range(j):
                s -= low[i, k] * low[j, k]
            if i == j:
                s += _RIDGE
                if s <= _PIVOT_MIN:
                    return i
                low[i, i] = np.sqrt(s)
            else:
                low[i, j] = s / low[j, j]
    for i in range(p):
        s = rhs[passive[i]]
        for k in range(i):
            s -= low[i, k] * x[k]
        x[i] = s / low[i, i]
    for i in range(p - 1, -1, -1):
        s = x[i]
        for k in range(i + 1, p):
            s -= low[k, i] * x[k]
        x[i] = s / low[i, i]
    return -1


@njit(cache=True, fastmath=True)
def _solve_candidates(g: np.ndarray, c: np.ndarray, w: np.ndarray, tol: float, sweeps: int,
                      max_steps: int) -> int:
    """Exact non-negative QP on a compact candidate set, warm from ``w`` (updated in place).

    Returns the number of Cholesky solves, negative if ``max_steps`` ran out.
    """
    m = c.shape[0]
    q = c.copy()  # q = c − g w, the negative gradient
    for a in range(m):
        if w[a] != 0.0:
            for b in range(m):
                q[b] -= g[a, b] * w[a]
    for _ in range(sweeps):  # coordinate descent: a cheap, good guess of the support
        for a in range(m):
            new = w[a] + q[a] / g[a, a]
            if new < 0.0:
                new = 0.0
            d = new - w[a]
            if d != 0.0:
                w[a] = new
                for b in range(m):
                    q[b] -= g[a, b] * d
    passive = w > 0.0
    fresh = np.zeros(m, np.bool_)  # added by the last violator step
    idx = np.empty(m, np.int64)
    x = np.empty(m)
    low = np.empty((m, m))
    solves = 0
    for step in range(max_steps):
        p = 0
        for a in range(m):
            if passive[a]:
                idx[p] = a
                p += 1
        if p > 0:
            solves += 1
            bad = _cholesky_solve(g, idx, p, c, x, low)
            if bad >= 0:  # dependent on the concepts before it: leave it out, KKT re-admits if needed
                passive[idx[bad]] = False
                w[idx[bad]] = 0.0
                continue
            n_neg = 0
            n_fresh = 0
            for i in range(p):
                if x[i] <= 0.0:
                    n_neg += 1
                    if w[idx[i]] <= 0.0:
                        n_fresh += 1
            if n_fresh > 0:  # concepts still at zero that come out negative are simply not added
                for i in range(p):
                    if x[i] <= 0.0 and w[idx[i]] <= 0.0:
                        passive[idx[i]] = False
                continue
            if n_neg > 0:  # step from w toward x as far as feasibility allows
                alpha = 1.0
                for i in range(p):
                    if x[i] <= 0.0:
                        wa = w[idx[i]]
                        r = wa / (wa - x[i])
                        if r < alpha:
                            alpha = r
                for i in range(p):
                    a = idx[i]
                    v = w[a] + alpha * (x[i] - w[a])
                    if v <= 1e-14 or (x[i] <= 0.0 and v <= 1e-12 * w[a]):
                        v = 0.0
                        passive[a] = False
                    w[a] = v
                continue
            for i in range(p):
                w[idx[i]] = x[i]
        for b in range(m):
            q[b] = c[b]
        for i in range(p):
            a = idx[i]
            for b in range(m):
                q[b] -= g[a, b] * w[a]
        best = -1
        best_q = tol
        for a in range(m):
            if not passive[a] and q[a] > best_q:
                best_q = q[a]
                best = a
        if best < 0:
            return solves
        kept = False
        for a in range(m):
            if fresh[a] and passive[a]:
                kept = True
        stalled = step > 0 and not kept and fresh.any()
        fresh[:] = False
        if stalled:  # the whole last block fell out: add the single largest violator (Lawson–Hanson)
            passive[best] = True
            fresh[best] = True
        else:
            for a in range(m):
                if not passive[a] and q[a] > tol:
                    passive[a] = True
                    fresh[a] = True
    return -solves


@njit(cache=True, fastmath=True)
def _solve_row(gram: np.ndarray, c: np.ndarray, tol: float, block: int, max_outer: int, sweeps: int,
               w: np.ndarray) -> int:
    """One row, w (k,) zero on entry; returns outer steps, −1 when ``max_outer`` ran out."""
    k = c.shape[0]
    q = c.copy()
    support = np.empty(k, np.int64)
    s = 0
    for outer in range(max_outer):
        n_viol = 0
        for j in range(k):
            if w[j] == 0.0 and q[j] > tol:
                n_viol += 1
        if n_viol == 0:
            return outer
        viol = np.empty(n_viol, np.int64)
        key = np.empty(n_viol)
        n_viol = 0
        for j in range(k):
            if w[j] == 0.0 and q[j] > tol:
                viol[n_viol] = j
                key[n_viol] = -q[j]
                n_viol += 1
        n_add = min(n_viol, block)
        order = np.argsort(key)[:n_add]
        m = s + n_add
        cand = np.empty(m, np.int64)
        cand[:s] = support[:s]
        for i in range(n_add):
            cand[s + i] = viol[order[i]]
        g = np.empty((m, m))
        cc = np.empty(m)
        ww = np.empty(m)
        for a in range(m):
            ia = cand[a]
            cc[a] = c[ia]
            ww[a] = w[ia]
            for b in range(m):
                g[a, b] = gram[ia, cand[b]]
        if _solve_candidates(g, cc, ww, tol, sweeps, 10 * m + 50) < 0:
            return -1
        s = 0
        for a in range(m):
            w[cand[a]] = ww[a]
            if ww[a] > 0.0:
                support[s] = cand[a]
                s += 1
        for j in range(k):
            q[j] = c[j]
        for i in range(s):  # exact gradient on the whole dictionary from the support's Gram rows
            a = support[i]
            wa = w[a]
            for j in range(k):
                q[j] -= wa * gram[a, j]
        block = min(2 * block, k)
    return -1


@njit(parallel=True, cache=True)
def solve_rows(gram: np.ndarray, c: np.ndarray, tol: float, block: int, max_outer: int, sweeps: int,
               w: np.ndarray) -> np.ndarray:
    """Solve every row of ``c`` (n, k) into ``w`` (n, k, zeros on entry); outer steps per row (−1: failed)."""
    n = c.shape[0]
    out = np.empty(n, np.int64)
    for r in prange(n):
        out[r] = _solve_row(gram, c[r], tol, block, max_outer, sweeps, w[r])
    return out
