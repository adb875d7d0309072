r"""The clean-feature distributions :math:`\mu_r` of the MD model and the risk F they induce.

Each :math:`\mu_r` has mean zero and :math:`\mathbb E\|v\|^2 = r^2` and lives in
:math:`S = \operatorname{span}\{h_1, \dots, h_N\}` (components of v orthogonal to S leave the loss
unchanged and only add :math:`\lambda\,\mathbb E\|v_\perp\|^2`):

``circle``
    uniform on the sphere of radius r in S (for N = 2: the circle of radius r in the plane of
    :math:`h_1, h_2`; the default).  Support bound :math:`\|v\| \le A r` with A = 1.
``gaussian``
    isotropic Gaussian in S, covariance :math:`(r^2/N) I_S`.  Unbounded support (A = inf), so
    Assumption 4.2.2 of seed 000 fails for it.
``two-point``
    :math:`\pm r\, \hat w_n`, the two points on the line through :math:`h_n` along the classifier
    direction :math:`w_n \propto h_n - \bar h` (for N = 2: along :math:`h_1 - h_2`, the worst case for
    the loss).  A = 1.

For N = 2 the expectation depends on v only through :math:`\langle w_2 - w_1, v\rangle =
\|d\|\, r\, \xi` and is computed by exact 1-D quadrature: periodic trapezoid rule for
:math:`\xi = \sin\psi` (circle), Gauss-Hermite for :math:`\xi \sim N(0, 1/2)` (gaussian), two
nodes :math:`\xi = \pm 1` (two-point).  For N > 2 a fixed antithetic sample (seeded, mean exactly
zero) is used, the same for every r, so that F stays smooth in r.
"""

from __future__ import annotations

import math

import numpy as np

from nclab.errors import SpecError

__all__: list[str] = []

DISTRIBUTIONS = ("circle", "gaussian", "two-point")

_N_CIRCLE = 512
_N_HERMITE = 96


def _check_dist(dist: str) -> str:
    if dist not in DISTRIBUTIONS:
        raise SpecError(f"dist must be one of {', '.join(DISTRIBUTIONS)}; got {dist!r}.")
    return dist


def _support_constant(dist: str) -> float:
    """A with ||v|| <= A r on the support of mu_r (seed 000, Assumption 4.2.2)."""
    return math.inf if dist == "gaussian" else 1.0


def _second_moment_along(dist: str) -> float:
    """q = E<d_hat, v>^2 / r^2 for the binary logit-gap direction d_hat (N = 2)."""
    return 1.0 if dist == "two-point" else 0.5


def _binary_nodes(dist: str) -> tuple[np.ndarray, np.ndarray]:
    """Nodes xi (n,) and weights (n,) with <w_2 - w_1, v> = ||d|| r xi under mu_r (N = 2)."""
    if dist == "circle":
        psi = 2.0 * np.pi * np.arange(_N_CIRCLE) / _N_CIRCLE
        return np.sin(psi), np.full(_N_CIRCLE, 1.0 / _N_CIRCLE)
    if dist == "gaussian":
        x, w = np.polynomial.hermite_e.hermegauss(_N_HERMITE)
        return x / math.sqrt(2.0), w / w.sum()
    return np.array([1.0, -1.0]), np.array([0.5, 0.5])


def _class_nodes(dist: str, num_classes: int, *, n_samples: int = 4096, seed: int = 0):
    """Unit-scale nodes V (n, N) in the basis e_k = h_k / rho, weights (n,), for class 0."""
    n = num_classes
    if n == 2:
        if dist == "circle":
            psi = 2.0 * np.pi * np.arange(_N_CIRCLE) / _N_CIRCLE
            return np.stack([np.cos(psi), np.sin(psi)], axis=1), np.full(_N_CIRCLE, 1.0 / _N_CIRCLE)
        if dist == "gaussian":
            x, w = np.polynomial.hermite_e.hermegauss(_N_HERMITE)
            w = w / w.sum()
            X1, X2 = np.meshgrid(x, x, indexing="ij")
            V = np.stack([X1.ravel(), X2.ravel()], axis=1) / math.sqrt(2.0)
            return V, np.outer(w, w).ravel()
    if dist == "two-point":
        a = -np.full(n, 1.0 / n)
        a[0] += 1.0
        a /= np.linalg.norm(a)
        return np.stack([a, -a]), np.array([0.5, 0.5])
    half = n_samples // 2
    g = np.random.default_rng(seed).standard_normal((half, n))
    if dist == "circle":
        g /= np.linalg.norm(g, axis=1, keepdims=True)
    else:
        g /= math.sqrt(n)
    V = np.concatenate([g, -g])
    return V, np.full(V.shape[0], 1.0 / V.shape[0])
