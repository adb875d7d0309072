"""Theorem 4.3 of seed 000 on a grid inside Assumption 4.2, and what happens outside it."""

import itertools
import math

import pytest

from nclab.md import assumption_4_2, compare_ce_ls, dilation_lower_bounds
from nclab.md._nc import _nc_configuration

GRID = list(itertools.product([(1e-3, 1e-3), (1e-2, 5e-3)], [0.1, 0.4], [0.5, 3.0], ["circle", "two-point"],
                              [0.2, 0.9]))


@pytest.mark.parametrize("decays,alpha,c_md,dist,frac", GRID)
def test_theorem_4_3_inside_assumptions(decays, alpha, c_md, dist, frac):
    lw, lh = decays
    probe = assumption_4_2(alpha=alpha, lambda_w=lw, lambda_h=lh, eta=0.0, c_md=c_md, dist=dist)
    eta = (frac * probe.c_tilde * (1 - 1 / probe.gamma)) ** 2  # sqrt(eta) = frac * C~ (1 - 1/gamma)
    a = assumption_4_2(alpha=alpha, lambda_w=lw, lambda_h=lh, eta=eta, c_md=c_md, dist=dist)
    assert a.holds
    res = compare_ce_ls(alpha=alpha, lambda_w=lw, lambda_h=lh, eta=eta, c_md=c_md, dist=dist, n_grid=65)
    assert res.ce.dilation > res.ls.dilation
    assert res.theorem_4_3_holds
    # the proof's chain: r*_LS <= r_max_LS and r*_CE >= r_max_CE (1 - C' eta^(1/2))
    b = dilation_lower_bounds(alpha=0.0, lambda_w=lw, lambda_h=lh, eta=eta, c_md=c_md, dist=dist)
    assert res.ce.r_star >= b["paper"]
    assert res.ls.r_star <= res.ls.r_max


def test_gamma_matches_closed_form_and_exceeds_one_for_any_alpha():
    """gamma = ||H^CE||/||H^LS|| = sqrt(s_CE / s_LS) > 1 for every alpha_0 > 0 (not only > 4 sqrt(lw lh))."""
    lw = lh = 1e-3
    for alpha in [1e-4, 2e-3, 0.1, 0.9]:
        a = assumption_4_2(alpha=alpha, lambda_w=lw, lambda_h=lh, eta=1e-3, c_md=1.0)
        k0 = math.sqrt(2 * lw * lh)
        k1 = alpha / 2 + k0
        want = math.sqrt(math.log((1 - k0) / k0) / math.log((1 - k1) / k1))
        assert a.gamma == pytest.approx(want, rel=1e-12)
        assert a.gamma > 1
        assert a.alpha_condition == (alpha > 4e-3)


def test_conclusion_holds_below_printed_alpha_condition():
    """alpha_0 = 0.002 < 4 sqrt(lw lh) = 0.004 violates Assumption 4.2.3, yet for small eta Thm 4.3 holds."""
    kw = dict(alpha=0.002, lambda_w=1e-3, lambda_h=1e-3, eta=1e-6, c_md=1.0)
    a = assumption_4_2(**kw)
    assert not a.alpha_condition and a.noise_condition
    assert compare_ce_ls(**kw, n_grid=65).theorem_4_3_holds


def test_inequality_can_fail_outside_assumptions():
    """At high noise (eta = 0.5, small C_MD) the inequality fails: the noise condition is not vacuous."""
    kw = dict(alpha=0.05, lambda_w=1e-3, lambda_h=1e-3, eta=0.5, c_md=0.5)
    a = assumption_4_2(**kw)
    assert a.alpha_condition and not a.noise_condition
    res = compare_ce_ls(**kw, n_grid=129)
    assert res.ce.dilation < res.ls.dilation


def test_gaussian_violates_bounded_support():
    a = assumption_4_2(alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=1e-6, c_md=1.0, dist="gaussian")
    assert not a.bounded_support and not a.holds and a.c_tilde == 0.0
    b = dilation_lower_bounds(alpha=0.1, lambda_w=1e-3, lambda_h=1e-3, eta=1e-6, c_md=1.0, dist="gaussian")
    assert b["paper"] == -math.inf and math.isfinite(b["rigorous"])


def test_c_tilde_formula():
    cfg = _nc_configuration(0.0, lambda_w=2e-3, lambda_h=1e-3)
    a = assumption_4_2(alpha=0.2, lambda_w=2e-3, lambda_h=1e-3, eta=1e-4, c_md=1.5)
    h1, h2 = cfg.H
    assert a.c_tilde == pytest.approx(1.5 / (math.sqrt(2) * float(((h1 - h2) ** 2).sum()) ** 0.5))
    assert a.noise_condition == (1e-2 < a.c_tilde * (1 - 1 / a.gamma))
