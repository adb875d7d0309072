r"""NC1: within-class variability (NC1, its trace quotient, dilation).

Sources: Papyan, Han & Donoho (2020); Nguyen et al. (ICLR 2023, seed 000) eq. (2) and Sec. 4.1
(dilation = NC1 of the test features); Tirer & Bruna (2022, seed 004) eq. (26); Tirer, Huang &
Niles-Weed (ICML 2023) for the quotient.

:math:`\mathcal{NC}_1 = \frac1C\operatorname{tr}(\Sigma_W\Sigma_B^\dagger)` never forms a d x d matrix
when C <= d: with :math:`MM^\top = V\Lambda V^\top`,
:math:`\mathcal{NC}_1 = \frac1n\sum_{k:\lambda_k>0} v_k^\top K v_k/\lambda_k^2` and
:math:`K = \sum_i (M r_i)(M r_i)^\top` from the decision pass (exact:
:math:`\Sigma_B^\dagger = C\,M^\top (MM^\top)^{\dagger 2} M`). When C > d it uses the d x d scatter.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from nclab.metrics import _pipeline as P

__all__ = ["nc1", "nc1_quotient", "dilation", "nc1_value", "within_class_note"]

_no_autograd = torch.inference_mode()


def nc1_value(M, n, *, K=None, scatter=None):
    r"""tr(Sigma_W pinv(Sigma_B)) / C from the centred means M (C, d) and either K = M S M^T or the
    within-class scatter S = sum_i r_i r_i^T (not divided by n); NaN when Sigma_B = 0.

    C <= d: C x C work only. C > d: the eigenvectors of :math:`\Sigma_B = M^\top M / C` in d-space.
    Eigenvalues below max(C, d) eps lambda_max (d eps mu_max in d-space) are taken as 0, as a
    pseudo-inverse does."""
    C, d = M.shape
    eps = float(np.finfo(np.float64).eps)
    if K is None and C <= d:
        K = M @ scatter @ M.T
    if K is not None:
        lam, V = torch.linalg.eigh(M @ M.T)
        A, den, tol, scale = K, lam * lam, max(C, d) * eps, n
    else:
        lam, V = torch.linalg.eigh(M.T @ M / C)
        A, den, tol, scale = scatter, lam, d * eps, n * C
    top = float(lam[-1])  # ascending order
    keep = lam > tol * max(top, 0.0)
    if not bool(keep.any()):
        return math.nan
    quad = ((V.T @ A) * V.T).sum(-1)  # v_k^T A v_k
    return float(torch.where(keep, quad / torch.where(keep, den, 1.0), 0.0).sum() / scale)


def within_class_note(moments, *, what: str = "features", stacklevel: int = 3) -> str | None:
    """Single-sample classes: within-class variability is undefined when *every* class has one sample
    (returns the reason, one line; the metrics are then NaN, never a confident 0); when only some
    have one, their variance counts as 0 and a DegenerateWarning names them."""
    import warnings

    from nclab.errors import DegenerateWarning

    single = (moments.count == 1).nonzero().flatten()
    if not single.numel():
        return None
    if single.numel() == moments.num_classes:
        reason = (f"every class of the {what} has one sample: within-class variability is undefined "
                  "(not 0); pass several samples per class")
        warnings.warn(reason + ".", DegenerateWarning, stacklevel=stacklevel)
        return reason
    ids = (moments.classes[single] if moments.classes is not None else single)[:5].tolist()
    shown = ", ".join(str(c) for c in ids) + ("" if single.numel() <= 5 else f" (and {single.numel() - 5} more)")
    warnings.warn(f"class(es) {shown} of the {what} have a single sample; their within-class variance is taken "
                  "as 0.", DegenerateWarning, stacklevel=stacklevel)
    return None


def nc1_from(moments, *, K=None, scatter=None) -> float:
    """NC1 from the moments and the decision pass's statistic (K or a scatter), or the moments'
    own scatter (one-pass streaming)."""
    M = moments.centred()
    if K is None and scatter is None:
        scatter = moments.scatter
    if K is None and scatter is None:
        return math.nan
    return nc1_value(M, moments.num_samples, K=K, scatter=scatter)


def quotient_from(moments) -> float:
    """tr(Sigma_W) / tr(Sigma_B) from the moments; NaN when the class means coincide."""
    M = moments.centred()
    tr_b = float((M * M).sum()) / moments.num_classes
    if tr_b == 0.0:
        return math.nan
    return float(moments.sq_dev.sum()) / moments.num_samples / tr_b


@_no_autograd
def nc1(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""NC1, within-class variability relative to the between-class spread.

    .. math:: \mathcal{NC}_1 = \tfrac{1}{C}\operatorname{tr}(\Sigma_W \Sigma_B^{\dagger})

    Source: Papyan, Han & Donoho (2020); Nguyen et al. (ICLR 2023) eq. (2); Tirer & Bruna (2022) eq. (26).

    Notes
    -----
    Two passes: :class:`~nclab.metrics.ClassStats` then a :class:`~nclab.metrics.DecisionPass` for K
    only. O(n d C) time and O(C d + C^2) memory when C <= d; O(n d^2) and O(d^2) when C > d.

    Examples
    --------
    >>> import torch
    >>> nc1(torch.eye(3).repeat(4, 1), torch.arange(3).repeat(4))
    0.0
    """
    H, y, _, mom, _, _ = P.measured(features, labels, num_classes, classes)
    if within_class_note(mom, stacklevel=4):
        return math.nan
    dec = P.decisions_of(mom, H, y, ncc=False, nc1=True)
    return nc1_from(mom, K=dec.K, scatter=dec.scatter)


@_no_autograd
def nc1_quotient(features, labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""tr(Sigma_W) / tr(Sigma_B) (Tirer, Huang & Niles-Weed, ICML 2023). One pass, O(n d)."""
    mom = P.measured(features, labels, num_classes, classes)[3]
    return math.nan if within_class_note(mom, stacklevel=4) else quotient_from(mom)


def dilation(test_features, test_labels, *, num_classes: int | None = None, classes: str | None = None) -> float:
    """Dilation of Nguyen et al. (seed 000, Sec. 4.1): NC1 of the test features with their true labels."""
    return nc1(test_features, test_labels, num_classes=num_classes, classes=classes)
