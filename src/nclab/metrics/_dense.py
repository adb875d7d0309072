r"""The dense engine: the full metric set of a small CPU problem in NumPy float64.

:func:`~nclab.metrics.collapse_metrics` has two engines that compute the same numbers:

* the streaming engine (:mod:`nclab.metrics.functional`, :mod:`nclab.metrics._pairwise`), built for
  n = 10^5..10^7 samples and up to 10^5 classes, on any device: chunks, float32 products with exact
  offset corrections, argmax-free decisions, tiled class pairs. At n = 3200, d = C = 10 (a tracked
  epoch of the quick preset) it dispatches ~450 PyTorch operations of 3-10 us of eager overhead each:
  ~2.5 ms, where the arithmetic is ~0.1 ms;
* this engine, for CPU problems of at most a few MB (:func:`dense_fits`): every sample at once in
  float64 with the samples along the fast axis, every class pair in whole C x C matrices, the five Gram
  matrices (M M^T, U U^T, S S^T, W W^T, W M^T) in one batched product, in NumPy, whose per-call
  overhead on small arrays is about half of PyTorch's. Several sets against one classifier share one
  pass (:func:`~nclab.metrics.collapse_metrics_many`): the train (3200) and test (800) sets of a
  tracked epoch take 1.4-1.5 ms together, against 4.5-6 ms for two streaming metric sets.

Definitions, sources and conventions are those of :mod:`nclab.metrics.functional` (ties go to the
lowest class index, as ``argmax`` defines it; undefined metrics are NaN with a
:class:`~nclab.errors.DegenerateWarning`). Cost: O(n d C + C^2 d) time, O(n (d + 2C) + C^2) memory.
"""

from __future__ import annotations

import functools
import itertools
import math
import mmap
import threading
from typing import Sequence

import numpy as np
import torch

from nclab.metrics._kernels import warn_degenerate_means
from nclab.metrics._validate import check_finite

__all__ = ["dense_fits", "dense_metrics", "dense_nc1"]

#: Largest n * (d + 2C) handled densely (2 MB per float64 temporary of that size). Measured crossover:
#: at n = 3200, C = 10 the streaming engine is faster from d ~ 64 on; at d = C = 10 from n ~ 10^4.
DENSE_MAX_ELEMS = 1 << 18
#: Largest class count handled densely (its C x C matrices are then at most 0.5 MB each).
DENSE_MAX_CLASSES = 128


def dense_fits(n: int, d: int, C: int, device: torch.device) -> bool:
    """Whether the dense engine takes a problem of n samples, dimension d and C classes: CPU
    tensors (the engine runs on the host), n (d + 2C) <= :data:`DENSE_MAX_ELEMS`, C <= :data:`DENSE_MAX_CLASSES`."""
    return device.type == "cpu" and C <= DENSE_MAX_CLASSES and n * (d + 2 * C) <= DENSE_MAX_ELEMS


