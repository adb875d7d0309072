"""GP Bayesian optimisation searcher: posterior and EI against direct computations, and a toy
search that finds the optimum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nclab.experiments.search import expected_improvement, gp_posterior


def _matern_direct(r, ell):
    s = math.sqrt(5) * r / ell
    return (1 + s + s * s / 3) * math.exp(-s)


def test_gp_posterior_matches_direct_linear_algebra():
    rng = np.random.default_rng(0)
    x = rng.random((7, 2))
    y = rng.standard_normal(7)
    xq = rng.random((5, 2))
    ell, noise = 0.3, 1e-4

    def k(a, b):
        return np.array([[_matern_direct(np.linalg.norm(ai - bj), ell) for bj in b] for ai in a])

    kxx = k(x, x) + noise * np.eye(7)
    kqx = k(xq, x)
    mean_ref = kqx @ np.linalg.solve(kxx, y)
    var_ref = 1.0 - np.einsum("ij,ji->i", kqx, np.linalg.solve(kxx, kqx.T))
    sign, logdet = np.linalg.slogdet(kxx)
    lml_ref = -0.5 * y @ np.linalg.solve(kxx, y) - 0.5 * logdet - 3.5 * math.log(2 * math.pi)
    mean, std, lml = gp_posterior(x, y, xq, ell=ell, noise=noise)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(std ** 2, var_ref, rtol=1e-7, atol=1e-12)
    assert lml == pytest.approx(lml_ref, rel=1e-10)
    # at an observed point the posterior (almost) interpolates
    m0, s0, _ = gp_posterior(x, y, x[:1], ell=ell, noise=1e-10)
    assert m0[0] == pytest.approx(y[0], abs=1e-6) and s0[0] < 1e-3


def test_expected_improvement_matches_monte_carlo():
    rng = np.random.default_rng(1)
    mean, std, best, xi = np.array([0.2, -0.5, 1.0]), np.array([0.5, 1.0, 0.1]), 0.3, 0.01
    samples = mean + std * rng.standard_normal((400_000, 3))
    mc = np.maximum(samples - best - xi, 0).mean(0)
    np.testing.assert_allclose(expected_improvement(mean, std, best, xi), mc, rtol=0.02)


def test_gp_search_finds_the_optimum_of_a_toy_objective():
    pytest.importorskip("ray.tune")
    from nclab.experiments.search import GPSearch

    def objective(p):  # best at lr = 1e-2, lr_gamma = 0.1
        return -(math.log10(p["lr"]) + 2.0) ** 2 - (0.0 if p["lr_gamma"] == 0.1 else 0.5)

    s = GPSearch({"lr": ("loguniform", 1e-5, 0.5), "lr_gamma": ("choice", [0.01, 0.1, 0.5])},
                 metric="score", mode="max", seed=0)
    results = []
    for i in range(20):
        p = s.suggest(f"t{i}")
        assert 1e-5 <= p["lr"] <= 0.5 and p["lr_gamma"] in (0.01, 0.1, 0.5)
        v = objective(p)
        results.append((v, p))
        s.on_trial_complete(f"t{i}", {"score": v})
    best_v, best_p = max(results, key=lambda t: t[0])
    assert best_p["lr_gamma"] == 0.1 and abs(math.log10(best_p["lr"]) + 2) < 0.3
    # the GP phase concentrates: its points score better than the random start
    assert np.mean([v for v, _ in results[10:]]) > np.mean([v for v, _ in results[:3]])
