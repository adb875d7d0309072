"""The inner problem (P_u1) over the noisy embedding: exact solver vs brute force."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp

from nclab.md._nc import _nc_configuration
from nclab.md.model import _g_binary, _inner_binary


def _reference_g(cfg, u, alpha, lam):
    """l_alpha(W u, y_1) + lam ||u||^2 for a full M-vector u (seed 000 eq. (1))."""
    z = cfg.W @ u
    y = np.array([1 - alpha / 2, alpha / 2])
    return float(logsumexp(z) - y @ z + lam * u @ u)


CASES = [(0.0, 1e-3, 1e-3), (0.1, 1e-3, 1e-3), (0.3, 1e-2, 5e-3)]


@pytest.mark.parametrize("alpha,lw,lh", CASES)
@pytest.mark.parametrize("frac", [0.05, 0.4, 0.71, 0.9, 0.99])
def test_inner_matches_brute_force_on_disc(alpha, lw, lh, frac):
    cfg = _nc_configuration(alpha, lambda_w=lw, lambda_h=lh)
    rho, lam = cfg.rho, lh
    R = frac * math.sqrt(2) * rho  # frac = r / r_max
    x, y = (float(v[0]) for v in _inner_binary(cfg, np.array([R]), lam))
    got = float(_g_binary(cfg, x, y, lam))
    # brute force: polar grid of the disc around h_2 = (0, rho), restricted to the quadrant
    rad = R * np.sqrt(np.linspace(0, 1, 450))
    ang = np.linspace(0, 2 * np.pi, 900, endpoint=False)
    X = (rad[:, None] * np.cos(ang)[None, :]).ravel()
    Y = (rho + rad[:, None] * np.sin(ang)[None, :]).ravel()
    ok = (X >= 0) & (Y >= 0)
    X, Y = X[ok], Y[ok]
    Z = np.stack([X, Y], axis=1) @ cfg.W[:, :2].T  # logits of u = X e1 + Y e2 (h_n = rho e_n)
    yv = np.array([1 - alpha / 2, alpha / 2])
    vals = logsumexp(Z, axis=1) - Z @ yv + lam * (X**2 + Y**2)
    k = int(np.argmin(vals))
    assert got <= vals[k] + 1e-12
    spacing = R * 2 * np.pi / 900 + R / 450
    assert math.hypot(x - X[k], y - Y[k]) <= 20 * spacing + 1e-9
    # feasibility, and the constraint is active for r < r_max (Lemma C.1)
    assert x >= 0 and y >= 0
    assert math.hypot(x, y - rho) == pytest.approx(R, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("frac", [0.3, 0.8])
def test_inner_plane_reduction_in_higher_dimension(frac):
    """Lemma C.1: the M-dimensional problem (M = 4, u >= 0) has its minimiser in span{h1, h2}."""
    alpha, lam = 0.1, 2e-3
    cfg = _nc_configuration(alpha, lambda_w=1e-3, lambda_h=lam, dim=4)
    rho = cfg.rho
    R = frac * math.sqrt(2) * rho
    x, y = (float(v[0]) for v in _inner_binary(cfg, np.array([R]), lam))
    h2 = cfg.H[1]
    wy = np.array([1 - alpha / 2, alpha / 2])

    def grad(u):  # gradient of _reference_g: W^T (softmax(W u) - y) + 2 lam u
        z = cfg.W @ u
        return cfg.W.T @ (np.exp(z - logsumexp(z)) - wy) + 2 * lam * u

    cons = [{"type": "ineq", "fun": lambda u: R**2 - np.sum((u - h2) ** 2),
             "jac": lambda u: -2 * (u - h2)}]
    rng = np.random.default_rng(1)
    runs = []
    for _ in range(4):
        u0 = np.abs(h2 + 0.3 * R * rng.normal(size=4) / 2)
        if np.sum((u0 - h2) ** 2) > R**2:
            u0 = h2.copy()
        # ftol 1e-9 with the exact gradient: tighter values (1e-14 before) end in SLSQP line-search
        # failures ("Positive directional derivative") at machine precision, i.e. success=False
        res = minimize(lambda u: _reference_g(cfg, u, alpha, lam), u0, jac=grad, method="SLSQP",
                       bounds=[(0, None)] * 4, constraints=cons, options={"ftol": 1e-9, "maxiter": 1000})
        assert res.success, f"reference SLSQP did not converge: {res.message}"
        assert np.sum((res.x - h2) ** 2) <= R**2 + 1e-8 and res.x.min() >= 0  # feasible up to SLSQP tolerance
        runs.append(res)
    best = min(runs, key=lambda r: r.fun)
    # SLSQP may overstep the ball by ~1e-9: pull its point back onto the feasible set (a convex
    # combination with h2 >= 0 stays >= 0) so that the comparison is between feasible points
    r = math.sqrt(np.sum((best.x - h2) ** 2))
    feasible = h2 + (best.x - h2) * min(1.0, R / r)
    ours = _reference_g(cfg, np.array([x, y, 0, 0]), alpha, lam)
    assert ours <= _reference_g(cfg, feasible, alpha, lam) + 1e-12
    np.testing.assert_allclose(best.x, [x, y, 0, 0], atol=1e-4)


def test_inner_limits():
    cfg = _nc_configuration(0.1, lambda_w=1e-3, lambda_h=1e-3)
    rho = cfg.rho
    R = np.array([0.0, math.sqrt(2) * rho, 3 * rho])
    x, y = _inner_binary(cfg, R, 1e-3)
    np.testing.assert_allclose([x[0], y[0]], [0, rho], atol=1e-12)  # r = 0: u_1 = h_2
    np.testing.assert_allclose(x[1:], rho)  # r >= r_max: u_1 = h_1
    np.testing.assert_allclose(y[1:], 0, atol=1e-12)