class _Scratch(threading.local):
    """Reusable scratch arrays, per thread. A fresh array of a few hundred KB is a fresh mapping whose
    pages fault on first touch (~400 faults, ~1 ms a metric set on a VM: more than the arithmetic),
    so the large temporaries are taken from here; they never leave the engine."""

    LIMIT = 16  # arrays kept (a tracked epoch alternates two shapes, train and test)

    def __init__(self) -> None:
        self.arrays: dict[tuple, np.ndarray] = {}
        self.runs: _Runs | None = None  # the last label sets' sort (see _runs)

    def get(self, name: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        key = (name, shape, np.dtype(dtype))
        arr = self.arrays.get(key)
        if arr is None:
            if len(self.arrays) >= self.LIMIT:
                self.arrays.clear()
            # an anonymous mapping of its own, outside the malloc heap: a long-lived array inside the
            # heap would keep it from shrinking back after each batch of network activations
            nbytes = max(int(np.prod(shape)) * np.dtype(dtype).itemsize, 1)
            arr = self.arrays[key] = np.frombuffer(mmap.mmap(-1, nbytes), dtype, int(np.prod(shape))).reshape(shape)
        return arr


_scratch = _Scratch()


@functools.lru_cache(maxsize=1)
def _numpy_blas():
    import threadpoolctl

    return threadpoolctl.ThreadpoolController().select(user_api="blas")


def _one_blas_thread():
    """NumPy's BLAS limited to one thread while the engine runs (~10 us). Its products here are tiny;
    left multithreaded, OpenBLAS wakes worker threads that then spin on the other cores and take them
    from PyTorch's own threads (measured with 2 torch threads: a tracked evaluation 1.94x of plain
    evaluation instead of 1.15x, and the training epoch after it 1.23x of a bare one instead of 0.99x).
    The limit is process-wide while it lasts (threadpoolctl): NumPy BLAS calls made by other threads
    meanwhile run single-threaded too."""
    return _numpy_blas().limit(limits=1)


class _Runs:
    """Where each sample of one or more label sets goes when sorted by (set, class) with a stable
    counting sort: class c of set s is global class s C + c, a contiguous run of columns, so per-class
    sums and minima are single ``reduceat`` calls. Needs every class of every set present (callers
    check)."""

    def __init__(self, labels: Sequence[np.ndarray], C: int) -> None:
        self.labels = [y.copy() for y in labels]  # what the runs were built from (see _runs)
        self.C = C
        yn = np.concatenate([y + s * C for s, y in enumerate(labels)])
        K = C * len(labels)
        self.order = np.argsort(yn.astype(np.uint8 if K <= 256 else np.int32), kind="stable")
        self.y = yn[self.order]  # global class of each sorted sample
        self.counts = np.bincount(yn, minlength=K)
        self.starts = np.zeros(K, dtype=np.intp)
        self.starts[1:] = self.counts[:-1].cumsum()
        self.sizes = [len(y) for y in labels]
        self.offsets = [int(self.starts[s * C]) for s in range(len(labels))]

    def same(self, labels: Sequence[np.ndarray], C: int) -> bool:
        return C == self.C and len(labels) == len(self.labels) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(labels, self.labels))


def _runs(labels: Sequence[np.ndarray], C: int) -> _Runs:
    """The runs of ``labels``, reused while the labels stay the same (compared by value, ~4 us for
    4000 labels): a tracked training run measures the same train and test labels every epoch."""
    runs = _scratch.runs
    if runs is None or not runs.same(labels, C):
        runs = _scratch.runs = _Runs(labels, C)
    return runs


class _Sorted:
    """One or more feature sets with their samples sorted by (set, class) (see :class:`_Runs`):
    float64 rows X (N, d), the rows centred on their class mean R (N, d), and per global class the
    mean, the mean unit vector, the sum of squared deviations and whether its sums are finite, from
    one compiled pass (:func:`nclab.metrics._jit.sorted_moments`)."""

    def __init__(self, sets: Sequence[tuple[torch.Tensor, torch.Tensor]], C: int) -> None:
        from nclab.metrics import _jit  # numba: imported with the first dense metric set

        feats = [H.float() if H.dtype in (torch.float16, torch.bfloat16) else H for H, _ in sets]
        dtype = torch.float64 if any(H.dtype == torch.float64 for H in feats) else torch.float32
        runs = _runs([y.numpy() for _, y in sets], C)
        self.y, self.counts, self.starts = runs.y, runs.counts, runs.starts
        self.sizes, self.offsets = runs.sizes, runs.offsets
        Hn = [H.to(dtype).numpy() for H in feats]
        N, d = len(self.y), Hn[0].shape[1]
        Hn = Hn[0] if len(Hn) == 1 else np.concatenate(Hn, out=_scratch.get("Hcat", (N, d), Hn[0].dtype))
        self.X, self.R = _scratch.get("X", (N, d)), _scratch.get("R", (N, d))
        self.mean, self.unit_mean, self.sq_dev, self.finite = _jit.sorted_moments(
            Hn, runs.order, self.starts, self.counts, self.X, self.R)


