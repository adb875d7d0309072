"""Closed forms of nclab.theory against the numerical solver, direct evaluations and invariances."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from nclab.errors import SpecError
from nclab.theory import (
    class_cosine_similarities,
    cosine_similarity_limits,
    extended_mse_minimizer,
    extended_mse_threshold,
    extended_structure,
    fixed_etf_minimizer,
    margin_loss,
    min_ce_loss_norm_bounded,
    mse_ufm_minimizer,
    mse_ufm_threshold,
    orthogonal_frame_error,
    positive_nc_norms,
    positive_nc_paper_condition,
    simplex_etf,
    simplex_etf_error,
    softmax_ufm_minimizer,
)
from nclab.ufm import UFMProblem, solve

RTOL = 1e-6  # solver stops at relative gradient norm 1e-10; norms are then accurate to ~1e-8


def _solve(problem, **kw):
    """The reference solve beside each closed form; a run that did not converge is no reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = solve(problem, track_metrics=False, **kw)
    assert r.converged, f"reference solve did not converge: {r.n_iter} iterations, gradient norm {r.grad_norm:.2e}"
    return r


# ----------------------------------------------------------------------------- seed 000 Thm 3.2
@pytest.mark.parametrize(
    "n_cls,k,lam,alpha,loss",
    [(2, 3, 1e-3, 0.0, "ce"), (3, 4, 1e-3, 0.1, "ls"), (4, 2, 5e-3, 0.2, "ls"), (5, 2, 1e-2, 0.0, "ce")],
)
def test_positive_closed_form_matches_solver(n_cls, k, lam, alpha, loss):
    sol = positive_nc_norms(n_cls, lam, lam, alpha, num_per_class=k)
    assert sol.nonzero
    p = UFMProblem("positive", loss=loss, alpha=alpha, num_classes=n_cls, per_class=k, dim=n_cls + 2,
                   lambda_w=lam, lambda_h=lam)
    r = _solve(p)
    assert r.converged
    assert r.objective == pytest.approx(sol.objective, rel=1e-9)
    assert r.W_norm_sq == pytest.approx(sol.W_norm_sq, rel=RTOL)
    assert r.H_norm_sq == pytest.approx(sol.H_norm_sq, rel=RTOL)
    # NC configuration (Def. 3.1): collapse, orthogonal equinorm means, w_n = C (h_n - hbar)
    h = r.matrices["H"].T
    means = h.reshape(n_cls, k, -1).mean(axis=1)
    assert np.abs(h.reshape(n_cls, k, -1) - means[:, None]).max() < 1e-5 * np.abs(means).max()
    gram = means @ means.T
    assert orthogonal_frame_error(gram) < 1e-6
    centred = means - means.mean(axis=0)
    w = r.matrices["W"]
    assert np.linalg.norm(w - sol.weight_scale * centred) < 1e-5 * np.linalg.norm(w)


def test_positive_closed_form_is_stationary_value():
    """Evaluate (P_alpha) at an explicitly built NC configuration with the predicted norms."""
    n_cls, k, lam_w, lam_h, alpha = 3, 2, 2e-3, 5e-4, 0.15
    sol = positive_nc_norms(n_cls, lam_w, lam_h, alpha, num_per_class=k)
    d = 4
    means = np.zeros((n_cls, d))
    means[np.arange(n_cls), np.arange(n_cls)] = sol.h_norm
    w = sol.weight_scale * (means - means.mean(axis=0))
    h = np.repeat(means, k, axis=0).T
    p = UFMProblem("positive", loss="ls", alpha=alpha, num_classes=n_cls, per_class=k, dim=d,
                   lambda_w=lam_w, lambda_h=lam_h)
    x = np.concatenate([w.ravel(), h.ravel()])
    f = float(p.objective_torch(torch.tensor(x)))
    assert f == pytest.approx(sol.objective, rel=1e-12)
    assert np.linalg.norm(w, axis=1) == pytest.approx(np.full(n_cls, sol.w_norm), rel=1e-12)
    # scaling the configuration either way raises the objective (a minimum along the ray)
    for s in (0.99, 1.01):
        assert float(p.objective_torch(torch.tensor(s * x))) > f


