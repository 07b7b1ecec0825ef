"""Compiled per-row active-set solver for the non-negative lasso (CPU; numba).

Each row solves the QP  min ½wᵀGw − cᵀw,  w ≥ 0  with G = CCᵀ (the cached Gram matrix of the
dictionary) and c = Cz − μ, which is the halved lasso ½‖z − Cᵀw‖² + μ‖w‖₁ in Gram form.

Why a compiled per-row kernel rather than the batched torch path: a code at λ = 0.05 has ~100
concepts that are spread over the whole correlation ranking (support members rank up to
~1,900 of 2,000 in ⟨c_j, z⟩, because the non-negative lasso cancels near-synonyms), so the
batched method pads every row to the largest support in its batch and re-factors it for every
pivot of every row. Per row, the work is only what that row needs:

1. candidates A = the current support plus the largest KKT violators of the whole dictionary
   (the first block ``block``, then 1.5 × the current support, so a block scales with
   what the row turns out to need rather than doubling blindly);
2. on A, sweeps of coordinate descent (warm, cheap, O(|A|²) each; stopped once the support
   has not changed for ``patience`` sweeps) guess the support, then Lawson–Hanson steps with
   a Cholesky solve on the passive set make it exact: a negative weight steps back to the
   boundary (feasible, monotone), new concepts that come out negative are not added, and
   violators inside A are added until none is left;
3. one pass over the Gram rows of the support gives the exact gradient on the whole
   dictionary for the next KKT check. The row is done when no zero weight has gradient > tol.

The Cholesky factor of the passive set is kept, not rebuilt: it is ordered by when concepts
entered, so an addition only appends rows (O(p²)), a removal is a rank-one update of the
trailing block (O(p²), Givens rotations), and the support's factor carries over to the next
outer step, whose candidates list the support first in the same order. Rebuilding it for
every pivot was 31 % of the time at λ = 0.05 (~9 factorisations of ~100 concepts a row).
The candidates' Gram block is carried the same way (only entries with a new concept are read
from the full Gram, one triangle): those reads land at random places of the matrix (16 MB in
float32) and were the largest single part of a row's time at λ = 0.05.

Everything is computed in float64; G is read through contiguous rows, in float32 or float64
(see solver._run_kernel: float32 first, float64 for any row that does not converge on it).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["solve_rows"]

_RIDGE = 1e-10  # keeps near-duplicate concepts factorable without moving the answer
_PIVOT_MIN = 1e-11  # below this a concept is linearly dependent on the passive set before it


@njit(cache=True, fastmath=True)
def _factor_from(g: np.ndarray, idx: np.ndarray, p: int, start: int, low: np.ndarray) -> int:
    """Extend the Cholesky factor of g[idx, idx] from its first ``start`` rows to ``p``.

    Returns -1, or the position of the first concept that is dependent on those before it
    (rows before it are then valid).
    """
    for i in range(start, p):
        pi = idx[i]
        for j in range(i + 1):
            s = g[pi, idx[j]]
            for t in range(j):
                s -= low[i, t] * low[j, t]
            if i == j:
                s += _RIDGE
                if s <= _PIVOT_MIN:
                    return i
                low[i, i] = np.sqrt(s)
            else:
                low[i, j] = s / low[j, j]
    return -1


@njit(cache=True, fastmath=True)
def _tri_solve(low: np.ndarray, idx: np.ndarray, p: int, rhs: np.ndarray, x: np.ndarray) -> None:
    """x[:p] = (L Lᵀ)⁻¹ rhs[idx[:p]] with L = low[:p, :p]."""
    for i in range(p):
        s = rhs[idx[i]]
        for t in range(i):
            s -= low[i, t] * x[t]
        x[i] = s / low[i, i]
    for i in range(p - 1, -1, -1):
        xi = x[i] / low[i, i]
        x[i] = xi
        for t in range(i):
            x[t] -= low[i, t] * xi


@njit(cache=True, fastmath=True)
def _chol_delete(low: np.ndarray, idx: np.ndarray, p: int, i: int) -> int:
    """Remove position ``i`` from idx[:p] and from its factor; returns p − 1.

    Without row and column i, the trailing block must factor L₂₂L₂₂ᵀ + vvᵀ (v = column i
    below the diagonal): a rank-one update by Givens rotations, O((p − i)²), instead of
    re-factoring from position i, O(p³ − i³).
    """
    for kk in range(i + 1, p):
        lkk = low[kk, kk]
        vk = low[kk, i]
        r = np.sqrt(lkk * lkk + vk * vk)
        cos = r / lkk
        sin = vk / lkk
        low[kk, kk] = r
        for j in range(kk + 1, p):  # column i is spent as the work vector v
            ljk = (low[j, kk] + sin * low[j, i]) / cos
            low[j, i] = cos * low[j, i] - sin * ljk
            low[j, kk] = ljk
    for r_ in range(i + 1, p):  # close the gap: rows up one, the columns after i left one
        for c_ in range(i):
            low[r_ - 1, c_] = low[r_, c_]
        for c_ in range(i + 1, r_ + 1):
            low[r_ - 1, c_ - 1] = low[r_, c_]
        idx[r_ - 1] = idx[r_]
    return p - 1


@njit(cache=True, fastmath=True)
def _drop_factored(low: np.ndarray, idx: np.ndarray, p: int, drop: np.ndarray) -> int:
    """Remove every flagged position of idx[:p] from the factor (highest first, so lower ones stay put)."""
    for i in range(p - 1, -1, -1):
        if drop[i]:
            p = _chol_delete(low, idx, p, i)
    return p


@njit(cache=True, fastmath=True)
def _solve_candidates(g: np.ndarray, c: np.ndarray, w: np.ndarray, tol: float, sweeps: int, patience: int,
                      max_steps: int, idx: np.ndarray, low: np.ndarray, n_valid: int) -> tuple[int, int]:
    """Exact non-negative QP on a compact candidate set, warm from ``w`` (updated in place).

    On entry idx[:n_valid] = 0..n_valid−1 (the previous support, listed first among the
    candidates) and low[:n_valid, :n_valid] is its factor. Returns (solves, p): idx[:p] is
    the passive set in factor order and low[:p, :p] its factor; solves < 0 if ``max_steps``
    ran out.
    """
    m = c.shape[0]
    q = c.copy()  # q = c − g w, the negative gradient
    for a in range(m):
        if w[a] != 0.0:
            for b in range(m):
                q[b] -= g[a, b] * w[a]
    calm = 0
    for _ in range(sweeps):  # coordinate descent: a cheap, good guess of the support
        flips = 0
        for a in range(m):
            new = w[a] + q[a] / g[a, a]
            if new < 0.0:
                new = 0.0
            d = new - w[a]
            if d != 0.0:
                if (w[a] == 0.0) != (new == 0.0):
                    flips += 1
                w[a] = new
                for b in range(m):
                    q[b] -= g[a, b] * d
        # Only the support matters to the exact steps that follow; once it has stopped moving,
        # more sweeps only polish weights that Cholesky will set exactly anyway.
        calm = calm + 1 if flips == 0 else 0
        if calm >= patience:
            break
    passive = w > 0.0
    fresh = np.zeros(m, np.bool_)  # added by the last violator step
    drop = np.zeros(m, np.bool_)
    x = np.empty(m)
    for i in range(n_valid):  # keep the carried factor for the old support that is still in
        drop[i] = not passive[idx[i]]
    p = _drop_factored(low, idx, n_valid, drop)
    valid = p  # rows of low that are a factor of g[idx[:valid], idx[:valid]]
    for a in range(n_valid, m):
        if passive[a]:
            idx[p] = a
            p += 1
    solves = 0
    for step in range(max_steps):
        if p > 0:
            solves += 1
            bad = _factor_from(g, idx, p, valid, low)
            if bad >= 0:  # dependent on the concepts before it: leave it out, KKT re-admits if needed
                passive[idx[bad]] = False
                w[idx[bad]] = 0.0
                for i in range(bad + 1, p):
                    idx[i - 1] = idx[i]
                p -= 1
                valid = bad
                continue
            valid = p
            _tri_solve(low, idx, p, c, x)
            n_neg = 0
            n_fresh = 0
            for i in range(p):
                if x[i] <= 0.0:
                    n_neg += 1
                    if w[idx[i]] <= 0.0:
                        n_fresh += 1
            if n_fresh > 0:  # concepts still at zero that come out negative are simply not added
                for i in range(p):
                    drop[i] = x[i] <= 0.0 and w[idx[i]] <= 0.0
                    if drop[i]:
                        passive[idx[i]] = False
                p = _drop_factored(low, idx, p, drop)
                valid = p
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
                    drop[i] = False
                    if v <= 1e-14 or (x[i] <= 0.0 and v <= 1e-12 * w[a]):
                        v = 0.0
                        passive[a] = False
                        drop[i] = True
                    w[a] = v
                p = _drop_factored(low, idx, p, drop)
                valid = p
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
            return solves, p
        kept = False
        for a in range(m):
            if fresh[a] and passive[a]:
                kept = True
        stalled = step > 0 and not kept and fresh.any()
        fresh[:] = False
        if stalled:  # the whole last block fell out: add the single largest violator (Lawson–Hanson)
            passive[best] = True
            fresh[best] = True
            idx[p] = best
            p += 1
        else:  # new concepts go to the end of the factor order, so the factor only grows
            for a in range(m):
                if not passive[a] and q[a] > tol:
                    passive[a] = True
                    fresh[a] = True
                    idx[p] = a
                    p += 1
    return -solves, p


@njit(cache=True, fastmath=True)
def _solve_row(gram: np.ndarray, c: np.ndarray, tol: float, block: int, max_outer: int, sweeps: int,
               patience: int, w: np.ndarray) -> int:
    """One row, w (k,) zero on entry; returns outer steps, −1 when ``max_outer`` ran out."""
    k = c.shape[0]
    q = c.copy()
    first_block = block
    support = np.empty(k, np.int64)  # in factor order
    viol = np.empty(k, np.int64)
    key = np.empty(k)
    s = 0
    cap = 0
    gbuf_a = np.empty(0)
    gbuf_b = np.empty(0)
    lbuf_a = np.empty(0)
    lbuf_b = np.empty(0)
    low_prev = np.empty((1, 1))
    g_prev = np.empty((1, 1))
    idx_prev = np.empty(1, np.int64)
    for outer in range(max_outer):
        # branch-free compaction: ~40 % of the concepts violate at first, in no pattern a branch predicts
        n_viol = 0
        for j in range(k):
            viol[n_viol] = j
            key[n_viol] = -q[j]
            n_viol += (w[j] == 0.0) & (q[j] > tol)
        if n_viol == 0:
            return outer
        n_add = min(n_viol, block)
        m = s + n_add
        cand = np.empty(m, np.int64)
        cand[:s] = support[:s]
        if n_add == n_viol:
            cand[s:] = viol[:n_viol]
        else:  # the n_add largest: a partition, not a full sort
            kth = np.partition(key[:n_viol], n_add - 1)[n_add - 1]
            t = s
            for i in range(n_viol):
                if key[i] < kth:
                    cand[t] = viol[i]
                    t += 1
            for i in range(n_viol):
                if t < m and key[i] == kth:
                    cand[t] = viol[i]
                    t += 1
        if m * m > cap:  # workspaces grow geometrically instead of being allocated every step
            cap = min(max(2 * m * m, 4096), k * k)  # m ≤ k (candidates are distinct concepts), so cap ≥ m²
            gbuf_a = np.empty(cap)
            gbuf_b = np.empty(cap)
            lbuf_a = np.empty(cap)
            lbuf_b = np.empty(cap)
        g = gbuf_a[:m * m].reshape((m, m))  # the _b buffers may hold g_prev and low_prev
        low = lbuf_a[:m * m].reshape((m, m))
        cc = np.empty(m)
        ww = np.empty(m)
        for a in range(s):  # the support's block is known from the last step
            pa = idx_prev[a]
            for b in range(a + 1):
                g[a, b] = g_prev[pa, idx_prev[b]]
        for a in range(m):
            ia = cand[a]
            cc[a] = c[ia]
            ww[a] = w[ia]
        # The rest from the Gram (random reads), lower triangle, then mirrored. Support × new comes
        # from the support's rows, which the gradient pass has just streamed into L2 (3–13 % a row
        # faster than reading those entries from the new concepts' rows); new × new from theirs.
        for b in range(s):
            row = gram[cand[b]]
            for a in range(s, m):
                g[a, b] = row[cand[a]]
        for a in range(s, m):
            row = gram[cand[a]]
            for b in range(s, a + 1):
                g[a, b] = row[cand[b]]
        for a in range(m):
            for b in range(a + 1, m):
                g[a, b] = g[b, a]
        for i in range(s):  # the support's factor, carried over (its concepts lead the candidates)
            for j in range(i + 1):
                low[i, j] = low_prev[i, j]
        idx = np.arange(m)
        solves, p = _solve_candidates(g, cc, ww, tol, sweeps, patience, 10 * m + 50, idx, low, s)
        if solves < 0:
            return -1
        for a in range(m):
            w[cand[a]] = ww[a]
        for i in range(p):
            support[i] = cand[idx[i]]
        s = p
        low_prev = low
        g_prev = g
        idx_prev = idx
        gbuf_a, gbuf_b = gbuf_b, gbuf_a
        lbuf_a, lbuf_b = lbuf_b, lbuf_a
        for j in range(k):
            q[j] = c[j]
        # Exact gradient on the whole dictionary from the support's Gram rows, four rows a pass
        # so q is read and written a quarter as often.
        i = 0
        while i + 4 <= s:
            a0, a1, a2, a3 = support[i], support[i + 1], support[i + 2], support[i + 3]
            w0, w1, w2, w3 = w[a0], w[a1], w[a2], w[a3]
            g0, g1, g2, g3 = gram[a0], gram[a1], gram[a2], gram[a3]
            for j in range(k):
                q[j] -= w0 * g0[j] + w1 * g1[j] + w2 * g2[j] + w3 * g3[j]
            i += 4
        while i < s:
            a = support[i]
            wa = w[a]
            for j in range(k):
                q[j] -= wa * gram[a, j]
            i += 1
        # The next block scales with the support found so far: doubling (the earlier rule) reached
        # candidate sets of ~175 at λ = 0.05 of which ~40 % stayed, and the Gram block and the
        # sweeps cost O(m²); 1.5 × s takes one more outer step and was 4–21 % faster a row.
        block = min(max(first_block, s + s // 2), k)
    return -1


@njit(parallel=True, cache=True)
def solve_rows(gram: np.ndarray, corr: np.ndarray, mu: np.ndarray, tol: float, block: int, max_outer: int,
               sweeps: int, patience: int, out: np.ndarray) -> np.ndarray:
    """Solve every row of the correlations ``corr`` (n, k; float32 from the GEMM) with penalties
    ``mu`` (n,) into ``out`` (n, k; float32, zeros on entry); outer steps per row (−1: failed).

    Each row is widened to float64 and solved in a row-local buffer: no (n, k) float64 arrays are
    built, converted or copied around the kernel (that was a third of the time at d = 1024).
    """
    n, k = corr.shape
    steps = np.empty(n, np.int64)
    for r in prange(n):
        c = np.empty(k)
        for j in range(k):
            c[j] = np.float64(corr[r, j]) - mu[r]
        w = np.zeros(k)
        steps[r] = _solve_row(gram, c, tol, block, max_outer, sweeps, patience, w)
        for j in range(k):
            if w[j] != 0.0:
                out[r, j] = w[j]
    return steps