def _nc1_sets(M: np.ndarray, R: np.ndarray, sizes: Sequence[int]) -> list[float]:
    """NC1 of each set from its centred means M (sets, C, d) and the centred rows R (N, d) of all
    sets, in set order (see :func:`~nclab.metrics._kernels.nc1_value`): through the scatter
    S = R^T R (one n d^2 product) when that is cheaper than Z = R M^T and Z^T Z (n d C + n C^2), and
    always when C > d; the eigendecompositions in one compiled pass (:func:`nclab.metrics._jit.nc1_sets`)."""
    from nclab.metrics import _jit

    ns, C, d = M.shape
    bounds = [0, *itertools.accumulate(sizes)]
    n = np.asarray(sizes, dtype=np.float64)
    use_scatter = d * d <= C * (d + C) or C > d
    mats = []
    for s, (a, e) in enumerate(zip(bounds[:-1], bounds[1:])):
        if use_scatter:
            mats.append(R[a:e].T @ R[a:e])
        else:
            ZT = M[s] @ R[a:e].T
            mats.append(ZT @ ZT.T)
    return _jit.nc1_sets(np.ascontiguousarray(M), np.stack(mats), n, not use_scatter).tolist()


def dense_nc1(H: torch.Tensor, y: torch.Tensor, C: int, name: str = "features") -> tuple[float, torch.Tensor]:
    """NC1 and the float64 class means (C, d); NaN when all class means coincide."""
    with np.errstate(all="ignore"), _one_blas_thread():
        S = _Sorted([(H, y)], C)
        if not S.finite.all():
            check_finite(H, name)
        nc1 = _nc1_sets((S.mean - S.mean.mean(0))[None], S.R, S.sizes)[0]
        return nc1, torch.from_numpy(S.mean)


@functools.lru_cache(maxsize=16)
def _off_diagonal(C: int) -> np.ndarray:
    """(C, C) mask of the off-diagonal entries."""
    off = ~np.eye(C, dtype=bool)
    off.flags.writeable = False
    return off


