"""`nclab train --log tensorboard|mlflow`: every tracked epoch's numbers reach the tracker."""

import json
import math

import pytest
from typer.testing import CliRunner

from nclab.cli import app

runner = CliRunner()
_ARGS = ["train", "--classes", "2", "--num-samples", "300", "--epochs", "2", "--width", "32", "--depth", "2",
         "--device", "cpu", "--json", "-q", "--threads", "1"]


def _history(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["history"]


def test_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tests.measure.test_frameworks import _tb_scalars

    hist = _history(runner.invoke(app, [*_ARGS, "--log", "tensorboard", "--log-dir", str(tmp_path)]))
    tb = _tb_scalars(tmp_path)
    assert [s for s, _ in tb["nc1_train"]] == [r["epoch"] for r in hist] == [1, 2]
    for (_, v), r in zip(tb["nc1_train"], hist):
        assert math.isclose(v, r["nc1_train"], rel_tol=1e-6)


def test_mlflow(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    hist = _history(runner.invoke(app, [*_ARGS, "--log", "mlflow", "--log-dir", str(tmp_path)]))
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("nclab").experiment_id])
    got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "test_acc"))
    assert got == [(r["epoch"], pytest.approx(r["test_acc"])) for r in hist]


def test_unknown_tracker_one_line():
    res = runner.invoke(app, [*_ARGS, "--log", "wandb"])
    assert res.exit_code == 2 and "tensorboard, mlflow" in res.output
