"""The experiment commands: wiring, exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from nclab.cli import app

runner = CliRunner()


def test_run_then_rerun_skips_done_cells(tmp_path):
    store = str(tmp_path / "s.sqlite")
    r = runner.invoke(app, ["run", "synthetic-smoke", "--preset", "tiny", "--store", store,
                            "--json", "--no-progress"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["total"], out["done"], out["skipped"], out["failed"]) == (2, 2, 0, 0)
    r = runner.invoke(app, ["run", "synthetic-smoke", "--preset", "tiny", "--store", store,
                            "--json", "--no-progress"])
    assert json.loads(r.stdout)["skipped"] == 2


def test_sweep_forwards_its_options(monkeypatch, tmp_path):
    import nclab.experiments as ex

    seen = {}

    def fake(name, **kw):
        seen.update(kw, name=name)
        return ex.SweepSummary(name, kw["preset"], "s", 1, 0, 1, 0, 0.0)

    monkeypatch.setattr(ex, "run_experiment", fake)
    r = runner.invoke(app, ["sweep", "md-model", "--preset", "paper", "--set", "etas=0.1,0.2",
                            "-s", "alpha=0.2", "--backend", "ray", "--address", "auto",
                            "--workers", "3", "--store", str(tmp_path / "x.sqlite"),
                            "--no-progress"])
    assert r.exit_code == 0, r.output
    assert seen == {"name": "md-model", "preset": "paper",
                    "overrides": {"etas": "0.1,0.2", "alpha": "0.2"}, "store": tmp_path /
                    "x.sqlite", "backend": "ray", "workers": 3, "address": "auto",
                    "on_event": None}


@pytest.mark.parametrize("args, message", [
    (["run", "synthetic-smoke", "--set", "bogus=1"], "error: unknown setting 'bogus'"),
    (["run", "synthetic-smoke", "--set", "epochs=-1"], "error: invalid setting epochs='-1'"),
    (["run", "no-such-experiment"], "error: unknown experiment 'no-such-experiment'"),
    (["run", "synthetic-smoke", "--preset", "huge"], "error: experiment 'synthetic-smoke' has "
                                                     "no preset 'huge'"),
    (["sweep", "synthetic-smoke", "--backend", "slurm"], "error: --backend must be local or ray"),
    (["export", "--format", "xml"], "error: --format must be csv or parquet"),
    (["run", "md-label-noise", "--preset", "paper"], "error: datasets cifar10, fashion_mnist, "
                                                     "mnist, svhn are read from files; pass "
                                                     "--set data_root=DIR"),
])
def test_user_errors_are_one_line_and_exit_2(args, message, tmp_path):
    r = runner.invoke(app, args + ["--store", str(tmp_path / "s.sqlite")])
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith(message)


def test_failed_cells_exit_1(tmp_path):
    from . import test_runner  # registers test-flaky  # noqa: F401

    r = runner.invoke(app, ["run", "test-flaky", "--store", str(tmp_path / "s.sqlite"),
                            "--no-progress"])
    assert r.exit_code == 1
    assert "failed x=2#" in r.stdout and "ValueError: x=2 is broken" in r.stdout


def test_dry_run_lists_cells_without_running(tmp_path):
    store = tmp_path / "s.sqlite"
    r = runner.invoke(app, ["run", "md-label-noise", "--dry-run", "--store", str(store)])
    assert r.exit_code == 0
    assert r.stdout.count("dataset=mnist1d,num_classes=2,feature_dim=None,") == 128  # 4 eta x 4 loss x 8 seeds
    assert not store.exists()


def test_export_report_and_reproduce(tmp_path):
    store = str(tmp_path / "s.sqlite")
    assert runner.invoke(app, ["run", "synthetic-smoke", "--preset", "tiny", "--store",
                               store]).exit_code == 0
    r = runner.invoke(app, ["export", "--store", store, "--out", str(tmp_path / "csv")])
    assert r.exit_code == 0 and (tmp_path / "csv" / "final_metrics.csv").exists()
    r = runner.invoke(app, ["export", "--store", str(tmp_path / "none.sqlite")])
    assert r.exit_code == 2 and "does not exist" in r.stderr
    r = runner.invoke(app, ["report", "--store", store, "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0 and (tmp_path / "rep" / "report.html").exists()
    assert "Gradient descent on least squares" in (tmp_path / "rep" / "report.html").read_text()
    r = runner.invoke(app, ["reproduce", "--quick", "--out", str(tmp_path / "repro"), "--only",
                            "synthetic-smoke", "--workers", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "repro" / "report.html").read_text()
    assert "8 runs, preset quick" in html and "supported" in html
    assert (tmp_path / "repro" / "results.sqlite").exists()


def test_experiments_listing():
    r = runner.invoke(app, ["experiments", "--json"])
    assert r.exit_code == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["md-label-noise"]["cells"]["quick"] == 128
    assert rows["md-label-noise"]["source"].startswith("seed 000")
