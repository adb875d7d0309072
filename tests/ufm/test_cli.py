"""CLI wiring of ``nclab ufm solve`` and ``nclab verify`` (the quick grid runs for real)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nclab.cli import app

runner = CliRunner()


def test_ufm_solve_json_matches_closed_form():
    res = runner.invoke(app, ["ufm", "solve", "--model", "plain", "--loss", "mse", "--classes", "3", "--per-class",
                              "4", "--dim", "5", "--lambda-w", "0.01", "--lambda-h", "0.02", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {"objective", "W_norm_sq", "H_norm_sq", "metrics", "predicted"} <= set(out)
    pred = out["predicted"]
    assert pred["theorem"] == "seed004-thm3.1"
    for key in ("objective", "W_norm_sq", "H_norm_sq"):
        assert out[key] == pytest.approx(pred[key], rel=1e-6)


def test_ufm_solve_positive_table_and_null_prediction():
    res = runner.invoke(app, ["ufm", "solve", "--model", "positive", "--loss", "ls", "--alpha", "0.1",
                              "--classes", "3", "--per-class", "2", "--dim", "3", "--lambda-w", "1e-3",
                              "--lambda-h", "1e-3"])
    assert res.exit_code == 0, res.output
    assert "seed000-thm3.2" in res.stdout
    res = runner.invoke(app, ["ufm", "solve", "--model", "extended-linear", "--loss", "ce", "--classes", "3",
                              "--per-class", "2", "--dim", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["predicted"] is None


def test_ufm_solve_fixed_etf_permutation_and_gd():
    res = runner.invoke(app, ["ufm", "solve", "--model", "fixed-etf", "--loss", "ce", "--classes", "3",
                              "--per-class", "2", "--dim", "3", "--etf-permutation-seed", "1", "--solver", "gd",
                              "--max-iter", "50", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["solver"] == "gd" and out["n_iter"] == 50 and not out["converged"]
    assert any("max_iter" in w for w in out["warnings"])


@pytest.mark.parametrize("args,match", [
    (["--model", "deep"], "model must be one of"),
    (["--bias", "free", "--model", "extended-relu"], "has no bias"),
    (["--solver", "adam"], "solver must be"),
])
def test_ufm_solve_user_errors_exit_2(args, match):
    res = runner.invoke(app, ["ufm", "solve", *args])
    assert res.exit_code == 2
    assert "error:" in res.output and match in res.output


def test_verify_quick_json_all_hold(tmp_path):
    res = runner.invoke(app, ["verify", "--quick", "--json", "--plots", str(tmp_path)])
    assert res.exit_code == 0, res.output[-2000:]
    rows = json.loads(res.stdout)
    assert all({"theorem", "params", "predicted", "measured", "rel_error", "holds"} <= set(r) for r in rows)
    theorems = {r["theorem"] for r in rows}
    assert {"seed000-thm3.2", "seed001-B.1", "seed004-thm3.1", "seed004-thm3.2", "seed004-thm4.1", "seed004-thm4.2",
            "seed003-min-loss", "seed003-thm2.3.1", "seed002-thm4.1", "seed002-fixed-etf", "seed003-prop2.2.1",
            "seed003-cosine-duality"} <= theorems
    assert all(r["holds"] for r in rows if "as printed" not in r["theorem"])
    # the grid contains points beyond each threshold
    assert any("zero minimiser" in r["note"] for r in rows if r["theorem"] == "seed004-thm3.1")
    assert any("zero minimiser" in r["note"] for r in rows if r["theorem"] == "seed000-thm3.2")
    # the printed seed-000 closed form disagrees with the solver somewhere
    assert any(not r["holds"] for r in rows if r["theorem"] == "seed000-thm3.2 (as printed)")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "seed002_thm41_margin.png", "seed004_fig2.png", "seed004_fig5.png"]
