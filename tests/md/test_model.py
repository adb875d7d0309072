"""The MD problem (seed 000 Def. 4.1): reduced objective, limits, global optimality of r*."""

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.special import logsumexp

from nclab.errors import SpecError
from nclab.md import dilation_lower_bounds, md_objective, solve_md
from nclab.md._nc import _nc_configuration

BASE = dict(lambda_w=1e-3, lambda_h=2e-3, c_md=1.0)


def _loss(cfg, feat, label, alpha):
    """l_alpha(W feat, y_label), seed 000 eq. (1), written directly."""
    z = cfg.W @ feat
    y = np.full(2, alpha / 2)
    y[label] += 1 - alpha
    return float(logsumexp(z) - y @ z)


def _reference_F(cfg, r, alpha, dist):
    """F(W, H, r) of Def. 4.1 (corrected: second term is class 2), integrated numerically."""
    lam = cfg.lambda_h
    e = np.eye(cfg.H.shape[1])
    total = 0.0
    for n in (0, 1):
        h = cfg.H[n]

        def f(v):
            return _loss(cfg, h + v, n, alpha) + lam * float((h + v) @ (h + v))

        if dist == "circle":
            val = integrate.quad(lambda t: f(r * (math.cos(t) * e[0] + math.sin(t) * e[1])), 0, 2 * math.pi,
                                 epsabs=1e-12, epsrel=1e-12, limit=200)[0] / (2 * math.pi)
        elif dist == "two-point":
            d = (cfg.H[0] - cfg.H[1]) / np.linalg.norm(cfg.H[0] - cfg.H[1])
            val = 0.5 * (f(r * d) + f(-r * d))
        else:  # isotropic Gaussian in the plane, covariance r^2/2 I: Gauss-Legendre on [-10s, 10s]^2
            s = r / math.sqrt(2)
            x, w = np.polynomial.legendre.leggauss(300)
            x, w = 10 * s * x, 10 * s * w
            A, B = np.meshgrid(x, x, indexing="ij")
            V = A.ravel()[:, None] * e[0] + B.ravel()[:, None] * e[1]
            P = h + V
            Z = P @ cfg.W.T
            y = np.full(2, alpha / 2)
            y[n] += 1 - alpha
            vals = logsumexp(Z, axis=1) - Z @ y + lam * np.sum(P * P, axis=1)
            pdf = np.exp(-(A.ravel() ** 2 + B.ravel() ** 2) / (2 * s * s)) / (2 * math.pi * s * s)
            val = float(np.sum(vals * pdf * np.outer(w, w).ravel()))
        total += val
    return total


@pytest.mark.parametrize("dist", ["circle", "gaussian", "two-point"])
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_objective_beyond_r_max_is_F_plus_constant(dist, alpha):
    """For r >= r_max, U(r) = H (Remark 1): R(r) = F(r) + eta G(H), with F integrated directly."""
    eta = 0.02
    cfg = _nc_configuration(alpha, lambda_w=BASE["lambda_w"], lambda_h=BASE["lambda_h"])
    r_max = eta * cfg.h_dist**2 / BASE["c_md"]
    rs = np.array([r_max, 1.7 * r_max]) if dist != "gaussian" else np.array([1.7 * r_max])
    got = md_objective(rs, alpha=alpha, eta=eta, dist=dist, **BASE)
    G_H = _loss(cfg, cfg.H[0], 0, alpha) + _loss(cfg, cfg.H[1], 1, alpha) + cfg.lambda_h * 2 * cfg.rho**2
    want = [_reference_F(cfg, r, alpha, dist) + eta * G_H for r in rs]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_objective_at_r_zero():
    """r = 0: mu_0 = delta_0 and the constraints force u_1 = h_2, u_2 = h_1."""
    alpha, eta = 0.1, 0.05
    cfg = _nc_configuration(alpha, lambda_w=BASE["lambda_w"], lambda_h=BASE["lambda_h"])
    lam = cfg.lambda_h
    F0 = sum(_loss(cfg, cfg.H[n], n, alpha) + lam * cfg.rho**2 for n in (0, 1))
    G0 = _loss(cfg, cfg.H[1], 0, alpha) + _loss(cfg, cfg.H[0], 1, alpha) + 2 * lam * cfg.rho**2
    got = md_objective([0.0], alpha=alpha, eta=eta, **BASE)[0]
    assert got == pytest.approx(F0 + eta * G0, rel=1e-12)
    # and the limit r -> 0+ is continuous
    near = md_objective([1e-7, 1e-5], alpha=alpha, eta=eta, **BASE)
    assert abs(near[0] - got) < abs(near[1] - got) < 1e-3


@pytest.mark.parametrize("alpha,eta,dist", [(0.0, 0.01, "circle"), (0.1, 0.2, "circle"),
                                            (0.3, 0.05, "two-point"), (0.05, 0.5, "gaussian")])
def test_r_star_is_global_minimiser(alpha, eta, dist):
    res = solve_md(alpha=alpha, eta=eta, dist=dist, **BASE)
    rs = np.linspace(0, 1.3 * res.r_max, 3001)
    vals = md_objective(rs, alpha=alpha, eta=eta, dist=dist, **BASE)
    assert res.objective <= vals.min() + 1e-13
    assert abs(res.r_star - rs[np.argmin(vals)]) <= 2 * (rs[1] - rs[0])
    assert 0 < res.r_star <= res.r_max
    # objective strictly increases past r_max (F increasing, G constant)
    assert np.all(np.diff(vals[rs >= res.r_max]) > 0)


