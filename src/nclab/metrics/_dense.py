r"""The dense engine: the full metric set of a small CPU problem in float64, by a compiled kernel or NumPy.

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

The engine runs the C kernel ``nclab.metrics._ckernels`` (``_ckernels.c``, built by ``pip install``
where a C compiler exists) and falls back to the NumPy code below without it: every set in one
compiled call, 0.36-0.45 ms for a tracked epoch's two sets against 1.3-1.5 ms for the NumPy code
(docs/metrics.md, "The compiled kernel"). Tests run every metric on both, and compare them directly
on random problems.

Definitions, sources and conventions are those of :mod:`nclab.metrics.functional` (ties go to the
lowest class index, as ``argmax`` defines it; undefined metrics are NaN with a
:class:`~nclab.errors.DegenerateWarning`). Cost: O(n d C + C^2 d) time, O(n (d + 2C) + C^2) memory.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import mmap
import threading
from typing import Sequence

import numpy as np
import torch

from nclab.metrics._kernels import nc1_value, warn_degenerate_means
from nclab.metrics._validate import check_finite

#: Interface version of the compiled kernel this code calls (KERNEL_VERSION in _ckernels.c).
_KERNEL_VERSION = 3
try:  # built at install time where a C compiler is available (setup.py); optional
    from nclab.metrics import _ckernels
except ImportError:  # pragma: no cover - depends on the install
    _ckernels = None
_KERNEL_NOTE = "compiled kernel loaded" if _ckernels is not None else "not built (no C compiler at install?)"
if _ckernels is not None and getattr(_ckernels, "VERSION", None) != _KERNEL_VERSION:  # pragma: no cover
    _ckernels, _KERNEL_NOTE = None, "stale build of an older source: reinstall nclab (pip install -e .)"
if _ckernels is not None:  # its products and eigendecompositions: SciPy's BLAS and LAPACK, through SciPy's exported pointers
    from scipy.linalg import cython_blas, cython_lapack

    _ckernels.set_lapack(cython_blas.__pyx_capi__["dgemm"], cython_blas.__pyx_capi__["dsyrk"],
                         cython_lapack.__pyx_capi__["dsyevd"])

__all__ = ["dense_fits", "dense_metrics", "dense_nc1", "COMPILED", "engine_info"]

#: Whether the dense engine runs its compiled kernel (``nclab.metrics._ckernels``) rather than its
#: NumPy code; tests switch it off to check the NumPy code on the same inputs.
COMPILED = _ckernels is not None


def engine_info() -> dict[str, object]:
    """Which code computes the metrics of small CPU problems (e.g. every tracked epoch).

    Returns ``{"dense_engine": "compiled" | "numpy", "compiled_kernel": note, "dense_max_elems": ...,
    "dense_max_classes": ...}``: ``"numpy"`` when the C kernel was not built at install (no
    compiler) or is stale; the numbers are the same either way, the compiled kernel is 1.5-4x faster.

    Examples
    --------
    >>> from nclab.metrics import engine_info
    >>> engine_info()["dense_engine"] in ("compiled", "numpy")
    True
    """
    return {"dense_engine": "compiled" if COMPILED else "numpy", "compiled_kernel": _KERNEL_NOTE,
            "dense_max_elems": DENSE_MAX_ELEMS, "dense_max_classes": DENSE_MAX_CLASSES}

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
        self.cls = self.y % C  # its class within its set
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
    """One or more feature sets with their samples sorted by (set, class) (see :class:`_Runs`)."""

    def __init__(self, sets: Sequence[tuple[torch.Tensor, torch.Tensor]], C: int) -> None:
        feats = [H.float() if H.dtype in (torch.float16, torch.bfloat16) else H for H, _ in sets]
        dtype = torch.float64 if any(H.dtype == torch.float64 for H in feats) else torch.float32
        runs = _runs([y.numpy() for _, y in sets], C)
        self.cls, self.counts, self.starts = runs.cls, runs.counts, runs.starts
        self.sizes, self.offsets = runs.sizes, runs.offsets
        Hn = [H.to(dtype).numpy() for H in feats]
        N = len(runs.y)
        Hn = Hn[0] if len(Hn) == 1 else np.concatenate(Hn, out=_scratch.get("Hcat", (N, Hn[0].shape[1]), Hn[0].dtype))
        self.H = np.take(Hn, runs.order, axis=0, out=_scratch.get("H", Hn.shape, Hn.dtype))


def _moments(S: _Sorted):
    """Transposed float64 rows with a row of ones XT1 (d + 1, n), means (K, d), mean unit vectors
    (K, d), transposed centred rows RT (d, n), sq_dev (K,) and whether each class sum is finite (K,),
    for the K global classes.

    Samples run along the fast axis, so that a reduction over d or over the classes is elementwise
    across contiguous rows; the row of ones lets one product add per-class constants. The unit rows
    pass through RT's buffer before the centred rows do (the engine's arrays should stay within a
    core's L2 cache: after a forward pass little else is there)."""
    n, d = S.H.shape
    XT1 = _scratch.get("XT1", (d + 1, n))
    XT = XT1[:d]
    XT[...] = S.H.T
    XT1[d] = 1.0
    RT = _scratch.get("RT", (d, n))
    norms = np.sqrt(np.einsum("ij,ij->j", XT, XT))
    np.multiply(XT, 1.0 / np.where(norms > 0, norms, 1.0), out=RT)  # unit rows; zero rows contribute 0
    acc = np.add.reduceat(XT1, S.starts, axis=1) / S.counts
    unit_mean = np.add.reduceat(RT, S.starts, axis=1) / S.counts
    np.subtract(XT, np.repeat(acc[:d], S.counts, axis=1), out=RT)  # centred rows
    sq_dev = np.add.reduceat(np.einsum("ij,ij->j", RT, RT), S.starts)
    # NaN/inf in any feature reaches its class sums: checked by the caller, per class
    return XT1, acc[:d].T, unit_mean.T, RT, sq_dev, np.isfinite(acc).all(0) & np.isfinite(unit_mean).all(0)


