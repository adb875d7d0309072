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
  overhead on small arrays is about half of PyTorch's. ~0.5-0.8 ms for the same metric set.

Definitions, sources and conventions are those of :mod:`nclab.metrics.functional` (ties go to the
lowest class index, as ``argmax`` defines it; undefined metrics are NaN with a
:class:`~nclab.errors.DegenerateWarning`). Cost: O(n d C + C^2 d) time, O(n (d + 2C) + C^2) memory.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch

from nclab.errors import DegenerateWarning
from nclab.metrics._kernels import nc1_value
from nclab.metrics._validate import check_finite

__all__ = ["dense_fits", "dense_metrics", "dense_nc1"]

#: Largest n * (d + 2C) handled densely (16 MB per float64 temporary of that size).
DENSE_MAX_ELEMS = 1 << 18
#: Largest class count handled densely (its C x C matrices are then at most 0.5 MB each).
DENSE_MAX_CLASSES = 128


def dense_fits(n: int, d: int, C: int, device: torch.device) -> bool:
    """Whether the dense engine takes a problem of n samples, dimension d and C classes: CPU
    tensors (the engine runs on the host) of at most :data:`DENSE_MAX_ELEMS` and C <= 256."""
    return device.type == "cpu" and C <= DENSE_MAX_CLASSES and n * (d + 2 * C) <= DENSE_MAX_ELEMS


class _Sorted:
    """The samples sorted by class (a stable counting sort): each class is a contiguous run of
    columns, so per-class sums and minima are single ``reduceat`` calls and the class mean of every
    sample is a ``repeat``. Needs every class present (the callers check it)."""

    def __init__(self, H: torch.Tensor, y: torch.Tensor, C: int) -> None:
        yn = y.numpy()
        self.order = np.argsort(yn.astype(np.uint8 if C <= 256 else np.int64), kind="stable")
        self.y = yn[self.order]
        self.counts = np.bincount(yn, minlength=C)
        self.starts = np.zeros(C, dtype=np.intp)
        np.cumsum(self.counts[:-1], out=self.starts[1:])
        if H.dtype in (torch.float16, torch.bfloat16):
            H = H.float()
        self.H = np.take(H.numpy(), self.order, axis=0)


def _moments(S: _Sorted):
    """Transposed float64 rows XT (d, n), means (C, d), mean unit vectors (C, d), transposed centred
    rows RT (d, n), sq_dev (C,) and whether the class sums are finite.

    Samples run along the fast axis, so that a reduction over d or over the classes is elementwise
    across contiguous rows."""
    n, d = S.H.shape
    B = np.empty((2 * d, n))  # [X^T; unit rows^T]
    XT = B[:d]
    XT[...] = S.H.T
    norms = np.sqrt(np.einsum("ij,ij->j", XT, XT))
    np.divide(XT, np.where(norms > 0, norms, 1.0), out=B[d:])  # zero rows contribute 0
    acc = np.add.reduceat(B, S.starts, axis=1) / S.counts
    RT = XT - np.repeat(acc[:d], S.counts, axis=1)
    sq_dev = np.add.reduceat(np.einsum("ij,ij->j", RT, RT), S.starts)
    # NaN/inf in any feature reaches its class sums: checked by the caller
    return XT, acc[:d].T, acc[d:].T, RT, sq_dev, bool(np.isfinite(acc).all())


def _nc1(M: np.ndarray, RT: np.ndarray) -> float:
    """NC1 from the centred means M (C, d) and the centred rows RT (d, n): C x C statistics when
    C <= d, the d x d scatter otherwise (see :func:`~nclab.metrics._kernels.nc1_value`)."""
    if M.shape[0] <= M.shape[1]:
        ZT = M @ RT
        return nc1_value(M, RT.shape[1], K=ZT @ ZT.T)
    return nc1_value(M, RT.shape[1], scatter=RT @ RT.T)


def dense_nc1(H: torch.Tensor, y: torch.Tensor, C: int, name: str = "features") -> tuple[float, torch.Tensor]:
    """NC1 and the float64 class means (C, d); NaN when all class means coincide."""
    with np.errstate(all="ignore"):
        _, mean, _, RT, _, finite = _moments(_Sorted(H, y, C))
        if not finite:
            check_finite(H, name)
        return _nc1(mean - mean.mean(0), RT), torch.from_numpy(np.ascontiguousarray(mean))


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


