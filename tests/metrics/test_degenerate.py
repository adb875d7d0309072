"""Degenerate input gives a clear error or an honest answer: absent classes, single samples per
class, extreme label values, sparse/quantized/complex/zero-width features."""

import math
import resource
import warnings

import pytest
import torch

from nclab.errors import DegenerateWarning, LabelError, NCLabError, ShapeError
from nclab.metrics import ClassStats, DecisionPass, collapse_metrics, metrics_from_moments, nc1

from .conftest import make_data


def test_present_classes_equal_strict_metrics_on_the_reindexed_problem():
    D = make_data(n_per=9, C=5, d=8, seed=2, with_test=True)
    lut = torch.tensor([0, 2, 3, 6, 7])  # classes 1, 4, 5 of 8 have no sample
    W8 = torch.randn(8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    b8 = torch.randn(8, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    got = collapse_metrics(D["H"], lut[D["yobs"]], weights=W8, bias=b8, num_classes=8,
                           test_features=D["Ht"], test_labels=lut[D["yt"]], true_labels=lut[D["ytrue"]],
                           ood_features=D["Hood"])
    want = collapse_metrics(D["H"], D["yobs"], weights=W8[lut], bias=b8[lut], classes="all",
                            test_features=D["Ht"], test_labels=D["yt"], true_labels=D["ytrue"], ood_features=D["Hood"])
    assert got["num_classes_present"] == 5 and "num_classes_present" not in want
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-12, abs_tol=1e-12), (k, got[k], v)
    with pytest.raises(LabelError, match="class\\(es\\) 1, 4, 5 have no sample"):
        collapse_metrics(D["H"], lut[D["yobs"]], num_classes=8, classes="all")


def test_present_classes_through_the_streaming_passes():
    # ClassStats.compute(classes="present") + DecisionPass with the full classifier == the strict problem
    D = make_data(n_per=9, C=4, d=6, seed=7)
    lut = torch.tensor([1, 3, 4, 8])
    W = torch.randn(10, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = lut[D["y"]]
    st = ClassStats(10, track_scatter=False)
    for s in range(0, len(y), 7):
        st.update(D["H"][s : s + 7], y[s : s + 7])
    mom = st.compute(classes="present")
    dp = DecisionPass(mom, W)
    for s in range(0, len(y), 11):
        dp.update(D["H"][s : s + 11], y[s : s + 11])
    got = metrics_from_moments(mom, weights=W, decisions=dp.compute())
    want = collapse_metrics(D["H"], D["y"], weights=W[lut], classes="all")
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-10, abs_tol=1e-12), (k, got[k], v)
    with pytest.raises(LabelError, match="no sample"):
        st.compute()


def test_one_sample_per_class_is_not_perfect_collapse():
    H = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4)
    with pytest.warns(DegenerateWarning, match="every class of the features has one sample"):
        m = collapse_metrics(H, y, weights=torch.randn(4, 6, dtype=torch.float64))
    for k in ("nc1", "nc1_quotient", "cdnv", "cosine_intra_min", "cosine_intra_mean"):
        assert math.isnan(m[k]) and "undefined" in m.notes[k], k
    assert 0 <= m["nc2_etf"] and m["ncc_accuracy"] == 1.0  # the geometry of the means is still defined


def test_some_singleton_classes_warn_and_count_as_variance_zero():
    D = make_data(n_per=6, C=4, d=5, seed=1)
    H = torch.cat([D["H"], torch.randn(1, 5, dtype=torch.float64)])
    y = torch.cat([D["y"], torch.tensor([4])])
    with pytest.warns(DegenerateWarning, match="class\\(es\\) 4 of the features have a single sample"):
        m = collapse_metrics(H, y)
    assert math.isfinite(m["nc1"]) and "singleton_classes" in m.notes