def _nc1_sets(M: np.ndarray, RT: np.ndarray, sizes: Sequence[int]) -> list[float]:
    """NC1 of each set from its centred means M (sets, C, d) and the centred rows RT (d, N) of all
    sets, columns in set order (see :func:`~nclab.metrics._kernels.nc1_value`): through the scatter
    S = R^T R (one n d^2 product) when that is cheaper than Z = R M^T and Z^T Z (n d C + n C^2), and
    always when C > d; the eigendecompositions of all sets in one batched call."""
    ns, C, d = M.shape
    bounds = [0, *itertools.accumulate(sizes)]
    n = np.asarray(sizes, dtype=np.float64)
    if d * d <= C * (d + C) or C > d:
        scatter = np.stack([RT[:, a:e] @ RT[:, a:e].T for a, e in zip(bounds[:-1], bounds[1:])])
        return nc1_value(M, n, scatter=scatter).tolist()
    K = []
    for s, (a, e) in enumerate(zip(bounds[:-1], bounds[1:])):
        ZT = M[s] @ RT[:, a:e]
        K.append(ZT @ ZT.T)
    return nc1_value(M, n, K=np.stack(K)).tolist()


def dense_nc1(H: torch.Tensor, y: torch.Tensor, C: int, name: str = "features") -> tuple[float, torch.Tensor]:
    """NC1 and the float64 class means (C, d); NaN when all class means coincide."""
    with np.errstate(all="ignore"), _one_blas_thread():
        _, mean, _, RT, _, finite = _moments(_Sorted([(H, y)], C))
        if not finite.all():
            check_finite(H, name)
        return _nc1_sets((mean - mean.mean(0))[None], RT, [RT.shape[1]])[0], torch.from_numpy(np.ascontiguousarray(mean))


@functools.lru_cache(maxsize=16)
def _frames(C: int, has_w: bool) -> tuple[np.ndarray, np.ndarray]:
    """Targets of the Gram stack [M M^T, U U^T, S S^T (unused), W W^T, W M^T, W W^T] — the simplex ETF
    Gram (I - 11^T/C)/sqrt(C-1) or the orthogonal frame Gram I/sqrt(C) — and the off-diagonal mask."""
    eye = np.eye(C)
    etf, of = (eye - 1.0 / C) / math.sqrt(C - 1), eye / math.sqrt(C)
    T = np.stack([etf, of, etf] + ([etf, etf, of] if has_w else []))
    T.flags.writeable = False
    off = ~np.eye(C, dtype=bool)
    off.flags.writeable = False
    return T, off


