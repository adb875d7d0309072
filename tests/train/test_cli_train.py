"""``nclab train``: options forwarded to the library, JSON output, one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

import nclab.train
from nclab.cli import app

runner = CliRunner()


def test_options_are_forwarded(monkeypatch):
    seen = {}

    def fake_train(config, *, callback=None, dataset=None):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr(nclab.train, "train", fake_train)
    res = runner.invoke(app, ["train", "--dataset", "mnist1d", "--classes", "2", "--eta", "0.1", "--loss", "ls",
                              "--alpha", "0.1", "--epochs", "30", "--head", "etf", "--head-transform", "rotate",
                              "--width", "64", "--device", "cpu", "--no-head-bias", "-q"])
    assert res.exit_code == 0, res.output
    cfg = seen["config"]
    assert (cfg.classes, cfg.eta, cfg.loss, cfg.alpha, cfg.epochs) == (2, 0.1, "ls", 0.1, 30)
    assert (cfg.net.head, cfg.net.head_transform, cfg.net.width, cfg.net.head_bias) == ("etf", "rotate", 64, False)
    assert cfg.num_samples == 4000 and cfg.device == "cpu"  # quick preset kept where not overridden
    runner.invoke(app, ["train", "--preset", "paper", "--classes", "2", "-q"])
    assert seen["config"].net.width == 2048 and seen["config"].epochs == 200


def test_json_run_has_required_keys():
    res = runner.invoke(app, ["train", "--classes", "2", "--num-samples", "300", "--eta", "0.1", "--loss", "ls",
                              "--alpha", "0.1", "--epochs", "3", "--width", "32", "--depth", "2", "--device", "cpu",
                              "--json", "-q", "--threads", "1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in ("train_acc", "test_acc", "nc1_train", "nc1_test", "memorization", "tpt_epoch", "history"):
        assert key in out
    assert [r["epoch"] for r in out["history"]] == [1, 2, 3]
    assert out["history"][-1]["train_acc"] == out["train_acc"]


def test_user_errors_exit_2():
    res = runner.invoke(app, ["train", "--dataset", "cifar10", "-q"])
    assert res.exit_code == 2 and "data_root" in res.output
    res = runner.invoke(app, ["train", "--loss", "hinge", "-q"])
    assert res.exit_code == 2 and "loss" in res.output
    res = runner.invoke(app, ["train", "--dataset", "mnist", "--data-root", "/nonexistent-dir", "-q"])
    assert res.exit_code == 2 and "train-images-idx3-ubyte" in res.output