def test_positive_paper_condition_is_not_sufficient():
    """Regression for the source's condition beta + 2 sqrt((N-1) lw lh) < 1: it holds here, yet the
    minimiser is zero (the corrected condition beta + 2 sqrt(N(N-1) lw lh) < (N-1)/N fails)."""
    n_cls, lam, alpha = 3, 0.1, 0.6
    assert positive_nc_paper_condition(n_cls, lam, lam, alpha)
    sol = positive_nc_norms(n_cls, lam, lam, alpha)
    assert not sol.nonzero and sol.objective == pytest.approx(math.log(n_cls))
    p = UFMProblem("positive", loss="ls", alpha=alpha, num_classes=n_cls, per_class=2, dim=4,
                   lambda_w=lam, lambda_h=lam)
    r = _solve(p)
    assert r.objective == pytest.approx(math.log(n_cls), abs=1e-9)
    assert r.W_norm_sq < 1e-8 and r.H_norm_sq < 1e-8


def test_positive_paper_formula_disagrees_with_solver():
    """The printed eqs. (25, 26) (with sqrt((N-1) lw lh), C = 1/sqrt(K(N-1))) give other norms."""
    n_cls, k, lam = 3, 2, 1e-3
    gamma_paper = 2 * math.sqrt((n_cls - 1) * lam * lam)
    u_paper = math.log((n_cls - 1) * (1 - gamma_paper) / gamma_paper)
    # eq. (25): ||W||^2 = (1/C) sqrt(lh / (K lw)) log(...) with C = 1/sqrt(K (N-1))
    w_sq_paper = math.sqrt(k * (n_cls - 1)) * math.sqrt(lam / (k * lam)) * u_paper
    sol = positive_nc_norms(n_cls, lam, lam, 0.0, num_per_class=k)
    p = UFMProblem("positive", loss="ce", num_classes=n_cls, per_class=k, dim=n_cls, lambda_w=lam, lambda_h=lam)
    r = _solve(p)
    assert r.W_norm_sq == pytest.approx(sol.W_norm_sq, rel=RTOL)
    assert abs(r.W_norm_sq - w_sq_paper) > 0.05 * r.W_norm_sq


# ----------------------------------------------------------------------------- seed 004 Thm 3.1/3.2
@pytest.mark.parametrize("bias", ["none", "free"])
@pytest.mark.parametrize("lam", [5e-3, 0.04, 0.06])  # rho = 4 sqrt(5) lam: 0.045, 0.36, 0.54
def test_mse_ufm_gram_matrices_match_solver(bias, lam):
    k, n, d = 4, 5, 6
    sol = mse_ufm_minimizer(k, n, lam, lam, bias=bias, feature_dim=d)
    p = UFMProblem("plain", loss="mse", num_classes=k, per_class=n, dim=d, lambda_w=lam, lambda_h=lam, bias=bias)
    r = _solve(p)
    assert r.objective == pytest.approx(sol.objective, rel=1e-9)
    w = r.matrices["W"]
    np.testing.assert_allclose(w @ w.T, sol.WWt, atol=1e-6 * np.abs(sol.WWt).max())
    hbar = r.matrices["H"].reshape(d, k, n).mean(axis=2)
    np.testing.assert_allclose(hbar.T @ hbar, sol.HbartHbar, atol=1e-6 * np.abs(sol.HbartHbar).max())
    h = r.matrices["H"]
    np.testing.assert_allclose(h.T @ h, sol.HtH(), atol=1e-6 * np.abs(sol.HbartHbar).max())
    if bias == "free":
        np.testing.assert_allclose(r.matrices["b"], sol.b, atol=1e-6)
        assert simplex_etf_error(w @ w.T) < 1e-6
    else:
        assert orthogonal_frame_error(w @ w.T) < 1e-6


@pytest.mark.parametrize("bias", ["none", "free"])
def test_mse_ufm_zero_beyond_threshold(bias):
    k, n = 3, 4
    lam = 1.2 / (k * math.sqrt(n))  # rho = 1.2
    assert mse_ufm_threshold(k, n, lam, lam) == pytest.approx(1.2)
    sol = mse_ufm_minimizer(k, n, lam, lam, bias=bias)
    assert not sol.nonzero and sol.W_norm_sq == 0.0
    p = UFMProblem("plain", loss="mse", num_classes=k, per_class=n, dim=4, lambda_w=lam, lambda_h=lam, bias=bias)
    r = _solve(p)
    assert r.objective == pytest.approx(sol.objective, rel=1e-9)
    assert r.W_norm_sq < 1e-8