def _mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis (``ndarray.mean`` is Python-level: ~3x the cost on small arrays)."""
    return x.sum(-1) / x.shape[-1]


def _var(x: np.ndarray, ddof: int = 0) -> np.ndarray:
    """Variance over the last axis, two-pass."""
    dx = x - _mean(x)[..., None]
    return np.einsum("...i,...i->...", dx, dx) / (x.shape[-1] - ddof)


def _class_pairs(M, U, Sb, W, var, C: int, p: float) -> tuple[list[dict[str, float]], np.ndarray]:
    """Every class-pair metric of each set from the Grams of its centred means M, uncentred means U
    and mean unit vectors Sb (all (sets, C, d)), and of the classifier W (C, d) or None; var (sets, C).

    The Gram matrices are kept whole: a statistic over pairs reduces over the off-diagonal entries,
    each unordered pair twice, which leaves means, population variances and maxima of symmetric
    matrices unchanged. Returns the per-set metrics and the Gram stack (sets, k, C, C) with k =
    [M M^T, U U^T, S S^T, W W^T, W M^T]."""
    ns, _, d = M.shape
    has_w = W is not None
    T, off = _frames(C, has_w)
    k = 5 if has_w else 3
    L, R = np.empty((ns, k, C, d)), np.empty((ns, k, C, d))
    L[:, 0], L[:, 1], L[:, 2] = M, U, Sb
    R[:, :3] = L[:, :3]
    if has_w:
        L[:, 3], L[:, 4], R[:, 3], R[:, 4] = W, W, W, M
    G = L @ R.swapaxes(-1, -2)  # (sets, k, C, C)
    sq = np.diagonal(G, axis1=-2, axis2=-1)  # squared row norms (for W M^T: <w_c, m_c>)
    norms = np.sqrt(np.maximum(sq, 0.0))
    inv = 1.0 / np.where(norms > 0, norms, 1.0)  # a zero row has cosine 0 with every row
    # distances to the frames; a zero Gram gives 0/0 = NaN, the value of an undefined metric
    Gf = np.concatenate([G, G[:, 3:4]], 1) if has_w else G
    fro = np.sqrt(np.einsum("skij,skij->sk", Gf, Gf))
    D = Gf / fro[..., None, None] - T
    dist = np.sqrt(np.einsum("skij,skij->sk", D, D))
    n2 = sq[:, 0]
    dist2 = np.maximum(n2[:, :, None] + n2[:, None, :] - 2.0 * G[:, 0], 0.0)[:, off]
    ratio = (var[:, :, None] + var[:, None, :])[:, off] / (dist2 if p == 1.0 else dist2**p)
    cdnv = 0.5 * _mean(ratio)
    cos = (G[:, 0:4:3] * inv[:, 0:4:3, :, None] * inv[:, 0:4:3, None, :])[:, :, off]  # centred means; W
    eq = _mean(np.abs(cos + 1.0 / (C - 1)))
    gd = np.sqrt(np.maximum(2.0 - 2.0 * cos[:, 0], 0.0))  # ||m_a/|m_a| - m_b/|m_b|||
    eqn = np.sqrt(_var(norms[:, 0:4:3])) / _mean(norms[:, 0:4:3])
    gvar, lvar = _var(gd), _var(np.log(gd))
    intra_min, intra_mean, inter = sq[:, 2].min(-1), _mean(sq[:, 2]), G[:, 2][:, off].max(-1)
    if has_w:
        fm = np.sqrt(n2.sum(-1))[:, None, None]
        duality = np.square(W / math.sqrt(sq[0, 3].sum()) - M / fm).sum((-2, -1))
        unc3 = _var(sq[:, 4], ddof=1)
    outs = []
    for s in range(ns):
        out = {
            "cdnv": float(cdnv[s]) if math.isfinite(cdnv[s]) else math.inf,  # inf: two classes share their mean
            "nc2_equinorm": float(eqn[s, 0]),
            "nc2_equiangular": float(eq[s, 0]),
            "nc2_etf": float(dist[s, 0]),
            "nc2_of": float(dist[s, 1]),
            "gnc2_dist_var": float(gvar[s]),
            "gnc2_log_var": float(lvar[s]),
            "cosine_intra_min": float(intra_min[s]),
            "cosine_intra_mean": float(intra_mean[s]),
            "cosine_inter_max": float(inter[s]),
        }
        if has_w:
            out.update(
                nc2_equinorm_w=float(eqn[s, 1]),
                nc2_equiangular_w=float(eq[s, 1]),
                nc2_etf_w=float(dist[s, 3]),
                nc3_etf=float(dist[s, 4]),
                nc2_of_w=float(dist[s, 5]),
                nc3_duality=float(duality[s]),
                unc3_var=float(unc3[s]),
            )
        warn_degenerate_means(not n2[s].any(), not norms[s, 0].all(), stacklevel=6)  # the caller of collapse_metrics
        if not n2[s].any():
            for key in ("nc2_equiangular", "gnc2_dist_var", "gnc2_log_var"):
                out[key] = math.nan
        outs.append(out)
    return outs, G


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
    if COMPILED:
        res = _compiled_metrics(sets, C, W, b, cdnv_exponent, pairwise_limit, names)
        if res is not None:
            return res
    # NaN/inf features raise below; undefined metrics are NaN
    with np.errstate(all="ignore"), _one_blas_thread():
        S = _Sorted(sets, C)
        XT1, mean, unit_mean, RT, sq_dev, finite = _moments(S)
        ns, d = len(sets), mean.shape[1]
        for s in np.flatnonzero(~finite.reshape(ns, C).all(1)):
            check_finite(sets[s][0], names[s])  # raises, naming the bad values
        mean, unit_mean = mean.reshape(ns, C, d), unit_mean.reshape(ns, C, d)
        counts, sq_dev = S.counts.reshape(ns, C), sq_dev.reshape(ns, C)
        mu_g = _mean(mean.swapaxes(1, 2))  # (sets, d)
        M = mean - mu_g[:, None]
        Wn = None if W is None else W.numpy()
        bn = None if b is None else b.numpy()
        outs, G = _class_pairs(M, mean, unit_mean, Wn, sq_dev / counts, C, cdnv_exponent)
        nc1 = _nc1_sets(M, RT, S.sizes)
        decisions = _decisions(XT1, S, M, mu_g, Wn, bn, pairwise_limit)
        res = []
        for s, (out, dec) in enumerate(zip(outs, decisions)):
            tr_b = float(G[s, 0].trace()) / C
            if tr_b == 0.0:
                out["nc1"] = out["nc1_quotient"] = math.nan
            else:
                out["nc1"] = nc1[s]
                out["nc1_quotient"] = float(sq_dev[s].sum()) / S.sizes[s] / tr_b
            out.update(dec)
            res.append((out, torch.from_numpy(np.ascontiguousarray(mean[s]))))
        return res


@functools.lru_cache(maxsize=4)
def _arange(n: int) -> np.ndarray:
    a = np.arange(n)
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=16)
def _first_weights(C: int) -> np.ndarray:
    """(C, 1) uint8 weights C, C-1, ..., 1: the largest weight among a sample's maxima marks the first."""
    w = np.arange(C, 0, -1, dtype=np.uint8)[:, None]
    w.flags.writeable = False
    return w


