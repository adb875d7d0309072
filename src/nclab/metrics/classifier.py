r"""Decisions and margins: NCC accuracy, accuracy, NC4, sample and class-pair margins.

Sources: NC4 and the nearest-class-centre rule, Papyan, Han & Donoho (2020); margins
:math:`p_{\min}`, pairwise margins :math:`\gamma_{y,y'}` and their normalised form, seed 002
(Thm 4.1, Def. 4.3, Remark 4.9). All of them come from one :class:`~nclab.metrics.DecisionPass`.
"""

from __future__ import annotations

import math

import torch

from nclab.errors import LabelError, ShapeError
from nclab.metrics import _pipeline as P
from nclab.metrics._validate import check_classifier, check_features, check_labels
from nclab.metrics.decisions import Decisions, chunk_rows, margin_rows

__all__ = [
    "margins", "pairwise_margins", "nc4_ncc_mismatch", "ncc_accuracy", "decision_metrics", "normalized_pair_min",
]


def row_distances(W: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between the rows of W (C, d), from the differences (exactly 0 for
    coinciding rows; the Gram form that ``cdist`` otherwise uses for C > 25 can leave ~1e-8 there)."""
    return torch.cdist(W, W, compute_mode="donot_use_mm_for_euclid_dist")


def normalized_pair_min(A: torch.Tensor, W: torch.Tensor) -> float:
    """min over y != y' of gamma_{y,y'} / ||w_y - w_y'|| with gamma = min(A, A^T) from the directed
    pair minima A (C, C). Pairs with an infinite gamma (a class without samples) or coinciding
    classifier rows (the ratio is undefined) are skipped; NaN if every pair is."""
    gamma = torch.minimum(A, A.T)
    off = ~torch.eye(A.shape[0], dtype=torch.bool, device=A.device)
    g, dw = gamma[off], row_distances(W)[off]
    valid = torch.isfinite(g) & (dw > 0)
    if not bool(valid.any()):
        return math.nan
    return float((g[valid] / dw[valid]).min())


def decision_metrics(dec: Decisions, W: torch.Tensor | None) -> dict[str, float]:
    """``ncc_accuracy``, and with a classifier ``nc4_ncc_mismatch, accuracy, margin_min, margin_mean,
    margin_normalized_min`` (margins in the features' units) from a decision pass."""
    n, s = dec.n, dec.scale
    out: dict[str, float] = {}
    if dec.ncc_correct is not None:
        out["ncc_accuracy"] = dec.ncc_correct / n
    if dec.correct is not None:
        if dec.nc4_mismatch is not None:
            out["nc4_ncc_mismatch"] = dec.nc4_mismatch / n
        out["accuracy"] = dec.correct / n
        out["margin_min"] = dec.margin_min * s
        out["margin_mean"] = dec.margin_sum / n * s
        if dec.pair_margin is not None and W is not None:
            out["margin_normalized_min"] = normalized_pair_min(dec.pair_margin, W) * s
    return out


@torch.inference_mode()
def ncc_accuracy(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    """Accuracy of the nearest-class-centre rule with the class means of ``features`` itself."""
    H, y, _, mom, _, _ = P.measured(features, labels, num_classes, classes)
    return P.decisions_of(mom, H, y, nc1=False).ncc_correct / H.shape[0]


@torch.inference_mode()
def nc4_ncc_mismatch(features, labels, weights, bias=None, *, num_classes: int | None = None,
                     classes: str | None = None) -> float:
    r"""Fraction of samples where :math:`\arg\max_c (Wh+b)_c \ne \arg\min_c \|h-\mu_c\|` (Papyan et al. NC4).

    O(n d C) time, O(chunk x C) memory. Ties go to the lowest class index in both rules.
    """
    H, y, _, mom, W, b = P.measured(features, labels, num_classes, classes, weights=weights, bias=bias)
    if W is None:
        raise ShapeError("weights are required: pass the classifier's (C, d) weight matrix.")
    dec = P.decisions_of(mom, H, y, weights=W, bias=b, nc1=False, pairwise_limit=0)
    return dec.nc4_mismatch / H.shape[0]


@torch.inference_mode()
def margins(features, labels, weights, bias=None) -> torch.Tensor:
    r"""Per-sample margins :math:`z_{y_i} - \max_{c\ne y_i} z_c` with :math:`z = Wh + b` (float64). Returns (n,).

    ``margins(...).min()`` is :math:`p_{\min}` of seed 002 Thm 4.1 (with b = 0)."""
    H = check_features(features)
    y, C = check_labels(labels, H.shape[0], None if weights is None else len(weights), device=H.device,
                        require_all=False)
    W, b = check_classifier(weights, bias, C, H.shape[1], device=H.device)
    out = torch.empty(H.shape[0], dtype=torch.float64, device=H.device)
    rows = chunk_rows(H.shape[0], C, H.shape[1])
    for s in range(0, H.shape[0], rows):
        z = H[s : s + rows].to(torch.float64) @ W.T
        if b is not None:
            z = z + b
        out[s : s + rows] = margin_rows(z[:, None, :], y[s : s + rows])[:, 0]
    return out


@torch.inference_mode()
def pairwise_margins(features, labels, weights, bias=None, *, normalized: bool = False) -> torch.Tensor:
    r"""Pairwise margins :math:`\gamma_{y,y'}` of seed 002 Def. 4.3, a symmetric (C, C) matrix:

    .. math:: \gamma_{y,y'} = \min\Big(\min_{i: y_i=y} (z_{iy}-z_{iy'}),\ \min_{i: y_i=y'} (z_{iy'}-z_{iy})\Big)

    (NaN on the diagonal); with ``normalized=True`` divided by :math:`\|w_y - w_{y'}\|` (Remark 4.9).
    """
    if weights is None:
        raise ShapeError("weights are required: pass the classifier's (C, d) weight matrix.")
    H, y, C = P.prepare(features, labels, len(weights))
    if P.missing_classes(y, C):
        raise LabelError("pairwise_margins needs at least one sample of every class.")
    W, b = check_classifier(weights, bias, C, H.shape[1], device=H.device)
    mom = P.moments_of(H, y, C)
    dec = P.decisions_of(mom, H, y, weights=W, bias=b, nc1=False, pairwise_limit=C)
    A = dec.pair_margin * dec.scale
    gamma = torch.minimum(A, A.T)
    if normalized:
        gamma = gamma / row_distances(W)
    gamma.fill_diagonal_(math.nan)
    return gamma