def _mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis (``ndarray.mean`` is Python-level: ~3x the cost on small arrays)."""
    return x.sum(-1) / x.shape[-1]


def _class_pairs(M, U, Sb, W, var, C: int, p: float) -> tuple[list[dict[str, float]], np.ndarray]:
    """Every class-pair metric of each set from its centred means M, uncentred means U and mean unit
    vectors Sb (all (sets, C, d)) and the classifier W (C, d) or None; var (sets, C). One compiled
    pass (:func:`nclab.metrics._jit.class_pairs`); returns the per-set metrics and tr(M M^T) per set."""
    from nclab.metrics import _jit  # numba: imported with the first dense metric set

    has_w = W is not None
    vals, flags, tr = _jit.class_pairs(M, U, Sb, W if has_w else _no_classifier(C, M.shape[2]), has_w, var, p)
    keys = _jit.PAIR_STATS if has_w else _jit.PAIR_STATS[:10]
    outs = []
    for row, (all_zero, some_zero) in zip(vals.tolist(), flags.tolist()):
        out = dict(zip(keys, row))
        if not math.isfinite(out["cdnv"]):
            out["cdnv"] = math.inf  # two classes share their mean
        warn_degenerate_means(all_zero, some_zero, stacklevel=6)  # the caller of collapse_metrics
        outs.append(out)
    return outs, tr


@functools.lru_cache(maxsize=4)
def _no_classifier(C: int, d: int) -> np.ndarray:
    """Placeholder classifier for a call without one (the kernel takes a fixed signature)."""
    w = np.zeros((C, d))
    w.flags.writeable = False
    return w


def dense_metrics(
    sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
    C: int,
    W: torch.Tensor | None,
    b: torch.Tensor | None,
    *,
    cdnv_exponent: float = 1.0,
    pairwise_limit: int = 2048,
    names: Sequence[str] = ("features",),
) -> list[tuple[dict[str, float], torch.Tensor]]:
    """Every metric of :func:`~nclab.metrics.collapse_metrics` that needs only (H, y, W, b), for each
    (H, y) of ``sets`` against the same classifier, with the float64 class means (C, d) of each set.
    The sets share one sort, one moment pass and one batched class-pair pass. Inputs are validated by
    the caller (CPU tensors; W and b float64); ``names`` name the sets in errors."""
    # NaN/inf features raise below; undefined metrics are NaN
    with np.errstate(all="ignore"), _one_blas_thread():
        S = _Sorted(sets, C)
        ns, d = len(sets), S.mean.shape[1]
        for s in np.flatnonzero(~S.finite.reshape(ns, C).all(1)):
            check_finite(sets[s][0], names[s])  # raises, naming the bad values
        mean, unit_mean = S.mean.reshape(ns, C, d), S.unit_mean.reshape(ns, C, d)
        counts, sq_dev = S.counts.reshape(ns, C), S.sq_dev.reshape(ns, C)
        mu_g = _mean(mean.swapaxes(1, 2))  # (sets, d)
        M = mean - mu_g[:, None]
        Wn = None if W is None else W.numpy()
        bn = None if b is None else b.numpy()
        outs, tr = _class_pairs(M, mean, unit_mean, Wn, sq_dev / counts, C, cdnv_exponent)
        nc1 = _nc1_sets(M, S.R, S.sizes)
        decisions = _decisions(S, M, mu_g, Wn, bn, pairwise_limit)
        res = []
        for s, (out, dec) in enumerate(zip(outs, decisions)):
            tr_b = float(tr[s]) / C
            if tr_b == 0.0:
                out["nc1"] = out["nc1_quotient"] = math.nan
            else:
                out["nc1"] = nc1[s]
                out["nc1_quotient"] = float(sq_dev[s].sum()) / S.sizes[s] / tr_b
            out.update(dec)
            res.append((out, torch.from_numpy(np.ascontiguousarray(mean[s]))))
        return res


def _decisions(S: _Sorted, M, mu_g, W, b, pairwise_limit: int) -> list[dict[str, float]]:
    """Per set: NCC accuracy; with W: accuracy, NC4, margins and the normalised pairwise margin.

    For each sample, one compiled pass (:func:`nclab.metrics._jit.decisions`) computes the NCC
    scores (h - mu_G).m_c - ||m_c||^2/2 of its set's means (the nearest-mean rule up to a per-sample
    constant) and the logits w_c.h + b_c, both rules' first-index arg max (as ``argmax`` defines it;
    a NaN score counts as the maximum), the margin (own logit minus the best other) and the directed
    pair minima."""
    from nclab.metrics import _jit

    ns, C, d = M.shape
    PT = np.zeros((ns, d + 1, C if W is None else 2 * C))
    PT[:, :d, :C] = M.swapaxes(1, 2)
    PT[:, d, :C] = -np.einsum("sij,sij->si", M, 0.5 * M + mu_g[:, None])  # mu_G folded into the constants
    if W is not None:
        PT[:, :d, C:] = W.T
        if b is not None:
            PT[:, d, C:] = b
    pairwise = W is not None and C <= pairwise_limit
    res = _jit.decisions(S.X, S.starts, S.counts, C, PT, _no_classifier(C, d) if W is None else W, W is not None, pairwise)
    outs = []
    for n, (ncc, hit, differ, mmin, msum, pair) in zip(S.sizes, res.tolist()):
        out = {"ncc_accuracy": ncc / n}
        if W is not None:
            out.update(accuracy=hit / n, nc4_ncc_mismatch=differ / n, margin_min=mmin, margin_mean=msum / n)
            if pairwise:
                out["margin_normalized_min"] = pair
        outs.append(out)
    return outs
    if C <= pairwise_limit:
        off = _off_diagonal(C)
        dw = np.sqrt(np.square(W[:, None] - W[None]).sum(-1))[off]  # as kernels._row_distances
        gamma = np.minimum(A, A.swapaxes(1, 2))[:, off]  # (sets, C (C - 1))
        valid = np.isfinite(gamma) & (dw > 0)  # skipped as in kernels.normalized_pair_min
        pair = np.where(valid.any(1), np.where(valid, gamma / dw, np.inf).min(1), math.nan).tolist()
    for s, (out, r, (mmin, msum)) in enumerate(zip(outs, rate, margins.tolist())):
        out.update(accuracy=r[1], nc4_ncc_mismatch=r[2], margin_min=mmin, margin_mean=msum / S.sizes[s])
        if C <= pairwise_limit:
            out["margin_normalized_min"] = pair[s]
    return outs