def _decisions(XT1, S: _Sorted, M, mu_g, W, b, pairwise_limit: int) -> list[dict[str, float]]:
    """Per set: NCC accuracy; with W: accuracy, NC4, margins and the normalised pairwise margin.

    Per set, one product gives its samples' NCC scores (h - mu_G).m_c - ||m_c||^2/2 of its means
    (the nearest-mean rule up to a per-sample constant), and one product the logits w_c.h + b_c of
    every sample, both into one score buffer. Predictions are the first-index arg max, as ``argmax`` defines it, found
    without an index reduction (an argmax over classes costs ~15x a max): the classes attaining
    each sample's maximum, weighted C, C-1, ..., 1, and the largest weight. Only samples with a NaN
    score take ``argmax`` itself. The margins (own logit minus the best other) and the pairwise
    margins come from the logits alone."""
    ns, C, d = M.shape
    N = XT1.shape[1]
    bounds = [(S.offsets[s], S.offsets[s] + S.sizes[s]) for s in range(ns)]
    # rows [m_c | constant] of each set's NCC scores (mu_G folded into the constants), then [W | b]
    P = np.empty((ns, C, d + 1))
    P[..., :d] = M
    P[..., d] = -np.einsum("sij,sij->si", M, 0.5 * M + mu_g[:, None])
    QT = _scratch.get("QT", (1 if W is None else 2, C, N))  # [NCC scores of the sample's own set; logits]
    for s, (a, e) in enumerate(bounds):
        np.matmul(P[s], XT1[:, a:e], out=QT[0, :, a:e])
    if W is not None:
        np.matmul(np.concatenate([W, np.zeros((C, 1)) if b is None else b[:, None]], 1), XT1, out=QT[1])
    top = np.equal(QT, QT.max(1, keepdims=True), out=_scratch.get("top", QT.shape, bool)).view(np.uint8)
    pred = C - np.multiply(top, _first_weights(C), out=top).max(1)  # (1 or 2, N); C where a score is NaN
    nan = np.flatnonzero(pred.max(0) == C)
    if len(nan):
        pred[:, nan] = QT[:, :, nan].argmax(1)
    hit = pred == S.cls
    if W is not None:
        differ = pred[0] != pred[1]
        # margins: own logit minus every logit, the own entry masked (in place of the logits)
        O = QT[1]
        cols = _arange(N)
        np.subtract(O[S.cls, cols], O, out=O)
        O[S.cls, cols] = np.inf
        marg = O.min(0)  # (N,)
        if C <= pairwise_limit:
            # directed minima A[y, c] = min over the samples of class y of z_y - z_c; gamma = min(A, A^T)
            A_all = np.minimum.reduceat(O, S.starts, axis=1)  # (C, ns C)
            off = _frames(C, True)[1]
            dw = np.sqrt(np.square(W[:, None] - W[None]).sum(-1))[off]  # as kernels._row_distances
    outs = []
    for s, (a, e) in enumerate(bounds):
        n = e - a
        out = {"ncc_accuracy": int(np.count_nonzero(hit[0, a:e])) / n}
        if W is not None:
            m = marg[a:e]
            out.update(
                accuracy=int(np.count_nonzero(hit[1, a:e])) / n,
                nc4_ncc_mismatch=int(np.count_nonzero(differ[a:e])) / n,
                margin_min=float(m.min()),
                margin_mean=float(m.sum()) / n,
            )
            if C <= pairwise_limit:
                A = A_all[:, s * C : (s + 1) * C].T
                gamma = np.minimum(A, A.T)[off]
                valid = np.isfinite(gamma) & (dw > 0)  # skipped as in kernels.normalized_pair_min
                out["margin_normalized_min"] = float((gamma[valid] / dw[valid]).min()) if valid.any() else math.nan
        outs.append(out)
    return outs