def test_eta_zero_gives_r_star_equal_r_max():
    res = solve_md(alpha=0.1, eta=0.0, **BASE)
    assert res.r_star == res.r_max == 0.0
    assert res.memorization == 0.0
    np.testing.assert_allclose(res.u1, res.h[0])


@pytest.mark.parametrize("dist", ["circle", "two-point", "gaussian"])
def test_small_noise_limit_and_lemma_c6(dist):
    """r*/r_max -> 1 as eta -> 0, above both the printed and the corrected Lemma C.6 bounds."""
    ratios = []
    for eta in [1e-2, 1e-3, 1e-4, 1e-5]:
        res = solve_md(alpha=0.0, eta=eta, dist=dist, n_grid=65, **BASE)
        b = dilation_lower_bounds(alpha=0.0, eta=eta, dist=dist, **BASE)
        assert b["r_max"] == pytest.approx(res.r_max, rel=1e-14)
        assert res.r_star >= b["rigorous"] - 1e-15
        assert res.r_star >= b["paper"] - 1e-15
        ratios.append(res.r_star / res.r_max)
    assert np.all(np.diff(ratios) > 0)
    assert 1 - ratios[-1] < 2e-3


def test_memorization_dilation_structure():
    """At r* < r_max constraint (5) is active: memorization = C_MD * dilation; u_2 mirrors u_1."""
    c_md, eta = 0.7, 0.1
    res = solve_md(alpha=0.1, eta=eta, lambda_w=1e-3, lambda_h=1e-3, c_md=c_md)
    assert res.r_star < res.r_max
    assert res.memorization == pytest.approx(eta * np.linalg.norm(res.h[1] - res.u1))
    assert res.memorization == pytest.approx(c_md * res.dilation, rel=1e-9)
    np.testing.assert_allclose(res.u2, res.u1[::-1], atol=1e-15)
    assert np.all(res.u1 >= 0)
    assert res.dilation == pytest.approx(res.r_star / np.linalg.norm(res.h[0] - res.h[1]))


def test_dimension_does_not_matter():
    a = solve_md(alpha=0.1, eta=0.05, **BASE)
    b = solve_md(alpha=0.1, eta=0.05, dim=6, **BASE)
    assert b.u1.shape == (6,)
    assert a.r_star == pytest.approx(b.r_star, rel=1e-12)
    np.testing.assert_allclose(b.u1[:2], a.u1)
    np.testing.assert_allclose(b.u1[2:], 0)


@pytest.mark.parametrize("kw,match", [
    (dict(eta=-0.1), "eta"), (dict(eta=float("nan")), "eta"), (dict(c_md=0.0), "c_md"),
    (dict(dist="uniform"), "dist"), (dict(n_grid=2), "n_grid"),
])
def test_invalid_inputs(kw, match):
    args = dict(alpha=0.1, eta=0.1, lambda_w=1e-3, lambda_h=1e-3, c_md=1.0) | kw
    with pytest.raises(SpecError, match=match):
        solve_md(**args)


@pytest.mark.parametrize("dist,q", [("circle", 0.5), ("two-point", 1.0), ("gaussian", 0.5)])
@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_small_noise_gap_is_linear_in_eta(dist, q, alpha):
    """(1 - r*/r_max)/eta -> C2 ||h1-h2||^2 / (f'' C_MD^2) (docs/md_model.md, Sec. 6), a closed form.

    C2 = sigma'(-s) q (c rho)^2 + lambda (curvature of F/2 in r), f'' = (c rho)^2 sigma'(-s) + 2 lambda
    (curvature of g along the axis y = 0 at h_1): the gap is O(eta), not the O(eta^(1/2)) of Lemma C.6.
    """
    lw, lh, c_md, eta = 1e-3, 2e-3, 0.7, 1e-4
    cfg = _nc_configuration(alpha, lambda_w=lw, lambda_h=lh)
    p = 1 / (1 + math.exp(cfg.margin))
    sp = p * (1 - p)
    cr2 = (cfg.c * cfg.rho) ** 2
    want = (sp * q * cr2 + lh) / (cr2 * sp + 2 * lh) * cfg.h_dist**2 / c_md**2
    res = solve_md(alpha=alpha, lambda_w=lw, lambda_h=lh, eta=eta, c_md=c_md, dist=dist, n_grid=65)
    assert (1 - res.r_star / res.r_max) / eta == pytest.approx(want, rel=0.02)


@pytest.mark.parametrize("alpha,eta,c_md,dist", [(0.0, 0.5, 0.3, "circle"), (0.2, 2.0, 5.0, "two-point"),
                                                  (0.1, 0.05, 1.0, "gaussian")])
def test_reduced_objective_is_convex(alpha, eta, c_md, dist):
    """The MD problem is jointly convex in (U, r), so r -> min_U R(U, r) is convex (docs Sec. 5)."""
    kw = dict(alpha=alpha, lambda_w=1e-3, lambda_h=1e-2, eta=eta, c_md=c_md, dist=dist)
    r_max = solve_md(**kw, n_grid=3).r_max
    rs = np.linspace(0, 1.5 * r_max, 601)
    vals = md_objective(rs, **kw)
    assert np.diff(vals, 2).min() >= -1e-12 * np.abs(vals).max()


def test_other_validation_branches():
    from nclab.md import compare_ce_ls

    with pytest.raises(SpecError, match="eta > 0"):
        md_objective([0.1], alpha=0.1, eta=0.0, **BASE)
    with pytest.raises(SpecError, match="alpha_0"):
        compare_ce_ls(alpha=0.0, eta=0.1, **BASE)
