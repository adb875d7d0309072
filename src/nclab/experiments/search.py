r"""Gaussian-process Bayesian optimisation as a Ray Tune searcher (seed 001 App. A.2.1).

Seed 001 tuned the learning rate, its multiplier and the LS/LR parameter alpha "in a Bayesian
optimization using Hyperband" with scikit-optimize. Ray Tune's own Bayesian searchers need
extra packages (``bayesian-optimization``, ``optuna``); this module provides a small, exact
GP searcher so that the search runs with Ray alone. Pair it with Ray Tune's
``HyperBandScheduler`` (as :func:`nclab.experiments.cells.tune_cell` does).

Model. Every parameter is mapped to :math:`[0, 1]` (log scale for ``loguniform``; the index
for ``choice``). The objective values :math:`y` (standardised) get a GP prior with a Matérn-5/2
kernel :math:`k(r) = (1 + \sqrt5 r/\ell + 5r^2/(3\ell^2)) e^{-\sqrt5 r/\ell}` and noise
:math:`\sigma^2 = 10^{-6}`; the length scale :math:`\ell` maximises the log marginal
likelihood over a grid. The next point maximises the expected improvement

.. math:: \mathrm{EI}(x) = (\mu - y^+ - \xi)\,\Phi(z) + s\,\varphi(z),\qquad
          z = (\mu - y^+ - \xi)/s

over random candidates (Rasmussen & Williams 2006, eq. 2.25-2.26; Jones et al. 1998). The first
``n_initial`` points are uniform random. Cost per suggestion: O(t^3 + m t^2) for t finished
trials and m candidates.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

__all__ = ["GPSearch", "gp_posterior", "expected_improvement"]


def _matern52(a: np.ndarray, b: np.ndarray, ell: float) -> np.ndarray:
    r = np.sqrt(np.maximum(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1), 0.0)) / ell
    s5 = math.sqrt(5.0) * r
    return (1.0 + s5 + 5.0 * r * r / 3.0) * np.exp(-s5)


def gp_posterior(
    x: np.ndarray, y: np.ndarray, xq: np.ndarray, *, ell: float, noise: float = 1e-6
) -> tuple[np.ndarray, np.ndarray, float]:
    """Posterior mean and standard deviation of a zero-mean unit-variance Matérn-5/2 GP at
    ``xq`` given observations ``(x, y)``, and the log marginal likelihood.

    Parameters
    ----------
    x : ndarray of shape (t, p)
    y : ndarray of shape (t,)
    xq : ndarray of shape (m, p)
    ell : float
        Length scale.
    noise : float, default=1e-6
        Observation noise variance.
    """
    k = _matern52(x, x, ell) + noise * np.eye(len(x))
    chol = np.linalg.cholesky(k)
    alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, y))
    kq = _matern52(xq, x, ell)
    mean = kq @ alpha
    v = np.linalg.solve(chol, kq.T)
    var = np.maximum(1.0 - (v * v).sum(0), 1e-12)
    lml = -0.5 * y @ alpha - np.log(np.diag(chol)).sum() - 0.5 * len(y) * math.log(2 * math.pi)
    return mean, np.sqrt(var), float(lml)


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.01):
    """Expected improvement over ``best`` (maximisation) of a Gaussian posterior."""
    from scipy.stats import norm

    d = mean - best - xi
    z = d / std
    return d * norm.cdf(z) + std * norm.pdf(z)


def _searcher_base():
    from ray.tune.search import Searcher

    return Searcher


class _Space:
    """Parameters <-> unit cube. ``spec``: name -> ("loguniform", lo, hi) | ("uniform", lo,
    hi) | ("choice", [values])."""

    def __init__(self, spec: Mapping[str, tuple]):
        self.names = list(spec)
        self.spec = dict(spec)

    def decode(self, u: np.ndarray) -> dict[str, Any]:
        out = {}
        for name, ui in zip(self.names, u):
            kind, *args = self.spec[name]
            if kind == "loguniform":
                lo, hi = math.log(args[0]), math.log(args[1])
                out[name] = float(math.exp(lo + ui * (hi - lo)))
            elif kind == "uniform":
                out[name] = float(args[0] + ui * (args[1] - args[0]))
            elif kind == "choice":
                values = list(args[0])
                out[name] = values[min(int(ui * len(values)), len(values) - 1)]
            else:
                raise ValueError(f"unknown parameter kind {kind!r}")
        return out


def GPSearch(space: Mapping[str, tuple], *, metric: str, mode: str = "max", n_initial: int = 3,
             n_candidates: int = 2000, seed: int = 0):
    """A Ray Tune ``Searcher`` doing GP Bayesian optimisation with expected improvement.

    Parameters
    ----------
    space : dict of str to tuple
        ``("loguniform", lo, hi)``, ``("uniform", lo, hi)`` or ``("choice", values)`` per
        parameter.
    metric : str
        Result key to optimise.
    mode : {"max", "min"}, default="max"
    n_initial : int, default=3
        Random points before the GP is used.
    n_candidates : int, default=2000
        Random candidates over which EI is maximised.
    seed : int, default=0

    Returns
    -------
    ray.tune.search.Searcher
    """
    base = _searcher_base()

    class _GPSearch(base):
        def __init__(self):
            super().__init__(metric=metric, mode=mode)
            self._space = _Space(space)
            self._rng = np.random.default_rng(seed)
            self._live: dict[str, np.ndarray] = {}
            self._x: list[np.ndarray] = []
            self._y: list[float] = []

        def _next(self) -> np.ndarray:
            p = len(self._space.names)
            if len(self._y) < n_initial:
                return self._rng.random(p)
            x = np.asarray(self._x)
            y = np.asarray(self._y, float) * (1.0 if mode == "max" else -1.0)
            y = (y - y.mean()) / (y.std() if y.std() > 0 else 1.0)
            cand = self._rng.random((n_candidates, p))
            best_ell, best_lml = 0.2, -math.inf
            for ell in (0.05, 0.1, 0.2, 0.4, 0.8):
                _, _, lml = gp_posterior(x, y, x[:1], ell=ell)
                if lml > best_lml:
                    best_ell, best_lml = ell, lml
            mean, std, _ = gp_posterior(x, y, cand, ell=best_ell)
            return cand[int(np.argmax(expected_improvement(mean, std, y.max())))]

        def suggest(self, trial_id: str):
            u = self._next()
            self._live[trial_id] = u
            return self._space.decode(u)

        def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
            u = self._live.pop(trial_id, None)
            if u is None or error or not result or self.metric not in result:
                return
            value = result[self.metric]
            if value is not None and math.isfinite(float(value)):
                self._x.append(u)
                self._y.append(float(value))

    return _GPSearch()