# ---- the compiled kernel ------------------------------------------------------------------------

#: Columns of the compiled kernel's value array (``enum`` in _ckernels.c, same order).
_CK_COLUMNS = (
    "cdnv", "nc2_equinorm", "nc2_equiangular", "nc2_etf", "nc2_of", "gnc2_dist_var", "gnc2_log_var",
    "cosine_intra_min", "cosine_intra_mean", "cosine_inter_max", "nc2_equinorm_w", "nc2_equiangular_w",
    "nc2_etf_w", "nc3_etf", "nc2_of_w", "nc3_duality", "unc3_var", "nc1", "nc1_quotient", "trace_b", "ncc_accuracy",
    "accuracy", "nc4_ncc_mismatch", "margin_min", "margin_mean", "margin_normalized_min", "all_zero",
    "some_zero",
)
_CK_ALL_ZERO, _CK_SOME_ZERO = _CK_COLUMNS.index("all_zero"), _CK_COLUMNS.index("some_zero")
_CK_CDNV = _CK_COLUMNS.index("cdnv")


@functools.lru_cache(maxsize=4)
def _ck_keys(has_w: bool, pairwise: bool) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The metric keys the kernel's values give (canonical order of functional.METRIC_ORDER) and
    their columns."""
    from nclab.metrics.functional import METRIC_ORDER

    skip = {"trace_b", "all_zero", "some_zero"}
    if not has_w:
        skip |= {"nc2_equinorm_w", "nc2_equiangular_w", "nc2_etf_w", "nc3_etf", "nc2_of_w", "nc3_duality",
                 "unc3_var", "accuracy", "nc4_ncc_mismatch", "margin_min", "margin_mean"}
    if not (has_w and pairwise):
        skip.add("margin_normalized_min")
    keys = tuple(k for k in METRIC_ORDER if k in _CK_COLUMNS and k not in skip)
    return keys, tuple(_CK_COLUMNS.index(k) for k in keys)


def _host(H: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32/float64 NumPy view (a copy only where needed) of CPU features."""
    if H.dtype not in (torch.float32, torch.float64):
        H = H.float()
    return H.detach().contiguous().numpy()


