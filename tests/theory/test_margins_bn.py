"""Seed 002's margins and margin-bound terms (nclab.theory.margins) and seed 003 Prop. 2.2.1
(nclab.theory.batchnorm), each against a direct loop written from the source's formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nclab.theory import bn_mean_sq_norm, bn_norm_identity_check, margin_bound_terms, pair_margins
from nclab.theory.checks import theory_checks


def _reference(z, y, m):
    """Def. 4.3, Thm 4.1, Cor. 4.5, Thm 4.8, Thm 4.10 by loops over classes and samples."""
    z, m = np.asarray(z, float), np.asarray(m, float)
    y = np.asarray(y)
    c, d = m.shape
    n = len(y)
    gam = np.full((c, c), np.inf)
    for a in range(c):
        for b in range(c):
            if a == b:
                continue
            v = m[a] - m[b]
            on_a = [v @ z[i] for i in range(n) if y[i] == a]
            on_b = [-(v @ z[i]) for i in range(n) if y[i] == b]
            gam[a, b] = min(on_a + on_b)
    pairs = [gam[a, b] for a in range(c) for b in range(a + 1, c)]
    k_emp = max(abs((m[a] - m[b]) @ z[i]) for i in range(n) for a in range(c) for b in range(c))
    ref = {"margin_min_nobias": min(pairs), "margin_pair_mean": np.mean(pairs),
           "margin_pair_std": np.std(pairs), "bound44_k_emp": k_emp}
    ordered = [(a, b) for a in range(c) for b in range(c) if a != b]
    ref["bound44_a"] = sum(1 / gam[a, b] for a, b in ordered) / c
    ref["bound44_b"] = sum(math.sqrt(math.log(math.log2(4 * k_emp / gam[a, b])))
                           for a, b in ordered) / math.sqrt(n * c)
    hat = {(a, b): gam[a, b] / np.linalg.norm(m[a] - m[b]) for a, b in ordered}
    ref["bound48_gamma_hat_min"] = min(hat.values())
    n_per = n / c
    total = 0.0
    for a in range(c):
        rho = max(np.linalg.norm(z[i]) for i in range(n) if y[i] == a)
        alpha2 = min(hat[(a, b)] for b in range(c) if b != a) - math.sqrt(n_per)
        for alpha in (1.0, alpha2):
            total += math.exp(-n_per * alpha ** 2 / (8 * d ** 2 * rho ** 2))
    ref["bound410_acc"] = 1 - 2 * d / c * total
    return gam, ref


@pytest.mark.parametrize("c, d, spread", [(3, 5, 0.05), (6, 4, 0.2), (10, 12, 0.1)])
def test_margin_terms_match_the_formulas(c, d, spread):
    g = torch.Generator().manual_seed(c)
    m = torch.randn(c, d, generator=g, dtype=torch.float64)
    m = m / m.norm(dim=1, keepdim=True) * torch.linspace(1.0, 1.2, c, dtype=torch.float64)[:, None]
    y = torch.arange(c).repeat(7)
    z = m[y] * 2 + spread * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    gam, ref = _reference(z, y, m)
    got = margin_bound_terms(z, y, m)
    assert got["margin_min_nobias"] > 0  # the fixture is separable: every term is defined
    for k, v in ref.items():
        assert got[k] == pytest.approx(v, rel=1e-10), k
    g2 = pair_margins(z, y, m).numpy()
    np.testing.assert_allclose(g2[~np.eye(c, dtype=bool)], gam[~np.eye(c, dtype=bool)], rtol=1e-12)


def test_p_min_is_the_bias_free_margin_of_thm_4_1():
    """p_min = min over i and y' != y of <M_y - M_y', z_{y,i}>, the classifier's margin without
    its bias; with a non-constant bias the classifier's own margin differs."""
    g = torch.Generator().manual_seed(1)
    m = torch.randn(4, 6, generator=g, dtype=torch.float64)
    y = torch.arange(4).repeat(5)
    z = 3 * m[y] + 0.1 * torch.randn(20, 6, generator=g, dtype=torch.float64)
    logits = z @ m.T
    own = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(y, 4).bool(), -math.inf).amax(1)
    assert margin_bound_terms(z, y, m)["margin_min_nobias"] == pytest.approx(
        float((own - other).min()), rel=1e-12)
    bias = torch.tensor([0.0, 5.0, -5.0, 1.0], dtype=torch.float64)
    lb = logits + bias
    own_b = lb.gather(1, y[:, None]).squeeze(1)
    other_b = lb.masked_fill(torch.nn.functional.one_hot(y, 4).bool(), -math.inf).amax(1)
    assert float((own_b - other_b).min()) != pytest.approx(float((own - other).min()), rel=1e-3)


def test_bound_terms_are_nan_without_separability_and_margins_stay():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(30, 3, generator=g, dtype=torch.float64)
    y = torch.arange(3).repeat(10)
    m = torch.randn(3, 3, generator=g, dtype=torch.float64)
    got = margin_bound_terms(z, y, m)
    assert got["margin_min_nobias"] < 0 and math.isfinite(got["margin_pair_mean"])
    for k in ("bound44_a", "bound44_b", "bound48_gamma_hat_min", "bound410_acc"):
        assert math.isnan(got[k]), k
    # a class without samples: its pairs are left out, not counted as infinite margins
    y2 = torch.zeros(30, dtype=torch.int64)
    y2[15:] = 1
    out = margin_bound_terms(z, y2, torch.randn(3, 3, generator=g, dtype=torch.float64))
    assert math.isfinite(out["margin_min_nobias"]) and math.isfinite(out["margin_pair_std"])


def test_bn_feature_norm_identity_prop_2_2_1():
    """Batch norm with shift 0 over batches of unequal size: mean ||h||^2 = ||gamma||^2."""
    measured, predicted, gnorm = bn_norm_identity_check(dim=7, batch_sizes=(50, 50, 3))
    assert measured == pytest.approx(gnorm, rel=1e-10)
    # an independent NumPy computation of the same normalisation
    rng = np.random.default_rng(0)
    gamma = rng.random(5) + 0.5
    batches = [rng.normal(2, 3, size=(b, 5)) for b in (40, 40, 9)]
    h = [gamma * (x - x.mean(0)) / x.std(0) for x in batches]
    n = sum(len(x) for x in batches)
    assert sum((v ** 2).sum() for v in h) / n == pytest.approx(float(gamma @ gamma), rel=1e-12)
    assert bn_mean_sq_norm([torch.as_tensor(x) for x in batches], torch.as_tensor(gamma)) == \
        pytest.approx(float(gamma @ gamma), rel=1e-12)
    # with PyTorch's eps the corrected prediction, not ||gamma||, is exact
    m2, p2, g2 = bn_norm_identity_check(dim=7, batch_sizes=(4, 3), eps=0.5)
    assert m2 == pytest.approx(p2, rel=1e-12) and abs(m2 - g2) / g2 > 1e-3


def test_theory_checks_rows_hold():
    rows = theory_checks(quick=True)
    assert rows and all(r.holds for r in rows)
    assert {r.theorem for r in rows} == {"seed003-prop2.2.1", "seed003-cosine-duality"}
