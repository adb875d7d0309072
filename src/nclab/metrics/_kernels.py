"""Small kernels shared by the streaming engine (PyTorch, any device) and the dense engine (NumPy)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from nclab.errors import DegenerateWarning

__all__ = ["nc1_value", "normalized_pair_min", "warn_degenerate_means"]


def warn_degenerate_means(all_coincide: bool, one_at_global_mean: bool, stacklevel: int) -> None:
    """The DegenerateWarnings of both engines when class means coincide or one equals the global mean
    (``stacklevel`` counts from the caller of this function)."""
    if all_coincide:
        warnings.warn(
            "all class means coincide (Sigma_B = 0): NC1, NC2 and NC3 of the means are undefined and "
            "reported as NaN. Check the features are not constant.",
            DegenerateWarning,
            stacklevel=stacklevel + 1,
        )
    if one_at_global_mean:
        warnings.warn(
            "a class mean equals the global mean; its cosine with other classes is taken as 0.",
            DegenerateWarning,
            stacklevel=stacklevel + 1,
        )


def nc1_value(M, n, *, K=None, scatter=None):
    r"""tr(Sigma_W pinv(Sigma_B)) / C from the centred means M (C, d) and either K = M S M^T or the
    within-class scatter S = sum_i r_i r_i^T (not divided by n); NaN when Sigma_B = 0.

    Tensors or NumPy arrays (float64), with optional leading batch dimensions (then n may be an array
    of sample counts and an array of values is returned; a float otherwise).
    C <= d: with :math:`MM^\top = V\Lambda V^\top`, NC1 :math:`= \frac1n\sum_{\lambda_k>0} v_k^\top K v_k/\lambda_k^2`
    (:math:`\Sigma_B^\dagger = C\,M^\top (MM^\top)^{\dagger 2} M`): C x C work only. C > d: the
    eigenvectors of :math:`\Sigma_B = M^\top M / C` in d-space. Eigenvalues below max(C, d) eps
    lambda_max (d eps mu_max in d-space) are taken as 0, as a pseudo-inverse does."""
    xp = torch if isinstance(M, torch.Tensor) else np
    C, d = M.shape[-2:]
    eps = float(np.finfo(np.float64).eps)
    Mt = M.swapaxes(-1, -2)
    if K is None and C <= d:
        K = M @ scatter @ Mt
    if K is not None:
        lam, V = xp.linalg.eigh(M @ Mt)
        A, den, tol, scale = K, lam * lam, max(C, d) * eps, n
    else:
        lam, V = xp.linalg.eigh(Mt @ M / C)
        A, den, tol, scale = scatter, lam, d * eps, n * C
    top = lam[..., -1:]  # eigenvalues come in ascending order
    keep = lam > tol * (top * (top > 0))
    Vt = V.swapaxes(-1, -2)
    quad = ((Vt @ A) * Vt).sum(-1)  # v_k^T A v_k
    val = xp.where(keep.any(-1), xp.where(keep, quad / den, 0.0).sum(-1) / scale, math.nan)
    return float(val) if M.ndim == 2 else val


def _row_distances(W: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of W (C, d), from the differences (exactly 0 for
    coinciding rows; the Gram form that ``cdist`` otherwise uses for C > 25 can leave ~1e-8 there)."""
    return torch.cdist(W, W, compute_mode="donot_use_mm_for_euclid_dist")


def normalized_pair_min(A: torch.Tensor, W: torch.Tensor) -> float:
    """min over y != y' of gamma_{y,y'} / ||w_y - w_y'|| with gamma = min(A, A^T) from the directed
    pair minima A (C, C). Pairs with an infinite gamma (a class without samples) or coinciding
    classifier rows (the ratio is undefined) are skipped; NaN if every pair is."""
    gamma = torch.minimum(A, A.T)
    off = ~torch.eye(A.shape[0], dtype=torch.bool, device=A.device)
    g, dw = gamma[off], _row_distances(W)[off]
    valid = torch.isfinite(g) & (dw > 0)
    if not bool(valid.any()):
        return math.nan
    return float((g[valid] / dw[valid]).min())
