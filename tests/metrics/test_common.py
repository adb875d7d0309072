"""Invariance registry (the scikit-learn test_common habit): every metric is placed in each set."""

import math

import torch

from nclab.metrics import collapse_metrics

from .conftest import make_data

D = make_data(C=4, d=7, n_per=9, with_test=True)


def _metrics(H=D["H"], y=D["yobs"], W=D["W"], b=D["b"], Ht=D["Ht"], yt=D["yt"], ytrue=D["ytrue"], Hood=D["Hood"]):
    return collapse_metrics(H, y, weights=W, bias=b, test_features=Ht, test_labels=yt, true_labels=ytrue, ood_features=Hood)


METRICS = set(_metrics())

# rotation Q applied to every feature set and to W
ROTATION_INVARIANT = set(METRICS)
SAMPLE_ORDER_INVARIANT = set(METRICS)
CLASS_RELABEL_INVARIANT = set(METRICS)
# multiplying features (train, test, ood) by s > 0
# with a bias, the decision of W h + b (accuracy, NC4) changes when h is scaled
SCALE_INVARIANT = METRICS - {
    "margin_min", "margin_mean", "margin_normalized_min", "memorization", "memorization_mean", "unc3_var",
    "accuracy", "nc4_ncc_mismatch",
}
NOT_SCALE_INVARIANT = METRICS - SCALE_INVARIANT


def test_every_metric_is_classified():
    assert SCALE_INVARIANT | NOT_SCALE_INVARIANT == METRICS
    assert not SCALE_INVARIANT & NOT_SCALE_INVARIANT
    assert len(METRICS) >= 30


def _assert_same(a, b, keys, rtol=1e-9):
    for k in keys:
        assert math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=1e-11), f"{k}: {a[k]} vs {b[k]}"


def test_rotation_invariance():
    g = torch.Generator().manual_seed(5)
    Q, _ = torch.linalg.qr(torch.randn(7, 7, dtype=torch.float64, generator=g))
    rot = _metrics(H=D["H"] @ Q, W=D["W"] @ Q, Ht=D["Ht"] @ Q, Hood=D["Hood"] @ Q)
    _assert_same(_metrics(), rot, ROTATION_INVARIANT)


def test_sample_order_invariance():
    g = torch.Generator().manual_seed(6)
    p = torch.randperm(len(D["yobs"]), generator=g)
    _assert_same(_metrics(), _metrics(H=D["H"][p], y=D["yobs"][p], ytrue=D["ytrue"][p]), SAMPLE_ORDER_INVARIANT)


def test_class_relabel_invariance():
    perm = torch.tensor([2, 0, 3, 1])  # new label of old class c is perm[c]
    inv = torch.argsort(perm)
    relabelled = _metrics(y=perm[D["yobs"]], W=D["W"][inv], b=D["b"][inv], yt=perm[D["yt"]], ytrue=perm[D["ytrue"]])
    _assert_same(_metrics(), relabelled, CLASS_RELABEL_INVARIANT)


def test_scale_invariance_and_its_complement():
    s = 3.7
    scaled = _metrics(H=D["H"] * s, Ht=D["Ht"] * s, Hood=D["Hood"] * s)
    base = _metrics()
    _assert_same(base, scaled, SCALE_INVARIANT)
    for k in NOT_SCALE_INVARIANT:
        assert not math.isclose(base[k], scaled[k], rel_tol=1e-6), k


def test_collapse_metrics_many_returns_class_means():
    # return_means=True: the same metrics plus each set's float64 class means (every engine)
    from nclab.metrics import collapse_metrics_many

    D = make_data(n_per=9, C=4, d=5, with_test=True, seed=2)
    sets = [(D["H"], D["y"]), (D["Ht"].float(), D["yt"])]
    metrics, means = collapse_metrics_many(sets, weights=D["W"], bias=D["b"], num_classes=4, return_means=True)
    assert metrics == collapse_metrics_many(sets, weights=D["W"], bias=D["b"], num_classes=4)
    for (H, y), m in zip(sets, means):
        want = torch.stack([H[y == c].double().mean(0) for c in range(4)])
        assert m.dtype == torch.float64 and m.shape == (4, 5)
        torch.testing.assert_close(m, want, rtol=1e-12, atol=1e-12)
