r"""Tiled class-pair computations: every C x C quantity in O(tile^2) memory.

The Gram matrices :math:`MM^\top` (centred means), :math:`UU^\top` (uncentred means),
:math:`WW^\top`, :math:`WM^\top` and :math:`\bar S \bar S^\top` (mean unit vectors) are visited block
by block (``tile`` rows at a time); pair statistics are reduced on the fly. With float64 products
(float64 features, or small problems) the Frobenius distances are summed elementwise (so that a perfect
configuration gives exactly 0, with no cancellation) after their normalising Frobenius norm has been
computed in d-space when C exceeds the tile (:math:`\|MM^\top\|_F = \|M^\top M\|_F`,
:math:`\|WM^\top\|_F^2 = \langle W^\top W, M^\top M\rangle`). With float32 products the distances
come entirely from float64 d-space identities (:func:`_etf_dist_dspace`, :func:`_of_dist_dspace`).

Cost: O(C^2 d) time for each Gram visited (symmetric ones on the upper block triangle only),
O(tile^2 + d^2 + C d) memory.
"""

from __future__ import annotations

import math

import torch

from nclab.metrics._kernels import warn_degenerate_means

__all__ = ["pair_statistics"]


def _fro_dspace(A: torch.Tensor, B: torch.Tensor) -> float:
    """||A B^T||_F of (C, d) matrices from d-space: ||A B^T||_F^2 = <A^T A, B^T B>, O(C d^2)."""
    return math.sqrt(max(float(((A.T @ A) * (B.T @ B)).sum()), 0.0))


def _fro_gram(A: torch.Tensor, B: torch.Tensor, tile: int) -> float:
    """||A B^T||_F for (C, d) matrices, through d-space when C is larger than a tile."""
    if A.shape[0] <= tile:
        return float(torch.linalg.matrix_norm(A @ B.T))
    return _fro_dspace(A, B)


