"""Sizes that cannot fit are refused before anything is allocated, with the size they would need."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import nclab._resources as res
from nclab.cli import app
from nclab.errors import SpecError
from nclab.md import md_objective, solve_md
from nclab.ufm import UFMProblem, solve

runner = CliRunner()


def _one_error_line(result, *needles):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_ufm_solve_absurd_size_refused():
    out = runner.invoke(app, ["ufm", "solve", "--classes", "100000", "--per-class", "100000", "--dim", "100000"])
    line = _one_error_line(out, "needs at least", "PiB", "num_classes=100000")
    # parameters W (C, d) and H (d, C n), twice (value and gradient), plus logits and their gradient (C n, C)
    c = n = d = 100_000
    want = 8 * (2 * (c * d + d * c * n) + 2 * c * n * c)
    assert f"{want / 2**50:.1f} PiB" in line


def test_ufm_negative_tol_refused():
    _one_error_line(runner.invoke(app, ["ufm", "solve", "--tol", "-1"]), "tol")
    _one_error_line(runner.invoke(app, ["ufm", "solve", "--tol", "nan"]), "tol")


@pytest.mark.parametrize("model", ["plain", "extended-relu", "fixed-etf", "norm-constrained"])
def test_ufm_memory_bound_counts_what_a_gradient_evaluation_holds(model):
    p = UFMProblem(model, loss="ce", num_classes=3, per_class=4, dim=5)
    x = p.init(np.random.default_rng(0))
    _, g = p.objective_grad(x)
    logits = p.num_samples * p.num_classes * 8
    etf = 0 if p.fixed_weights is None else p.fixed_weights.nbytes
    assert p.memory_bytes() == x.nbytes + g.nbytes + 2 * logits + etf
    # fast adds SciPy L-BFGS-B's 2 m + 5 vectors (m = 10 pairs at this size), gd one
    assert p.memory_bytes("fast") == p.memory_bytes() + 25 * x.nbytes
    assert p.memory_bytes("gd") == p.memory_bytes() + x.nbytes


def test_solver_working_set_checked_against_the_limit(monkeypatch):
    p = UFMProblem("plain", loss="mse", num_classes=3, per_class=4, dim=5)
    monkeypatch.setattr(res, "memory_limit_bytes", lambda: p.memory_bytes("gd"))
    solve(p, solver="gd", max_iter=2, warn=False)  # fits exactly
    with pytest.raises(SpecError, match="the fast solver on 75 parameters needs at least"):
        solve(p, solver="fast")
    with pytest.raises(SpecError, match="this machine has"):
        UFMProblem("plain", loss="mse", num_classes=30, per_class=40, dim=50)


def test_md_absurd_class_count_refused():
    _one_error_line(runner.invoke(app, ["md", "--num-classes", "100000000"]), "num_classes=100000000",
                    "needs at least")
    with pytest.raises(SpecError, match="needs at least"):
        md_objective([0.1], alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=0.1, c_md=1.0, num_classes=10**7)


def test_md_memory_bound_matches_the_arrays(monkeypatch):
    from nclab.md.model import _memory_bytes

    r = solve_md(alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=0.1, c_md=1.0, num_classes=3, n_grid=5)
    nodes = 4096 * 3 * 8
    assert _memory_bytes(3, None, 5, with_u=True) == r.h.nbytes + r.w.nbytes + r.u.nbytes + nodes * (1 + 2 * 5)
    monkeypatch.setattr(res, "memory_limit_bytes", lambda: _memory_bytes(3, None, 5, with_u=True) - 1)
    with pytest.raises(SpecError, match="num_classes=3"):
        solve_md(alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=0.1, c_md=1.0, num_classes=3, n_grid=5)
