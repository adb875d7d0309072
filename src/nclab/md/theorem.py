r"""Assumption 4.2 and Theorem 4.3 of seed 000 (proof: seed 001 App. C), checked numerically.

Theorem 4.3: under Assumption 4.2, :math:`r_*^{CE}/\|h_1^{CE}-h_2^{CE}\| > r_*^{LS}/\|h_1^{LS}-h_2^{LS}\|`.
Assumption 4.2.3 as printed: :math:`\alpha_0 > 4\sqrt{\lambda_W\lambda_H}` and
:math:`\eta^{1/2} < \tilde C (1 - 1/\gamma)` with :math:`\tilde C = C_{MD}/(\sqrt 2\,\|h_1^{CE}-h_2^{CE}\|)`
(the proof needs :math:`\tilde C = C_{MD}/(\sqrt 2 A \|h_1^{CE}-h_2^{CE}\|)`, with A the support
constant of Assumption 4.2.2; A = 1 for the circle and two-point distributions, so the printed
value is right for them; for the Gaussian A is infinite and the assumption fails).

Besides the printed (asymptotic) Lemma C.6 bound :math:`r_* \ge r_{\max}(1 - C'\eta^{1/2})`,
:math:`C' = \sqrt 2 A\|h_1-h_2\|/C_{MD}`, this module gives a non-asymptotic one derived in
``docs/md_model.md`` (Sec. 5):

.. math::

    r_* \ge r_{\max}\big(1 - C''\eta^{1/2}\big),\qquad
    C'' = \frac{\|h_1 - h_2\|}{C_{MD}}\sqrt{1 + \frac{q\,\|w_2 - w_1\|^2}{8\lambda}},

with :math:`q = \mathbb E\langle \hat d, v\rangle^2 / r^2` (1/2 for circle and Gaussian, 1 for
two-point), and hence the sufficient condition :math:`\gamma\,(1 - C''_{CE}\eta^{1/2}) > 1` for
Thm 4.3, which needs no bounded support.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nclab.md._dist import _check_dist, _second_moment_along, _support_constant
from nclab.md._nc import _nc_configuration

__all__ = ["Assumption42", "assumption_4_2", "dilation_lower_bounds"]


@dataclass(frozen=True)
class Assumption42:
    """Which parts of seed 000 Assumption 4.2 hold (binary MD model).

    Attributes
    ----------
    alpha_condition : bool
        alpha_0 > 4 sqrt(lambda_W lambda_H) (as printed; gamma > 1 holds for every alpha_0 > 0).
    noise_condition : bool
        eta^(1/2) < C~ (1 - 1/gamma).
    bounded_support : bool
        ||v|| <= A r on the support of mu_r for a finite A.
    gamma : float
        ||H^CE|| / ||H^LS||.
    c_tilde : float
        C_MD / (sqrt(2) A ||h1^CE - h2^CE||) (0 when A is infinite).
    rigorous_condition : bool
        gamma (1 - C''_CE eta^(1/2)) > 1: the corrected, non-asymptotic sufficient condition.
    """

    alpha_condition: bool
    noise_condition: bool
    bounded_support: bool
    gamma: float
    c_tilde: float
    support_constant: float
    rigorous_condition: bool

    @property
    def holds(self) -> bool:
        """All printed conditions of Assumption 4.2 hold."""
        return self.alpha_condition and self.noise_condition and self.bounded_support


def _c_double_prime(cfg, c_md: float, dist: str) -> float:
    q = _second_moment_along(dist)
    return cfg.h_dist / c_md * math.sqrt(1.0 + q * cfg.d_norm**2 / (8.0 * cfg.lambda_h))


def assumption_4_2(
    *,
    alpha: float,
    lambda_w: float,
    lambda_h: float,
    eta: float,
    c_md: float,
    dist: str = "circle",
) -> Assumption42:
    r"""Check seed 000 Assumption 4.2 (parts 2 and 3; part 1 holds by construction) for alpha_0.

    Parameters
    ----------
    alpha : float
        The LS parameter alpha_0 in (0, 1).
    lambda_w, lambda_h, eta, c_md, dist
        As in :func:`nclab.md.solve_md`.

    Returns
    -------
    Assumption42
    """
    dist = _check_dist(dist)
    ce = _nc_configuration(0.0, lambda_w=lambda_w, lambda_h=lambda_h)
    ls = _nc_configuration(alpha, lambda_w=lambda_w, lambda_h=lambda_h)
    gamma = ce.h_norm / ls.h_norm
    a_const = _support_constant(dist)
    c_tilde = 0.0 if math.isinf(a_const) else c_md / (math.sqrt(2.0) * a_const * ce.h_dist)
    root = math.sqrt(float(eta))
    return Assumption42(
        alpha_condition=float(alpha) > 4.0 * math.sqrt(lambda_w * lambda_h),
        noise_condition=root < c_tilde * (1.0 - 1.0 / gamma),
        bounded_support=math.isfinite(a_const),
        gamma=gamma,
        c_tilde=c_tilde,
        support_constant=a_const,
        rigorous_condition=gamma * (1.0 - _c_double_prime(ce, c_md, dist) * root) > 1.0,
    )


def dilation_lower_bounds(
    *,
    alpha: float,
    lambda_w: float,
    lambda_h: float,
    eta: float,
    c_md: float,
    dist: str = "circle",
) -> dict[str, float]:
    r"""Lower bounds on r_* from Lemma C.6 (printed, asymptotic) and its corrected form.

    Returns
    -------
    dict
        ``r_max``; ``paper`` = :math:`r_{\max}(1 - C'\eta^{1/2})` (-inf when A is infinite);
        ``rigorous`` = :math:`r_{\max}(1 - C''\eta^{1/2})`; ``c_prime``, ``c_double_prime``.
    """
    dist = _check_dist(dist)
    cfg = _nc_configuration(alpha, lambda_w=lambda_w, lambda_h=lambda_h)
    r_max = float(eta) * cfg.h_dist**2 / c_md
    a_const = _support_constant(dist)
    c1 = math.sqrt(2.0) * a_const * cfg.h_dist / c_md
    c2 = _c_double_prime(cfg, c_md, dist)
    root = math.sqrt(float(eta))
    paper = -math.inf if math.isinf(c1) else r_max * (1.0 - c1 * root)
    return {"r_max": r_max, "paper": paper, "rigorous": r_max * (1.0 - c2 * root),
            "c_prime": c1, "c_double_prime": c2}
