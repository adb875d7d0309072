"""Exact configurations: collapsed features on a simplex ETF / orthogonal frame give zeros."""


import pytest
import torch

from nclab.metrics import collapse_metrics, effective_depth, nc1, nc2_etf, nc2_of, simplex_etf


@pytest.mark.parametrize("C,d", [(3, 3), (4, 10), (10, 9), (7, 12)])
def test_perfect_simplex_etf_collapse(C, d):
    g = torch.Generator().manual_seed(C)
    E = simplex_etf(C, d, generator=g) * 3.0  # unit rows scaled
    shift = torch.randn(d, dtype=torch.float64, generator=g)  # global mean is irrelevant for centred metrics
    y = torch.arange(C).repeat(5)
    H = E[y] + shift
    m = collapse_metrics(H, y, weights=E, bias=-(E @ shift))
    assert m["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert m["cdnv"] == pytest.approx(0.0, abs=1e-12)
    for k in ("nc2_equinorm", "nc2_equiangular", "nc2_etf", "nc2_etf_w", "nc3_duality", "nc3_etf", "gnc2_dist_var", "unc3_var"):
        assert m[k] == pytest.approx(0.0, abs=1e-7), k
    assert m["nc4_ncc_mismatch"] == 0.0
    assert m["accuracy"] == 1.0 and m["ncc_accuracy"] == 1.0
    # ETF margins: (w_y - w_c) . w_y * ... all equal: every sample has the same margin
    assert m["margin_min"] == pytest.approx(m["margin_mean"], rel=1e-12)
    assert m["margin_min"] == pytest.approx(9.0 * (1 + 1 / (C - 1)), rel=1e-12)


@pytest.mark.parametrize("C,d", [(3, 3), (5, 8)])
def test_orthogonal_frame_gives_nc2_of_zero(C, d):
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(d, C, dtype=torch.float64, generator=g))
    U = 2.0 * Q.T  # orthogonal rows of equal norm, uncentred
    y = torch.arange(C).repeat(3)
    m = collapse_metrics(U[y], y, weights=U)
    assert m["nc2_of"] == pytest.approx(0.0, abs=1e-7)
    assert m["nc2_of_w"] == pytest.approx(0.0, abs=1e-7)
    assert m["nc2_etf"] == pytest.approx(0.0, abs=1e-7)  # centred orthogonal frame is a simplex ETF
    assert nc2_of(U) == pytest.approx(0.0, abs=1e-7)
    assert nc2_etf(U) > 0.1  # but uncentred it is not


def test_rows_form_of_nc2_etf():
    assert nc2_etf(simplex_etf(6, 9)) == pytest.approx(0.0, abs=1e-7)


def test_docstring_example_nc1_is_zero():
    assert nc1(torch.eye(3).repeat(4, 1), torch.arange(3).repeat(4)) == 0.0


def test_effective_depth_first_layer_that_separates():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat(20)
    noise = torch.randn(60, 4, dtype=torch.float64, generator=g)
    means = torch.eye(3, 4, dtype=torch.float64) * 5
    layers = [noise, noise + 0.1 * means[y], means[y] + 0.01 * noise, means[y]]
    assert effective_depth(layers, y, eps=0.0) == 3
    assert effective_depth(layers[:2], y, eps=0.0) == 2  # none reaches it: the depth L
    assert effective_depth(layers, y, eps=1.0) == 1
