r"""Tiled class-pair computations: every C x C quantity in O(tile^2) memory.

The Gram matrices :math:`MM^\top` (centred means), :math:`UU^\top` (uncentred means),
:math:`WW^\top`, :math:`WM^\top` and :math:`\bar S \bar S^\top` (mean unit vectors) are visited block
by block (``tile`` rows at a time); pair statistics are reduced on the fly, Frobenius distances are
summed elementwise (so that a perfect configuration gives exactly 0, with no cancellation) after
their normalising Frobenius norm has been computed in d-space (:math:`\|MM^\top\|_F = \|M^\top M\|_F`,
:math:`\|WM^\top\|_F^2 = \langle W^\top W, M^\top M\rangle`) when C exceeds the tile.

Cost: O(C^2 d) time for each Gram visited (symmetric ones on the upper block triangle only),
O(tile^2 + d^2 + C d) memory.
"""

from __future__ import annotations

import math
import warnings

import torch

from nclab.errors import DegenerateWarning

__all__ = ["pair_statistics"]


class _RunningMoments:
    """Count, mean and sum of squared deviations of a stream of scalars, merged per block (Chan)."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def add(self, x: torch.Tensor) -> None:
        k = x.numel()
        if k == 0:
            return
        mb = float(x.mean())
        m2b = float(((x - mb) ** 2).sum())
        n = self.n + k
        delta = mb - self.mean
        self.mean += delta * k / n
        self.m2 += m2b + delta * delta * self.n * k / n
        self.n = n

    @property
    def var(self) -> float:
        return self.m2 / self.n if self.n else math.nan


def _fro_gram(A: torch.Tensor, B: torch.Tensor, tile: int) -> float:
    """||A B^T||_F for (C, d) matrices, through d-space when C is larger than a tile."""
    if A.shape[0] <= tile:
        return float(torch.linalg.matrix_norm(A @ B.T))
    return math.sqrt(max(float(((A.T @ A) * (B.T @ B)).sum()), 0.0))


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

    The block Gram products run in ``gram_dtype`` (the features' precision: float32 features need no
    float64 products); every elementwise statistic and reduction is float64.
    """
    C = M.shape[0]
    f64 = torch.float64

    if C * C * M.shape[1] < (1 << 24):  # small: float64 costs nothing, skip the casts
        gram_dtype = f64

    def gram(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        if gram_dtype == f64:
            return A @ B.T
        return (A.to(gram_dtype) @ B.to(gram_dtype).T).to(f64)

    out: dict[str, float] = {}
    norms_m = torch.linalg.vector_norm(M, dim=1)
    a = M @ mu_g  # (C,) so that U U^T = M M^T + a 1^T + 1 a^T + ||mu_g||^2
    g2 = float(mu_g @ mu_g)
    fro_mm = _fro_gram(M, M, tile)
    U = None
    if C > tile:
        U = M + mu_g
    fro_uu = _fro_gram(U, U, tile) if U is not None else None
    if W is not None:
        norms_w = torch.linalg.vector_norm(W, dim=1)
        fro_ww = _fro_gram(W, W, tile)
        fro_wm = _fro_gram(W, M, tile)
    if fro_mm == 0.0:
        warnings.warn(
            "all class means coincide (Sigma_B = 0): NC1, NC2 and NC3 of the means are undefined and "
            "reported as NaN. Check the features are not constant.",
            DegenerateWarning,
            stacklevel=3,
        )
    if bool((norms_m == 0).any()):
        warnings.warn(
            "a class mean equals the global mean; its cosine with other classes is taken as 0.",
            DegenerateWarning,
            stacklevel=3,
        )
    safe_nm = torch.where(norms_m > 0, norms_m, torch.ones_like(norms_m))

    cdnv_sum = 0.0
    cdnv_inf = False
    eq_sum = 0.0
    eqw_sum = 0.0
    gdist = _RunningMoments()
    glog = _RunningMoments()
    inter_max = -math.inf
    etf_sq = of_sq = etfw_sq = ofw_sq = wm_sq = 0.0
    npairs = C * (C - 1) // 2
    blocks = _blocks(C, tile)
    need_uu_fro = fro_uu is None
    uu_blocks: list[torch.Tensor] = []  # only used when C <= tile (a single block)

    for bi, (i0, i1) in enumerate(blocks):
        for bj in range(bi, len(blocks)):
            j0, j1 = blocks[bj]
            diag = bi == bj
            G = gram(M[i0:i1], M[j0:j1])
            if diag:  # strict upper triangle of a diagonal block
                iu = torch.triu_indices(i1 - i0, j1 - j0, 1, device=M.device)

                def pairs(T: torch.Tensor, iu=iu) -> torch.Tensor:
                    return T[iu[0], iu[1]]
            else:  # every entry of an off-diagonal block is a pair: no (slow) boolean indexing

                def pairs(T: torch.Tensor) -> torch.Tensor:
                    return T.reshape(-1)
            weight = 1.0 if diag else 2.0
            # distances between class means (centring cancels)
            n2i, n2j = norms_m[i0:i1] ** 2, norms_m[j0:j1] ** 2
            dist2 = pairs((n2i[:, None] + n2j[None, :] - 2 * G).clamp_min_(0.0))
            vsum = pairs(var[i0:i1, None] + var[None, j0:j1])
            if bool((dist2 == 0).any()):
                cdnv_inf = True
            else:
                cdnv_sum += float((vsum / (2 * dist2**cdnv_exponent)).sum())
            cos = pairs(G / (safe_nm[i0:i1, None] * safe_nm[None, j0:j1]))
            eq_sum += float((cos + 1.0 / (C - 1)).abs().sum())
            dist_unit = (2.0 - 2.0 * cos).clamp_min(0.0).sqrt()
            gdist.add(dist_unit)
            glog.add(-torch.log(dist_unit))
            if fro_mm > 0:
                etf_sq += weight * _etf_block(G, fro_mm, C, diag)
            UU = G + a[i0:i1, None] + a[None, j0:j1] + g2
            if need_uu_fro:
                uu_blocks.append(UU)
            else:
                of_sq += weight * _of_block(UU, fro_uu, C, diag)
            S = gram(unit_mean[i0:i1], unit_mean[j0:j1])
            sp = pairs(S)
            if sp.numel():
                inter_max = max(inter_max, float(sp.max()))
            if W is not None:
                GW = gram(W[i0:i1], W[j0:j1])
                etfw_sq += weight * _etf_block(GW, fro_ww, C, diag) if fro_ww > 0 else 0.0
                ofw_sq += weight * _of_block(GW, fro_ww, C, diag) if fro_ww > 0 else 0.0
                nw = torch.where(norms_w > 0, norms_w, torch.ones_like(norms_w))
                cw = pairs(GW / (nw[i0:i1, None] * nw[None, j0:j1]))
                eqw_sum += float((cw + 1.0 / (C - 1)).abs().sum())
        if W is not None and fro_wm > 0:
            for bj, (j0, j1) in enumerate(blocks):
                B = gram(W[i0:i1], M[j0:j1])
                wm_sq += _etf_block(B, fro_wm, C, bi == bj)

    if need_uu_fro:  # C <= tile: one block, its Frobenius norm is at hand
        UU = uu_blocks[0]
        fro_uu = float(torch.linalg.matrix_norm(UU))
        of_sq = _of_block(UU, fro_uu, C, True) if fro_uu > 0 else math.nan

    nan = math.nan
    out["cdnv"] = math.inf if cdnv_inf else cdnv_sum / npairs
    out["nc2_equiangular"] = eq_sum / npairs if fro_mm > 0 else nan
    out["nc2_etf"] = math.sqrt(etf_sq) if fro_mm > 0 else nan
    out["nc2_of"] = math.sqrt(of_sq) if fro_uu and fro_uu > 0 else nan
    out["gnc2_dist_var"] = gdist.var if fro_mm > 0 else nan
    out["gnc2_log_var"] = glog.var if fro_mm > 0 else nan
    out["cosine_inter_max"] = inter_max
    if W is not None:
        out["nc2_equiangular_w"] = eqw_sum / npairs
        out["nc2_etf_w"] = math.sqrt(etfw_sq) if fro_ww > 0 else nan
        out["nc2_of_w"] = math.sqrt(ofw_sq) if fro_ww > 0 else nan
        out["nc3_etf"] = math.sqrt(wm_sq) if fro_wm > 0 else nan
    return out