def test_mse_ufm_objective_formula_direct():
    """Objective formula against the objective evaluated at an explicit minimiser (no solver)."""
    k, n, lw, lh = 3, 2, 0.02, 0.05
    sol = mse_ufm_minimizer(k, n, lw, lh)
    d = 3
    sw = math.sqrt(math.sqrt(n * lh / lw) * sol.s)
    sh = math.sqrt(math.sqrt(lw / (n * lh)) * sol.s)
    w = sw * np.eye(k, d)
    h = np.repeat(sh * np.eye(d, k), n, axis=1)
    p = UFMProblem("plain", loss="mse", num_classes=k, per_class=n, dim=d, lambda_w=lw, lambda_h=lh)
    f = float(p.objective_torch(torch.tensor(np.concatenate([w.ravel(), h.ravel()]))))
    assert f == pytest.approx(sol.objective, rel=1e-12)


# ----------------------------------------------------------------------------- plain CE/LS (seed 001 B.1)
@pytest.mark.parametrize(
    "c,n,lam,alpha,bias",
    [(4, 3, 5e-3, 0.0, "none"), (3, 2, 1e-2, 0.2, "free"), (5, 2, 1e-2, 0.1, "regularized"), (3, 2, 0.2, 0.0, "none")],
)
def test_softmax_ufm_closed_form_matches_solver(c, n, lam, alpha, bias):
    sol = softmax_ufm_minimizer(c, n, lam, lam, alpha=alpha, feature_dim=c)
    p = UFMProblem("plain", loss="ls" if alpha else "ce", alpha=alpha, num_classes=c, per_class=n, dim=c,
                   lambda_w=lam, lambda_h=lam, bias=bias, lambda_b=0.01 if bias == "regularized" else 0.0)
    r = _solve(p, restarts=2)
    assert r.objective == pytest.approx(sol.objective, rel=1e-9)
    assert r.W_norm_sq == pytest.approx(sol.W_norm_sq, rel=RTOL, abs=1e-9)
    assert r.H_norm_sq == pytest.approx(sol.H_norm_sq, rel=RTOL, abs=1e-9)
    if sol.nonzero:
        w = r.matrices["W"]
        assert simplex_etf_error(w @ w.T) < 1e-6
        # logit gap equals the predicted margin for every sample
        z = (w @ r.matrices["H"]).T
        y = p.labels()
        own = z[np.arange(len(y)), y]
        gaps = own[:, None] - z
        gaps[np.arange(len(y)), y] = np.nan
        np.testing.assert_allclose(np.nanmin(gaps, axis=1), sol.margin, rtol=1e-6)
    else:
        assert sol.objective == pytest.approx(math.log(c))


# ----------------------------------------------------------------------------- seed 004 Thm 4.1/4.2
@pytest.mark.parametrize("model", ["extended-linear", "extended-relu"])
def test_extended_closed_form_and_structure(model):
    k, n, d, lam = 3, 4, 5, 0.01
    sol = extended_mse_minimizer(k, n, lam, lam, lam, feature_dim=d)
    assert sol.nonzero
    p = UFMProblem(model, loss="mse", num_classes=k, per_class=n, dim=d, lambda_w=lam, lambda_h=lam)
    r = _solve(p, restarts=4)
    assert r.objective == pytest.approx(sol.objective, rel=1e-9)
    m = r.matrices
    assert r.W_norm_sq == pytest.approx(sol.W2_norm_sq, rel=RTOL)
    assert (m["W1"] ** 2).sum() == pytest.approx(sol.W1_norm_sq, rel=RTOL)
    assert r.H_norm_sq == pytest.approx(sol.H1_norm_sq, rel=RTOL)
    assert (m["H"] ** 2).sum() == pytest.approx(sol.H2_norm_sq, rel=RTOL)
    act = "relu" if model == "extended-relu" else "linear"
    st = extended_structure(m["W"], m["W1"], m["H1"], p.labels(), num_classes=k, activation=act)
    assert st["within_h2"] < 1e-8 and st["of_h2"] < 1e-5 and st["of_w2"] < 1e-5 and st["align_w2_h2"] < 1e-5
    if act == "linear":
        assert st["within_h1"] < 1e-8 and st["of_h1"] < 1e-5 and st["align_w1"] < 1e-5


def test_extended_threshold_is_two_to_minus_four_thirds():
    k, n = 3, 2
    for factor, nonzero in ((0.95, True), (1.05, False)):
        lam = (factor * 2 ** (-4 / 3) / k) ** 3 / n
        lam = lam ** (1 / 3)
        assert extended_mse_threshold(k, n, lam, lam, lam) == pytest.approx(factor * 2 ** (-4 / 3))
        sol = extended_mse_minimizer(k, n, lam, lam, lam)
        assert sol.nonzero is nonzero
        p = UFMProblem("extended-linear", loss="mse", num_classes=k, per_class=n, dim=3, lambda_w=lam, lambda_h=lam)
        # non-convex: a nonzero local minimum survives beyond the threshold, so take the best of
        # small and unit-scale starts; no start may beat the closed form
        runs = [_solve(p, restarts=3, init_scale=s) for s in (0.1, 1.0)]
        assert min(r.objective for r in runs) == pytest.approx(sol.objective, rel=1e-8)
        assert all(r.objective >= sol.objective - 1e-12 for r in runs)


