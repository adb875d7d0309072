"""ClassStats and CollapseTracker: batch order/size invariance, exact merges, agreement with the engine."""

import math

import pytest
import torch

from nclab.metrics import ClassStats, CollapseTracker, class_moments, collapse_metrics, metrics_from_moments

from .conftest import make_data

D = make_data(C=5, d=6, n_per=11, with_test=True)


def _stats(batches, **kw):
    st = ClassStats(5, **kw)
    for h, y in batches:
        st.update(h, y)
    return st


def _split(H, y, sizes):
    out, s = [], 0
    for k in sizes:
        out.append((H[s : s + k], y[s : s + k]))
        s += k
    return out


def _close(a, b):
    for f in ("count", "mean", "sq_dev", "unit_sum", "scatter"):
        x, z = getattr(a, f), getattr(b, f)
        if x is None or z is None:
            assert x is None and z is None
            continue
        torch.testing.assert_close(x, z, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("sizes", [[55], [1] * 55, [7, 20, 1, 27], [30, 25]])
def test_batch_size_and_order_invariance(sizes):
    ref = _stats([(D["H"], D["y"])]).compute()
    _close(_stats(_split(D["H"], D["y"], sizes)).compute(), ref)
    _close(_stats(list(reversed(_split(D["H"], D["y"], sizes)))).compute(), ref)


def test_stream_equals_two_pass_engine():
    st = _stats(_split(D["H"], D["y"], [13, 13, 29])).compute()
    two = class_moments(D["H"], D["y"])
    for f in ("count", "mean", "sq_dev", "unit_sum"):
        torch.testing.assert_close(getattr(st, f), getattr(two, f), rtol=1e-10, atol=1e-12)
    a = metrics_from_moments(st, weights=D["W"])
    b = {k: v for k, v in collapse_metrics(D["H"], D["y"], weights=D["W"]).items() if k in a}
    for k in b:
        assert math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-12), k


def test_merge_equals_union_and_differs_from_part():
    A = _split(D["H"], D["y"], [20, 35])
    merged = _stats(A[:1]).merge(_stats(A[1:])).compute()
    _close(merged, _stats([(D["H"], D["y"])]).compute())
    assert not torch.allclose(_stats(A[1:]).compute().mean, merged.mean)


def test_merge_with_empty_is_identity_and_compute_is_pure():
    st = _stats([(D["H"], D["y"])])
    before = st.compute()
    st.merge(ClassStats(5))
    _close(st.compute(), before)
    c1 = st.compute()
    c1.mean.add_(1.0)  # a caller mutating the result must not corrupt the state
    _close(st.compute(), before)
    e = ClassStats(5).merge(st).compute()
    _close(e, before)


def test_single_sample_update():
    st = ClassStats(2)
    st.update(torch.tensor([[1.0, 2.0]]), torch.tensor([0]))
    st.update(torch.tensor([[3.0, 2.0]]), torch.tensor([0]))
    st.update(torch.tensor([[0.0, 0.0]]), torch.tensor([1]))
    m = st.compute()
    torch.testing.assert_close(m.mean[0], torch.tensor([2.0, 2.0], dtype=torch.float64))
    assert float(m.sq_dev[0]) == pytest.approx(2.0)
    assert float(m.scatter[0, 0]) == pytest.approx(2.0)


@pytest.mark.parametrize("keep", [True, False])
def test_tracker_matches_collapse_metrics(keep):
    tr = CollapseTracker(5, weights=D["W"], bias=D["b"], keep_features=keep)
    for h, y in _split(D["H"], D["y"], [10, 1, 44]):
        tr.update(h, y)
    got = tr.compute()
    want = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"])
    if keep:
        assert set(got) == set(want)
    else:
        assert "nc4_ncc_mismatch" not in got and "ncc_accuracy" not in got
    for k in got:
        assert math.isclose(got[k], want[k], rel_tol=1e-9, abs_tol=1e-12), k


def test_streaming_memorization_with_reference_means():
    test_means = class_moments(D["Ht"], D["yt"]).mean
    tr = CollapseTracker(5, keep_features=False, reference_means=test_means)
    for h, y, t in zip(D["H"].split(9), D["yobs"].split(9), D["ytrue"].split(9)):
        tr.update(h, y, t)
    got = tr.compute()
    want = collapse_metrics(D["H"], D["yobs"], test_features=D["Ht"], test_labels=D["yt"], true_labels=D["ytrue"])
    assert got["memorization"] == pytest.approx(want["memorization"], rel=1e-12)


@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_tracker_rejects_nonfinite_features(keep, bad):
    # keep_features=True checks once, on the float64 class sums at compute(); streaming checks per batch
    from nclab.errors import NonFiniteError

    D = make_data(C=3, d=4, n_per=6)
    H = D["H"].clone()
    H[10, 1] = bad
    tr = CollapseTracker(3, weights=D["W"], keep_features=keep)
    with pytest.raises(NonFiniteError, match="features contains 1 NaN/inf"):
        for s in range(0, len(H), 5):
            tr.update(H[s : s + 5], D["y"][s : s + 5])
        tr.compute()