def _class_pairs(M, U, S, W, var, C: int, p: float) -> tuple[dict[str, float], np.ndarray]:
    """Every class-pair metric from the Grams of the centred means M, uncentred means U, mean unit
    vectors S and classifier W (None allowed), kept whole: a statistic over pairs reduces over the
    off-diagonal entries, each unordered pair twice, which leaves means, population variances and
    maxima of symmetric matrices unchanged. Also returns the Gram stack."""
    has_w = W is not None
    T, off = _frames(C, has_w)
    left, right = [M, U, S], [M, U, S]
    if has_w:
        left, right = left + [W, W], right + [W, M]
    G = np.stack(left) @ np.stack(right).transpose(0, 2, 1)  # (k, C, C)
    sq = np.diagonal(G, axis1=1, axis2=2)  # squared row norms (for W M^T: <w_c, m_c>)
    norms = np.sqrt(np.maximum(sq, 0.0))
    inv = 1.0 / np.where(norms > 0, norms, 1.0)  # a zero row has cosine 0 with every row
    Gf = np.concatenate([G, G[3:4]]) if has_w else G
    out: dict[str, float] = {}
    # distances to the frames; a zero Gram gives 0/0 = NaN, the value of an undefined metric
    fro = np.sqrt(np.einsum("kij,kij->k", Gf, Gf))
    D = Gf / fro[:, None, None] - T
    dist = np.sqrt(np.einsum("kij,kij->k", D, D))
    n2 = sq[0]
    dist2 = np.maximum(n2[:, None] + n2 - 2.0 * G[0], 0.0)[off]
    ratio = (var[:, None] + var)[off] / (dist2 if p == 1.0 else dist2**p)
    cdnv = 0.5 * float(ratio.mean())
    cos = (G[0:4:3] * inv[0:4:3, :, None] * inv[0:4:3, None, :])[:, off]  # centred means; W
    eq = np.abs(cos + 1.0 / (C - 1)).mean(1)
    gd = np.sqrt(np.maximum(2.0 - 2.0 * cos[0], 0.0))  # ||m_a/|m_a| - m_b/|m_b|||
    eqn = norms[0:4:3].std(1) / norms[0:4:3].mean(1)
    out.update(
        cdnv=cdnv if math.isfinite(cdnv) else math.inf,  # inf: two classes share their mean
        nc2_equinorm=float(eqn[0]),
        nc2_equiangular=float(eq[0]),
        nc2_etf=float(dist[0]),
        nc2_of=float(dist[1]),
        gnc2_dist_var=float(gd.var()),
        gnc2_log_var=float(np.log(gd).var()),
        cosine_intra_min=float(sq[2].min()),
        cosine_intra_mean=float(sq[2].mean()),
        cosine_inter_max=float(G[2][off].max()),
    )
    if has_w:
        out.update(
            nc2_equinorm_w=float(eqn[1]),
            nc2_equiangular_w=float(eq[1]),
            nc2_etf_w=float(dist[3]),
            nc3_etf=float(dist[4]),
            nc2_of_w=float(dist[5]),
            nc3_duality=float(np.square(W / math.sqrt(sq[3].sum()) - M / math.sqrt(n2.sum())).sum()),
            unc3_var=float(sq[4].var(ddof=1)),
        )
    if not n2.any():
        warnings.warn(
            "all class means coincide (Sigma_B = 0): NC1, NC2 and NC3 of the means are undefined and "
            "reported as NaN. Check the features are not constant.",
            DegenerateWarning,
            stacklevel=6,  # the caller of collapse_metrics
        )
        for k in ("nc2_equiangular", "gnc2_dist_var", "gnc2_log_var"):
            out[k] = math.nan
    if not norms[0].all():
        warnings.warn(
            "a class mean equals the global mean; its cosine with other classes is taken as 0.",
            DegenerateWarning,
            stacklevel=6,  # the caller of collapse_metrics
        )
    return out, G


