r"""Closed form of the positive-feature layer-peeled model (Nguyen et al., ICLR 2023, Thm 3.2).

Problem :math:`(\mathcal P_\alpha)` with N classes, K samples per class, feature dimension M:

.. math::
    \min_{W, H \ge 0}\; \frac{1}{NK}\sum_{n,k} \ell_\alpha(W h_n^{(k)}, y_n)
    + \lambda_W\|W\|_F^2 + \frac{\lambda_H}{K}\|H\|_F^2,

:math:`W \in \mathbb R^{N\times M}` (rows :math:`w_n`), :math:`H \in \mathbb R^{M\times NK}`,
:math:`\ell_\alpha` the label-smoothing loss (CE for :math:`\alpha = 0`). Code names: ``num_classes``
= N, ``num_per_class`` = K, ``feature_dim`` = M.

Derivation (``docs/theory.md`` §1, which also lists the corrections of the source). With
:math:`\beta = \tfrac{N-1}{N}\alpha`, :math:`\kappa = 2\sqrt{N(N-1)\lambda_W\lambda_H}` and
:math:`\gamma = \beta + \kappa`, every minimiser is an NC configuration with logit gap
:math:`u = \langle w_n - w_m, h_n\rangle`

.. math:: u = \log\Bigl((N-1)\frac{1-\gamma}{\gamma}\Bigr), \qquad
          \|W\|_F^2 = u\sqrt{N(N-1)}\sqrt{\lambda_H/\lambda_W}, \qquad
          \|H\|_F^2 = u K\sqrt{N(N-1)}\sqrt{\lambda_W/\lambda_H},

provided :math:`\gamma < \tfrac{N-1}{N}`; otherwise the unique minimiser is :math:`W = 0, H = 0`
(objective :math:`\log N`). The source prints :math:`\sqrt{(N-1)\lambda_W\lambda_H}` instead of
:math:`\sqrt{N(N-1)\lambda_W\lambda_H}` and the condition :math:`\gamma < 1`; both are wrong
(the proof drops the factor :math:`\sqrt N` of its own Lemma B.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nclab.errors import SpecError
from nclab.theory._logit_gap import _check_ce_ufm_args, _logit_gap

__all__ = ["PositiveNCSolution", "positive_nc_norms", "positive_nc_paper_condition"]


@dataclass(frozen=True)
class PositiveNCSolution:
    """Norms of the global minimiser of :math:`(\\mathcal P_\\alpha)` (seed 000, Thm 3.2, corrected).

    Attributes
    ----------
    num_classes, num_per_class : int
        N and K.
    lambda_w, lambda_h, alpha : float
    nonzero : bool
        True when :math:`\\gamma < (N-1)/N` (minimiser is a nonzero NC configuration), False when the
        minimiser is W = 0, H = 0.
    gamma : float
        :math:`\\beta + 2\\sqrt{N(N-1)\\lambda_W\\lambda_H}`.
    margin : float
        Logit gap :math:`u = \\langle w_n - w_m, h_n \\rangle` (0 when not ``nonzero``).
    w_norm, h_norm : float
        Row norm :math:`\\|w_n\\|` and class-mean norm :math:`\\|h_n\\|` (the same for every class).
    W_norm_sq, H_norm_sq : float
        :math:`\\|W\\|_F^2 = N\\|w_n\\|^2` and :math:`\\|H\\|_F^2 = NK\\|h_n\\|^2`.
    objective : float
        Minimal value of :math:`(\\mathcal P_\\alpha)`.
    weight_scale : float
        C of Def. 3.1 (iii), :math:`w_n = C (h_n - \\bar h)`.
    paper_condition : bool
        Whether the condition printed in Thm 3.2, :math:`\\beta + 2\\sqrt{(N-1)\\lambda_W\\lambda_H} < 1`,
        holds (it is necessary-looking but not sufficient; see ``docs/theory.md``).
    """

    num_classes: int
    num_per_class: int
    lambda_w: float
    lambda_h: float
    alpha: float
    nonzero: bool
    gamma: float
    margin: float
    w_norm: float
    h_norm: float
    W_norm_sq: float
    H_norm_sq: float
    objective: float
    weight_scale: float
    paper_condition: bool


def _validate(num_classes, num_per_class, lambda_w, lambda_h, alpha, feature_dim):
    _check_ce_ufm_args(
        num_classes, num_per_class, lambda_w, lambda_h, alpha, names=("num_classes (N)", "num_per_class (K)")
    )
    if feature_dim is not None and feature_dim < num_classes:
        raise SpecError(
            f"Thm 3.2 needs feature_dim M >= N = {num_classes}; got M = {feature_dim}. Raise the dimension."
        )


def positive_nc_paper_condition(num_classes: int, lambda_w: float, lambda_h: float, alpha: float) -> bool:
    r"""The condition as printed in seed 000 Thm 3.2: :math:`\tfrac{N-1}{N}\alpha + 2\sqrt{(N-1)\lambda_W\lambda_H} < 1`."""
    n = num_classes
    return (n - 1) / n * alpha + 2.0 * math.sqrt((n - 1) * lambda_w * lambda_h) < 1.0


def positive_nc_norms(
    num_classes: int,
    lambda_w: float,
    lambda_h: float,
    alpha: float = 0.0,
    *,
    num_per_class: int = 1,
    feature_dim: int | None = None,
) -> PositiveNCSolution:
    r"""Norms of w and h at the global minimiser of the positive layer-peeled model (seed 000 Thm 3.2).

    .. math::
        u = \log\Bigl((N-1)\tfrac{1-\gamma}{\gamma}\Bigr),\quad
        \|w_n\|^2 = u\sqrt{\tfrac{N-1}{N}}\sqrt{\tfrac{\lambda_H}{\lambda_W}},\quad
        \|h_n\|^2 = u\sqrt{\tfrac{N-1}{N}}\sqrt{\tfrac{\lambda_W}{\lambda_H}},

    :math:`\gamma = \tfrac{N-1}{N}\alpha + 2\sqrt{N(N-1)\lambda_W\lambda_H}`, valid (nonzero NC
    configuration) when :math:`\gamma < \tfrac{N-1}{N}`; else the minimiser is zero. The per-class
    norms do not depend on K (the regulariser :math:`\tfrac{\lambda_H}{K}\|H\|^2` is per class mean).

    Source: Nguyen et al. (ICLR 2023), Thm 3.2 and eqs. (25, 26), corrected (``docs/theory.md`` §1).

    Parameters
    ----------
    num_classes : int
        N >= 2.
    lambda_w, lambda_h : float
        Weight-decay parameters, > 0.
    alpha : float, default=0.0
        Label-smoothing parameter in [0, 1) (0 = cross-entropy).
    num_per_class : int, default=1
        K, only used for ``H_norm_sq``.
    feature_dim : int, optional
        M; if given it must be >= N.

    Returns
    -------
    PositiveNCSolution
        Frozen; O(1) cost.

    Raises
    ------
    SpecError
        On invalid parameters.

    Examples
    --------
    >>> s = positive_nc_norms(2, 1e-3, 1e-3, 0.1)
    >>> s.nonzero, round(s.margin, 4)
    (True, 2.8864)
    """
    _validate(num_classes, num_per_class, lambda_w, lambda_h, alpha, feature_dim)
    n, k = num_classes, num_per_class
    beta = (n - 1) / n * alpha
    kappa = 2.0 * math.sqrt(n * (n - 1) * lambda_w * lambda_h)
    gamma = beta + kappa
    paper = positive_nc_paper_condition(n, lambda_w, lambda_h, alpha)
    nonzero, u, objective = _logit_gap(n, gamma)
    if not nonzero:
        return PositiveNCSolution(
            n, k, float(lambda_w), float(lambda_h), float(alpha), False, gamma,
            0.0, 0.0, 0.0, 0.0, 0.0, objective, 0.0, paper,
        )
    w_sq = u * math.sqrt((n - 1) / n) * math.sqrt(lambda_h / lambda_w)
    h_sq = u * math.sqrt((n - 1) / n) * math.sqrt(lambda_w / lambda_h)
    # w_n = C (h_n - hbar) with ||h_n - hbar||^2 = (N-1)/N ||h_n||^2
    weight_scale = math.sqrt(w_sq / ((n - 1) / n * h_sq))
    return PositiveNCSolution(
        n, k, float(lambda_w), float(lambda_h), float(alpha), True, gamma,
        u, math.sqrt(w_sq), math.sqrt(h_sq), n * w_sq, n * k * h_sq, objective, weight_scale, paper,
    )
