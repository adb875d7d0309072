r"""Minimal cross-entropy under norm bounds and the cosine-similarity limits (Pan, MS thesis 2023, Sec. 2.3).

Problem: C classes, N samples per class, features :math:`h_{c,i} \in \mathbb R^d`, weights :math:`W \in \mathbb R^{C\times d}`,

.. math::
    \min\; \frac{1}{CN}\sum_{c,i} -\log\operatorname{softmax}(W h_{c,i})_c
    \quad\text{s.t.}\quad \sqrt{\tfrac{1}{CN}\textstyle\sum_{c,i}\|h_{c,i}\|^2} \le \alpha,\quad \|W\|_F \le \sqrt C\,\beta .

Code names: ``feature_norm`` = :math:`\alpha`, ``weight_norm`` = :math:`\beta` (not the LS parameter).

Minimal value (Thm 2.3.1, via Jensen twice and Cauchy–Schwarz; ``docs/theory.md`` §4):

.. math:: m = \log\Bigl(1 + (C-1)\exp\bigl(-\tfrac{C}{C-1}\alpha\beta\bigr)\Bigr),

attained (for d >= C - 1) exactly by :math:`h_{c,i} = \alpha u_c`, :math:`w_c = \beta u_c` with
:math:`\{u_c\}` a unit simplex ETF. At that optimum the average intra-class cosine similarity is 1
and the inter-class one is :math:`-1/(C-1)`; Thm 2.3.1 bounds their deviation at loss
:math:`m + \epsilon` by :math:`O(\sqrt\epsilon)` (intra, times :math:`e^{O(\alpha\beta)}`) and
:math:`O(\epsilon^{1/6})` (inter), with unspecified constants.
"""

from __future__ import annotations

import math

import numpy as np

from nclab.errors import LabelError, ShapeError, SpecError

__all__ = ["min_ce_loss_norm_bounded", "cosine_similarity_limits", "class_cosine_similarities"]


def min_ce_loss_norm_bounded(num_classes: int, feature_norm: float, weight_norm: float) -> float:
    r"""Least average CE loss under the norm bounds of seed 003 Thm 2.3.1.

    .. math:: m = \log\bigl(1 + (C-1)\exp(-\tfrac{C}{C-1}\alpha\beta)\bigr)

    Source: Pan (MS thesis, Georgia Tech 2023), Thm 2.3.1 (definition of m). Valid for d >= C - 1
    and no bias. O(1).

    Parameters
    ----------
    num_classes : int
        C >= 2.
    feature_norm : float
        :math:`\alpha`, bound on the root-mean-square feature norm (> 0).
    weight_norm : float
        :math:`\beta`, with :math:`\|W\|_F \le \sqrt C\beta` (> 0).

    Examples
    --------
    >>> round(min_ce_loss_norm_bounded(2, 1.0, 1.0), 6)  # log(1 + e^{-2})
    0.126928
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise SpecError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
    for name, v in (("feature_norm", feature_norm), ("weight_norm", weight_norm)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpecError(f"{name} must be a finite number > 0; got {v!r}.")
    c = num_classes
    return math.log1p((c - 1) * math.exp(-c / (c - 1) * feature_norm * weight_norm))


def cosine_similarity_limits(num_classes: int) -> tuple[float, float]:
    """(intra, inter) cosine similarities at the optimum of seed 003: ``(1, -1/(C-1))``."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise SpecError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
    return 1.0, -1.0 / (num_classes - 1)


def class_cosine_similarities(features, labels, *, num_classes: int | None = None):
    r"""Average intra- and inter-class cosine similarities of seed 003 (Lemma 2.4.4).

    .. math::
        \mathrm{intra}_c = \Bigl\|\tfrac1{N_c}\textstyle\sum_i \hat h_{c,i}\Bigr\|^2,\qquad
        \mathrm{inter}_{c,c'} = \Bigl\langle \tfrac1{N_c}\textstyle\sum_i \hat h_{c,i},\,
        \tfrac1{N_{c'}}\textstyle\sum_j \hat h_{c',j}\Bigr\rangle,\qquad \hat h = h/\|h\|.

    Parameters
    ----------
    features : array of shape (n, d)
    labels : array of shape (n,)
    num_classes : int, optional

    Returns
    -------
    intra : ndarray of shape (C,)
    inter : ndarray of shape (C, C)
        Diagonal equal to ``intra``. Cost O(n d + C^2 d).
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or y.ndim != 1 or len(y) != len(x):
        raise ShapeError(f"features must be (n, d) and labels (n,); got {x.shape} and {y.shape}.")
    c = int(y.max()) + 1 if num_classes is None else num_classes
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ShapeError("cosine similarity needs nonzero feature vectors; got a zero row.")
    xh = x / norms
    means = np.zeros((c, x.shape[1]))
    for k in range(c):
        rows = xh[y == k]
        if len(rows) == 0:
            raise LabelError(f"class {k} has no samples; every class in [0, {c}) needs one.")
        means[k] = rows.mean(axis=0)
    inter = means @ means.T
    return np.diag(inter).copy(), inter
