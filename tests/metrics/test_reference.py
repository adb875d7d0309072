"""Every metric of collapse_metrics against loop-by-loop float64 references (1e-8 relative)."""

import math

import pytest
import torch

from nclab.metrics import collapse_metrics

from ._reference import ref_all
from .conftest import make_data, to_np

CASES = [
    dict(C=3, d=5, n_per=10),  # C < d: projected NC1
    dict(C=6, d=4, n_per=8),  # C > d: d-space NC1
    dict(C=5, d=5, n_per=7),  # C == d
    dict(C=2, d=3, n_per=9),  # binary
    dict(C=50, d=64, n_per=8),  # many classes, C < d: K in the span of 50 means, tiled pairs with tile=2
    dict(C=40, d=8, n_per=8),  # C > d: the d x d scatter, NCC and logits from the augmented product
]


def _compare(got, want, rtol=1e-8, atol=1e-10):
    missing = set(want) - set(got)
    assert not missing, f"metrics missing: {missing}"
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=rtol, abs_tol=atol), f"{k}: got {got[k]!r}, want {v!r}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"C{c['C']}d{c['d']}")
@pytest.mark.parametrize("tile", [2048, 2])
def test_all_metrics_match_reference(case, tile):
    D = make_data(**case, with_test=True)
    got = collapse_metrics(
        D["H"], D["yobs"], weights=D["W"], bias=D["b"], test_features=D["Ht"], test_labels=D["yt"],
        true_labels=D["ytrue"], ood_features=D["Hood"], tile=tile,
    )
    want = ref_all(
        to_np(D["H"]), to_np(D["yobs"]).astype(int), D["C"], to_np(D["W"]), to_np(D["b"]),
        to_np(D["Ht"]), to_np(D["yt"]).astype(int), to_np(D["ytrue"]).astype(int), to_np(D["Hood"]),
    )
    _compare(got, want)


def test_without_classifier_has_no_classifier_keys():
    D = make_data()
    got = collapse_metrics(D["H"], D["y"])
    want = ref_all(to_np(D["H"]), to_np(D["y"]).astype(int), D["C"])
    _compare(got, want)
    for k in ("nc3_duality", "nc4_ncc_mismatch", "margin_min", "memorization", "dilation", "nc5_ood"):
        assert k not in got


def test_bias_free_margins():
    D = make_data(bias=False)
    got = collapse_metrics(D["H"], D["y"], weights=D["W"])
    want = ref_all(to_np(D["H"]), to_np(D["y"]).astype(int), D["C"], to_np(D["W"]))
    _compare(got, want)


def test_pairwise_limit_drops_only_the_normalized_margin():
    D = make_data(C=5)
    got = collapse_metrics(D["H"], D["y"], weights=D["W"], pairwise_limit=4)
    assert "margin_normalized_min" not in got and "margin_min" in got


def test_float32_input_close_to_float64():
    D = make_data(C=4, d=16, n_per=50)
    g64 = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"])
    g32 = collapse_metrics(D["H"].float(), D["y"], weights=D["W"], bias=D["b"])
    for k in ("nc1", "cdnv", "nc2_etf", "nc3_etf", "margin_min"):
        assert math.isclose(g32[k], g64[k], rel_tol=1e-5), k


def test_cdnv_exponent():
    from nclab.metrics import cdnv

    from ._reference import ref_cdnv

    D = make_data()
    assert math.isclose(cdnv(D["H"], D["y"], exponent=0.5), ref_cdnv(to_np(D["H"]), to_np(D["y"]).astype(int), D["C"], 0.5), rel_tol=1e-10)


def test_large_class_count_tiled_equals_untiled():
    # C > d and C > tile: the d-space Frobenius norms and block loops must agree with one block
    D = make_data(C=40, d=8, n_per=3, noise=0.3)
    a = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"], tile=7)
    b = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"], tile=4096)
    for k, v in b.items():
        assert math.isclose(a[k], v, rel_tol=1e-9, abs_tol=1e-12), k


