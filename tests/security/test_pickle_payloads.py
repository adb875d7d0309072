"""No pickle from a file ever executes: checkpoints, feature files, dataset files, the MNIST-1D cache.

Every test plants a payload whose ``__reduce__`` creates a marker directory when unpickled, checks
(as a control) that plain ``pickle.loads`` of the same payload does create it, then reads the file
through nclab and asserts that the marker was never created and a one-line nclab error was raised.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nclab.errors import InputFileError, SpecError


class Payload:
    """Unpickling this object runs ``os.makedirs(marker)``: arbitrary code in a file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def _control(tmp_path):
    """The payload really executes under an unrestricted unpickler (so the tests below can fail)."""
    probe = tmp_path / "control-marker"
    pickle.loads(pickle.dumps(Payload(probe)))
    assert probe.exists()


@pytest.fixture
def marker(tmp_path):
    _control(tmp_path)
    m = tmp_path / "PWNED"
    yield m
    assert not m.exists(), "a pickle payload from a file was executed"


def _tiny_config(tmp_path, **kw):
    from nclab.nets import NetSpec
    from nclab.train import TrainConfig

    base = dict(num_samples=200, classes=2, epochs=1, device="cpu", net=NetSpec(depth=2, width=8),
                checkpoint_dir=str(tmp_path / "ckpt"))
    base.update(kw)
    return TrainConfig.quick(**base)


def test_checkpoint_payload_never_runs(tmp_path, marker):
    from nclab.train import CHECKPOINT_NAME, train

    cfg = _tiny_config(tmp_path)
    (tmp_path / "ckpt").mkdir()
    # a checkpoint with the right identity, so that only the loader stands between payload and execution
    evil = {"epoch": 1, "model": {}, "optimizer": {}, "scheduler": {}, "history": [Payload(marker)],
            "tpt_epoch": None, "identity": cfg.identity(), "config": cfg.to_dict()}
    torch.save(evil, tmp_path / "ckpt" / CHECKPOINT_NAME)
    with pytest.raises(SpecError, match="cannot read checkpoint"):
        train(cfg)


def test_checkpoint_payload_via_cli(tmp_path, marker):
    from nclab.cli import app
    from nclab.train import CHECKPOINT_NAME

    d = tmp_path / "ck"
    d.mkdir()
    torch.save({"identity": Payload(marker)}, d / CHECKPOINT_NAME)
    res = CliRunner().invoke(app, ["train", "--classes", "2", "--num-samples", "200", "--epochs", "1",
                                   "--width", "8", "--depth", "2", "--device", "cpu", "-q",
                                   "--checkpoint-dir", str(d)])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output


def test_checkpoint_round_trip_is_plain(tmp_path):
    """What train() writes loads with weights_only=True (tensors and plain types only)."""
    from nclab.train import CHECKPOINT_NAME, train

    train(_tiny_config(tmp_path, epochs=2))
    state = torch.load(tmp_path / "ckpt" / CHECKPOINT_NAME, weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())


def test_pt_feature_file_payload_never_runs(tmp_path, marker):
    from nclab.io import load_features

    p = tmp_path / "f.pt"
    torch.save({"features": torch.zeros(4, 2), "labels": torch.tensor([0, 0, 1, 1]), "x": Payload(marker)}, p)
    with pytest.raises(InputFileError, match="could not read"):
        load_features(p)


def test_npz_object_array_payload_never_runs(tmp_path, marker):
    from nclab.cli import app
    from nclab.io import load_features

    p = tmp_path / "f.npz"
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    np.savez(p, features=obj, labels=np.array([0]))  # savez pickles object arrays
    with pytest.raises(InputFileError):
        load_features(p)
    res = CliRunner().invoke(app, ["measure", str(p)])
    assert res.exit_code == 2 and res.output.startswith("error: "), res.output


def test_cifar_batch_payload_never_runs(tmp_path, marker):
    from nclab.data import load_cifar10

    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    good = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(good))
    (root / "data_batch_3").write_bytes(pickle.dumps({b"data": Payload(marker), b"labels": [0, 1]}))
    (root / "test_batch").write_bytes(pickle.dumps(good))
    with pytest.raises(InputFileError, match="data_batch_3"):
        load_cifar10(tmp_path)


def test_mnist1d_cache_payload_never_runs(tmp_path, marker, monkeypatch):
    import nclab.data.mnist1d as m1

    monkeypatch.setattr(m1, "_MEMO", {})
    cache = tmp_path / "cache"
    want = m1.make_mnist1d(num_samples=40, classes=2, cache_dir=cache)
    (path,) = cache.glob("mnist1d_*.npz")
    obj = np.empty(1, dtype=object)
    obj[0] = Payload(marker)
    np.savez(path, x=obj, y=obj, x_test=obj, y_test=obj)
    monkeypatch.setattr(m1, "_MEMO", {})
    got = m1.make_mnist1d(num_samples=40, classes=2, cache_dir=cache)  # regenerated, not unpickled
    assert torch.equal(got.train.x, want.train.x) and torch.equal(got.test.labels, want.test.labels)

