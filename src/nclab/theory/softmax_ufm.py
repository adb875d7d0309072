r"""Closed form of the plain UFM with cross-entropy or label smoothing (seed 001 App. B.1 (i')-(iii')).

.. math::
    \min_{W, H, b}\; \frac1N\sum_i \ell_\alpha(W h_i + b, y_i) + \frac{\lambda_W}{2}\|W\|_F^2
    + \frac{\lambda_H}{2}\|H\|_F^2 \;(+\tfrac{\lambda_b}{2}\|b\|^2),

C classes, n per class, N = Cn, :math:`\ell_\alpha` label smoothing (CE for :math:`\alpha = 0`).
Seed 001 B.1 quotes the result (Zhu et al. 2021; Fang et al. 2021): features collapse to a simplex
ETF, :math:`w_c \propto h_c`. The norms are derived here (``docs/theory.md`` §2b) with the argument of
seed 001 B.4 without positivity: Jensen gives :math:`\bar\ell \ge g(P)`, and Cauchy–Schwarz with
:math:`\sum_c (w_c - \bar w) = 0` gives :math:`P \ge -\|W\|\|H\|/((C-1)\sqrt n)`. With the logit gap
:math:`u = \|W\|\|H\|/((C-1)\sqrt n)` and AM–GM,

.. math:: \min = \min_{u \ge 0}\; \log(1 + (C-1)e^{-u}) + \gamma u,\qquad
          \gamma = \tfrac{C-1}{C}\alpha + (C-1)\sqrt{n\lambda_W\lambda_H},

so :math:`u = \log((C-1)(1-\gamma)/\gamma)` when :math:`\gamma < (C-1)/C`, else W = H = 0. The bias
(free or regularised) is a multiple of :math:`\mathbf 1` at the optimum and changes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nclab.errors import SpecError
from nclab.theory._logit_gap import _check_ce_ufm_args, _logit_gap

__all__ = ["SoftmaxUFMSolution", "softmax_ufm_minimizer"]


@dataclass(frozen=True)
class SoftmaxUFMSolution:
    """Minimiser of the plain CE / LS UFM: margin, norms, objective; ``nonzero`` iff gamma < (C-1)/C."""

    num_classes: int
    num_per_class: int
    lambda_w: float
    lambda_h: float
    alpha: float
    gamma: float
    nonzero: bool
    margin: float
    W_norm_sq: float
    H_norm_sq: float
    objective: float


def softmax_ufm_minimizer(
    num_classes: int,
    num_per_class: int,
    lambda_w: float,
    lambda_h: float,
    *,
    alpha: float = 0.0,
    feature_dim: int | None = None,
) -> SoftmaxUFMSolution:
    r"""Norms of the global minimiser of the plain CE/LS UFM (simplex-ETF collapse).

    .. math::
        u = \log\Bigl((C-1)\frac{1-\gamma}{\gamma}\Bigr),\quad
        \|W\|_F^2 = (C-1)\sqrt n\, u\sqrt{\lambda_H/\lambda_W},\quad
        \|H\|_F^2 = (C-1)\sqrt n\, u\sqrt{\lambda_W/\lambda_H},

    :math:`\gamma = \tfrac{C-1}{C}\alpha + (C-1)\sqrt{n\lambda_W\lambda_H} < \tfrac{C-1}{C}`; else zero.
    Valid for d >= C - 1. Source: seed 001 App. B.1 (structure); norms derived in ``docs/theory.md``.

    Parameters
    ----------
    num_classes, num_per_class : int
    lambda_w, lambda_h : float
        > 0.
    alpha : float, default=0.0
        Label smoothing in [0, 1).
    feature_dim : int, optional
        d; must be >= C - 1.

    Returns
    -------
    SoftmaxUFMSolution
    """
    c, n = num_classes, num_per_class
    _check_ce_ufm_args(c, n, lambda_w, lambda_h, alpha)
    if feature_dim is not None and feature_dim < c - 1:
        raise SpecError(f"a simplex ETF of {c} classes needs feature_dim >= {c - 1}; got {feature_dim}.")
    gamma = (c - 1) / c * alpha + (c - 1) * math.sqrt(n * lambda_w * lambda_h)
    nonzero, u, obj = _logit_gap(c, gamma)
    if not nonzero:
        return SoftmaxUFMSolution(c, n, float(lambda_w), float(lambda_h), float(alpha), gamma, False, 0.0, 0.0,
                                  0.0, obj)
    prod = (c - 1) * math.sqrt(n) * u  # ||W|| ||H||
    w_sq = prod * math.sqrt(lambda_h / lambda_w)
    h_sq = prod * math.sqrt(lambda_w / lambda_h)
    return SoftmaxUFMSolution(c, n, float(lambda_w), float(lambda_h), float(alpha), gamma, True, u, w_sq, h_sq, obj)