def test_extended_scalar_root():
    sol = extended_mse_minimizer(4, 5, 1e-2, 2e-2, 3e-2)
    t = sol.s ** (1 / 3)
    assert t**4 - t + sol.threshold == pytest.approx(0.0, abs=1e-14)
    # psi(s) is not beaten on a fine grid of s in [0, 1]
    k, c = 4, sol.c
    grid = np.linspace(0, 1, 20001)
    psi = (grid - 1) ** 2 / (2 * k) + 1.5 * c * grid ** (2 / 3)
    assert (sol.objective / k) <= psi.min() + 1e-12


# ----------------------------------------------------------------------------- fixed ETF (seed 002)
@pytest.mark.parametrize("loss,alpha", [("ce", 0.0), ("ls", 0.1), ("lr", 0.1), ("mse", 0.0)])
def test_fixed_etf_closed_form_and_invariance(loss, alpha):
    k, n, d, lam = 4, 3, 5, 5e-3
    sol = fixed_etf_minimizer(k, n, lam, loss=loss, alpha=alpha)
    objs = []
    for kw in ({}, {"etf_permutation": (2, 0, 3, 1)}, {"etf_rotation_seed": 7}):
        p = UFMProblem("fixed-etf", loss=loss, alpha=alpha, num_classes=k, per_class=n, dim=d, lambda_h=lam, **kw)
        r = _solve(p)
        objs.append(r.objective)
        assert r.H_norm_sq == pytest.approx(sol.H_norm_sq, rel=RTOL)
        # features align with their (fixed) classifier rows: h_i = a w_{y_i}
        want = sol.a * p.fixed_weights[p.labels()].T
        np.testing.assert_allclose(r.matrices["H"], want, atol=1e-6 * np.abs(want).max())
    assert objs == pytest.approx([sol.objective] * 3, rel=1e-9)


def test_margin_loss_matches_losses_module_and_derivative():
    from nclab.losses import label_relaxation_loss, label_smoothing_loss

    c = 5
    for delta in (0.3, 2.0, 6.0):
        logits = torch.full((1, c), -delta, dtype=torch.float64)
        logits[0, 0] = 0.0
        y = torch.tensor([0])
        v, dv = margin_loss("ls", delta, c, 0.2)
        assert v == pytest.approx(float(label_smoothing_loss(logits, y, alpha=0.2)), rel=1e-12)
        v2, _ = margin_loss("lr", delta, c, 0.1)
        assert v2 == pytest.approx(float(label_relaxation_loss(logits, y, alpha=0.1)), rel=1e-12, abs=1e-15)
        eps = 1e-6
        fd = (margin_loss("ls", delta + eps, c, 0.2)[0] - margin_loss("ls", delta - eps, c, 0.2)[0]) / (2 * eps)
        assert dv == pytest.approx(fd, rel=1e-6)


# ----------------------------------------------------------------------------- seed 003
@pytest.mark.parametrize("c,a,b", [(2, 1.0, 1.0), (4, 1.5, 1.0), (6, 0.7, 2.0)])
def test_min_ce_loss_norm_bounded_matches_solver(c, a, b):
    m = min_ce_loss_norm_bounded(c, a, b)
    p = UFMProblem("norm-constrained", loss="ce", num_classes=c, per_class=3, dim=c + 1, feature_norm=a, weight_norm=b)
    r = _solve(p, restarts=2)
    assert r.objective == pytest.approx(m, rel=1e-9)
    intra, inter = class_cosine_similarities(r.matrices["H"].T, p.labels(), num_classes=c)
    lim_intra, lim_inter = cosine_similarity_limits(c)
    np.testing.assert_allclose(intra, lim_intra, atol=1e-8)
    off = inter[~np.eye(c, dtype=bool)]
    np.testing.assert_allclose(off, lim_inter, atol=1e-6)


def test_min_ce_loss_direct_etf():
    c, a, b = 5, 1.3, 0.8
    etf = simplex_etf(c, c)
    logits = torch.as_tensor((b * etf) @ (a * etf).T)  # row i: logits of class-i feature
    from nclab.losses import cross_entropy

    assert float(cross_entropy(logits, torch.arange(c))) == pytest.approx(min_ce_loss_norm_bounded(c, a, b), rel=1e-12)


