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
\|d\|\, r\, \xi` and is computed by 1-D quadrature accurate to machine precision: periodic trapezoid rule for
:math:`\xi = \sin\psi` (circle), trapezoid rule on [-12, 12] for :math:`\xi \sim N(0, 1/2)` (gaussian), two
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
_N_GAUSS = 2401
_GAUSS_HALFWIDTH = 12.0


def _gauss_1d() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E f(Z), Z ~ N(0, 1): trapezoid rule on [-12, 12].

    The trapezoid rule converges geometrically for analytic integrands with Gaussian decay; unlike
    Gauss-Hermite it stays accurate when softplus is evaluated at a large scale ||d|| r.
    """
    z = np.linspace(-_GAUSS_HALFWIDTH, _GAUSS_HALFWIDTH, _N_GAUSS)
    w = np.exp(-0.5 * z * z)
    return z, w / w.sum()


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
        z, w = _gauss_1d()
        return z / math.sqrt(2.0), w
    return np.array([1.0, -1.0]), np.array([0.5, 0.5])


def _class_nodes(dist: str, num_classes: int, *, n_samples: int = 4096, seed: int = 0):
    """Unit-scale nodes V (n, N) in the basis e_k = h_k / rho, weights (n,), for class 0."""
    n = num_classes
    if n == 2:
        if dist == "circle":
            psi = 2.0 * np.pi * np.arange(_N_CIRCLE) / _N_CIRCLE
            return np.stack([np.cos(psi), np.sin(psi)], axis=1), np.full(_N_CIRCLE, 1.0 / _N_CIRCLE)
        if dist == "gaussian":
            # v = (z (e_1 - e_0) + b (e_0 + e_1)) / 2 with z ~ N(0, 1), b = +-1: covariance I/2; the
            # loss depends only on z (shift invariance of the logits), b only fixes the second moment
            z, w = _gauss_1d()
            d, s = np.array([-1.0, 1.0]) / 2, np.array([1.0, 1.0]) / 2
            V = np.concatenate([z[:, None] * d + s, z[:, None] * d - s])
            return V, np.concatenate([w, w]) / 2
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
