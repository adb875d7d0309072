"""The registry is the one list of metrics: key order, docs table, CLI, and every metric's symmetries."""

import importlib
import math
import re
from pathlib import Path

import pytest
import torch

from nclab.metrics import collapse_metrics
from nclab.metrics.registry import METRIC_ORDER, METRICS, markdown_table, qualname

from .conftest import make_data

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def _full(D, H=None, W=None, b=None, Ht=None, Hood=None):
    return collapse_metrics(
        D["H"] if H is None else H, D["yobs"], weights=D["W"] if W is None else W, bias=D["b"] if b is None else b,
        test_features=D["Ht"] if Ht is None else Ht, test_labels=D["yt"], true_labels=D["ytrue"],
        ood_features=D["Hood"] if Hood is None else Hood,
    )


def test_docs_table_is_the_registry():
    text = DOCS.read_text()
    m = re.search(r"<!-- registry:begin -->\n(.*?)\n<!-- registry:end -->", text, re.S)
    assert m, "docs/metrics.md lacks the registry table markers"
    assert m.group(1).strip() == markdown_table().strip(), (
        "docs/metrics.md's metric table differs from nclab.metrics.registry: regenerate it with "
        "python -c 'from nclab.metrics.registry import markdown_table; print(markdown_table())'")


def test_every_registry_function_exists():
    for m in METRICS:
        mod, _, name = qualname(m).rpartition(".")
        assert callable(getattr(importlib.import_module(mod), name)), m.key


def test_collapse_metrics_keys_follow_the_registry():
    D = make_data(n_per=10, C=4, d=6, with_test=True)
    got = list(_full(D))
    assert got == [k for k in METRIC_ORDER if k in got]
    assert set(got) <= set(METRIC_ORDER)
    # every registry key that collapse_metrics can return does, given everything
    produced_elsewhere = {"num_classes_present", "num_samples", "num_classes"}
    assert set(METRIC_ORDER) - set(got) == produced_elsewhere


def test_cli_describes_every_key():
    from nclab.cli.measure import _help

    text = _help()
    for k in METRIC_ORDER:
        assert k in text


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rotation_invariance(dtype):
    # h -> Q h, w -> Q w (and OOD features rotated too): every metric unchanged
    D = make_data(n_per=10, C=5, d=7, with_test=True, seed=4)
    Q, _ = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(9)))
    base = _full(D, H=D["H"].to(dtype), Ht=D["Ht"].to(dtype))
    rot = _full(D, H=(D["H"] @ Q.T).to(dtype), W=D["W"] @ Q.T, Ht=(D["Ht"] @ Q.T).to(dtype), Hood=D["Hood"] @ Q.T)
    tol = 1e-9 if dtype == torch.float64 else 2e-4
    for k, v in base.items():
        assert math.isclose(rot[k], v, rel_tol=tol, abs_tol=tol), (k, rot[k], v)


@pytest.mark.parametrize("a", [3.7, 0.01, 2.0 ** 40, 1e150, 1e-150, 1e200])
def test_scaling_degree(a):
    # h -> a h, b -> a b (W fixed: logits scale by a): each metric scales as a^degree; any finite
    # input gives the values of the same input at unit scale (rescaled internally)
    D = make_data(n_per=10, C=5, d=7, with_test=True, seed=5)
    base = _full(D)
    with torch.inference_mode():
        got = _full(D, H=D["H"] * a, b=D["b"] * a, Ht=D["Ht"] * a, Hood=D["Hood"] * a)
    for m in METRICS:
        if m.key not in base:
            continue
        if base[m.key] and math.log10(abs(base[m.key])) + m.degree * math.log10(a) > 308:
            assert math.isinf(got[m.key]), m.key  # the true value exceeds float64's range
            continue
        back = got[m.key]
        for _ in range(m.degree):  # divide by a^degree without forming it (1e200^2 overflows)
            back /= a
        assert math.isclose(back, base[m.key], rel_tol=1e-9, abs_tol=1e-12), (m.key, back, base[m.key])


def test_float32_features_at_extreme_scales():
    # float32 products of features near 1e19 overflow; the internal rescaling keeps them exact
    D = make_data(n_per=10, C=5, d=7, seed=6, dtype=torch.float32)
    base = collapse_metrics(D["H"], D["y"], weights=D["W"])
    for a in (2.0 ** 70, 2.0 ** -70):
        got = collapse_metrics(D["H"] * a, D["y"], weights=D["W"])
        for k in ("nc1", "nc2_etf", "ncc_accuracy", "nc3_duality", "cdnv", "accuracy"):
            assert math.isclose(got[k], base[k], rel_tol=1e-6, abs_tol=1e-9), (a, k)
