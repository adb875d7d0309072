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
def _blas_libraries():
    """The BLAS libraries the engine's kernels can reach: SciPy's (numba calls it for its products and
    eigendecompositions; loaded here first, so that the selection sees it) and NumPy's."""
    import scipy.linalg.cython_blas  # noqa: F401
    import threadpoolctl

    return threadpoolctl.ThreadpoolController().select(user_api="blas")


def _one_blas_thread():
    """BLAS limited to one thread while the engine runs (~10 us). Its products here are small; left
    multithreaded, OpenBLAS wakes worker threads that then spin on the other cores and take them from
    PyTorch's own threads (measured with 2 torch threads: a tracked evaluation 1.94x of plain
    evaluation instead of 1.15x, and the training epoch after it 1.23x of a bare one instead of 0.99x).
    The limit is process-wide while it lasts (threadpoolctl): BLAS calls made by other threads
    meanwhile run single-threaded too."""
    return _blas_libraries().limit(limits=1)


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
        self.sizes_array = np.asarray(self.sizes, dtype=np.int64)
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


def dense_nc1(H: torch.Tensor, y: torch.Tensor, C: int, name: str = "features") -> tuple[float, torch.Tensor]:
    """NC1 and the float64 class means (C, d); NaN when all class means coincide."""
    ((out, mean),) = dense_metrics([(H, y)], C, None, None, names=[name], warn=False)
    return out["nc1"], mean


def dense_metrics(
    sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
    C: int,
    W: torch.Tensor | None,
    b: torch.Tensor | None,
    *,
    cdnv_exponent: float = 1.0,
    pairwise_limit: int = 2048,
    names: Sequence[str] = ("features",),
    warn: bool = True,
) -> list[tuple[dict[str, float], torch.Tensor]]:
    """Every metric of :func:`~nclab.metrics.collapse_metrics` that needs only (H, y, W, b), for each
    (H, y) of ``sets`` against the same classifier, with the float64 class means (C, d) of each set,
    from one compiled call (:func:`nclab.metrics._jit.metric_sets`): one sort, one moment pass, one
    class-pair pass and one decision pass for all sets. Inputs are validated by the caller (CPU
    tensors; W and b float64); ``names`` name the sets in errors; ``warn=False`` leaves degenerate
    means unreported (for a caller that uses only NC1, NaN then)."""
    from nclab.metrics import _jit  # numba: imported with the first dense metric set

    feats = [H.float() if H.dtype in (torch.float16, torch.bfloat16) else H for H, _ in sets]
    dtype = torch.float64 if any(H.dtype == torch.float64 for H in feats) else torch.float32
    runs = _runs([y.numpy() for _, y in sets], C)
    Hn = [H.to(dtype).numpy() for H in feats]
    N, d = len(runs.y), Hn[0].shape[1]
    Hn = Hn[0] if len(Hn) == 1 else np.concatenate(Hn, out=_scratch.get("Hcat", (N, d), Hn[0].dtype))
    has_w = W is not None
    with _one_blas_thread():  # the NC1 products
        vals, flags, mean, finite = _jit.metric_sets(
            Hn, runs.order, runs.starts, runs.counts, runs.sizes_array,
            W.numpy() if has_w else _no_classifier(C, d), b.numpy() if b is not None else _zeros(C), has_w,
            cdnv_exponent, has_w and C <= pairwise_limit, _scratch.get("X", (N, d)), _scratch.get("R", (N, d)),
            _scratch.get("Q", (N, 2 * C if has_w else C)))
    ns = len(sets)
    for s in np.flatnonzero(~finite.reshape(ns, C).all(1)):
        check_finite(sets[s][0], names[s])  # raises, naming the bad values
    keys = _jit.SET_STATS
    res = []
    for s, (row, (all_zero, some_zero)) in enumerate(zip(vals.tolist(), flags.tolist())):
        out = {k: v for k, v in zip(keys, row) if k in _keys(has_w, has_w and C <= pairwise_limit)}
        if not math.isfinite(out["cdnv"]):
            out["cdnv"] = math.inf  # two classes share their mean
        if warn:
            warn_degenerate_means(all_zero, some_zero, stacklevel=5)  # the caller of collapse_metrics
        res.append((out, torch.from_numpy(mean[s * C : (s + 1) * C])))
    return res


@functools.lru_cache(maxsize=4)
def _keys(has_w: bool, pairwise: bool) -> frozenset[str]:
    """The metrics that apply: the classifier's only with W, the pairwise margin only when asked."""
    from nclab.metrics import _jit

    skip = set() if has_w else set(_jit.PAIR_STATS[10:]) | {"accuracy", "nc4_ncc_mismatch", "margin_min", "margin_mean"}
    if not pairwise:
        skip.add("margin_normalized_min")
    return frozenset(k for k in _jit.SET_STATS if k not in skip)


@functools.lru_cache(maxsize=4)
def _no_classifier(C: int, d: int) -> np.ndarray:
    """Placeholder classifier for a call without one (the kernel takes a fixed signature)."""
    w = np.zeros((C, d))
    w.flags.writeable = False
    return w


@functools.lru_cache(maxsize=4)
def _zeros(C: int) -> np.ndarray:
    z = np.zeros(C)
    z.flags.writeable = False
    return z
