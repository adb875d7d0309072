"""Property test of ``nclab measure`` over generated feature files (issue 21).

Every generated file (shapes, dtypes, label ranges and dtypes, scales 1e-150 ... 1e300, NaN/Inf,
empty and singleton classes, .npz and .pt) either gives metrics equal to the float64 reference at
unit scale -- ``collapse_metrics`` on ``stored.astype(float64) / scale``, each metric multiplied by
``scale ** degree`` from the registry -- or exits 2 with one ``error: ...`` line; never a traceback.
NC1 at unit scale is also checked against a direct NumPy formula (seed 000 eq. 2).
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as hs
from typer.testing import CliRunner

from nclab.cli import app
from nclab.errors import NCLabError
from nclab.metrics import collapse_metrics
from nclab.metrics.registry import METRICS

runner = CliRunner()
DEGREE = {m.key: m.degree for m in METRICS}
EXTREME = 100  # |log10 scale| from which a one-line refusal is accepted instead of the answer


#: Metrics-core behaviour being fixed by the metrics lead (issue 21, "scale-invariant or refused"):
#: with d = 1 the class means' pairwise distances include near-zero ones whose log is dominated by
#: rounding, so gnc2_log_var is NaN at one scale and ~78 at another (found by this test, seed 7:
#: 3 singleton classes, d = 1, float32 x 1e-20). Such mismatches are left out of the property and
#: reproduced by test_known_scale_dependence below (strict xfail: it fails loudly once fixed).
def _known_metrics_issue(key: str, spec: dict) -> bool:
    return False  # gnc2_log_var with d = 1 depended on the scale; fixed (see test_log_var_scale_free_at_d1)


def _reference_nc1(h: np.ndarray, y: np.ndarray) -> float:
    """tr(Sigma_W Sigma_B^+) / C with Sigma_W over all n samples, Sigma_B over the C class means."""
    classes = np.unique(y)
    mus = np.stack([h[y == c].mean(0) for c in classes])
    g = mus.mean(0)
    sw = sum((h[y == c] - mus[i]).T @ (h[y == c] - mus[i]) for i, c in enumerate(classes)) / len(y)
    sb = sum(np.outer(m - g, m - g) for m in mus) / len(classes)
    return float(np.trace(sw @ np.linalg.pinv(sb)) / len(classes))


@hs.composite
def feature_files(draw):
    valid = draw(hs.booleans())  # half the files are well-formed, so that answers get compared
    c = draw(hs.integers(2, 4) if valid else hs.integers(1, 4))
    d = draw(hs.integers(1, 5) if valid else hs.integers(0, 5))
    counts = draw(hs.lists(hs.integers(1 if valid else 0, 5), min_size=c, max_size=c))
    dtypes = ["float32", "float64", "int32"] + ([] if valid else ["float16", "complex64"])
    dtype = draw(hs.sampled_from(dtypes))
    exp = 0 if dtype == "int32" else draw(hs.sampled_from([0, 0, -20, 20, -150, 150, 300]))
    faults = [None] if valid else [None, "nan", "inf", "negative_label", "float_label"]
    fault = draw(hs.sampled_from(faults))
    fmt = draw(hs.sampled_from([".npz", ".pt"]))
    seed = draw(hs.integers(0, 2**16))
    return dict(c=c, d=d, counts=tuple(counts), dtype=dtype, exp=exp, fault=fault, fmt=fmt, seed=seed)


def _build(spec):
    rng = np.random.default_rng(spec["seed"])
    y = np.repeat(np.arange(spec["c"]), spec["counts"])
    y = y[rng.permutation(len(y))]
    n, d = len(y), spec["d"]
    base = rng.normal(size=(n, d))
    if d:
        base = base + 3.0 * np.eye(spec["c"], d)[y]
    scale = 10.0 ** spec["exp"]
    if spec["dtype"] == "int32":
        stored = np.round(base * 10).astype(np.int32)
    else:
        with np.errstate(over="ignore", under="ignore"):
            stored = (base * scale).astype(spec["dtype"])
    labels = y.astype(np.int64)
    if spec["fault"] in ("nan", "inf") and stored.size and stored.dtype.kind in "fc":
        stored = stored.copy()
        stored.flat[rng.integers(stored.size)] = np.nan if spec["fault"] == "nan" else np.inf
    if spec["fault"] == "negative_label" and n:
        labels = labels.copy()
        labels[rng.integers(n)] = -1
    if spec["fault"] == "float_label":
        labels = labels.astype(np.float64) + 0.5
    return stored, labels, scale


def _write(path, stored, labels):
    if path.suffix == ".npz":
        np.savez(path, features=stored, labels=labels)
    else:
        torch.save({"features": torch.from_numpy(stored.copy()), "labels": torch.from_numpy(labels.copy())}, path)


def _reference(stored, labels, scale):
    """(metrics, None) at unit scale in float64, or (None, why) when the input must be refused."""
    if stored.dtype.kind == "c":
        return None, "complex"
    if stored.size and not np.all(np.isfinite(stored.astype(np.float64))):
        return None, "non-finite"
    if labels.dtype.kind == "i" and labels.size and labels.min() >= 0 and np.any(np.bincount(labels) == 0):
        return None, "empty class (measure's default classes='all' needs every class)"
    unit = stored.astype(np.float64) / scale
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return collapse_metrics(unit, labels), None
    except NCLabError as exc:
        return None, str(exc)


def _one_line(res):
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=feature_files())
@example(spec=dict(c=3, d=4, counts=(3, 4, 5), dtype="float64", exp=0, fault=None, fmt=".npz", seed=1))
@example(spec=dict(c=3, d=4, counts=(3, 4, 5), dtype="float64", exp=150, fault=None, fmt=".npz", seed=1))
@example(spec=dict(c=3, d=4, counts=(3, 0, 5), dtype="float32", exp=0, fault=None, fmt=".pt", seed=2))
def test_measure_answers_or_refuses_in_one_line(tmp_path_factory, spec):
    stored, labels, scale = _build(spec)
    path = tmp_path_factory.mktemp("m") / f"f{spec['fmt']}"
    _write(path, stored, labels)
    res = runner.invoke(app, ["measure", str(path), "--json"])
    assert "Traceback" not in res.output, res.output
    assert res.exit_code in (0, 2), res.output
    ref, why = _reference(stored, labels, scale)
    if ref is None:
        assert res.exit_code == 2, (why, res.output)
        _one_line(res)
        return
    if res.exit_code == 2 and abs(spec["exp"]) >= EXTREME:
        _one_line(res)  # a clear refusal of an extreme scale is allowed (issue 21)
        return
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    for key, want in ref.items():
        if key == "num_samples" or not isinstance(want, float):
            continue
        assert key in got, key
        have = got[key]
        if (have is None or not math.isfinite(want)) and _known_metrics_issue(key, spec):
            continue
        if have is None or not math.isfinite(want):
            assert have is None and not math.isfinite(want), (key, have, want)
            continue
        want_scaled = want * scale ** DEGREE.get(key, 0)
        if _known_metrics_issue(key, spec):
            continue
        assert have == pytest.approx(want_scaled, rel=1e-6, abs=1e-9 * scale ** DEGREE.get(key, 0)), (key, spec)
    unit = stored.astype(np.float64) / scale
    if "nc1" in got and got["nc1"] is not None and len(np.unique(labels)) > 1:
        assert got["nc1"] == pytest.approx(_reference_nc1(unit, labels), rel=1e-6, abs=1e-9)


def test_log_var_scale_free_at_d1(tmp_path):
    # d = 1: two of three centred means point the same way, log(1/0) is infinite; it once read ~77.8 at
    # 1e-20 (cancellation in sqrt(2 - 2 cos)) and NaN at unit scale
    spec = dict(c=3, d=1, counts=(1, 1, 1), dtype="float32", exp=-20, fault=None, fmt=".npz", seed=1)
    stored, labels, scale = _build(spec)
    path = tmp_path / "f.npz"
    _write(path, stored, labels)
    res = runner.invoke(app, ["measure", str(path), "--json"])
    ref, _ = _reference(stored, labels, scale)
    got = json.loads(res.stdout)["gnc2_log_var"]
    want = ref["gnc2_log_var"]
    assert (got is None and not math.isfinite(want)) or got == pytest.approx(want, rel=1e-6)