def test_float32_near_collapse_keeps_precision():
    # nearly collapsed classes far from the origin: naive float32 centring would lose ~all digits
    g = torch.Generator().manual_seed(3)
    C, d = 4, 32
    means = 1000.0 + torch.randn(C, d, generator=g, dtype=torch.float64)
    y = torch.arange(C).repeat(50)
    H32 = (means[y] + 1e-3 * torch.randn(len(y), d, generator=g, dtype=torch.float64)).float()
    exact = collapse_metrics(H32.double(), y)  # the same float32 numbers, float64 throughout
    got = collapse_metrics(H32, y)
    for k in ("nc1", "nc1_quotient", "cdnv"):
        assert math.isclose(got[k], exact[k], rel_tol=1e-6), (k, got[k], exact[k])


@pytest.mark.parametrize("C,d", [(5, 8), (9, 4)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_margin_paths_agree(C, d, dtype):
    # with and without the C x C pairwise matrix the per-sample statistics are computed differently
    D = make_data(C=C, d=d, n_per=6, dtype=dtype)
    full = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"])
    fast = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"], pairwise_limit=0)
    assert "margin_normalized_min" in full and "margin_normalized_min" not in fast
    for k in ("margin_min", "margin_mean", "accuracy", "nc4_ncc_mismatch", "ncc_accuracy"):
        assert math.isclose(full[k], fast[k], rel_tol=1e-6, abs_tol=1e-9), k


@pytest.mark.parametrize("tile", [2048, 5])
def test_float32_pair_path_matches_float64(monkeypatch, tile):
    # large problems with float32 features take the float32 class-pair path (d-space Frobenius
    # distances, float32 entries, float64 sums); force it on a small problem and check against float64
    import nclab.metrics.geometry as P

    D = make_data(C=12, d=7, n_per=9)
    want = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"], tile=tile)
    monkeypatch.setattr(P, "SMALL_PAIR_WORK", 0)
    got = collapse_metrics(D["H"].float(), D["y"], weights=D["W"], bias=D["b"], tile=tile)
    assert set(got) == set(want)
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=2e-5, abs_tol=1e-6), (k, got[k], v)


def test_float32_pair_path_exact_configurations(monkeypatch):
    import nclab.metrics.geometry as P
    from nclab.metrics import simplex_etf

    monkeypatch.setattr(P, "SMALL_PAIR_WORK", 0)
    C = 6
    E = simplex_etf(C, 8).float()
    y = torch.arange(C).repeat(3)
    got = collapse_metrics(E[y] + 5.0, y, weights=E.double())
    for k in ("nc2_etf", "nc2_etf_w", "nc3_etf", "nc2_equiangular", "nc2_equiangular_w", "gnc2_dist_var"):
        assert abs(got[k]) < 1e-6, (k, got[k])
    frame = torch.eye(C, 8)
    assert collapse_metrics(frame[y], y)["nc2_of"] < 1e-6


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's W metrics are 0/0 at W = 0
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ties_follow_first_index_argmax(dtype):
    # all-equal logits (W = 0, b = 0): argmax is class 0 for every sample; the engine decides most rows
    # from margin signs and must fall back to first-index argmax exactly on ties
    D = make_data(C=5, d=6, n_per=7, dtype=dtype)
    W = torch.zeros(5, 6, dtype=torch.float64)
    b = torch.zeros(5, dtype=torch.float64)
    got = collapse_metrics(D["H"], D["y"], weights=W, bias=b)
    want = ref_all(to_np(D["H"]).astype("float64"), to_np(D["y"]).astype(int), 5, to_np(W), to_np(b))
    assert got["accuracy"] == pytest.approx(float((D["y"] == 0).double().mean()))
    for k in ("accuracy", "nc4_ncc_mismatch", "ncc_accuracy", "margin_min", "margin_mean"):
        assert math.isclose(got[k], want[k], rel_tol=1e-12, abs_tol=1e-12), k


@pytest.mark.parametrize("zero_w", [False, True])
def test_accelerator_path_agrees(monkeypatch, zero_w):
    # the sync-free decision path used on GPUs (full argmax, masked) must equal the CPU path
    import nclab.metrics.decisions as Dp

    D = make_data(C=6, d=5, n_per=11, dtype=torch.float32)
    W = torch.zeros(6, 5, dtype=torch.float64) if zero_w else D["W"]
    cpu = collapse_metrics(D["H"], D["y"], weights=W, bias=D["b"])
    monkeypatch.setattr(Dp, "_host_sync_cheap", lambda device: False)
    acc = collapse_metrics(D["H"], D["y"], weights=W, bias=D["b"])
    for k in ("accuracy", "nc4_ncc_mismatch", "ncc_accuracy", "margin_min", "margin_mean"):
        assert acc[k] == cpu[k], k


def test_float32_pair_path_at_its_natural_size():
    # C^2 d above the threshold: float32 features take the float32 pair path without any patching
    import nclab.metrics.geometry as P

    C, d = 200, 512
    assert C * C * d >= P.SMALL_PAIR_WORK
    D = make_data(C=C, d=d, n_per=3, noise=0.5)
    want = collapse_metrics(D["H"], D["y"], weights=D["W"], bias=D["b"])
    got = collapse_metrics(D["H"].float(), D["y"], weights=D["W"], bias=D["b"])
    for k, v in want.items():
        assert math.isclose(got[k], v, rel_tol=1e-4, abs_tol=1e-6), (k, got[k], v)


def test_overflowing_float32_logits_do_not_lose_samples():
    # float32 products that overflow give inf - inf = NaN margins; those rows are decided by argmax,
    # so every sample is still counted exactly once (accuracy and NCC accuracy stay fractions of n)
    D = make_data(C=4, d=5, n_per=6, dtype=torch.float32)
    W = D["W"] * 1e37
    got = collapse_metrics(D["H"] * 1e3, D["y"], weights=W)
    n = D["H"].shape[0]
    for k in ("accuracy", "ncc_accuracy", "nc4_ncc_mismatch"):
        assert 0.0 <= got[k] <= 1.0 and abs(got[k] * n - round(got[k] * n)) < 1e-9, (k, got[k])
    want = collapse_metrics(D["H"].double() * 1e3, D["y"], weights=W)
    assert got["ncc_accuracy"] == want["ncc_accuracy"]


@pytest.mark.parametrize("case", [dict(C=4, d=9), dict(C=9, d=4), dict(C=70, d=80)], ids=["C<d", "C>d", "C>64"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_many_chunks_and_blocks_equal_one_chunk(monkeypatch, case, dtype):
    # small inputs fit one chunk; force chunks of a few rows so that the cross-chunk accumulation (the
    # Chan merges of ClassStats, the decision pass's sums) and the float32 512-row K slices are exercised
    import nclab.metrics.decisions as Dp
    import nclab.metrics.stats as St

    D = make_data(**case, n_per=13, dtype=dtype, with_test=True)
    kw = dict(weights=D["W"], bias=D["b"], test_features=D["Ht"].to(dtype), test_labels=D["yt"],
              true_labels=D["ytrue"])
    one = collapse_metrics(D["H"], D["yobs"], **kw)
    monkeypatch.setattr(St, "_CHUNK_ELEMS", 5 * D["H"].shape[1])  # 5 rows per ClassStats update
    monkeypatch.setattr(Dp, "chunk_rows", lambda n, C, d: 7)
    monkeypatch.setattr(Dp, "_K_ROWS", 3)
    many = collapse_metrics(D["H"], D["yobs"], **kw)
    assert set(many) == set(one)
    # float32: K is a float32 product per 512-row slice (1e-6 relative here, an ill-conditioned
    # Sigma_B with 70 means in 80 dimensions); 3-row slices round differently
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    for k, v in one.items():
        assert math.isclose(many[k], v, rel_tol=tol, abs_tol=tol), (k, many[k], v)
