r"""UFM with a fixed simplex-ETF classifier (seed 002 Sec. 5.2; Yang et al. 2022, Thm 1).

.. math::
    \min_H\; \frac1N\sum_{i=1}^N \ell(W h_i, y_i) + \frac{\lambda_H}{2}\|H\|_F^2,\qquad
    W = s\,(\text{simplex ETF rows}) \text{ (optionally permuted or rotated), fixed},

C classes, n per class, N = Cn. For CE, LS and MSE the problem is strictly convex in H and invariant
under the symmetries of the ETF, so its unique minimiser is :math:`h_i = a\, w_{y_i}` for a scalar a >= 0; the logits of a
sample are :math:`a s^2` (own class) and :math:`-a s^2/(C-1)` (others), margin
:math:`\Delta = a s^2 C/(C-1)`, and a solves the scalar equation :math:`\varphi'(a) = 0` with

.. math:: \varphi(a) = \ell(\Delta(a)) + \tfrac{\lambda_H}{2} N a^2 s^2 .

For MSE, :math:`a = 1/(s^2 C/(C-1) + \lambda_H N)` exactly. Label relaxation is not convex in the
logits in general; for it the symmetric point is a stationary point that the solver confirms as the
minimiser. Permuting or rotating the ETF does not change the minimal value (``docs/theory.md`` §5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nclab.errors import SpecError

__all__ = ["FixedETFSolution", "fixed_etf_minimizer", "margin_loss"]


def margin_loss(loss: str, margin: float, num_classes: int, alpha: float = 0.0) -> tuple[float, float]:
    r"""Per-sample loss and its derivative in the margin Δ when logits are Δ-symmetric.

    For logits :math:`z_y - z_k = \Delta` for all :math:`k \ne y`:
    CE/LS :math:`\log(1+(C-1)e^{-\Delta}) + \beta\Delta`, :math:`\beta = \tfrac{C-1}{C}\alpha`;
    LR :math:`(1-\alpha)\log\tfrac{1-\alpha}{p_y} + \alpha\log\tfrac{\alpha}{1-p_y}` while :math:`p_y < 1-\alpha`
    (else 0), :math:`p_y = 1/(1+(C-1)e^{-\Delta})`. Returns ``(value, d value / d Δ)``.
    """
    c = num_classes
    # 1 - p_y = (C-1) e^{-Δ} / (1 + (C-1) e^{-Δ}), computed stably
    log_q = math.log(c - 1) - margin  # log((C-1) e^{-Δ})
    log1p_q = math.log1p(math.exp(log_q)) if log_q < 30 else log_q + math.log1p(math.exp(-log_q))
    one_minus_py = math.exp(log_q - log1p_q)
    if loss in ("ce", "ls"):
        a = alpha if loss == "ls" else 0.0
        beta = (c - 1) / c * a
        return log1p_q + beta * margin, -one_minus_py + beta
    if loss == "lr":
        if alpha == 0.0:
            return log1p_q, -one_minus_py
        py = 1.0 - one_minus_py
        if py >= 1.0 - alpha:
            return 0.0, 0.0
        log_py = -log1p_q
        log_rest = log_q - log1p_q
        val = (1 - alpha) * (math.log(1 - alpha) - log_py) + alpha * (math.log(alpha) - log_rest)
        return val, py - (1.0 - alpha)
    raise SpecError(f"margin_loss needs loss 'ce', 'ls' or 'lr'; got {loss!r}.")


@dataclass(frozen=True)
class FixedETFSolution:
    """Minimiser of the fixed-ETF UFM: :math:`h_i = a\\, w_{y_i}`.

    Attributes
    ----------
    a : float
        Feature-to-classifier ratio.
    margin : float
        Logit gap :math:`a s^2 C/(C-1)`.
    H_norm_sq, W_norm_sq, objective : float
    """

    num_classes: int
    num_per_class: int
    lambda_h: float
    loss: str
    alpha: float
    weight_scale: float
    a: float
    margin: float
    H_norm_sq: float
    W_norm_sq: float
    objective: float


def fixed_etf_minimizer(
    num_classes: int,
    num_per_class: int,
    lambda_h: float,
    *,
    loss: str = "ce",
    alpha: float = 0.0,
    weight_scale: float = 1.0,
) -> FixedETFSolution:
    r"""Closed form (up to one monotone scalar equation) of the fixed-ETF-classifier UFM.

    Solves :math:`\varphi'(a) = \tau\,\ell'(a\tau) + \lambda_H N s^2 a = 0`, :math:`\tau = s^2 C/(C-1)`,
    by bisection to machine precision (:math:`\varphi` is convex); MSE in closed form.

    Source: Yang et al. (NeurIPS 2022), Thm 1 (features align with the fixed ETF); seed 002 Sec. 5.2.

    Parameters
    ----------
    num_classes, num_per_class : int
    lambda_h : float
        > 0.
    loss : {"ce", "ls", "lr", "mse"}
    alpha : float, default=0.0
    weight_scale : float, default=1.0
        Row norm s of the fixed classifier.

    Returns
    -------
    FixedETFSolution
    """
    c, n = int(num_classes), int(num_per_class)
    if c < 2 or n < 1:
        raise SpecError(f"need num_classes >= 2 and num_per_class >= 1; got {num_classes}, {num_per_class}.")
    if not (math.isfinite(lambda_h) and lambda_h > 0):
        raise SpecError(f"lambda_h must be a finite number > 0; got {lambda_h!r}.")
    if not 0.0 <= alpha < 1.0:
        raise SpecError(f"alpha must lie in [0, 1); got {alpha!r}.")
    s2 = float(weight_scale) ** 2
    big_n = c * n
    tau = s2 * c / (c - 1)
    if loss == "mse":
        a = 1.0 / (tau + lambda_h * big_n)
        z_own, z_other = a * s2, -a * s2 / (c - 1)
        val = 0.5 * ((z_own - 1) ** 2 + (c - 1) * z_other**2)
    elif loss in ("ce", "ls", "lr"):
        def dphi(x):
            return tau * margin_loss(loss, x * tau, c, alpha)[1] + lambda_h * big_n * s2 * x

        lo, hi = 0.0, 1.0
        while dphi(hi) < 0:
            hi *= 2.0
        for _ in range(300):
            mid = 0.5 * (lo + hi)
            if dphi(mid) < 0:
                lo = mid
            else:
                hi = mid
            if hi - lo <= 1e-16 * hi:
                break
        a = 0.5 * (lo + hi)
        val = margin_loss(loss, a * tau, c, alpha)[0]
    else:
        raise SpecError(f"loss must be one of ce, ls, lr, mse; got {loss!r}.")
    h_sq = big_n * a * a * s2
    return FixedETFSolution(
        c, n, float(lambda_h), loss, float(alpha), float(weight_scale), a, a * tau, h_sq, c * s2,
        val + 0.5 * lambda_h * h_sq,
    )
