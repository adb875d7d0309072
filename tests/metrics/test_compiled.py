"""The dense engine's compiled kernel (nclab/metrics/_ckernels.c) against its NumPy code.

Every other metrics test already runs on the compiled kernel too (conftest.py); these compare the
two on many random problems that reach each of the kernel's paths (the fused pass of small
problems, the BLAS products of larger ones, NC1 through the scatter or through K = M S M^T), check
exact ties and NaN in its arg maxes, and check that the fast path of collapse_metrics_many gives
the same errors as the full validation."""

import math

import numpy as np
import pytest
import torch

import nclab.metrics._dense as dense
import nclab.metrics.functional as functional
from nclab.errors import LabelError, NonFiniteError, ShapeError
from nclab.metrics import collapse_metrics, collapse_metrics_many

pytestmark = [
    pytest.mark.streaming_only,  # run once: each test sets the engine(s) it compares
    pytest.mark.skipif(not dense.COMPILED, reason="the compiled kernel was not built (no C compiler at install)"),
]


def _numpy_and_compiled(monkeypatch, fn):
    monkeypatch.setattr(functional, "_DENSE", True)  # the module's marker set the streaming engine
    monkeypatch.setattr(dense, "COMPILED", False)
    ref = fn()
    monkeypatch.setattr(dense, "COMPILED", True)
    return ref, fn()


def _same(a, b, rtol):
    assert list(a) == list(b)  # same keys, same (canonical) order
    for k in a:
        if math.isnan(a[k]) or math.isnan(b[k]):
            assert math.isnan(a[k]) and math.isnan(b[k]), (k, a[k], b[k])
        else:
            assert math.isclose(a[k], b[k], rel_tol=rtol, abs_tol=1e-10), (k, a[k], b[k])


def _path(n, d, C, has_w):
    T = 2 * C if has_w else C
    if d <= dense._ckernels.SMALL_D and T <= dense._ckernels.SMALL_T:
        return "fused"
    return "blas-scatter" if (d * d <= C * (d + C) or C > d) else "blas-K"


def test_random_problems_match_the_numpy_code(monkeypatch):
    rng = np.random.default_rng(7)
    paths = {}
    for trial in range(90):
        C = int(rng.integers(2, 41))
        d = int(rng.integers(1, 49))
        has_w, has_b = bool(rng.random() < 0.8), bool(rng.random() < 0.5)
        p = float(rng.choice([1.0, 1.0, 0.5, 2.0]))
        dtype = torch.float32 if rng.random() < 0.5 else torch.float64
        g = torch.Generator().manual_seed(trial)
        mu = torch.randn(C, d, generator=g, dtype=torch.float64) * float(rng.uniform(0.1, 5))
        sets = []
        for _ in range(int(rng.integers(1, 4))):
            n_per = int(rng.integers(1, 25))
            y = torch.arange(C).repeat_interleave(n_per)[torch.randperm(C * n_per, generator=g)]
            H = mu[y] + float(rng.uniform(0.01, 2)) * torch.randn(len(y), d, generator=g, dtype=torch.float64)
            sets.append((H.to(dtype), y))
        W = torch.randn(C, d, generator=g, dtype=torch.float64) if has_w else None
        b = torch.randn(C, generator=g, dtype=torch.float64) if has_w and has_b else None
        if has_w and rng.random() < 0.3:
            W = W.float()  # the head of a float32 network
        ref, got = _numpy_and_compiled(
            monkeypatch, lambda: collapse_metrics_many(sets, weights=W, bias=b, num_classes=C, cdnv_exponent=p)
        )
        for a, c in zip(ref, got):
            _same(a, c, rtol=1e-8)
        key = _path(sum(len(y) for _, y in sets), d, C, has_w)
        paths[key] = paths.get(key, 0) + 1
        # the single-set entry point (validated inputs, class means returned) takes the kernel too
        ref1, got1 = _numpy_and_compiled(
            monkeypatch, lambda: collapse_metrics(sets[0][0], sets[0][1], weights=W, bias=b, num_classes=C)
        )
        _same(ref1, got1, rtol=1e-8)
    assert all(paths.get(k, 0) >= 5 for k in ("fused", "blas-scatter", "blas-K")), paths