def dense_metrics(
    H: torch.Tensor,
    y: torch.Tensor,
    C: int,
    W: torch.Tensor | None,
    b: torch.Tensor | None,
    *,
    cdnv_exponent: float = 1.0,
    pairwise_limit: int = 2048,
    name: str = "features",
) -> tuple[dict[str, float], torch.Tensor]:
    """Every metric of :func:`~nclab.metrics.collapse_metrics` that needs only (H, y, W, b), and the
    float64 class means (C, d). Inputs are validated by the caller (CPU; W and b float64)."""
    with np.errstate(all="ignore"):  # NaN/inf features raise below; undefined metrics are NaN
        return _dense_metrics(H, y, C, W, b, cdnv_exponent, pairwise_limit, name)


def _dense_metrics(H, y, C, W, b, cdnv_exponent, pairwise_limit, name):
    n = H.shape[0]
    S = _Sorted(H, y, C)
    XT, mean, unit_mean, RT, sq_dev, finite = _moments(S)
    if not finite:
        check_finite(H, name)  # raises, naming the bad values
    mu_g = mean.mean(0)
    M = mean - mu_g
    Wn = None if W is None else W.numpy()
    out, G = _class_pairs(M, mean, unit_mean, Wn, sq_dev / S.counts, C, cdnv_exponent)
    tr_b = float(G[0].trace()) / C
    if tr_b == 0.0:
        out["nc1"] = out["nc1_quotient"] = math.nan
    else:
        out["nc1"] = _nc1(M, RT)
        out["nc1_quotient"] = float(sq_dev.sum()) / n / tr_b
    bn = None if b is None else b.numpy()
    out.update(_decisions(XT, S, M, mu_g, Wn, bn, None if W is None else G[3], pairwise_limit))
    return out, torch.from_numpy(np.ascontiguousarray(mean))


def _decisions(XT, S: _Sorted, M, mu_g, W, b, GW, pairwise_limit: int) -> dict[str, float]:
    """NCC accuracy; with W: accuracy, NC4, margins and the normalised pairwise margin.

    One product gives the NCC scores (h - mu_G).m_c - ||m_c||^2/2 (the nearest-mean rule up to a
    per-sample constant) and the logits w_c.h + b_c. The margin, own entry minus the best other one,
    decides "arg max = own class" by its sign unless it is 0 (a tie) or NaN; only those samples, and
    those wrong for both rules (NC4 compares their predictions), take an exact first-index argmax
    (an argmax over classes costs ~15x a min)."""
    C, n = M.shape[0], XT.shape[1]
    y = S.y
    rhs, shift = [M], [-0.5 * np.einsum("ij,ij->i", M, M)]
    if W is not None:
        rhs.append(W)
        shift.append(W @ mu_g + (0.0 if b is None else b))
    halves = len(rhs)
    QT = (np.concatenate(rhs) @ (XT - mu_g[:, None]) + np.concatenate(shift)[:, None]).reshape(halves, C, n)
    flat = y * n + np.arange(n)  # own entries of each (C, n) half, flattened
    O = QT.reshape(halves, -1)[:, flat][:, None, :] - QT  # own entry minus every entry
    O.reshape(halves, -1)[:, flat] = np.inf
    marg = O.min(1)  # (halves, n)
    pos = marg > 0
    sure = ((marg > 0) | (marg < 0)).all(0)  # no tie, no NaN
    if W is not None:
        sure &= pos.any(0)
    hits = (pos & sure).sum(1)
    unsure = np.flatnonzero(~sure)
    pred = QT[:, :, unsure].argmax(1)  # (halves, k)
    hits = hits + (pred == y[unsure]).sum(1)
    out = {"ncc_accuracy": float(hits[0]) / n}
    if W is None:
        return out
    m = marg[1]
    out.update(
        accuracy=float(hits[1]) / n,
        nc4_ncc_mismatch=float(((pos[0] != pos[1]) & sure).sum() + (pred[0] != pred[1]).sum()) / n,
        margin_min=float(m.min()),
        margin_mean=float(m.mean()),
    )
    if C <= pairwise_limit:
        # directed minima A[y, c] = min over the samples of class y of z_y - z_c; gamma = min(A, A^T)
        A = np.minimum.reduceat(O[1], S.starts, axis=1).T
        off = _frames(C, True)[1]
        gamma = np.minimum(A, A.T)[off]
        sqw = np.diagonal(GW)
        dw = np.sqrt(np.maximum(sqw[:, None] + sqw - 2.0 * GW, 0.0))[off]  # ||w_y - w_y'||
        out["margin_normalized_min"] = float((gamma / dw).min())
    return out