def test_class_cosine_similarities_reference():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3))
    y = np.repeat(np.arange(3), 4)
    intra, inter = class_cosine_similarities(x, y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    for c in range(3):
        rows = xn[y == c]
        assert intra[c] == pytest.approx(np.mean([u @ v for u in rows for v in rows]), rel=1e-12)
    assert inter[0, 2] == pytest.approx(np.mean([u @ v for u in xn[y == 0] for v in xn[y == 2]]), rel=1e-12)


# ----------------------------------------------------------------------------- structure helpers
def test_simplex_etf_properties():
    for c, d in ((3, 2), (4, 4), (5, 7)):
        m = simplex_etf(c, d)
        g = m @ m.T
        np.testing.assert_allclose(np.diag(g), 1.0, atol=1e-12)
        np.testing.assert_allclose(g[~np.eye(c, dtype=bool)], -1 / (c - 1), atol=1e-12)
        assert simplex_etf_error(g) < 1e-12
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    m = simplex_etf(4, 5)
    np.testing.assert_allclose(simplex_etf(4, 5, rotation=q) @ simplex_etf(4, 5, rotation=q).T, m @ m.T, atol=1e-12)
    np.testing.assert_allclose(simplex_etf(4, 5, permutation=[1, 0, 3, 2]), m[[1, 0, 3, 2]])


def test_validation_errors():
    with pytest.raises(SpecError, match="num_classes"):
        positive_nc_norms(1, 1e-3, 1e-3)
    with pytest.raises(SpecError, match="lambda_w"):
        positive_nc_norms(3, 0.0, 1e-3)
    with pytest.raises(SpecError, match="alpha"):
        positive_nc_norms(3, 1e-3, 1e-3, 1.0)
    with pytest.raises(SpecError, match="M >= N"):
        positive_nc_norms(3, 1e-3, 1e-3, feature_dim=2)
    with pytest.raises(SpecError, match="bias"):
        mse_ufm_minimizer(3, 2, 1e-3, 1e-3, bias="regularized")
    with pytest.raises(SpecError, match="feature_dim"):
        mse_ufm_minimizer(3, 2, 1e-3, 1e-3, feature_dim=2)
    with pytest.raises(SpecError, match="feature_norm"):
        min_ce_loss_norm_bounded(3, -1.0, 1.0)
    with pytest.raises(SpecError, match="dim"):
        simplex_etf(4, 2)
    with pytest.raises(SpecError, match="permutation"):
        simplex_etf(3, 3, permutation=[0, 0, 1])
    with pytest.raises(SpecError, match="loss"):
        fixed_etf_minimizer(3, 2, 1e-3, loss="hinge")


def test_extended_structure_on_constructed_minimiser():
    """Build the balanced factorisation of Thm 4.1 by hand: every deviation is 0; a perturbation is seen."""
    k, n, d = 3, 2, 5
    rng = np.random.default_rng(4)
    v1, _ = np.linalg.qr(rng.standard_normal((d, k)))
    v2, _ = np.linalg.qr(rng.standard_normal((d, k)))
    h1 = np.repeat(0.7 * v1, n, axis=1)
    w1 = 1.3 * v2 @ v1.T
    w2 = 0.9 * v2.T
    labels = np.repeat(np.arange(k), n)
    st = extended_structure(w2, w1, h1, labels, num_classes=k, activation="linear")
    assert max(st.values()) < 1e-12
    h1_bad = h1 + 0.05 * rng.standard_normal(h1.shape)
    st_bad = extended_structure(w2, w1, h1_bad, labels, num_classes=k, activation="linear")
    assert st_bad["within_h1"] > 1e-4 and st_bad["of_h1"] > 1e-3


def test_cosine_self_duality_rows_of_verify():
    # nclab verify's cosine form of self-duality: 1 at the CE-UFM minimiser; a random classifier is far from it
    import numpy as np

    from nclab.metrics import nc3_cosine
    from nclab.theory.checks import theory_checks

    rows = [r for r in theory_checks(quick=True) if r.theorem == "seed003-cosine-duality"]
    assert rows and all(r.holds and abs(r.measured - 1.0) <= 1e-6 for r in rows)
    g = np.random.default_rng(0)
    H, y = g.standard_normal((12, 8)), np.arange(12) % 4
    assert nc3_cosine(H, y, g.standard_normal((4, 8))) < 0.9
