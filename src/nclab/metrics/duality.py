r"""NC3: self-duality of the classifier and the centred class means.

Sources: Papyan, Han & Donoho (2020) and Nguyen et al. (ICLR 2023, seed 000) for
:math:`\|W/\|W\|_F - M/\|M\|_F\|_F^2`; Tirer & Bruna (2022, seed 004) eq. (28) for the ETF form
(computed in the tiled class-pair pass, :func:`~nclab.metrics.geometry.pair_statistics`); Wu & Papyan
(2024) for uniform duality; Pan (2023, seed 003) for the cosine form
:math:`\frac1C\sum_c\cos(w_c, \mu_c-\mu_G)`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["nc3_duality", "nc3_etf", "unc3_var", "nc3_cosine", "duality_metrics"]


def duality_metrics(M: torch.Tensor, W: torch.Tensor, scale: float = 1.0) -> dict[str, float]:
    """``nc3_duality``, ``unc3_var`` and ``nc3_cosine`` of centred means M (C, d, in units of
    ``scale``) and classifier rows W (C, d)."""
    fw, fm = float(torch.linalg.matrix_norm(W)), float(torch.linalg.matrix_norm(M))
    out = {"nc3_duality": float(torch.linalg.matrix_norm(W / fw - M / fm) ** 2) if fw > 0 and fm > 0 else math.nan}
    # <w_c, m_c> scales with the features: the variance with scale^2
    out["unc3_var"] = float(((W * M).sum(1)).var(unbiased=True)) * scale * scale
    nw, nm = torch.linalg.vector_norm(W, dim=1), torch.linalg.vector_norm(M, dim=1)
    ok = (nw > 0) & (nm > 0)
    cos = (W * M).sum(1)[ok] / (nw[ok] * nm[ok])
    out["nc3_cosine"] = float(cos.mean()) if cos.numel() else math.nan
    return out


def _with_w(features, labels, weights, num_classes, classes):
    from nclab.metrics import _pipeline as P

    _, _, _, mom, W, _ = P.measured(features, labels, num_classes, classes, weights=weights)
    if W is None:
        from nclab.errors import ShapeError

        raise ShapeError("weights are required: pass the classifier's (C, d) weight matrix.")
    return mom, (W if mom.classes is None else W[mom.classes])


@torch.inference_mode()
def _dual(key, features, labels, weights, num_classes, classes) -> float:
    mom, W = _with_w(features, labels, weights, num_classes, classes)
    return duality_metrics(mom.centred(), W, mom.scale)[key]


def nc3_duality(features, labels, weights, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r""":math:`\| W/\|W\|_F - M/\|M\|_F \|_F^2` (Papyan et al. 2020; Nguyen et al. NC3). O(n d + C d)."""
    return _dual("nc3_duality", features, labels, weights, num_classes, classes)


def unc3_var(features, labels, weights, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Uniform duality (Wu & Papyan 2024): unbiased variance over classes of :math:`\langle w_c, \mu_c-\mu_G\rangle`."""
    return _dual("unc3_var", features, labels, weights, num_classes, classes)


def nc3_cosine(features, labels, weights, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""Cosine self-duality (Pan 2023, seed 003 Sec. 2.2): :math:`\frac1C\sum_c \cos(w_c, \mu_c-\mu_G)`;
    1 at perfect duality. Classes whose row or centred mean is 0 are skipped."""
    return _dual("nc3_cosine", features, labels, weights, num_classes, classes)


@torch.inference_mode()
def nc3_etf(features, labels, weights, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r""":math:`\| WM^\top/\|WM^\top\|_F - (I - \frac1C 11^\top)/\sqrt{C-1} \|_F` (Tirer & Bruna eq. 28)."""
    from nclab.metrics.geometry import frame_distance

    mom, W = _with_w(features, labels, weights, num_classes, classes)
    return frame_distance(W, mom.centred(), kind="etf")
