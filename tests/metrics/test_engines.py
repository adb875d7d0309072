"""The one pipeline (ClassStats, then one DecisionPass) on its paths: C <= d (K in the span of the
means) and C > d (the d x d scatter), float32/float64/half features, several sets, ties and
doubly-wrong rows, exact row distances."""

import math
import warnings

import numpy as np
import pytest
import torch

from nclab.errors import NonFiniteError
from nclab.metrics import collapse_metrics

from .conftest import make_data

@pytest.mark.parametrize("C,d", [(12, 40), (40, 12), (3, 3)], ids=["C<d", "C>d", "C=d"])
def test_float32_agrees_with_float64(C, d):
    # the products over d run in float32 for float32 features; sums over samples in float64
    D = make_data(n_per=60, C=C, d=d, with_test=True, seed=3)
    kw = dict(weights=D["W"], bias=D["b"], test_labels=D["yt"], true_labels=D["ytrue"], ood_features=D["Hood"])
    a = collapse_metrics(D["H"].float(), D["yobs"], test_features=D["Ht"].float(), **kw)
    b = collapse_metrics(D["H"].float().double(), D["yobs"], test_features=D["Ht"].float().double(), **kw)
    assert set(a) == set(b) and len(a) >= 30
    for k in a:
        assert math.isclose(a[k], b[k], rel_tol=2e-6, abs_tol=1e-9), (k, a[k], b[k])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_features(dtype):
    D = make_data(n_per=20, C=4, d=6, dtype=dtype)
    b = collapse_metrics(D["H"], D["y"], weights=D["W"])  # products in float32
    ref = collapse_metrics(D["H"].double(), D["y"], weights=D["W"])
    for k in ref:
        assert math.isclose(b[k], ref[k], rel_tol=1e-5, abs_tol=1e-6), k


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_raises_without_warnings(bad):
    D = make_data(n_per=5, C=3, d=4)
    H = D["H"].clone()
    H[2, 1] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy RuntimeWarning would fail here
        with pytest.raises(NonFiniteError, match="features contains 1 NaN/inf"):
            collapse_metrics(H, D["y"], weights=D["W"])


@pytest.mark.parametrize("bias", [True, False])
def test_many_sets_equal_separate_calls(bias):
    from nclab.metrics import collapse_metrics_many

    D = make_data(n_per=40, C=5, d=7, with_test=True, seed=11, bias=bias)
    Dt = make_data(n_per=9, C=5, d=7, seed=12, dtype=torch.float32)  # another size and dtype
    sets = [(D["H"], D["yobs"]), (D["Ht"], D["yt"]), (Dt["H"], Dt["y"])]
    got = collapse_metrics_many(sets, weights=D["W"], bias=D["b"])
    assert len(got) == 3
    for (H, y), g in zip(sets, got):
        want = collapse_metrics(H, y, weights=D["W"], bias=D["b"])
        assert list(g) == list(want)  # same keys, same order
        for k in want:
            assert math.isclose(g[k], want[k], rel_tol=1e-12, abs_tol=1e-15), k


def test_many_sets_errors_name_the_set():
    from nclab.errors import ShapeError
    from nclab.metrics import collapse_metrics_many

    D = make_data(n_per=5, C=3, d=4)
    H = D["H"].clone()
    H[1, 1] = float("nan")
    with pytest.raises(NonFiniteError, match="test contains 1 NaN"):
        collapse_metrics_many([(D["H"], D["y"]), (H, D["y"])], names=["train", "test"])
    with pytest.raises(ShapeError, match="dimension 3 but the first set has 4"):
        collapse_metrics_many([(D["H"], D["y"]), (D["H"][:, :3], D["y"])])
    with pytest.raises(ShapeError, match="at least one"):
        collapse_metrics_many([])


@pytest.mark.parametrize("duplicate_rows", [False, True])
def test_nc4_when_both_rules_are_wrong(duplicate_rows):
    # a random classifier is wrong for most samples under both rules (NC4 then compares the two
    # predictions); duplicated rows of W tie the logits of two classes for every sample
    from ._reference import ref_all
    from .conftest import to_np

    D = make_data(n_per=30, C=6, d=5, seed=5, noise=3.0)
    W = D["W"].clone()
    if duplicate_rows:
        W[2] = W[1]
    got = collapse_metrics(D["H"], D["y"], weights=W, bias=None)
    with np.errstate(divide="ignore", invalid="ignore"):  # the reference's gamma / ||w_1 - w_2|| = 0/0
        want = ref_all(to_np(D["H"]), to_np(D["y"]).astype(int), D["C"], to_np(W), None)
    # ~1/3 of the samples are wrong for both rules: their exact arg max decides
    assert got["accuracy"] < 0.5 and got["ncc_accuracy"] < 0.7
    for k in ("nc4_ncc_mismatch", "accuracy", "ncc_accuracy"):
        assert got[k] == pytest.approx(want[k], abs=1e-15), k


def test_values_are_python_floats():
    # JSON output and the results store need plain floats, not NumPy scalars
    D = make_data(n_per=10, C=4, d=5, with_test=True)
    m = collapse_metrics(D["H"], D["yobs"], weights=D["W"], bias=D["b"], test_features=D["Ht"], test_labels=D["yt"],
                         true_labels=D["ytrue"], ood_features=D["Hood"])
    assert all(type(v) is float for v in m.values()), {k: type(v) for k, v in m.items() if type(v) is not float}


@pytest.mark.parametrize("C", [5, 30])  # torch.cdist's default switches to the (inexact) Gram form above 25 rows
def test_normalized_margin_skips_coinciding_classifier_rows(C):
    from ._reference import ref_pairwise_margins
    from .conftest import to_np

    D = make_data(n_per=12, C=C, d=6, seed=8)
    W = D["W"].clone()
    W[3] = W[1]  # ||w_1 - w_3|| = 0: that pair's ratio is undefined
    got = collapse_metrics(D["H"], D["y"], weights=W)["margin_normalized_min"]
    Wn = to_np(W)
    gamma = ref_pairwise_margins(to_np(D["H"]), to_np(D["y"]).astype(int), C, Wn, np.zeros(C))
    want = min(gamma[a, c] / np.linalg.norm(Wn[a] - Wn[c]) for a in range(C) for c in range(C)
               if a != c and {a, c} != {1, 3})
    assert got == pytest.approx(want, rel=1e-9)


def test_row_distances_are_exactly_zero_for_coinciding_rows():
    # torch.cdist's default Gram form (used above 25 rows) leaves a positive distance between equal
    # rows for ~1 W in 6; such a pair would then not be skipped by margin_normalized_min
    from nclab.metrics.classifier import row_distances as _row_distances

    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        W = torch.randn(30, 6, dtype=torch.float64, generator=gen)
        W[3] = W[1]
        D = _row_distances(W)
        assert D[1, 3] == 0 and D[3, 1] == 0
        assert torch.allclose(D, torch.linalg.vector_norm(W[:, None] - W[None], dim=-1), rtol=1e-14, atol=0)