def _run_kernel(feats, labels, C: int, W, b, p: float, pairwise: bool, means) -> tuple[int, list[list[float]]]:
    """One compiled call for every set (see dense_sets in _ckernels.c): its return code and the
    values, one row per set."""
    d = feats[0].shape[1]
    vals = np.full((len(feats), len(_CK_COLUMNS)), np.nan)
    small = d <= _ckernels.SMALL_D and (C if W is None else 2 * C) <= _ckernels.SMALL_T
    with contextlib.nullcontext() if small else _one_blas_thread():  # the large path's BLAS products
        rc = _ckernels.dense_sets(feats, labels, C, W, b, float(p), pairwise,
                                  d * d <= C * (d + C) or C > d, vals, means)  # the cheaper NC1 matrix, as _nc1_sets
    return rc, vals.tolist()


def _ck_outputs(rows: list[list[float]], has_w: bool, pairwise: bool, stacklevel: int) -> list[dict[str, float]]:
    """The metric dicts (canonical key order) of the kernel's value rows, with the NumPy engine's
    conventions and warnings."""
    keys, cols = _ck_keys(has_w, pairwise)
    outs = []
    for row in rows:
        out = {k: row[j] for k, j in zip(keys, cols)}
        if not math.isfinite(row[_CK_CDNV]):
            out["cdnv"] = math.inf  # two classes share their mean
        if row[_CK_ALL_ZERO] or row[_CK_SOME_ZERO]:
            warn_degenerate_means(bool(row[_CK_ALL_ZERO]), bool(row[_CK_SOME_ZERO]), stacklevel=stacklevel + 1)
        outs.append(out)
    return outs


def _compiled_metrics(sets, C, W, b, p, pairwise_limit, names):
    """:func:`dense_metrics` by the compiled kernel (validated inputs). None when a class sum
    overflowed without a non-finite feature: the NumPy code then reports that case."""
    feats = tuple(_host(H) for H, _ in sets)
    labels = tuple(np.ascontiguousarray(y.numpy(), dtype=np.int64) for _, y in sets)
    means = np.empty((len(sets), C, feats[0].shape[1]))
    pairwise = C <= pairwise_limit
    rc, rows = _run_kernel(feats, labels, C, None if W is None else W.numpy(),
                           None if b is None or W is None else b.numpy(), p, pairwise, means)
    if rc >= 0:
        check_finite(sets[rc][0], names[rc])  # raises, naming the bad values
    if rc != -1:
        return None
    outs = _ck_outputs(rows, W is not None, pairwise, stacklevel=6)  # the caller of collapse_metrics
    return [(out, torch.from_numpy(means[s])) for s, out in enumerate(outs)]


def _plain(t, ndim: int, dtypes) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type == "cpu" and t.ndim == ndim and t.dtype in dtypes


_FLOATS = (torch.float32, torch.float64)
_LONG = (torch.int64,)


