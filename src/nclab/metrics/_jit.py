r"""Compiled kernels of the dense engine (:mod:`nclab.metrics._dense`), with numba.

The dense engine's class-pair statistics work on C x C matrices (C <= 128): as NumPy calls they
were ~80 calls on arrays of ~100 entries, i.e. call overhead, ~0.3 ms a tracked epoch. Here they are
one compiled pass. Same definitions and conventions as the NumPy code they replace (see
:func:`class_pairs`); ``error_model="numpy"`` gives IEEE results (0/0 = NaN, x/0 = inf) instead of
exceptions, because undefined metrics are NaN. Compiled on first use and cached on disk (numba's
``cache=True``: next to this file, or in the user's cache directory when that is not writable).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["class_pairs", "PAIR_STATS"]

#: Columns of :func:`class_pairs`' first result.
PAIR_STATS = (
    "cdnv", "nc2_equinorm", "nc2_equiangular", "nc2_etf", "nc2_of", "gnc2_dist_var", "gnc2_log_var",
    "cosine_intra_min", "cosine_intra_mean", "cosine_inter_max",
    "nc2_equinorm_w", "nc2_equiangular_w", "nc2_etf_w", "nc3_etf", "nc2_of_w", "nc3_duality", "unc3_var",
)

_JIT = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_JIT)
def _gram(A, B):
    """A B^T for (C, d) matrices."""
    C, d = A.shape
    G = np.empty((C, B.shape[0]))
    for a in range(C):
        for b in range(B.shape[0]):
            s = 0.0
            for k in range(d):
                s += A[a, k] * B[b, k]
            G[a, b] = s
    return G


@njit(**_JIT)
def _frame_distance(G, orthogonal):
    """|| G/||G||_F - T ||_F with T the simplex-ETF Gram (I - 11^T/C)/sqrt(C-1), or I/sqrt(C) for the
    orthogonal frame; NaN for G = 0."""
    C = G.shape[0]
    fro = 0.0
    for a in range(C):
        for b in range(C):
            fro += G[a, b] * G[a, b]
    fro = math.sqrt(fro)
    if orthogonal:
        t_diag, t_off = 1.0 / math.sqrt(C), 0.0
    else:
        t_diag, t_off = (1.0 - 1.0 / C) / math.sqrt(C - 1), (0.0 - 1.0 / C) / math.sqrt(C - 1)
    s = 0.0
    for a in range(C):
        for b in range(C):
            v = G[a, b] / fro - (t_diag if a == b else t_off)
            s += v * v
    return math.sqrt(s)


@njit(**_JIT)
def _mean_var(x, ddof):
    """Mean and two-pass variance of a 1-D array."""
    n = x.shape[0]
    m = 0.0
    for i in range(n):
        m += x[i]
    m /= n
    v = 0.0
    for i in range(n):
        v += (x[i] - m) * (x[i] - m)
    return m, v / (n - ddof)


@njit(**_JIT)
def _row_norms(G):
    C = G.shape[0]
    sq, norms, inv = np.empty(C), np.empty(C), np.empty(C)
    for c in range(C):
        sq[c] = G[c, c]
        norms[c] = math.sqrt(max(sq[c], 0.0))
        inv[c] = 1.0 / norms[c] if norms[c] > 0 else 1.0  # a zero row has cosine 0 with every row
    return sq, norms, inv


@njit(**_JIT)
def _cosines(G, inv):
    """Off-diagonal cosines G[a, b] / (|a| |b|), ordered pairs, row-major."""
    C = G.shape[0]
    out = np.empty(C * (C - 1))
    i = 0
    for a in range(C):
        for b in range(C):
            if a != b:
                out[i] = G[a, b] * inv[a] * inv[b]
                i += 1
    return out


@njit(**_JIT)
def _equiangular(cos, C):
    s = 0.0
    for i in range(cos.shape[0]):
        s += abs(cos[i] + 1.0 / (C - 1))
    return s / cos.shape[0]


@njit(**_JIT)
def _equinorm(norms):
    m, v = _mean_var(norms, 0)
    return math.sqrt(v) / m


@njit(**_JIT)
def class_pairs(M, U, Sb, W, has_w, var, p):
    """Every class-pair statistic of each set, from its centred means M, uncentred means U and mean
    unit vectors Sb (all (sets, C, d), float64), the classifier W (C, d; ignored unless ``has_w``)
    and the per-class variances ``var`` (sets, C); ``p`` is the CDNV exponent.

    Returns ``vals`` (sets, 17) in the order of :data:`PAIR_STATS` (the last seven NaN without W),
    ``flags`` (sets, 2): [all centred means are 0, some centred mean is 0], and ``tr`` (sets,): the
    trace of M M^T. Pair statistics run over the ordered off-diagonal pairs, each unordered pair
    twice, which leaves means, population variances and maxima unchanged. With all centred means 0
    the equiangularity and the two GNC2 variances are NaN (the caller warns)."""
    ns, C, d = M.shape
    P = C * (C - 1)
    vals = np.full((ns, len(PAIR_STATS)), np.nan)
    flags = np.zeros((ns, 2), dtype=np.bool_)
    tr = np.empty(ns)
    if has_w:
        GW = _gram(W, W)
        sqw, normw, invw = _row_norms(GW)
        wfro = 0.0
        for c in range(C):
            wfro += sqw[c]
        wfro = math.sqrt(wfro)
        eqn_w, eq_w = _equinorm(normw), _equiangular(_cosines(GW, invw), C)
        etf_w, of_w = _frame_distance(GW, False), _frame_distance(GW, True)
    gd, lg = np.empty(P), np.empty(P)
    for s in range(ns):
        Ms = M[s]
        G0 = _gram(Ms, Ms)
        n2, norms, inv = _row_norms(G0)
        G2 = _gram(Sb[s], Sb[s])
        tr[s] = 0.0
        for c in range(C):
            tr[s] += n2[c]
        # CDNV: (var_a + var_b) / ||mu_a - mu_b||^(2p), mean over pairs, halved
        cd = 0.0
        inter = -np.inf
        for a in range(C):
            for b in range(C):
                if a != b:
                    dist2 = max(n2[a] + n2[b] - 2.0 * G0[a, b], 0.0)
                    cd += (var[s, a] + var[s, b]) / (dist2 if p == 1.0 else dist2**p)
                    v = G2[a, b]
                    if v > inter or v != v:
                        inter = v
        cos = _cosines(G0, inv)
        for i in range(P):
            gd[i] = math.sqrt(max(2.0 - 2.0 * cos[i], 0.0))  # ||m_a/|m_a| - m_b/|m_b|||
            lg[i] = math.log(gd[i])
        intra_min, intra_sum = np.inf, 0.0
        for c in range(C):
            v = G2[c, c]
            intra_sum += v
            if v < intra_min or v != v:
                intra_min = v
        vals[s, 0] = 0.5 * cd / P
        vals[s, 1] = _equinorm(norms)
        vals[s, 2] = _equiangular(cos, C)
        vals[s, 3] = _frame_distance(G0, False)
        vals[s, 4] = _frame_distance(_gram(U[s], U[s]), True)
        vals[s, 5] = _mean_var(gd, 0)[1]
        vals[s, 6] = _mean_var(lg, 0)[1]
        vals[s, 7], vals[s, 8], vals[s, 9] = intra_min, intra_sum / C, inter
        if has_w:
            G4 = _gram(W, Ms)
            dual, fm = 0.0, math.sqrt(tr[s])
            wm = np.empty(C)
            for c in range(C):
                wm[c] = G4[c, c]  # <w_c, m_c>
                for k in range(d):
                    v = W[c, k] / wfro - Ms[c, k] / fm
                    dual += v * v
            vals[s, 10], vals[s, 11], vals[s, 12] = eqn_w, eq_w, etf_w
            vals[s, 13], vals[s, 14] = _frame_distance(G4, False), of_w
            vals[s, 15], vals[s, 16] = dual, _mean_var(wm, 1)[1]
        all_zero, some_zero = True, False
        for c in range(C):
            all_zero = all_zero and n2[c] == 0.0
            some_zero = some_zero or norms[c] == 0.0
        flags[s, 0], flags[s, 1] = all_zero, some_zero
        if all_zero:
            vals[s, 2] = vals[s, 5] = vals[s, 6] = np.nan
    return vals, flags, tr


@njit(**_JIT)
def sorted_moments(H, order, starts, counts, X, R):
    """Rows of H (N, d) in the order ``order`` (sorted by (set, class): class g is the run
    ``starts[g]:starts[g] + counts[g]``) into X (N, d) float64, the rows centred on their class
    mean into R, and per class g: the mean, the mean of the unit rows (a zero row contributes 0),
    the sum of squared deviations, and whether its sums are finite (they are not exactly when a
    feature of the class is NaN/inf, or when the sum overflows)."""
    N, d = H.shape
    K = starts.shape[0]
    mean, unit_mean = np.zeros((K, d)), np.zeros((K, d))
    sq_dev = np.zeros(K)
    finite = np.ones(K, dtype=np.bool_)
    for g in range(K):
        a, e = starts[g], starts[g] + counts[g]
        for j in range(a, e):
            i = order[j]
            s = 0.0
            for k in range(d):
                v = np.float64(H[i, k])
                X[j, k] = v
                mean[g, k] += v
                s += v * v
            nrm = math.sqrt(s)
            inv = 1.0 / nrm if nrm > 0 else 1.0
            for k in range(d):
                unit_mean[g, k] += X[j, k] * inv
        for k in range(d):
            mean[g, k] /= counts[g]
            unit_mean[g, k] /= counts[g]
            finite[g] = finite[g] and math.isfinite(mean[g, k]) and math.isfinite(unit_mean[g, k])
        for j in range(a, e):
            s = 0.0
            for k in range(d):
                r = X[j, k] - mean[g, k]
                R[j, k] = r
                s += r * r
            sq_dev[g] += s
    return mean, unit_mean, sq_dev, finite


@njit(**_JIT)
def _first_argmax(q, lo, C):
    """First index of the maximum of q[lo:lo + C] (a NaN counts as the maximum, as in ``argmax``)."""
    best, p = q[lo], 0
    if best != best:
        return 0
    for t in range(1, C):
        v = q[lo + t]
        if v != v:
            return t
        if v > best:
            best, p = v, t
    return p


@njit(**_JIT)
def decisions(X, starts, counts, C, PT, W, has_w, pairwise):
    """Per set s: the NCC scores of its samples (columns 0..C-1 of PT[s]: the set's centred means, the
    constants in the last row) and, with ``has_w``, their logits (columns C..2C-1: W^T, the bias in
    the last row), one row of X (N, d) at a time, sorted by (set, class) in runs ``starts``/``counts``.

    Returns ``out`` (sets, 6): NCC hits, classifier hits, NCC/classifier disagreements, the min and
    the sum over samples of the margin (own logit - best other logit), and, with ``pairwise``, the
    normalised pairwise margin min over y != c of gamma_yc / ||w_y - w_c||, gamma_yc = min(A_yc, A_cy),
    A_yc = min over the samples of class y of (z_y - z_c); pairs with a non-finite gamma or coinciding
    rows of W are skipped (NaN if all are, as in :func:`nclab.metrics._kernels.normalized_pair_min`).
    NaN propagates through every min and sum, as in NumPy."""
    N, d = X.shape
    ns = PT.shape[0]
    T = PT.shape[2]
    out = np.zeros((ns, 6))
    A = np.full((C, C), np.inf)
    q = np.empty(T)
    if has_w and pairwise:
        dw = np.empty((C, C))
        for a in range(C):
            for c in range(C):
                s2 = 0.0
                for k in range(d):
                    v = W[a, k] - W[c, k]
                    s2 += v * v
                dw[a, c] = math.sqrt(s2)  # from the differences: exactly 0 for coinciding rows
    for s in range(ns):
        P = PT[s]
        n0 = n1 = n2 = 0
        mmin, msum = np.inf, 0.0
        A[:] = np.inf
        for c in range(C):
            g = s * C + c
            arow = A[c]
            for j in range(starts[g], starts[g] + counts[g]):
                for t in range(T):
                    q[t] = P[d, t]
                for k in range(d):
                    xk = X[j, k]
                    for t in range(T):
                        q[t] += xk * P[k, t]
                p0 = _first_argmax(q, 0, C)
                n0 += p0 == c
                if not has_w:
                    continue
                p1 = _first_argmax(q, C, C)
                n1 += p1 == c
                n2 += p1 != p0
                own = q[C + c]
                m = np.inf
                for t in range(C):
                    if t != c:
                        v = own - q[C + t]
                        if v < m or v != v:
                            m = v
                        if v < arow[t] or v != v:
                            arow[t] = v
                if m < mmin or m != m:
                    mmin = m
                msum += m
        out[s, 0], out[s, 1], out[s, 2], out[s, 3], out[s, 4] = n0, n1, n2, mmin, msum
        out[s, 5] = np.nan
        if has_w and pairwise:
            for a in range(C):
                for c in range(C):
                    gam = min(A[a, c], A[c, a]) if A[a, c] == A[a, c] and A[c, a] == A[c, a] else np.nan
                    if a != c and math.isfinite(gam) and dw[a, c] > 0:
                        r = gam / dw[a, c]
                        if not r >= out[s, 5]:  # the first valid pair, or a smaller ratio
                            out[s, 5] = r
    return out


@njit(**_JIT)
def nc1_sets(M, mats, n, k_given):
    """NC1 = tr(Sigma_W pinv(Sigma_B)) / C of each set from its centred means M (sets, C, d) and either
    K = M S M^T (``k_given``, (sets, C, C)) or the within-class scatter S = sum_i r_i r_i^T (sets, d,
    d), not divided by n (sets,); NaN when Sigma_B = 0. The formulas and the pseudo-inverse tolerance
    are those of :func:`nclab.metrics._kernels.nc1_value`: with C <= d, eigenvectors of M M^T
    (NC1 = (1/n) sum_{lambda_k > 0} v_k^T K v_k / lambda_k^2); with C > d, of Sigma_B = M^T M / C in
    d-space."""
    ns, C, d = M.shape
    eps = np.finfo(np.float64).eps
    out = np.empty(ns)
    for s in range(ns):
        Ms = np.ascontiguousarray(M[s])
        if k_given or C <= d:
            A = mats[s] if k_given else Ms @ mats[s] @ Ms.T
            lam, V = np.linalg.eigh(Ms @ Ms.T)
            tol, scale, squared = max(C, d) * eps, n[s], True
        else:
            A = mats[s]
            lam, V = np.linalg.eigh(Ms.T @ Ms / C)
            tol, scale, squared = d * eps, n[s] * C, False
        top = lam[-1]  # ascending order
        cut = tol * (top if top > 0 else 0.0)
        total, kept = 0.0, False
        for k in range(lam.shape[0]):
            if lam[k] > cut:
                kept = True
                v = np.ascontiguousarray(V[:, k])
                quad = v @ (A @ v)
                total += quad / (lam[k] * lam[k] if squared else lam[k])
        out[s] = total / scale if kept else np.nan
    return out
