r"""The NC configuration that the MD model freezes (seed 000, Assumption 4.2.1, Def. 3.1).

The MD model of Nguyen et al. (ICLR 2023, Sec. 4.2) keeps ``(W, H)`` fixed at the minimiser of

.. math::

    \min_{W, H \ge 0}\; \sum_{n=1}^{N} \ell_\alpha(W, h_n, y_n^{(\alpha)})
        + \lambda_W \|W\|^2 + \lambda_H \|H\|^2 ,

one feature per class and the loss *summed* over classes (Assumption 4.2.1 of seed 000, not the
class-averaged problem :math:`(\mathcal{P}_\alpha)`: the summed form is the one for which the
MD model's Remark 1, "the unconstrained minimiser of G is U = H", holds with
:math:`\lambda = \lambda_H`; see ``docs/md_model.md``).

Closed form (derived in ``docs/md_model.md``, Sec. 2).  Write :math:`s = \langle w_n - w_m, h_n
\rangle` for the logit margin of an NC configuration (:math:`h_n = \rho e_n`,
:math:`w_n = c\,(h_n - \bar h)`, so :math:`s = c\rho^2`).  With

.. math::

    \kappa = \tfrac{N-1}{N}\alpha + 2\sqrt{\tfrac{N-1}{N}\lambda_W\lambda_H},\qquad
    s^\star = \log\frac{(N-1)(1-\kappa)}{\kappa},\qquad
    \rho^2 = s^\star \sqrt{\tfrac{N-1}{N}}\sqrt{\lambda_W/\lambda_H},\qquad c = s^\star/\rho^2 .

For N = 2: :math:`\kappa = \alpha/2 + \sqrt{2\lambda_W\lambda_H}`, :math:`\rho^2 = s^\star\sqrt{\lambda_W/(2\lambda_H)}`,
:math:`c = \sqrt{2\lambda_H/\lambda_W}`, :math:`\|h_1 - h_2\| = \|H\| = \sqrt 2\rho`.

The numbers come from the shared closed form :func:`nclab.theory.positive_nc_norms` (seed 000
Thm 3.2, corrected), which solves the class-*averaged* problem :math:`(\mathcal P_\alpha)`.  The
averaged problem with weight decays :math:`(\lambda_W, \lambda_H)` equals this summed one with
:math:`(N\lambda_W, N\lambda_H)`, divided by N; so the summed problem with :math:`(\lambda_W,
\lambda_H)` is solved by ``positive_nc_norms(N, lambda_W / N, lambda_H / N, alpha)`` (its
:math:`\gamma` is the :math:`\kappa` above, its margin :math:`s^\star`, its class-mean norm
:math:`\rho` and its weight scale :math:`c`).  This module keeps md's conventions (summed problem,
:math:`\lambda = \lambda_H`, its own argument checks and messages) and builds W and H.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nclab.errors import SpecError
from nclab.theory.positive import positive_nc_norms

__all__: list[str] = []


@dataclass(frozen=True)
class _NCConfig:
    """An NC configuration with one feature per class; rows of ``W`` and ``H`` are w_n, h_n."""

    num_classes: int
    alpha: float
    lambda_w: float
    lambda_h: float
    kappa: float
    margin: float  # s = <w_n - w_m, h_n> = c rho^2
    rho: float  # ||h_n||
    c: float  # w_n = c (h_n - hbar)
    W: np.ndarray  # (N, M)
    H: np.ndarray  # (N, M)

    @property
    def h_dist(self) -> float:
        """||h_n - h_m|| = sqrt(2) rho."""
        return math.sqrt(2.0) * self.rho

    @property
    def h_norm(self) -> float:
        """||H||_F = sqrt(N) rho."""
        return math.sqrt(self.num_classes) * self.rho

    @property
    def w_norm(self) -> float:
        """||W||_F = c rho sqrt(N - 1)."""
        return self.c * self.rho * math.sqrt(self.num_classes - 1)

    @property
    def d_norm(self) -> float:
        """||w_m - w_n|| = c sqrt(2) rho (the binary logit-gap direction)."""
        return self.c * math.sqrt(2.0) * self.rho


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"{name} must be a finite number > 0; got {value!r}.")
    return value


def _nc_configuration(
    alpha: float,
    *,
    lambda_w: float,
    lambda_h: float,
    num_classes: int = 2,
    dim: int | None = None,
) -> _NCConfig:
    r"""Minimiser of the summed layer-peeled problem of seed 000 Assumption 4.2.1 (closed form).

    Parameters
    ----------
    alpha : float
        Label-smoothing parameter in [0, 1); 0 is cross-entropy.
    lambda_w, lambda_h : float
        Weight decays on W and H (> 0).
    num_classes : int, default=2
        N >= 2.
    dim : int or None, default=None
        Feature dimension M >= N (None: M = N).  h_n = rho e_n.

    Returns
    -------
    _NCConfig

    Raises
    ------
    SpecError
        If :math:`\kappa \ge (N-1)/N`: then the minimiser is W = H = 0 and the MD model is undefined.

    Notes
    -----
    O(N M) time.  Verified in ``tests/md/test_nc.py`` against L-BFGS-B on the full problem.
    """
    alpha = float(alpha)
    if not (0.0 <= alpha < 1.0):
        raise SpecError(f"alpha must lie in [0, 1); got {alpha!r}.")
    lambda_w = _check_positive("lambda_w", lambda_w)
    lambda_h = _check_positive("lambda_h", lambda_h)
    n = int(num_classes)
    if n < 2:
        raise SpecError(f"num_classes must be >= 2; got {num_classes!r}.")
    m = n if dim is None else int(dim)
    if m < n:
        raise SpecError(f"dim must be >= num_classes={n}; got {dim!r}.")
    # summed problem with (lambda_w, lambda_h) = N x averaged problem with (lambda_w / N, lambda_h / N)
    sol = positive_nc_norms(n, lambda_w / n, lambda_h / n, alpha)
    kappa = sol.gamma  # = (N-1)/N alpha + 2 sqrt((N-1)/N lambda_w lambda_h)
    if not sol.nonzero:
        frac = (n - 1) / n
        raise SpecError(
            f"(N-1)/N*alpha + 2*sqrt((N-1)/N*lambda_w*lambda_h) = {kappa:.4g} must be < (N-1)/N = "
            f"{frac:.4g} (else the collapsed minimiser is W = H = 0); lower alpha or the weight decays."
        )
    rho, c = sol.h_norm, sol.weight_scale
    H = np.zeros((n, m))
    H[np.arange(n), np.arange(n)] = rho
    W = c * (H - H.mean(axis=0, keepdims=True))
    return _NCConfig(n, alpha, lambda_w, lambda_h, kappa, sol.margin, rho, c, W, H)
