"""The N > 2 extension (symmetric noise over the other classes)."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from nclab.md import solve_md
from nclab.md._dist import _class_nodes
from nclab.md._nc import _nc_configuration
from nclab.md.model import _f_binary, _f_general, _g_binary, _g_general, _inner_binary, _inner_general


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_general_path_reduces_to_binary(alpha):
    cfg = _nc_configuration(alpha, lambda_w=1e-3, lambda_h=2e-3)
    lam = cfg.lambda_h
    for R in [0.05, 0.6, 1.3, 2.0]:
        x, y = (float(v[0]) for v in _inner_binary(cfg, np.array([R]), lam))
        v = _inner_general(cfg, R, lam)
        assert _g_general(cfg, v, lam) == pytest.approx(float(_g_binary(cfg, x, y, lam)), rel=1e-9, abs=1e-12)
        np.testing.assert_allclose(v, [x, y], atol=1e-5)
    rs = np.array([0.0, 0.3, 1.1])
    for dist in ["circle", "gaussian", "two-point"]:
        np.testing.assert_allclose(_f_general(cfg, rs, lam, _class_nodes(dist, 2)), _f_binary(cfg, rs, lam, dist),
                                   rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_three_class_inner_against_brute_force(alpha):
    cfg = _nc_configuration(alpha, lambda_w=1e-3, lambda_h=1e-3, num_classes=3)
    lam, rho = cfg.lambda_h, cfg.rho
    for frac in [0.2, 0.6, 0.95]:
        R = frac * math.sqrt(2) * rho
        v = _inner_general(cfg, R, lam)
        got = _g_general(cfg, v, lam)
        # brute force in the full 3-d coordinates (u_0, u_1, u_2) >= 0 of span{h}: no symmetry assumed
        g = np.linspace(0, 1.05 * (rho + R), 90)
        U = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
        U = U[U[:, 0] ** 2 + (U[:, 1] - rho) ** 2 + U[:, 2] ** 2 <= R * R]
        Z = cfg.c * rho * U
        y = np.array([1 - alpha + alpha / 3, alpha / 3, alpha / 3])
        vals = logsumexp(Z, axis=1) - Z @ y + lam * np.sum(U * U, axis=1)
        assert got <= vals.min() + 1e-10
        assert math.sqrt(v[0] ** 2 + (v[1] - rho) ** 2 + v[2] ** 2) <= R * (1 + 1e-7)


def test_three_class_solution_structure():
    eta, c_md = 0.05, 1.0
    res = solve_md(alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=eta, c_md=c_md, num_classes=3, n_grid=25)
    assert res.u.shape == (3, 3, 3)
    assert 0 < res.r_star <= res.r_max
    assert res.r_max == pytest.approx(eta * res.h_dist**2 / c_md)
    # constraint active at r* < r_max: eta ||h_m - u_nm|| = C_MD r* / ||h_n - h_m||
    for n in range(3):
        for m in range(3):
            if n != m:
                dist = eta * np.linalg.norm(res.h[m] - res.u[n, m])
                assert dist == pytest.approx(c_md * res.dilation, rel=1e-6)
                assert np.all(res.u[n, m] >= 0)
    # permutation symmetry: u[1, 2] is u[0, 1] with coordinates relabelled 0->1, 1->2, 2->0
    np.testing.assert_allclose(res.u[1, 2][[1, 2, 0]], res.u[0, 1], atol=1e-12)
    # it is the minimum of the reduced objective over a grid
    from nclab.md import md_objective

    rs = np.linspace(0, res.r_max, 41)
    vals = md_objective(rs, alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=eta, c_md=c_md, num_classes=3)
    assert res.objective <= vals.min() + 1e-10