@pytest.mark.parametrize("C,d", [(3, 4), (20, 40)], ids=["fused", "blas"])
def test_exact_ties_go_to_the_lowest_class(monkeypatch, C, d):
    # classes 0 and 1 have the same mean (class 1's samples are class 0's first half repeated
    # twice), so their NCC scores tie exactly and the tie must go to class 0; W has two equal rows
    # (1 and 2): logits tie and the tie must go to class 1. Unequal class sizes make the lowest-index
    # rule visible in the accuracies.
    # integer-valued features: every sum and mean below is exact
    g = torch.Generator().manual_seed(0)
    mu = torch.randint(-20, 21, (C, d), generator=g).double()
    rows = [mu[c] + torch.randint(-2, 3, (4, d), generator=g).double() for c in range(C)]
    rows[1] = rows[0]
    rows[0] = rows[0].repeat(2, 1)  # 8 samples, the same mean as class 1's 4
    H = torch.cat(rows)
    y = torch.cat([torch.full((len(r),), c) for c, r in enumerate(rows)])
    W = torch.randint(-3, 4, (C, d), generator=g).double()
    W[2] = W[1]
    ref, got = _numpy_and_compiled(monkeypatch, lambda: collapse_metrics_many([(H, y)], weights=W, num_classes=C))
    _same(ref[0], got[0], rtol=1e-10)
    means = torch.stack([H[y == c].mean(0) for c in range(C)])
    assert torch.equal(means[0], means[1])
    ncc_pred = (H[:, None] - means[None]).square().sum(-1).argmin(1)  # argmin: the first of equal distances
    assert got[0]["ncc_accuracy"] == float((ncc_pred == y).double().mean())
    assert got[0]["accuracy"] == float(((H @ W.T).argmax(1) == y).double().mean())
    assert int((ncc_pred == 1).sum()) == 0 and int(((H @ W.T).argmax(1) == 2).sum()) == 0  # ties resolved low


def test_argmax_hits_follow_torch_argmax_with_ties_and_nan():
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        z = torch.randint(0, 3, (500, 7), generator=gen).to(dtype)  # many ties
        z[::17, 3] = float("nan")
        z[::29, 0] = float("nan")
        y = torch.randint(0, 7, (500,), generator=gen)
        yt = torch.randint(0, 7, (500,), generator=gen)
        pred = z.argmax(1)
        assert dense.argmax_hits(z, y, yt) == (int((pred == y).sum()), int((pred == yt).sum()))


def _error(fn):
    with pytest.raises((LabelError, NonFiniteError, ShapeError)) as info:
        fn()
    return info.type, str(info.value)


@pytest.mark.parametrize("case", ["label out of range", "class missing", "nan feature", "inf weight", "nan bias",
                                  "bias without weights"])
def test_fast_path_raises_the_full_validation_errors(monkeypatch, case):
    g = torch.Generator().manual_seed(1)
    y = torch.arange(4).repeat(5)
    H, W, b = torch.randn(20, 3, generator=g), torch.randn(4, 3, generator=g), torch.randn(4, generator=g)
    if case == "label out of range":
        y = y.clone()
        y[3] = 4
    elif case == "class missing":
        y = torch.where(y == 2, 1, y)
    elif case == "nan feature":
        H[5, 1] = float("nan")
    elif case == "inf weight":
        W[1, 0] = float("inf")
    elif case == "nan bias":
        b[2] = float("nan")
    else:
        W = None
    sets = [(torch.randn(8, 3, generator=g), torch.arange(4).repeat(2)), (H, y)]
    ref, got = _numpy_and_compiled(monkeypatch, lambda: _error(
        lambda: collapse_metrics_many(sets, weights=W, bias=b, num_classes=4, names=["a", "b"])))
    assert got == ref