def compiled_many(feature_sets, weights, bias, num_classes, pairwise_limit: int, cdnv_exponent: float, names):
    """:func:`~nclab.metrics.collapse_metrics_many` in one compiled call, for the plain case only:
    CPU tensors (float32/float64 features, int64 labels, the classifier as tensors), ``num_classes``
    given, sizes the dense engine takes. The kernel checks the values the validation would (label
    range, every class present, a finite classifier; finite features through the class sums);
    None whenever anything is not plain or not valid, and the caller's full validation and engines
    then run (and raise their usual errors): this path only skips their Python-level cost, ~0.2 ms
    per tracked epoch. Returns the metric dicts and the class means (C, d) of each set."""
    if not COMPILED or type(num_classes) is not int or not 2 <= num_classes <= DENSE_MAX_CLASSES:
        return None
    C, d, total, feats, labels = num_classes, None, 0, [], []
    for H, y in feature_sets:
        if not (_plain(H, 2, _FLOATS) and _plain(y, 1, _LONG) and 0 < H.shape[0] == y.shape[0]):
            return None
        if d is None:
            d = H.shape[1]
        if H.shape[1] != d or not dense_fits(H.shape[0], d, C, H.device):
            return None
        total += H.shape[0]
        feats.append(H.detach().contiguous().numpy())
        labels.append(y.contiguous().numpy())
    if not (feats and dense_fits(total // 2, d, C, torch.device("cpu"))):
        return None
    if weights is None:
        if bias is not None:
            return None
        W = b = None
    else:
        if not (_plain(weights, 2, _FLOATS) and tuple(weights.shape) == (C, d)):
            return None
        if bias is not None and not (_plain(bias, 1, _FLOATS) and bias.shape[0] == C):
            return None
        W = weights.detach().contiguous().numpy()
        b = None if bias is None else bias.detach().contiguous().numpy()
    pairwise = C <= pairwise_limit
    means = np.empty((len(feats), C, d))
    rc, rows = _run_kernel(tuple(feats), tuple(labels), C, W, b, cdnv_exponent, pairwise, means)
    if rc >= 0:
        check_finite(feature_sets[rc][0], names[rc])  # raises, naming the bad values
    if rc != -1:
        return None
    outs = _ck_outputs(rows, W is not None, pairwise, stacklevel=5)  # the caller of collapse_metrics_many
    return outs, [torch.from_numpy(m) for m in means]


def argmax_hits(logits: torch.Tensor, labels: torch.Tensor, other: torch.Tensor) -> tuple[int, int]:
    """How many rows of ``logits`` (N, C) have ``argmax`` equal to ``labels``, and equal to ``other``
    (first index on ties, a NaN counts as the maximum, as in ``torch.argmax``). On CPU with the
    compiled kernel: one pass, ~25 us at 3200 x 10, where ``argmax`` over short rows plus two
    comparisons and sums cost ~0.15 ms."""
    if COMPILED and logits.device.type == "cpu" and logits.dtype in (torch.float32, torch.float64) and logits.ndim == 2:
        return _ckernels.argmax_hits(logits.contiguous().numpy(), np.ascontiguousarray(labels.numpy(), dtype=np.int64),
                                     np.ascontiguousarray(other.numpy(), dtype=np.int64))
    pred = logits.argmax(1)
    return int((pred == labels).sum()), int((pred == other).sum())


def noisy_distances(H: torch.Tensor, y_obs: torch.Tensor, y_true: torch.Tensor, means: torch.Tensor) -> tuple[float, int] | None:
    """Over the rows of ``H`` whose observed label differs from the true one, the sum of
    ||h_i - means[y_true_i]|| and their count, in one compiled pass on CPU tensors (the memorization
    of seed 000 eq. 3); None where the kernel does not apply (no kernel, another device or dtype)."""
    if not (COMPILED and _plain(H, 2, _FLOATS) and _plain(y_obs, 1, _LONG) and _plain(y_true, 1, _LONG)
            and _plain(means, 2, (torch.float64,))):
        return None
    return _ckernels.noisy_distances(H.detach().contiguous().numpy(), y_obs.contiguous().numpy(),
                                     y_true.contiguous().numpy(), means.contiguous().numpy())
