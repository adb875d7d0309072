"""nclab.measure on models: one forward pass, hooks find the head, per-layer metrics."""

import math

import pytest
import torch
from torch import nn

from nclab.errors import SpecError
from nclab.hooks import find_head, measure
from nclab.metrics import collapse_metrics, effective_depth


def _data(n=60, d=5, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n // C)
    x = torch.randn(n, d, generator=g) + 2 * torch.eye(C, d)[y]
    return x, y


class Counting(nn.Module):
    def __init__(self, body, fc):
        super().__init__()
        self.body, self.fc, self.calls = body, fc, 0

    def forward(self, x):
        self.calls += 1
        return self.fc(self.body(x))


def _loader(x, y, bs=16):
    return [(x[i : i + bs], y[i : i + bs]) for i in range(0, len(x), bs)]


def test_measure_equals_collapse_metrics_in_one_pass():
    torch.manual_seed(0)
    x, y = _data()
    model = Counting(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh()), nn.Linear(6, 3))
    loader = _loader(x, y)
    got = measure(model, loader, layers=["body.1"])
    assert model.calls == len(loader)  # one forward pass, never two
    with torch.no_grad():
        feats = model.body(x)
        hidden = model.body[1](model.body[0](x))
    want = collapse_metrics(feats, y, weights=model.fc.weight, bias=model.fc.bias)
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-5, abs_tol=1e-6), k
    assert got["num_samples"] == 60
    assert math.isclose(got["layers"]["body.1"]["nc1"], collapse_metrics(hidden, y)["nc1"], rel_tol=1e-5)
    assert got["effective_depth"] == effective_depth([hidden, feats], y, eps=0.01)


def test_streaming_mode_omits_ncc_and_restores_train_mode():
    x, y = _data()
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3))
    model.train()
    got = measure(model, _loader(x, y), keep_features=False)
    assert model.training
    assert "nc4_ncc_mismatch" not in got and "nc1" in got and "margin_min" in got


@pytest.mark.parametrize("attr", ["fc", "classifier", "head"])
def test_find_head_conventions(attr):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 4)
            setattr(self, attr, nn.Sequential(nn.Dropout(0.0), nn.Linear(4, 2)) if attr == "classifier" else nn.Linear(4, 2))

    name, mod = find_head(Net())
    assert isinstance(mod, nn.Linear) and mod.out_features == 2 and name.startswith(attr)


def test_find_head_errors():
    with pytest.raises(SpecError, match="head="):
        find_head(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(SpecError, match="not nn.Linear"):
        find_head(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), head="1")
    x, y = _data()
    with pytest.raises(SpecError, match="no layer named"):
        measure(nn.Sequential(nn.Linear(5, 3)), _loader(x, y), layers=["nope"])


def test_top_level_measure_is_the_function():
    import nclab
    import nclab.hooks  # noqa: F401  (importing the module must not shadow the function)

    assert callable(nclab.measure) and nclab.measure is measure
