"""Every validation branch raises an NCLabError subclass with a message saying what to fix."""

import numpy as np
import pytest
import torch

from nclab.errors import LabelError, NCLabError, NonFiniteError, ShapeError
from nclab.metrics import ClassStats, collapse_metrics, nc1

H = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
Y = torch.arange(3).repeat(4)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(features=H[0], labels=Y), ShapeError, "2-D"),
        (dict(features=H, labels=Y[:5]), ShapeError, "must match"),
        (dict(features=H, labels=Y + 1, num_classes=3), LabelError, "num_classes=4"),
        (dict(features=H, labels=Y - 1), LabelError, ">= 0"),
        (dict(features=H, labels=torch.zeros(12, dtype=torch.long)), LabelError, "at least 2 classes"),
        (dict(features=H, labels=Y * 2, classes="all"), LabelError, "no sample"),  # the default measures present classes
        (dict(features=torch.where(H > 1, float("nan"), H), labels=Y), NonFiniteError, "NaN"),
        (dict(features=H, labels=Y, weights=torch.randn(3, 5)), ShapeError, "weights must have shape"),
        (dict(features=H, labels=Y, weights=torch.randn(3, 4), bias=torch.randn(4)), ShapeError, "bias"),
        (dict(features=H, labels=Y, bias=torch.randn(3)), ShapeError, "without weights"),
        (dict(features=H, labels=Y, test_features=H), ShapeError, "both test_features"),
        (dict(features=H, labels=Y, true_labels=Y), ShapeError, "memorization needs"),
        (dict(features=H, labels=Y + 0.5), LabelError, "integers"),
        (dict(features=H, labels=Y, test_features=torch.randn(3, 5), test_labels=torch.arange(3)), ShapeError, "dimension"),
    ],
)
def test_bad_input(kwargs, exc, match):
    kw = dict(kwargs)  # the parameter set is shared by both engines' runs
    with pytest.raises(exc, match=match):
        collapse_metrics(kw.pop("features"), kw.pop("labels"), **kw)


def test_errors_are_nclab_errors_and_one_line():
    with pytest.raises(NCLabError) as ei:
        nc1(H, Y + 5, num_classes=3)
    assert "\n" not in str(ei.value)


def test_class_stats_validation():
    with pytest.raises(LabelError, match="num_classes"):
        ClassStats(1)
    with pytest.raises(LabelError, match="no sample"):
        ClassStats(3).compute()
    st = ClassStats(4).update(H, Y)
    with pytest.raises(LabelError, match="class\\(es\\) 3"):
        st.compute()
    with pytest.raises(ShapeError, match="dimension"):
        st.update(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ShapeError, match="classes"):
        st.merge(ClassStats(3).update(H, Y))


def test_numpy_and_integer_inputs_accepted():
    a = nc1(H.numpy(), Y.numpy())
    b = nc1(H.double(), Y)
    assert a == pytest.approx(b, rel=1e-6)
    assert nc1(np.array([[0, 1], [0, 3], [2, 0], [4, 0]]), np.array([0, 0, 1, 1])) > 0


def test_degenerate_means_warn_not_crash():
    from nclab.errors import DegenerateWarning

    Hc = torch.ones(6, 3)
    with pytest.warns(DegenerateWarning) as rec:
        m = collapse_metrics(Hc, torch.tensor([0, 1, 2, 0, 1, 2]))
    # all means coincide, so each also equals the global mean: both warnings, each once
    msgs = [str(w.message) for w in rec]
    assert sum("coincide" in t for t in msgs) == 1 and sum("equals the global mean" in t for t in msgs) == 1
    assert np.isnan(m["nc1"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_detected_through_class_sums(bad):
    h = H.clone().double()
    h[7, 2] = bad
    with pytest.raises(NonFiniteError, match="features contains 1 NaN/inf"):
        collapse_metrics(h, Y)
    with pytest.raises(NonFiniteError, match="test_features contains 1"):
        collapse_metrics(H, Y, test_features=h, test_labels=Y)
