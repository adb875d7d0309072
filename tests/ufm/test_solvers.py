"""Tests of nclab.ufm: objectives, gradients, both solvers, SolveResult, validation."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch

from nclab.errors import ConvergenceWarning, SpecError
from nclab.ufm import UFMProblem, objective_and_gradient, predict, solve
from nclab.ufm.problems import MODELS

CASES = [
    dict(model="plain", loss="mse"),
    dict(model="plain", loss="ce", bias="regularized", lambda_b=0.01),
    dict(model="plain", loss="ls", alpha=0.2, bias="free"),
    dict(model="positive", loss="lr", alpha=0.3),
    dict(model="positive", loss="ce", bias="free"),
    dict(model="extended-linear", loss="ce"),
    dict(model="extended-relu", loss="mse", lambda_w1=0.02),
    dict(model="fixed-etf", loss="lr", alpha=0.1, etf_rotation_seed=3),
    dict(model="norm-constrained", loss="ls", alpha=0.1, feature_norm=2.0, weight_norm=0.5),
]


def _quiet_solve(problem, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return solve(problem, **kw)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['model']}-{c['loss']}")
def test_numpy_gradient_matches_torch_autograd(case):
    p = UFMProblem(num_classes=3, per_class=2, dim=4, lambda_w=0.03, lambda_h=0.02, **case)
    x = p.init(np.random.default_rng(1), scale=1.0)
    f, g = objective_and_gradient(p, x)
    xt = torch.tensor(x, requires_grad=True)
    ft = p.objective_torch(xt)
    (gt,) = torch.autograd.grad(ft, xt)
    assert f == pytest.approx(float(ft.detach()), rel=1e-12)
    np.testing.assert_allclose(g, gt.numpy(), rtol=1e-9, atol=1e-12)


def test_plain_objective_matches_tirer_bruna_formula():
    """1/(2Kn)||WH + b1^T - Y||^2 + lw/2||W||^2 + lh/2||H||^2 + lb/2||b||^2 written out directly."""
    k, n, d = 3, 4, 5
    p = UFMProblem("plain", loss="mse", num_classes=k, per_class=n, dim=d, lambda_w=0.1, lambda_h=0.2,
                   bias="regularized", lambda_b=0.3)
    rng = np.random.default_rng(2)
    w, h, b = rng.standard_normal((k, d)), rng.standard_normal((d, k * n)), rng.standard_normal(k)
    y = np.kron(np.eye(k), np.ones((1, n)))
    want = (np.linalg.norm(w @ h + b[:, None] - y) ** 2 / (2 * k * n) + 0.05 * (w**2).sum() + 0.1 * (h**2).sum()
            + 0.15 * (b**2).sum())
    f, _ = objective_and_gradient(p, np.concatenate([w.ravel(), h.ravel(), b]))
    assert f == pytest.approx(want, rel=1e-12)


def test_positive_objective_scaling_of_seed000():
    """(P_alpha): mean loss + lw ||W||^2 + lh/K ||H||^2 (no factor 1/2)."""
    k_cls, k = 2, 3
    p = UFMProblem("positive", loss="ce", num_classes=k_cls, per_class=k, dim=2, lambda_w=0.1, lambda_h=0.3)
    w, h = np.zeros((2, 2)), np.ones((2, 6))
    f, _ = objective_and_gradient(p, np.concatenate([w.ravel(), h.ravel()]))
    assert f == pytest.approx(np.log(2) + 0.3 / 3 * 12, rel=1e-12)


def test_gd_and_fast_agree():
    p = UFMProblem("plain", loss="ce", num_classes=3, per_class=2, dim=3, lambda_w=0.05, lambda_h=0.05)
    fast = solve(p, track_metrics=False)
    gd = solve(p, solver="gd", lr=0.5, tol=1e-9, max_iter=50_000, track_metrics=False)
    assert fast.converged and gd.converged
    assert gd.objective == pytest.approx(fast.objective, rel=1e-12)
    assert gd.W_norm_sq == pytest.approx(fast.W_norm_sq, rel=1e-6)
    w_f, w_g = fast.matrices["W"], gd.matrices["W"]
    np.testing.assert_allclose(w_g @ w_g.T, w_f @ w_f.T, atol=1e-6)  # equal up to rotation


def test_gd_objective_decreases_and_history():
    p = UFMProblem("plain", loss="mse", num_classes=3, per_class=2, dim=4)
    r = _quiet_solve(p, solver="gd", max_iter=300, record_every=10, track_metrics=False)
    its = [h.iteration for h in r.history]
    assert its == list(range(0, 301, 10))
    objs = np.array([h.objective for h in r.history])
    assert np.all(np.diff(objs) <= 1e-15)
    assert r.history[-1].objective == r.objective
    assert r.n_iter == 300 and not r.converged


def test_positive_solution_is_nonnegative():
    p = UFMProblem("positive", loss="ls", alpha=0.1, num_classes=3, per_class=2, dim=4, lambda_w=1e-3, lambda_h=1e-3)
    for solver, kw in (("fast", {}), ("gd", {"max_iter": 200})):
        r = _quiet_solve(p, solver=solver, track_metrics=False, **kw)
        assert r.matrices["H"].min() >= 0.0


def test_result_is_frozen_and_readonly():
    p = UFMProblem("plain", loss="mse", num_classes=2, per_class=2, dim=2)
    r = solve(p, track_metrics=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.objective = 0.0
    with pytest.raises(ValueError):
        r.x[0] = 1.0
    s = r.summary()
    assert {"objective", "W_norm_sq", "H_norm_sq", "metrics", "converged"} <= set(s)


def test_metrics_along_the_way():
    pytest.importorskip("nclab.metrics")
    p = UFMProblem("extended-relu", loss="mse", num_classes=3, per_class=3, dim=4)
    r = _quiet_solve(p, solver="gd", max_iter=40, record_every=10)
    assert all("nc1" in h.metrics for h in r.history)
    assert set(r.level_metrics) == {"H1", "H2", "pre"}
    assert r.metrics == r.level_metrics["H2"]
    # NC1 of the solution of a converged plain UFM is (numerically) zero
    q = UFMProblem("plain", loss="mse", num_classes=3, per_class=3, dim=4)
    sol = solve(q)
    assert sol.converged
    assert sol.metrics["nc1"] < 1e-12


def test_convergence_warning_and_callback():
    p = UFMProblem("plain", loss="mse", num_classes=2, per_class=2, dim=2)
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        solve(p, max_iter=1, track_metrics=False)
    seen = []
    r = solve(p, solver="gd", callback=lambda it, f, x: seen.append(it) or it >= 5, track_metrics=False)
    assert seen == list(range(6)) and r.n_iter == 5


def test_restarts_pick_the_least_objective():
    p = UFMProblem("extended-relu", loss="mse", num_classes=4, per_class=5, dim=8)
    singles = [_quiet_solve(p, seed=s, track_metrics=False).objective for s in range(3)]
    best = _quiet_solve(p, seed=0, restarts=3, track_metrics=False)
    assert best.objective == pytest.approx(min(singles), rel=1e-12)


def test_predict_covers_theorems_and_returns_none_elsewhere():
    assert predict(UFMProblem("plain", loss="mse"))["theorem"] == "seed004-thm3.1"
    assert predict(UFMProblem("plain", loss="mse", bias="free"))["theorem"] == "seed004-thm3.2"
    assert predict(UFMProblem("positive", loss="ce"))["theorem"] == "seed000-thm3.2"
    assert predict(UFMProblem("extended-relu", loss="mse"))["theorem"] == "seed004-thm4.2"
    assert predict(UFMProblem("plain", loss="ce", bias="regularized", lambda_b=0.1))["theorem"] == "seed001-B.1"
    assert predict(UFMProblem("plain", loss="mse", bias="regularized", lambda_b=0.1)) is None
    assert predict(UFMProblem("plain", loss="lr", alpha=0.1)) is None
    assert predict(UFMProblem("extended-linear", loss="ce")) is None
    assert predict(UFMProblem("plain", loss="mse", dim=3)) is None  # d < K: theorem does not apply


def test_validation():
    with pytest.raises(SpecError, match="model must be one of"):
        UFMProblem("deep")
    with pytest.raises(SpecError, match="loss must be one of"):
        UFMProblem("plain", loss="hinge")
    with pytest.raises(SpecError, match="has no bias"):
        UFMProblem("extended-linear", bias="free")
    with pytest.raises(SpecError, match="lambda_b"):
        UFMProblem("plain", bias="regularized")
    with pytest.raises(SpecError, match="dim"):
        UFMProblem("fixed-etf", num_classes=5, dim=3)
    with pytest.raises(SpecError, match="per_class"):
        UFMProblem("plain", per_class=0)
    with pytest.raises(SpecError, match="alpha"):
        UFMProblem("plain", loss="ls", alpha=1.5)
    p = UFMProblem("plain")
    with pytest.raises(SpecError, match="solver"):
        solve(p, solver="adam")
    with pytest.raises(SpecError, match="lr"):
        solve(p, solver="gd", lr=0.0)
    with pytest.raises(SpecError, match="init"):
        solve(p, init=np.zeros(3))
    with pytest.raises(SpecError, match="restarts"):
        solve(p, restarts=0)
    assert set(MODELS) >= {"plain", "positive", "extended-linear", "extended-relu", "fixed-etf"}


def test_single_thread_restores_settings():
    from nclab.ufm._threads import single_thread

    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