def test_huge_label_allocates_nothing_sized_by_it():
    # labels [0, 10^9]: two present classes; no array of 10^9 entries may be made
    H = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1_000_000_000])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateWarning)
        m = collapse_metrics(H, y)
        with pytest.raises(LabelError, match="no sample"):
            collapse_metrics(H, y, classes="all")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert m["num_classes_present"] == 2 and grown_mb < 200, grown_mb


def test_accumulator_that_cannot_fit_is_refused_with_its_size():
    with pytest.raises(ShapeError, match="GiB but this machine has"):
        ClassStats(10**9).update(torch.zeros(2, 100), torch.tensor([0, 1]))


@pytest.mark.parametrize("make,fix", [
    (lambda H: H.to_sparse(), "to_dense"),
    (lambda H: torch.quantize_per_tensor(H.float(), 0.1, 0, torch.qint8), "dequantize"),
    (lambda H: H.to(torch.complex128), "real features"),
    (lambda H: H.numpy().astype("complex64"), "real features"),
    (lambda H: H[:, :0], "zero width"),
])
def test_unusable_feature_types_get_one_line_errors(make, fix):
    D = make_data(n_per=4, C=3, d=5)
    with pytest.raises(NCLabError, match=fix) as ei:
        collapse_metrics(make(D["H"]), D["y"])
    assert "\n" not in str(ei.value)


def test_nc1_of_test_set_alone_with_one_sample_each_is_nan_with_reason():
    D = make_data(n_per=6, C=3, d=5, seed=2)
    Ht = torch.randn(3, 5, dtype=torch.float64)
    m = collapse_metrics(D["H"], D["y"], test_features=Ht, test_labels=torch.arange(3))
    assert math.isnan(m["dilation"]) and "undefined" in m.notes["dilation"]
    with pytest.warns(DegenerateWarning):
        assert math.isnan(nc1(Ht, torch.arange(3)))


def test_frequency_weighting_centres_at_the_sample_mean():
    # weighting="frequency" (Wu & Papyan 2024): mu_G is the sample mean; checked against a direct
    # computation with unbalanced classes, and equal to the default when classes are balanced
    import numpy as np

    g = torch.Generator().manual_seed(3)
    C, d = 4, 6
    counts = [3, 5, 9, 20]
    y = torch.cat([torch.full((k,), c) for c, k in enumerate(counts)])
    mu = torch.randn(C, d, generator=g, dtype=torch.float64) * 2
    H = mu[y] + 0.5 * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    W = torch.randn(C, d, generator=g, dtype=torch.float64)
    got = collapse_metrics(H, y, weights=W, weighting="frequency")
    Hn, yn, Wn = H.numpy(), y.numpy(), W.numpy()
    means = np.stack([Hn[yn == c].mean(0) for c in range(C)])
    M = means - Hn.mean(0)  # centred at the sample mean
    sw = sum(np.outer(h - means[c], h - means[c]) for h, c in zip(Hn, yn)) / len(yn)
    sb = M.T @ M / C
    assert got["nc1"] == pytest.approx(np.trace(sw @ np.linalg.pinv(sb, rcond=1e-10)) / C, rel=1e-9)
    E = (np.eye(C) - 1.0 / C) / np.sqrt(C - 1)
    G = M @ M.T
    assert got["nc2_etf"] == pytest.approx(np.linalg.norm(G / np.linalg.norm(G) - E), rel=1e-9)
    assert got["nc3_duality"] == pytest.approx(
        np.linalg.norm(Wn / np.linalg.norm(Wn) - M / np.linalg.norm(M)) ** 2, rel=1e-9)
    default = collapse_metrics(H, y, weights=W)
    assert abs(default["nc1"] - got["nc1"]) > 1e-3  # unbalanced: the two centrings differ
    yb = torch.arange(C).repeat(6)
    Hb = mu[yb] + 0.5 * torch.randn(len(yb), d, generator=g, dtype=torch.float64)
    a, b = collapse_metrics(Hb, yb, weighting="frequency"), collapse_metrics(Hb, yb)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12), k
    with pytest.raises(NCLabError, match="weighting must be"):
        collapse_metrics(H, y, weighting="tokens")