def _safe_inv_norms(norms: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """1 / ||x_c|| from the row norms, with 1 for zero rows (their cosines are then 0)."""
    return torch.where(norms > 0, norms, torch.ones_like(norms)).reciprocal().to(dtype)


def _blocks(C: int, tile: int):
    return [(s, min(C, s + tile)) for s in range(0, C, tile)]


def _etf_block(G: torch.Tensor, fro: float, C: int, diag: bool) -> float:
    """Sum of squared entries of G/fro - E on a block; E = (I - 11^T/C)/sqrt(C-1)."""
    off = -1.0 / (C * math.sqrt(C - 1))
    D = G / fro - off
    if diag:
        D.diagonal().sub_(1.0 / math.sqrt(C - 1))
    return float((D * D).sum())


def _of_block(G: torch.Tensor, fro: float, C: int, diag: bool) -> float:
    """Sum of squared entries of G/fro - I/sqrt(C) on a block."""
    D = G / fro
    if diag:
        D.diagonal().sub_(1.0 / math.sqrt(C))
    return float((D * D).sum())


def _etf_dist_dspace(A: torch.Tensor, B: torch.Tensor) -> float:
    """|| A B^T / ||A B^T||_F - (I - 11^T/C)/sqrt(C-1) ||_F from d-space quantities, O(C d^2).

    ||X/f - E||^2 = 2 - 2 <X, E> / f with ||E||_F = 1 and
    <A B^T, E> = (tr(A B^T) - (1^T A)(B^T 1)/C) / sqrt(C-1)."""
    C = A.shape[0]
    f = _fro_dspace(A, B)
    if f == 0.0:
        return math.nan
    inner = (float((A * B).sum()) - float(A.sum(0) @ B.sum(0)) / C) / math.sqrt(C - 1)
    return math.sqrt(max(2.0 - 2.0 * inner / f, 0.0))


def _of_dist_dspace(A: torch.Tensor) -> float:
    """|| A A^T / ||A A^T||_F - I/sqrt(C) ||_F = sqrt(2 - 2 ||A||_F^2 / (sqrt(C) ||A^T A||_F))."""
    C = A.shape[0]
    f = _fro_dspace(A, A)
    if f == 0.0:
        return math.nan
    return math.sqrt(max(2.0 - 2.0 * float((A * A).sum()) / (math.sqrt(C) * f), 0.0))


#: Below this many multiply-adds (C^2 d) the class-pair products always run in float64.
SMALL_PAIR_WORK = 1 << 24


def pair_statistics(
    M: torch.Tensor,
    mu_g: torch.Tensor,
    var: torch.Tensor,
    unit_mean: torch.Tensor,
    W: torch.Tensor | None = None,
    *,
    tile: int = 2048,
    cdnv_exponent: float = 1.0,
    gram_dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """All class-pair metrics from centred means M (C,d), global mean (d,), class variances (C,),
    mean unit vectors (C,d) and optional classifier W (C,d); float64 in, floats out.

    Two precisions:

    * ``gram_dtype=float64`` (float64 features, or any small problem): block Gram products and every
      elementwise statistic in float64; the Frobenius distances to the ETF / orthogonal frame are summed
      entry by entry, so a perfect configuration gives exactly 0.
    * ``gram_dtype=float32`` (float32 features, C^2 d >= SMALL_PAIR_WORK): block products and the
      elementwise statistics in float32, every sum over pairs in float64 (shifted, for the variances);
      the Frobenius distances come from float64 d-space identities in O(C d^2) (no C x C pass), with an
      absolute error ~1e-8 (the square root of float64 rounding), below the ~1e-7 of float32 entries.
    """
    C, d = M.shape
    f64 = torch.float64
    if C * C * d < SMALL_PAIR_WORK:  # small: float64 costs nothing
        gram_dtype = f64
    exact = gram_dtype == f64

    out: dict[str, float] = {}
    norms_m = torch.linalg.vector_norm(M, dim=1)
    U = M + mu_g
    fro_mm = _fro_gram(M, M, tile)
    warn_degenerate_means(fro_mm == 0.0, bool((norms_m == 0).any()), stacklevel=3)
    inv_nm = _safe_inv_norms(norms_m, gram_dtype)
    n2 = (norms_m**2).to(gram_dtype)
    var_e = var.to(gram_dtype)
    Me, Se = M.to(gram_dtype), unit_mean.to(gram_dtype)
    if W is not None:
        inv_nw = _safe_inv_norms(torch.linalg.vector_norm(W, dim=1), gram_dtype)
        We = W.to(gram_dtype)
    if exact:
        fro_uu = _fro_gram(U, U, tile)
        if W is not None:
            fro_ww = _fro_gram(W, W, tile)
            fro_wm = _fro_gram(W, M, tile)

    # GNC2 variances as shifted sums around their value at a simplex ETF (stable near collapse)
    etf_dist = math.sqrt(2.0 + 2.0 / (C - 1))
    etf_log = -math.log(etf_dist)
    cdnv_sum = eq_sum = eqw_sum = 0.0
    g1 = g2 = l1 = l2 = 0.0
    inter_max = -math.inf
    etf_sq = of_sq = etfw_sq = ofw_sq = wm_sq = 0.0
    npairs = C * (C - 1) // 2
    blocks = _blocks(C, tile)
    p = cdnv_exponent

    def fsum(t: torch.Tensor) -> float:
        return float(t.sum(dtype=f64))

    for bi, (i0, i1) in enumerate(blocks):
        for bj in range(bi, len(blocks)):
            j0, j1 = blocks[bj]
            diag = bi == bj
            G = Me[i0:i1] @ Me[j0:j1].T
            if diag:  # strict upper triangle of a diagonal block
                iu = torch.triu_indices(i1 - i0, j1 - j0, 1, device=M.device)

                def pairs(T: torch.Tensor, iu=iu) -> torch.Tensor:
                    return T[iu[0], iu[1]]
            else:  # every entry of an off-diagonal block is a pair: no (slow) boolean indexing

                def pairs(T: torch.Tensor) -> torch.Tensor:
                    return T.reshape(-1)
            weight = 1.0 if diag else 2.0
            if exact:  # entrywise Frobenius distances first: G is reused in place below
                if fro_mm > 0:
                    etf_sq += weight * _etf_block(G, fro_mm, C, diag)
                if fro_uu > 0:
                    of_sq += weight * _of_block(U[i0:i1] @ U[j0:j1].T, fro_uu, C, diag)
            Gp = pairs(G)
            ii, jj = (iu[0] + i0, iu[1] + j0) if diag else (None, None)

            def outer(v: torch.Tensor, op) -> torch.Tensor:
                if diag:
                    return op(v[ii], v[jj])
                return op(v[i0:i1, None], v[None, j0:j1]).reshape(-1)

            # CDNV: distances between class means (centring cancels); x / 0 -> inf or nan, reported as inf
            dist2 = outer(n2, torch.add).sub_(Gp, alpha=2.0).clamp_min_(0.0)
            vsum = outer(var_e, torch.add)
            cdnv_sum += fsum(vsum.div_(dist2 if p == 1.0 else dist2.pow_(p)))
            # cosines of centred means: equiangularity and GNC2
            cos = Gp.mul_(outer(inv_nm, torch.mul))
            eq_sum += fsum((cos + 1.0 / (C - 1)).abs_())
            dist = cos.mul_(-2.0).add_(2.0).clamp_min_(0.0).sqrt_()  # ||m_a/|m_a| - m_b/|m_b|||
            lg = torch.log(dist).neg_().sub_(etf_log)
            dist.sub_(etf_dist)
            g1, g2 = g1 + fsum(dist), g2 + fsum(dist * dist)
            l1, l2 = l1 + fsum(lg), l2 + fsum(lg * lg)
            S = pairs(Se[i0:i1] @ Se[j0:j1].T)
            if S.numel():
                inter_max = max(inter_max, float(S.max()))
            if W is not None:
                GW = We[i0:i1] @ We[j0:j1].T
                if exact and fro_ww > 0:
                    etfw_sq += weight * _etf_block(GW, fro_ww, C, diag)
                    ofw_sq += weight * _of_block(GW, fro_ww, C, diag)
                cw = pairs(GW).mul_(outer(inv_nw, torch.mul))
                eqw_sum += fsum(cw.add_(1.0 / (C - 1)).abs_())
        if exact and W is not None and fro_wm > 0:
            for bj, (j0, j1) in enumerate(blocks):
                wm_sq += _etf_block(W[i0:i1] @ M[j0:j1].T, fro_wm, C, bi == bj)

    nan = math.nan
    ok = fro_mm > 0
    out["cdnv"] = 0.5 * cdnv_sum / npairs if math.isfinite(cdnv_sum) else math.inf
    out["nc2_equiangular"] = eq_sum / npairs if ok else nan
    if exact:
        out["nc2_etf"] = math.sqrt(etf_sq) if ok else nan
        out["nc2_of"] = math.sqrt(of_sq) if fro_uu > 0 else nan
    else:
        out["nc2_etf"] = _etf_dist_dspace(M, M) if ok else nan
        out["nc2_of"] = _of_dist_dspace(U)
    gm, lm = g1 / npairs, l1 / npairs
    out["gnc2_dist_var"] = max(g2 / npairs - gm * gm, 0.0) if ok else nan
    out["gnc2_log_var"] = max(l2 / npairs - lm * lm, 0.0) if ok else nan
    out["cosine_inter_max"] = inter_max
    if W is not None:
        out["nc2_equiangular_w"] = eqw_sum / npairs
        if exact:
            out["nc2_etf_w"] = math.sqrt(etfw_sq) if fro_ww > 0 else nan
            out["nc2_of_w"] = math.sqrt(ofw_sq) if fro_ww > 0 else nan
            out["nc3_etf"] = math.sqrt(wm_sq) if fro_wm > 0 else nan
        else:
            out["nc2_etf_w"] = _etf_dist_dspace(W, W)
            out["nc2_of_w"] = _of_dist_dspace(W)
            out["nc3_etf"] = _etf_dist_dspace(W, M) if fro_mm > 0 else nan
    return out
