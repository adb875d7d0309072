r"""Closed forms of the MSE unconstrained-features models (Tirer & Bruna, ICML 2022, Thms 3.1, 3.2, 4.1).

Plain UFM, K classes, n samples per class, feature dimension d, :math:`Y = I_K \otimes 1_n^\top`:

.. math::
    \min_{W, H, b}\; \frac{1}{2Kn}\|WH + b 1_{Kn}^\top - Y\|_F^2 + \frac{\lambda_W}{2}\|W\|_F^2
    + \frac{\lambda_H}{2}\|H\|_F^2 \;(+\tfrac{\lambda_b}{2}\|b\|^2),

:math:`W \in \mathbb R^{K\times d}`, :math:`H \in \mathbb R^{d\times Kn}`. Two-layer extension (eq. 23):
:math:`\tfrac{1}{2Kn}\|W_2 W_1 H_1 - Y\|^2 + \tfrac{\lambda_{W_2}}2\|W_2\|^2 + \tfrac{\lambda_{W_1}}2\|W_1\|^2
+ \tfrac{\lambda_{H_1}}2\|H_1\|^2`; with a ReLU, :math:`W_2\sigma(W_1H_1)` (eq. 24).

Derivation (``docs/theory.md`` §2). The minimisers collapse, :math:`H = \bar H \otimes 1_n^\top`, and for
a product :math:`Z = A_L\cdots A_1` the least value of :math:`\sum_i \tfrac{a_i}{2}\|A_i\|_F^2` is
:math:`\tfrac L2 (\prod_i a_i)^{1/L}\sum_j \sigma_j(Z)^{2/L}`. Hence every singular value s of
:math:`Z = W\bar H` solves a scalar problem:

* two factors (Thm 3.1, no bias; Thm 3.2, unregularised bias, target :math:`I - \tfrac1K 11^\top`):
  :math:`s = (1 - K\sqrt{n\lambda_W\lambda_H})_+`, so
  :math:`WW^\top = \sqrt{n\lambda_H/\lambda_W}\, s\, P` and :math:`\bar H^\top\bar H = \sqrt{\lambda_W/(n\lambda_H)}\, s\, P`
  with :math:`P = I_K` (no bias) or :math:`I_K - \tfrac1K 11^\top` (free bias, then :math:`b = \tfrac1K 1`);
  the minimiser is zero when :math:`K\sqrt{n\lambda_W\lambda_H} \ge 1`.
* three factors (Thm 4.1): with :math:`c = (n\lambda_{W_1}\lambda_{W_2}\lambda_{H_1})^{1/3}`,
  :math:`s = t^3` where t is the largest root of :math:`t^4 - t + Kc = 0`, when :math:`Kc < 2^{-4/3}`
  (i.e. :math:`K^3 n\lambda_{W_1}\lambda_{W_2}\lambda_{H_1} < 1/16`); otherwise the minimiser is zero.
  Then :math:`\lambda_{W_2}\sigma_{W_2}^2 = \lambda_{W_1}\sigma_{W_1}^2 = n\lambda_{H_1}\sigma_{H}^2 = c\,s^{2/3}`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nclab.errors import SpecError

__all__ = [
    "MSEUFMSolution",
    "ExtendedUFMSolution",
    "mse_ufm_minimizer",
    "mse_ufm_threshold",
    "extended_mse_minimizer",
    "extended_mse_threshold",
]


def _pos_int(name, v, minimum=1):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}; got {v!r}.")
    return int(v)


def _pos_float(name, v):
    if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
        raise SpecError(f"{name} must be a finite number > 0; got {v!r}.")
    return float(v)


@dataclass(frozen=True)
class MSEUFMSolution:
    """Global minimiser of the plain MSE UFM (seed 004 Thm 3.1 / 3.2), described by Gram matrices.

    Attributes
    ----------
    bias : str
        ``"none"`` (Thm 3.1) or ``"free"`` (unregularised bias, Thm 3.2).
    rho : float
        :math:`K\\sqrt{n\\lambda_W\\lambda_H}`; the minimiser is zero iff ``rho >= 1``.
    s : float
        Nonzero singular value of :math:`W\\bar H`, ``max(0, 1 - rho)``.
    WWt : ndarray of shape (K, K)
        :math:`WW^\\top`.
    HbartHbar : ndarray of shape (K, K)
        Gram matrix of the class means, :math:`\\bar H^\\top \\bar H`; :math:`H^\\top H = \\bar H^\\top\\bar H \\otimes 11^\\top`.
    b : ndarray of shape (K,) or None
        The bias (``1/K`` for ``"free"``), None for ``"none"``.
    W_norm_sq, H_norm_sq, objective : float
    """

    num_classes: int
    num_per_class: int
    lambda_w: float
    lambda_h: float
    bias: str
    rho: float
    s: float
    WWt: np.ndarray
    HbartHbar: np.ndarray
    b: np.ndarray | None
    W_norm_sq: float
    H_norm_sq: float
    objective: float

    @property
    def nonzero(self) -> bool:
        return self.s > 0.0

    def HtH(self) -> np.ndarray:
        r"""Gram matrix of all N = K n features, :math:`H^\top H = \bar H^\top\bar H \otimes 1_n 1_n^\top`, (N, N)."""
        return np.kron(self.HbartHbar, np.ones((self.num_per_class, self.num_per_class)))


def mse_ufm_threshold(num_classes: int, num_per_class: int, lambda_w: float, lambda_h: float) -> float:
    r""":math:`K\sqrt{n\lambda_H\lambda_W}`; at or beyond 1 the plain MSE UFM minimiser is zero (Thms 3.1, 3.2)."""
    return num_classes * math.sqrt(num_per_class * lambda_w * lambda_h)


def mse_ufm_minimizer(
    num_classes: int,
    num_per_class: int,
    lambda_w: float,
    lambda_h: float,
    *,
    bias: str = "none",
    feature_dim: int | None = None,
) -> MSEUFMSolution:
    r"""Closed-form minimiser of the MSE UFM, bias-free (Thm 3.1) or with unregularised bias (Thm 3.2).

    .. math::
        WW^\top = \sqrt{\tfrac{n\lambda_H}{\lambda_W}}\,(1-\rho)_+\,P,\qquad
        \bar H^\top\bar H = \sqrt{\tfrac{\lambda_W}{n\lambda_H}}\,(1-\rho)_+\,P,\qquad
        \rho = K\sqrt{n\lambda_W\lambda_H},

    :math:`P = I_K` (bias ``"none"``, an orthogonal frame, needs d >= K) or
    :math:`P = I_K - \tfrac1K 11^\top` (bias ``"free"``, a simplex ETF, needs d >= K - 1, :math:`b = \tfrac1K 1`).
    Objective :math:`\tfrac{r}{2K}(1-s)^2 + \sqrt{n\lambda_W\lambda_H}\, r s` with r = rank P.

    Source: Tirer & Bruna (ICML 2022), Thms 3.1 and 3.2 (re-derived in ``docs/theory.md`` §2).

    Parameters
    ----------
    num_classes, num_per_class : int
        K >= 2 and n >= 1.
    lambda_w, lambda_h : float
        > 0.
    bias : {"none", "free"}, default="none"
    feature_dim : int, optional
        d; checked against the rank the theorem needs.

    Returns
    -------
    MSEUFMSolution
        O(K^2) cost.
    """
    k = _pos_int("num_classes", num_classes, 2)
    n = _pos_int("num_per_class", num_per_class, 1)
    lw = _pos_float("lambda_w", lambda_w)
    lh = _pos_float("lambda_h", lambda_h)
    if bias not in ("none", "free"):
        raise SpecError(
            f"bias must be 'none' (Thm 3.1) or 'free' (Thm 3.2) for a closed form; got {bias!r}. "
            "The regularised-bias case has no closed form."
        )
    need = k if bias == "none" else k - 1
    if feature_dim is not None and feature_dim < need:
        raise SpecError(f"the theorem needs feature_dim >= {need} with bias={bias!r}; got {feature_dim}.")
    rho = mse_ufm_threshold(k, n, lw, lh)
    s = max(0.0, 1.0 - rho)
    proj = np.eye(k) if bias == "none" else np.eye(k) - np.full((k, k), 1.0 / k)
    r = k if bias == "none" else k - 1
    wwt = math.sqrt(n * lh / lw) * s * proj
    hth = math.sqrt(lw / (n * lh)) * s * proj
    b = None if bias == "none" else np.full(k, 1.0 / k)
    objective = r / (2 * k) * (1 - s) ** 2 + math.sqrt(n * lw * lh) * r * s
    return MSEUFMSolution(
        k, n, lw, lh, bias, rho, s, wwt, hth, b, float(np.trace(wwt)), float(n * np.trace(hth)), objective
    )


@dataclass(frozen=True)
class ExtendedUFMSolution:
    """Global minimiser of the two-layer (linear) MSE UFM (seed 004 eq. 23, Thm 4.1), in norms.

    Attributes
    ----------
    c : float
        :math:`(n\\lambda_{W_1}\\lambda_{W_2}\\lambda_{H_1})^{1/3}`.
    threshold : float
        :math:`Kc`; the minimiser is nonzero iff ``threshold < 2**(-4/3)``.
    s : float
        Common singular value of :math:`W_2W_1\\bar H_1` (0 for the zero minimiser).
    W2_norm_sq, W1_norm_sq, H1_norm_sq, H2_norm_sq : float
        Squared Frobenius norms; ``H2 = W1 H1`` (the K n columns).
    objective : float
    """

    num_classes: int
    num_per_class: int
    lambda_w2: float
    lambda_w1: float
    lambda_h: float
    c: float
    threshold: float
    s: float
    W2_norm_sq: float
    W1_norm_sq: float
    H1_norm_sq: float
    H2_norm_sq: float
    objective: float

    @property
    def nonzero(self) -> bool:
        return self.s > 0.0


def extended_mse_threshold(
    num_classes: int, num_per_class: int, lambda_w2: float, lambda_w1: float, lambda_h: float
) -> float:
    r""":math:`K (n\lambda_{W_1}\lambda_{W_2}\lambda_{H_1})^{1/3}`; the extended-UFM minimiser is zero beyond :math:`2^{-4/3}`."""
    return num_classes * (num_per_class * lambda_w2 * lambda_w1 * lambda_h) ** (1.0 / 3.0)


def _largest_root_quartic(kc: float) -> float:
    """Largest root in (4^{-1/3}, 1) of t^4 - t + kc = 0 (exists for kc <= 3/4 * 4^{-1/3})."""
    lo, hi = 4.0 ** (-1.0 / 3.0), 1.0
    f = lambda t: t**4 - t + kc  # noqa: E731 - increasing on [lo, 1]
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-17:
            break
    t = 0.5 * (lo + hi)
    # two Newton polish steps
    for _ in range(2):
        t -= (t**4 - t + kc) / (4 * t**3 - 1)
    return t


def extended_mse_minimizer(
    num_classes: int,
    num_per_class: int,
    lambda_w2: float,
    lambda_w1: float,
    lambda_h: float,
    *,
    feature_dim: int | None = None,
) -> ExtendedUFMSolution:
    r"""Closed-form norms of the global minimiser of the linear extended MSE UFM (seed 004 eq. 23).

    With :math:`c = (n\lambda_{W_1}\lambda_{W_2}\lambda_{H_1})^{1/3}`, each of the K singular values of
    :math:`W_2W_1\bar H_1` minimises :math:`\psi(s) = \tfrac{(s-1)^2}{2K} + \tfrac32 c\, s^{2/3}`, so
    :math:`s = t^3` with t the largest root of :math:`t^4 - t + Kc = 0` when :math:`Kc < 2^{-4/3}`,
    else s = 0. Then :math:`\|W_2\|^2 = Kcs^{2/3}/\lambda_{W_2}`, :math:`\|W_1\|^2 = Kcs^{2/3}/\lambda_{W_1}`,
    :math:`\|H_1\|^2 = Kcs^{2/3}/\lambda_{H_1}`, :math:`\|H_2\|^2 = n K (cs^{2/3})^2/(n\lambda_{H_1}\lambda_{W_1})`,
    objective :math:`K\psi(s)`. Structure (Thm 4.1): :math:`H_1, H_2` orthogonal frames, :math:`W_2 \propto \bar H_2^\top`,
    :math:`W_1 \propto \bar H_2\bar H_1^\top`. The same values hold for the ReLU model (eq. 24) under the
    assumption of Thm 4.2 (checked numerically by ``nclab verify``).

    Source: derived here (``docs/theory.md`` §3); the structure is Tirer & Bruna (ICML 2022), Thm 4.1.

    Parameters
    ----------
    num_classes, num_per_class : int
    lambda_w2, lambda_w1, lambda_h : float
        > 0.
    feature_dim : int, optional
        d >= K required.

    Returns
    -------
    ExtendedUFMSolution
    """
    k = _pos_int("num_classes", num_classes, 2)
    n = _pos_int("num_per_class", num_per_class, 1)
    l2 = _pos_float("lambda_w2", lambda_w2)
    l1 = _pos_float("lambda_w1", lambda_w1)
    lh = _pos_float("lambda_h", lambda_h)
    if feature_dim is not None and feature_dim < k:
        raise SpecError(f"Thm 4.1 needs feature_dim >= K = {k}; got {feature_dim}.")
    c = (n * l1 * l2 * lh) ** (1.0 / 3.0)
    kc = k * c
    if kc < 2.0 ** (-4.0 / 3.0):
        t = _largest_root_quartic(kc)
        s = t**3
    else:
        s = 0.0
    e = c * s ** (2.0 / 3.0)  # lambda_i * sigma_i^2, the same for the three factors
    objective = (s - 1.0) ** 2 / 2.0 + 1.5 * c * k * s ** (2.0 / 3.0)
    h1_sq = k * e / lh  # ||H1||^2 = n * K * sigma_H^2 with n sigma_H^2 lambda_H = e
    h2_sq = n * k * (e / l1) * (e / (n * lh))
    return ExtendedUFMSolution(
        k, n, l2, l1, lh, c, kc, s, k * e / l2, k * e / l1, h1_sq, h2_sq, objective
    )
