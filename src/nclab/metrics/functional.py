r"""Neural-collapse metrics as pure functions of features, labels and (optionally) the classifier.

Notation (the issue's, mapped once to the sources): features :math:`H` of shape (n, d), labels
:math:`y_i \in \{0..C-1\}`, classifier :math:`W` (C, d) and bias :math:`b` (C,). Class means
:math:`\mu_c`, global mean :math:`\mu_G = \frac1C\sum_c \mu_c` (the mean of the class means),
:math:`\Sigma_W = \frac1n\sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`,
:math:`\Sigma_B = \frac1C\sum_c(\mu_c-\mu_G)(\mu_c-\mu_G)^\top`, :math:`M` the (C, d) matrix of centred
means, :math:`U` the uncentred means. Nguyen et al. (ICLR 2023, seed 000) write N for C, K for the
samples per class and M for d; Tirer & Bruna (ICML 2022, seed 004) write K for C.

Engines
-------
Small CPU problems (:func:`nclab.metrics._dense.dense_fits`: n (d + 2C) <= 2^18, C <= 128) go to the
dense engine of :mod:`nclab.metrics._dense`, which computes the same numbers in one compiled call (or,
without the C kernel, ~100 NumPy calls); :func:`collapse_metrics_many` runs several sets through it
at once. Everything else goes to the streaming engine below.

:func:`collapse_metrics` (streaming engine) makes two passes over in-memory features, ``chunk`` rows at a time:

1. per-class counts, float64 sums and unit-vector sums: O(n d);
2. centred rows :math:`r'_i = h_i - \mathrm{hi}_{y_i}` (hi: the float64 mean rounded once to the
   features' precision) and one product :math:`R'\,[M; W]^\top` in that precision, giving at once the
   NC1 statistic :math:`K = \sum_i (M r_i)(M r_i)^\top` (C x C, float64 across chunks), the nearest-
   class-mean scores, the logits and the margins: O(n d C). The offset lo = mean - hi is removed from K
   and the squared deviations exactly at the end.

NC1 never forms a d x d matrix when C <= d: with :math:`MM^\top = V\Lambda V^\top`,
:math:`\operatorname{tr}(\Sigma_W\Sigma_B^\dagger)/C = \frac1n\sum_{k:\lambda_k>0} v_k^\top K v_k/\lambda_k^2`
(exact: :math:`\Sigma_B^\dagger = C\,M^\top (MM^\top)^{\dagger 2} M`). When C > d the pass accumulates
the d x d scatter instead (O(n d^2)) and products run against (h - mu_G) so that nothing n x C is held
beyond a chunk. Margins and the arg max decisions of NC4 / accuracy come from ``amax`` (the sign of
each margin), with an exact first-index ``argmax`` only for tied or doubly wrong rows. Class-pair
quantities are tiled (:mod:`nclab.metrics._pairwise`).

Precision: sums over samples are float64 (K per chunk is a float32 product for float32 input). Inner
products over d run in the features' dtype (float16/bfloat16 are promoted to float32); float32 input
agrees with float64 on the same numbers to ~1e-9 relative in NC1 (``benchmarks/metrics.py``; up to
~1e-6 with few samples per class and an ill-conditioned Sigma_B, see docs/metrics.md), float64 input
with a loop-by-loop reference to ~1e-12.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from nclab.errors import LabelError, ShapeError
from nclab.metrics._dense import compiled_many, dense_fits, dense_metrics, dense_nc1, noisy_distances
from nclab.metrics._kernels import nc1_value as _nc1_value
from nclab.metrics._kernels import normalized_pair_min as _normalized_pair_min
from nclab.metrics._kernels import _row_distances
from nclab.metrics._pairwise import pair_statistics
from nclab.metrics._validate import check_classifier, check_features, check_finite, check_labels
from nclab.metrics.stats import ClassMoments

__all__ = [
    "collapse_metrics",
    "collapse_metrics_many",
    "metrics_from_moments",
    "class_moments",
    "nc1",
    "nc1_quotient",
    "cdnv",
    "nc2_equinorm",
    "nc2_equiangular",
    "nc2_etf",
    "nc2_of",
    "nc3_duality",
    "nc3_etf",
    "nc4_ncc_mismatch",
    "cosine_intra",
    "cosine_inter",
    "margins",
    "pairwise_margins",
    "memorization",
    "dilation",
    "ncc_accuracy",
    "effective_depth",
    "gnc2_dist_var",
    "gnc2_log_var",
    "unc3_var",
    "nc5_ood",
    "simplex_etf",
]

# The metric functions return floats: running them in inference mode (no autograd bookkeeping, no
# version counters) cuts ~10% of the per-operation overhead that dominates small problems.
_no_autograd = torch.inference_mode()

_DEFAULT_TILE = 2048
#: Small problems go to the dense engine (:mod:`nclab.metrics._dense`); tests switch it off to
#: check the streaming engine on the same inputs.
_DENSE = True
_BLOCK_CHUNKS = 32  # chunks whose per-row results are reduced together

#: Canonical order of the keys returned by :func:`collapse_metrics`.
METRIC_ORDER = (
    "nc1", "nc1_quotient", "cdnv", "nc2_equinorm", "nc2_equinorm_w", "nc2_equiangular",
    "nc2_equiangular_w", "nc2_etf", "nc2_of", "nc2_etf_w", "nc2_of_w", "nc3_duality", "nc3_etf",
    "unc3_var", "nc4_ncc_mismatch", "ncc_accuracy", "accuracy", "cosine_intra_min", "cosine_intra_mean",
    "cosine_inter_max", "margin_min", "margin_mean", "margin_normalized_min", "gnc2_dist_var",
    "gnc2_log_var", "dilation", "memorization", "memorization_mean", "noisy_fraction", "nc5_ood",
)


_RANK = {k: i for i, k in enumerate(METRIC_ORDER)}


def _ordered(d: dict[str, float]) -> dict[str, float]:
    """The metrics in the canonical order (unknown keys last)."""
    known = [k for k in METRIC_ORDER if k in d]
    return {**{k: d[k] for k in known}, **{k: v for k, v in d.items() if k not in _RANK}}


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _clamp_rows(rows: int, most: int, n: int) -> int:
    """``rows`` clamped to [128, most], and to n."""
    return int(max(1, min(max(128, min(most, rows)), n)))


def _chunk_rows(n: int, C: int, d: int, tile: int) -> int:
    """Rows per chunk: about 2^18 elements of chunk x max(d, 2C) (a cache-sized float64 block), so
    the elementwise work of a pass stays in cache and temporaries are reused by the allocator. Narrow
    rows give long chunks: on small problems the cost is the number of operations, not their size."""
    return _clamp_rows((1 << 18) // max(d, 2 * C, 1), _MAX_ROWS, n)


def _host_sync_cheap(device: torch.device) -> bool:
    """Whether a data-dependent branch (a host sync) costs nothing: on CPU. Accelerators take the
    sync-free path (a full argmax, which is cheap there)."""
    return device.type == "cpu"


def _decided(lo: torch.Tensor, hi: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Rows whose two margins (min lo, max hi) settle both arg max decisions without an argmax: no
    margin is 0 (a tie) and at least one is positive. NaN (an overflowed float32 product) is undecided."""
    return torch.logical_and((lo > 0) | (lo < 0), hi > 0, out=out)


def _pass2_rows(n: int, C: int, d: int) -> int:
    """Rows per chunk of the second pass. 2C <= d: about 2^20 elements of chunk x max(d, 2C) (L3-
    sized elementwise work). 2C > d: the chunk x 2C score/logit block dominates; products with few rows
    run at half speed, so take at least 2048 rows (more for narrow rows, as above) within a 256 MB
    block (128 rows at C = 250,000)."""
    elems = _PASS2_ELEMS // max(d, 2 * C, 1)
    if 2 * C > d:
        return _clamp_rows(_PASS2_BLOCK_BYTES // (4 * 2 * C), max(2048, min(elems, _MAX_ROWS)), n)
    return _clamp_rows(elems, _MAX_ROWS, n)


_MAX_ROWS = 1 << 16
_PASS2_BLOCK_BYTES = 1 << 28
_K_ROWS = 512  # rows per float32 product of the NC1 statistic K before float64 accumulation
_PASS2_ELEMS = 1 << 20


# ---------------------------------------------------------------------------------------------
# engine
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _PassResult:
    moments: ClassMoments
    K: torch.Tensor | None  # (C, C) = M Sigma_W M^T * n, when C <= d
    ncc_correct: int | None
    nc4_mismatch: int | None
    correct: int | None
    margin_min: float | None
    margin_sum: float | None
    pair_margin: torch.Tensor | None  # (C, C) directed minima A[y, c] = min_{i in y} z_iy - z_ic


def _first_pass(H: torch.Tensor, y: torch.Tensor, C: int, rows: int, name: str = "features"):
    """float64 class counts (C,), means (C, d) and unit-vector sums (C, d); checks finiteness.

    Per chunk: one float64 copy of the rows, their norms (in the features' precision), the unit rows
    next to them, and a single index_add of the (rows, 2d) block into the (C, 2d) sums."""
    n, d = H.shape
    dev = H.device
    count = torch.bincount(y, minlength=C).to(torch.float64)
    acc = torch.zeros(C, 2 * d, dtype=torch.float64, device=dev)  # [sums | unit sums]
    # chunk temporaries are allocated once: fresh multi-MB buffers per chunk cost page faults
    buf = torch.empty(min(rows, n), 2 * d, dtype=torch.float64, device=dev)
    for s in range(0, n, rows):
        ys = y[s : s + rows]
        k = ys.shape[0]
        hs = H[s : s + rows]
        b = buf[:k]
        b[:, :d].copy_(hs)
        norms = torch.linalg.vector_norm(hs if hs.dtype == torch.float32 else b[:, :d], dim=1, keepdim=True)
        inv = norms.masked_fill_(norms == 0, 1.0).to(torch.float64).reciprocal_()
        torch.mul(b[:, :d], inv, out=b[:, d:])
        acc.index_add_(0, ys, b)
    sums, unit = acc[:, :d], acc[:, d:]
    if not bool(torch.isfinite(sums).all()):  # NaN/inf in any feature reaches its class sum
        check_finite(H, name)
    return count, sums / count[:, None], unit.contiguous()


def _engine(
    H: torch.Tensor,
    y: torch.Tensor,
    C: int,
    W: torch.Tensor | None,
    b: torch.Tensor | None,
    *,
    tile: int,
    pairwise_limit: int,
    want_ncc: bool = True,
    name: str = "features",
) -> _PassResult:
    n, d = H.shape
    dev = H.device
    cdt = _compute_dtype(H)
    f64 = torch.float64
    count, mean, unit = _first_pass(H, y, C, _chunk_rows(n, C, d, tile), name)
    rows = _pass2_rows(n, C, d)
    mu_g = mean.mean(0)
    M = mean - mu_g
    proj = C <= d
    has_w = W is not None
    decide = want_ncc or has_w  # NCC scores and logits are needed at all
    sqn_m = (M * M).sum(1)
    sq_dev = torch.zeros(C, dtype=f64, device=dev)
    K = torch.zeros(C, C, dtype=f64, device=dev) if proj else None
    scatter = None if proj else torch.zeros(d, d, dtype=f64, device=dev)
    k_max = min(rows, n)
    if proj:
        # Centring in the features' precision: r' = h - hi_y with hi = mean rounded to the compute dtype
        # (one rounding, |error| <= ulp(r')/2, the same as computing r in float64 and rounding). The
        # offset lo = mean - hi is removed exactly at the end: sum_i (M r_i)(M r_i)^T = K' - sum_c n_c
        # e_c e_c^T with e_c = M lo_c, because sum_{i in c} r'_i = n_c lo_c. One product r' [M; W]^T
        # gives Z' = M r' (NC1), the NCC scores and the logits; per-class constants come from one table:
        # score_c(h) = (h - mu_G).m_c - ||m_c||^2/2 = Z'_c + [(hi_y - mu_G).m_c - ||m_c||^2/2]
        # logit_c(h) = w_c.h + b_c = (W r')_c + [hi_y.w_c + b_c].
        hi = mean.to(cdt)
        hi64 = hi.to(f64)
        lo = mean - hi64
        parts = [hi, ((hi64 - mu_g) @ M.T - 0.5 * sqn_m).to(cdt)]
        if has_w:
            parts.append((hi64 @ W.T + (b if b is not None else 0.0)).to(cdt))
        table = torch.cat(parts, 1) if decide else hi
        rhs = (torch.cat([M, W]) if has_w else M).to(cdt)
        gbuf = torch.empty(k_max, table.shape[1], dtype=cdt, device=dev)
        rbuf = torch.empty(k_max, d, dtype=cdt, device=dev)
    else:
        # C > d: the d x d scatter of float64 centred rows (O(n d^2)); one product of [h - mu_G, 1] with
        # [m_c, -||m_c||^2/2 ; w_c, mu_G.w_c + b_c] gives the NCC scores and the logits directly.
        aug_rhs = [torch.cat([M, -0.5 * sqn_m[:, None]], 1)]
        if has_w:
            shift = mu_g @ W.T + (b if b is not None else 0.0)
            aug_rhs.append(torch.cat([W, shift[:, None]], 1))
        rhs = torch.cat(aug_rhs).to(cdt)
        aug = torch.ones(k_max, d + 1, dtype=cdt, device=dev)
        mu_g_c = mu_g.to(cdt)
        gbuf = torch.empty(k_max, d, dtype=f64, device=dev)
        rbuf = torch.empty(k_max, d, dtype=f64, device=dev)
    width = rhs.shape[0]  # C or 2C
    halves = width // C
    xbuf = torch.empty(k_max, width, dtype=cdt, device=dev)
    obuf = torch.empty(k_max, C, dtype=cdt, device=dev) if has_w and C <= pairwise_limit else None
    # per-row results of a block of chunks, reduced once per block (few small ops per chunk)
    block = min(n, rows * _BLOCK_CHUNKS)
    marg_blk = torch.empty(halves, block, dtype=cdt, device=dev) if decide else None
    sq_blk = torch.empty(block, dtype=cdt, device=dev) if proj else None
    sure_blk = torch.empty(block, dtype=torch.bool, device=dev) if has_w else None  # margins decide both rules
    stats = torch.zeros(4, dtype=f64, device=dev)  # ncc correct, correct, nc4 mismatch, margin sum
    mmin = torch.full((), math.inf, dtype=f64, device=dev)
    pair = None
    if has_w and C <= pairwise_limit:
        pair = torch.full((C, C), math.inf, dtype=cdt, device=dev)
    on_cpu = _host_sync_cheap(dev)
    if decide:  # flat offsets of each row's halves in the (rows, width) product; + y gives the own entries
        fbase = (torch.arange(k_max, device=dev)[:, None] * width + torch.arange(0, width, C, device=dev)).contiguous()

    def flush(b0: int, b1: int) -> None:
        """Reduce the per-row results of rows b0..b1 (one block)."""
        nonlocal mmin
        L = b1 - b0
        if proj:
            sq_dev.index_add_(0, y[b0:b1], sq_blk[:L].to(f64).square_())
        if not decide:
            return
        nm = marg_blk[0, :L]
        if has_w:
            lm = marg_blk[1, :L]
            sure = sure_blk[:L]  # the other rows were counted by exact argmax
            npos, lpos = nm > 0, lm > 0
            stats[0] += (sure & npos).sum()
            stats[1] += (sure & lpos).sum()
            stats[2] += (sure & (npos != lpos)).sum()
            stats[3] += lm.sum(dtype=f64)
            mmin = torch.minimum(mmin, lm.min().to(f64))
        else:
            stats[0] += (nm > 0).sum()  # rows with nm == 0 or NaN were counted by exact argmax

    b0 = 0
    # counters stay on the device (no host sync per chunk, except the rare tie/both-wrong rows on CPU)
    for s in range(0, n, rows):
        ys = y[s : s + rows]
        k = ys.shape[0]
        hs = H[s : s + rows]
        j = s - b0  # offset in the block
        g = torch.index_select(table if proj else mean, 0, ys, out=gbuf[:k])
        if proj:
            r = torch.sub(hs.to(cdt), g[:, :d], out=rbuf[:k])
            torch.linalg.vector_norm(r, dim=1, out=sq_blk[j : j + k])
            X = torch.matmul(r, rhs.T, out=xbuf[:k])
            Z = X[:, :C]
            # Z'^T Z' in float64 for few classes; else float32 products over 512-row slices accumulated
            # in float64 (longer float32 sums lose accuracy: 1e-7 relative in NC1 at 2048 rows, 5e-9 at 512)
            if cdt == f64:
                K += Z.T @ Z
            elif C <= 64:  # few classes: a float64 copy of Z costs nothing, and K is then exact
                Z64 = Z.to(f64)
                K += Z64.T @ Z64
            else:
                for a in range(0, k, _K_ROWS):
                    Za = Z[a : a + _K_ROWS]
                    K += (Za.T @ Za).to(f64)
            if decide:
                X.add_(g[:, d:])  # -> [NCC scores | logits]
        else:
            r = torch.sub(hs.to(f64), g, out=rbuf[:k])
            sq_dev.index_add_(0, ys, (r * r).sum(1))
            scatter += r.T @ r
            if decide:
                a = aug[:k]
                torch.sub(hs.to(cdt), mu_g_c, out=a[:, :d])
                X = torch.matmul(a, rhs.T, out=xbuf[:k])
        if decide:
            # margins without index reductions (argmax/min-with-indices are ~6x slower than amax on CPU):
            # own-class value minus the best other class, per half; its sign decides argmax == y exactly
            # unless it is 0 (a tie). fl(own - max_c x_c) = min_c fl(own - x_c), rounding being monotone.
            # (flat-index select / fill run 2-3x faster than gather / scatter with an expanded index)
            X3, flat = X.view(k, halves, C), X.view(-1)
            fidx = torch.add(fbase[:k], ys[:, None]).view(-1)  # own entries, row-major
            own = flat.index_select(0, fidx).view(k, halves)
            if pair is not None:  # directed pair minima need own - z_c per entry (logits half)
                O = torch.sub(own[:, 1:], X3[:, 1], out=obuf[:k])
                O.scatter_(1, ys[:, None], math.inf)
                pair.scatter_reduce_(0, ys[:, None].expand(k, C), O, "amin")
            flat.index_fill_(0, fidx, -math.inf)  # k x halves writes, restored below where argmax is needed
            marg = torch.sub(own.T, X3.amax(2).T, out=marg_blk[:, j : j + k])
            # rows with a tie, or wrong for both rules: exact first-index argmax, as torch.argmax defines it
            if has_w:
                unsure = ~_decided(*torch.aminmax(marg, dim=0), out=sure_blk[j : j + k])
            else:
                unsure = ~((marg[0] > 0) | (marg[0] < 0))  # a tie or NaN
            if on_cpu:
                idx = unsure.nonzero().squeeze(1)
                Xu, yu, sel = (X3, ys[idx], None) if idx.numel() else (None, None, None)
            else:  # no host sync on accelerators, where argmax is cheap
                Xu, yu, sel = X3, ys, unsure
            if Xu is not None:
                flat.index_copy_(0, fidx, own.reshape(-1))
                if sel is None:
                    Xu = X3[idx]
                pred = Xu.argmax(2)  # (rows, halves)
                hit = pred == yu[:, None]
                if sel is not None:
                    hit = hit & sel[:, None]
                stats[0] += hit[:, 0].sum()
                if has_w:
                    stats[1] += hit[:, 1].sum()
                    diff = pred[:, 0] != pred[:, 1]
                    stats[2] += (diff & sel).sum() if sel is not None else diff.sum()
        if s + k - b0 >= block or s + k == n:
            flush(b0, s + k)
            b0 = s + k

    if proj:
        # exact removal of the centring offset lo (see above); sum_i ||r'_i||^2 = sum ||r_i||^2 + n_c ||lo_c||^2
        E = lo @ M.T
        K -= E.T @ (count[:, None] * E)
        sq_dev -= count * (lo * lo).sum(1)
        sq_dev.clamp_min_(0.0)
    moments = ClassMoments(count=count, mean=mean, sq_dev=sq_dev, unit_sum=unit, scatter=scatter)
    return _PassResult(
        moments=moments,
        K=K,
        ncc_correct=int(stats[0]) if want_ncc else None,
        nc4_mismatch=int(stats[2]) if has_w else None,
        correct=int(stats[1]) if has_w else None,
        margin_min=float(mmin) if has_w else None,
        margin_sum=float(stats[3]) if has_w else None,
        pair_margin=pair.to(f64) if pair is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# metrics from moments
# ---------------------------------------------------------------------------------------------
def _equinorm(rows: torch.Tensor) -> float:
    norms = torch.linalg.vector_norm(rows, dim=1)
    mean = float(norms.mean())
    return float(norms.std(unbiased=False)) / mean if mean > 0 else math.nan


@_no_autograd
def metrics_from_moments(
    moments: ClassMoments,
    *,
    weights: torch.Tensor | None = None,
    K: torch.Tensor | None = None,
    tile: int = _DEFAULT_TILE,
    cdnv_exponent: float = 1.0,
    gram_dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """Every metric that depends on the per-class moments only (and on W): no per-sample pass.

    Needs ``moments.scatter`` (or the projected statistic ``K``) for NC1. ``gram_dtype`` is the
    precision of the class-pair Gram products (float32 for float32 features).
    """
    C = moments.num_classes
    n = moments.num_samples
    mean = moments.mean
    mu_g = mean.mean(0)
    M = mean - mu_g
    count = moments.count
    var = moments.sq_dev / count
    out: dict[str, float] = {}
    tr_b = float((M * M).sum()) / C
    if tr_b == 0.0:
        out["nc1"] = math.nan
        out["nc1_quotient"] = math.nan
    else:
        if K is not None or moments.scatter is not None:
            out["nc1"] = _nc1_value(M, n, K=K, scatter=moments.scatter)
        out["nc1_quotient"] = float(moments.sq_dev.sum()) / n / tr_b
    unit_mean = moments.unit_sum / count[:, None]
    out.update(
        pair_statistics(
            M, mu_g, var, unit_mean, weights, tile=tile, cdnv_exponent=cdnv_exponent, gram_dtype=gram_dtype
        )
    )
    out["nc2_equinorm"] = _equinorm(M)
    intra = (unit_mean * unit_mean).sum(1)
    out["cosine_intra_min"] = float(intra.min())
    out["cosine_intra_mean"] = float(intra.mean())
    if weights is not None:
        W = weights
        out["nc2_equinorm_w"] = _equinorm(W)
        fw, fm = float(torch.linalg.matrix_norm(W)), float(torch.linalg.matrix_norm(M))
        if fw > 0 and fm > 0:
            out["nc3_duality"] = float(torch.linalg.matrix_norm(W / fw - M / fm) ** 2)
        else:
            out["nc3_duality"] = math.nan
        out["unc3_var"] = float(((W * M).sum(1)).var(unbiased=True))
    return _ordered(out)


def class_moments(features, labels, *, num_classes: int | None = None, tile: int = _DEFAULT_TILE) -> ClassMoments:
    """Per-class moments of in-memory features (two passes, no d x d scatter when C <= d)."""
    H, y, C = _prepare(features, labels, num_classes)
    return _engine(H, y, C, None, None, tile=tile, pairwise_limit=0).moments


def _prepare(features, labels, num_classes, name: str = "features"):
    H = check_features(features, name, finite=False)  # finiteness is checked on the class sums
    y, C = check_labels(labels, H.shape[0], num_classes, device=H.device)
    return H, y, C


# ---------------------------------------------------------------------------------------------
# the full metric set
# ---------------------------------------------------------------------------------------------
@_no_autograd
def collapse_metrics(
    features,
    labels,
    *,
    weights=None,
    bias=None,
    num_classes: int | None = None,
    test_features=None,
    test_labels=None,
    true_labels=None,
    ood_features=None,
    tile: int = _DEFAULT_TILE,
    pairwise_limit: int = 2048,
    cdnv_exponent: float = 1.0,
) -> dict[str, float]:
    r"""Every neural-collapse metric of a feature matrix, in two passes over it.

    Parameters
    ----------
    features : Tensor or ndarray of shape (n, d)
        Training features (any float dtype; statistics accumulate in float64).
    labels : Tensor or ndarray of shape (n,)
        The labels the model was trained on (observed labels under label noise).
    weights : Tensor of shape (C, d), optional
        Last-layer classifier; enables NC2/NC3 of W, NC4, accuracy and margins.
    bias : Tensor of shape (C,), optional
    num_classes : int, optional
        Default: ``labels.max() + 1``. Every class needs at least one sample.
    test_features, test_labels : optional
        Test features with their true labels: enable ``dilation`` (NC1 of the test features) and,
        with ``true_labels``, ``memorization``.
    true_labels : Tensor of shape (n,), optional
        Clean labels of the training samples (label-noise experiments).
    ood_features : Tensor of shape (m, d), optional
        Out-of-distribution features: enables ``nc5_ood``.
    tile : int, default=2048
        Block size of class-pair computations (memory O(tile^2)).
    pairwise_limit : int, default=2048
        Pairwise margins gamma_{y,y'} (a C x C matrix) are formed only for C up to this.
    cdnv_exponent : float, default=1.0
        CDNV denominator is ``(||mu_c - mu_c'||^2) ** cdnv_exponent``.

    Returns
    -------
    dict of str to float
        Keys: ``nc1, nc1_quotient, cdnv, nc2_equinorm, nc2_equiangular, nc2_etf, nc2_of,
        gnc2_dist_var, gnc2_log_var, cosine_intra_min, cosine_intra_mean, cosine_inter_max,
        ncc_accuracy``; with ``weights``: ``nc2_equinorm_w, nc2_equiangular_w, nc2_etf_w, nc2_of_w,
        nc3_duality, nc3_etf, unc3_var, nc4_ncc_mismatch, accuracy, margin_min, margin_mean`` and,
        for C <= pairwise_limit, ``margin_normalized_min``; with test data: ``dilation``,
        ``memorization``, ``memorization_mean``, ``noisy_fraction``; with OoD data: ``nc5_ood``.

    Notes
    -----
    Time O(n d C) (+ O(n d^2) when C > d) + O(C^2 d) for class pairs; memory O(C d + tile^2 + d^2).
    """
    H, y, C = _prepare(features, labels, num_classes)
    n, d = H.shape
    W, b = check_classifier(weights, bias, C, d, device=H.device)
    out, mean = _metric_set(H, y, C, W, b, tile=tile, pairwise_limit=pairwise_limit, cdnv_exponent=cdnv_exponent)
    if test_features is not None or test_labels is not None:
        if test_features is None or test_labels is None:
            raise ShapeError("pass both test_features and test_labels (the test set's true labels).")
        Ht = check_features(test_features, "test_features", dim=d, finite=False)
        yt, _ = check_labels(test_labels, Ht.shape[0], C, "test_labels", device=Ht.device)
        if _DENSE and dense_fits(Ht.shape[0], d, C, Ht.device):
            out["dilation"], test_mean = dense_nc1(Ht, yt, C, "test_features")
        else:
            res_t = _engine(Ht, yt, C, None, None, tile=tile, pairwise_limit=0, want_ncc=False, name="test_features")
            mt = res_t.moments
            out["dilation"] = _nc1_value(mt.mean - mt.mean.mean(0), mt.num_samples, K=res_t.K, scatter=mt.scatter)
            test_mean = mt.mean
        if true_labels is not None:
            yt_true, _ = check_labels(true_labels, n, C, "true_labels", device=H.device, require_all=False)
            out.update(_memorization_values(H, y, yt_true, test_mean.to(H.device)))
    elif true_labels is not None:
        raise ShapeError("memorization needs test_features and test_labels beside true_labels.")
    if ood_features is not None:
        Ho = check_features(ood_features, "ood_features", dim=d)
        out["nc5_ood"] = _nc5(mean, Ho)
    return _ordered(out)


def _metric_set(H, y, C, W, b, *, tile, pairwise_limit, cdnv_exponent, name="features"):
    """The metrics of one validated set and its float64 class means, by the engine that fits."""
    n, d = H.shape
    if _DENSE and dense_fits(n, d, C, H.device):
        ((out, mean),) = dense_metrics([(H, y)], C, W, b, cdnv_exponent=cdnv_exponent,
                                       pairwise_limit=pairwise_limit, names=[name])
        return out, mean
    res = _engine(H, y, C, W, b, tile=tile, pairwise_limit=pairwise_limit, name=name)
    out = metrics_from_moments(
        res.moments, weights=W, K=res.K, tile=tile, cdnv_exponent=cdnv_exponent, gram_dtype=_compute_dtype(H)
    )
    out["ncc_accuracy"] = res.ncc_correct / n
    if W is not None:
        out["nc4_ncc_mismatch"] = res.nc4_mismatch / n
        out["accuracy"] = res.correct / n
        out["margin_min"] = res.margin_min
        out["margin_mean"] = res.margin_sum / n
        if res.pair_margin is not None:
            out["margin_normalized_min"] = _normalized_pair_min(res.pair_margin, W)
    return out, res.moments.mean


@_no_autograd
def collapse_metrics_many(
    feature_sets: Sequence[tuple[Any, Any]],
    *,
    weights=None,
    bias=None,
    num_classes: int | None = None,
    tile: int = _DEFAULT_TILE,
    pairwise_limit: int = 2048,
    cdnv_exponent: float = 1.0,
    names: Sequence[str] | None = None,
    return_means: bool = False,
) -> list[dict[str, float]] | tuple[list[dict[str, float]], list[torch.Tensor]]:
    """:func:`collapse_metrics` of several (features, labels) sets against one classifier, e.g. the
    train features (observed labels) and test features (true labels) of a tracked epoch.

    Equal to ``[collapse_metrics(H, y, weights=..., ...) for H, y in feature_sets]``; small CPU sets
    (see :mod:`nclab.metrics._dense`) share one dense pass: one sort, one moment pass, one batched
    class-pair pass, which halves the fixed per-call cost of two small metric sets. ``names`` name
    the sets in error messages (default ``features``, ``features[1]``, ...). With ``return_means=True``
    it returns ``(metrics, means)``, ``means`` the float64 class means (C, d) of each set (a tracked
    epoch takes the test means for memorization from here).

    Examples
    --------
    >>> import torch
    >>> y = torch.arange(3).repeat(4)
    >>> [m["nc1"] for m in collapse_metrics_many([(torch.eye(3)[y], y), (torch.eye(3)[y] * 2, y)])]
    [0.0, 0.0]
    """
    if not len(feature_sets):
        raise ShapeError("feature_sets is empty; pass at least one (features, labels) pair.")
    names = list(names) if names is not None else ["features"] + [f"features[{i}]" for i in range(1, len(feature_sets))]
    if _DENSE:  # plain small CPU sets: one compiled call (nclab.metrics._dense.compiled_many); else None
        res = compiled_many(feature_sets, weights, bias, num_classes, pairwise_limit, cdnv_exponent, names)
        if res is not None:
            return res if return_means else res[0]
    prepared = [_prepare(H, y, num_classes, name) for (H, y), name in zip(feature_sets, names)]
    C = prepared[0][2]
    if num_classes is None and any(c != C for _, _, c in prepared):
        C = max(c for _, _, c in prepared)
        prepared = [_prepare(H, y, C, name) for (H, y), name in zip(feature_sets, names)]
    d = prepared[0][0].shape[1]
    for (H, _, _), name in zip(prepared, names):
        if H.shape[1] != d:
            raise ShapeError(f"{name} has dimension {H.shape[1]} but the first set has {d}; all sets share one classifier.")
    W, b = check_classifier(weights, bias, C, d, device=prepared[0][0].device)
    total = sum(H.shape[0] for H, _, _ in prepared)  # the joint pass holds all sets at once: bound it too
    if (_DENSE and all(dense_fits(H.shape[0], d, C, H.device) for H, _, _ in prepared)
            and dense_fits(total // 2, d, C, prepared[0][0].device) and len({H.device for H, _, _ in prepared}) == 1):
        res = dense_metrics([(H, y) for H, y, _ in prepared], C, W, b, cdnv_exponent=cdnv_exponent,
                            pairwise_limit=pairwise_limit, names=names)
    else:
        res = [_metric_set(H, y, C, W, b, tile=tile, pairwise_limit=pairwise_limit, cdnv_exponent=cdnv_exponent,
                           name=name) for (H, y, _), name in zip(prepared, names)]
    metrics = [_ordered(out) for out, _ in res]
    return (metrics, [mean for _, mean in res]) if return_means else metrics


def _memorization_values(H, y_obs, y_true, test_means) -> dict[str, float]:
    fast = noisy_distances(H, y_obs, y_true, test_means)  # CPU: one compiled pass (nclab.metrics._dense)
    if fast is not None:
        total, count = fast
        out = {"noisy_fraction": count / H.shape[0], "memorization": total}
        if count:
            out["memorization_mean"] = total / count
        return out
    noisy = (y_obs != y_true).nonzero().flatten()
    out = {"noisy_fraction": noisy.numel() / H.shape[0]}
    if noisy.numel() == 0:
        out["memorization"] = 0.0
        return out
    total = 0.0
    for s in range(0, noisy.numel(), 8192):
        idx = noisy[s : s + 8192]
        diff = H[idx].to(torch.float64) - test_means[y_true[idx]]
        total += float(torch.linalg.vector_norm(diff, dim=1).sum())
    out["memorization"] = total
    out["memorization_mean"] = total / noisy.numel()
    return out


def _nc5(mean: torch.Tensor, Ho: torch.Tensor) -> float:
    mu_ood = Ho.to(torch.float64).mean(0).to(mean.device)
    nm = torch.linalg.vector_norm(mean, dim=1)
    no = float(torch.linalg.vector_norm(mu_ood))
    if no == 0 or bool((nm == 0).any()):
        return math.nan
    return float(((mean @ mu_ood) / (nm * no)).abs().mean())


# ---------------------------------------------------------------------------------------------
# single metrics (thin front doors over the same kernels)
# ---------------------------------------------------------------------------------------------
@_no_autograd
def _moment_metric(features, labels, key, num_classes, weights=None, **kw) -> float:
    H, y, C = _prepare(features, labels, num_classes)
    W, _ = check_classifier(weights, None, C, H.shape[1], device=H.device)
    res = _engine(H, y, C, None, None, tile=kw.pop("tile", _DEFAULT_TILE), pairwise_limit=0)
    return metrics_from_moments(res.moments, weights=W, K=res.K, **kw)[key]


def nc1(features, labels, *, num_classes: int | None = None) -> float:
    r"""NC1, within-class variability relative to the between-class spread.

    .. math:: \mathcal{NC}_1 = \tfrac{1}{C}\operatorname{tr}(\Sigma_W \Sigma_B^{\dagger})

    Source: Papyan, Han & Donoho (2020); Nguyen et al. (ICLR 2023) eq. (2); Tirer & Bruna (2022) eq. (26).

    Notes
    -----
    O(n d C) time and O(C d + C^2) memory when C <= d (works in the span of the centred means);
    O(n d^2) and O(d^2) when C > d.

    Examples
    --------
    >>> import torch
    >>> nc1(torch.eye(3).repeat(4, 1), torch.arange(3).repeat(4))
    0.0
    """
    return _moment_metric(features, labels, "nc1", num_classes)


def nc1_quotient(features, labels, *, num_classes: int | None = None) -> float:
    r"""tr(Sigma_W) / tr(Sigma_B) (Tirer, Huang & Niles-Weed, ICML 2023). O(n d)."""
    return _moment_metric(features, labels, "nc1_quotient", num_classes)


def cdnv(features, labels, *, num_classes: int | None = None, exponent: float = 1.0) -> float:
    r"""Class-distance normalised variance (Galanti et al., 2022), averaged over class pairs.

    .. math:: \frac{2}{C(C-1)}\sum_{c<c'} \frac{\mathrm{Var}_c+\mathrm{Var}_{c'}}{2\,(\|\mu_c-\mu_{c'}\|^2)^{p}},
       \quad \mathrm{Var}_c = \frac{1}{n_c}\sum_{y_i=c}\|h_i-\mu_c\|^2

    ``exponent`` is p (default 1: the squared distance). O(n d + C^2 d), tiled over class pairs.
    """
    return _moment_metric(features, labels, "cdnv", num_classes, cdnv_exponent=exponent)


def nc2_equinorm(features, labels, *, weights=None, num_classes: int | None = None) -> dict[str, float]:
    r"""Equinorm: std/mean (population std) of :math:`\|\mu_c-\mu_G\|` and, given W, of :math:`\|w_c\|`."""
    H, y, C = _prepare(features, labels, num_classes)
    W, _ = check_classifier(weights, None, C, H.shape[1], device=H.device)
    m = _first_pass(H, y, C, _chunk_rows(H.shape[0], C, H.shape[1], _DEFAULT_TILE))[1]
    out = {"means": _equinorm(m - m.mean(0))}
    if W is not None:
        out["weights"] = _equinorm(W)
    return out


def nc2_equiangular(features, labels, *, num_classes: int | None = None) -> float:
    r"""Mean over class pairs of :math:`|\cos(\mu_c-\mu_G, \mu_{c'}-\mu_G) + 1/(C-1)|`. O(C^2 d), tiled."""
    return _moment_metric(features, labels, "nc2_equiangular", num_classes)


def _etf_distance(A: torch.Tensor, kind: str) -> float:
    C = A.shape[0]
    fro = float(torch.linalg.matrix_norm(A))
    if fro == 0:
        return math.nan
    if kind == "etf":
        E = (torch.eye(C, dtype=A.dtype, device=A.device) - 1.0 / C) / math.sqrt(C - 1)
    else:
        E = torch.eye(C, dtype=A.dtype, device=A.device) / math.sqrt(C)
    return float(torch.linalg.matrix_norm(A / fro - E))


def _rows(x, name) -> torch.Tensor:
    return check_features(x, name).to(torch.float64)


def nc2_etf(features, labels=None, *, num_classes: int | None = None) -> float:
    r"""Distance of the Gram matrix of the centred means to a simplex ETF (Tirer & Bruna, eq. 27):

    .. math:: \Big\| \frac{MM^\top}{\|MM^\top\|_F} - \frac{I_C - \frac1C 1 1^\top}{\sqrt{C-1}} \Big\|_F

    With ``labels=None``, ``features`` are taken as the (C, d) rows themselves (e.g. a classifier W,
    used uncentred, as in Tirer & Bruna's NC2 of W).
    """
    if labels is None:
        return _etf_distance(_gram(_rows(features, "rows")), "etf")
    return _moment_metric(features, labels, "nc2_etf", num_classes)


def nc2_of(features, labels=None, *, num_classes: int | None = None) -> float:
    r"""Distance of the Gram matrix of the UNcentred means U to an orthogonal frame:

    .. math:: \Big\| \frac{UU^\top}{\|UU^\top\|_F} - \frac{I_C}{\sqrt{C}} \Big\|_F

    (collapse of the positive-feature model, Nguyen et al. Def. 3.1, and of bias-free MSE, Tirer &
    Bruna Thm 3.1). With ``labels=None``, ``features`` are the (C, d) rows themselves.
    """
    if labels is None:
        return _etf_distance(_gram(_rows(features, "rows")), "of")
    return _moment_metric(features, labels, "nc2_of", num_classes)


def _gram(A: torch.Tensor) -> torch.Tensor:
    return A @ A.T


def nc3_duality(features, labels, weights, *, num_classes: int | None = None) -> float:
    r""":math:`\| W/\|W\|_F - M/\|M\|_F \|_F^2` (Papyan et al. 2020; Nguyen et al. NC3). O(n d + C d)."""
    return _moment_metric(features, labels, "nc3_duality", num_classes, weights=weights)


def nc3_etf(features, labels, weights, *, num_classes: int | None = None) -> float:
    r""":math:`\| WM^\top/\|WM^\top\|_F - (I - \frac1C 11^\top)/\sqrt{C-1} \|_F` (Tirer & Bruna eq. 28)."""
    return _moment_metric(features, labels, "nc3_etf", num_classes, weights=weights)


def nc4_ncc_mismatch(features, labels, weights, bias=None, *, num_classes: int | None = None) -> float:
    r"""Fraction of samples where :math:`\arg\max_c (Wh+b)_c \ne \arg\min_c \|h-\mu_c\|` (Papyan et al. NC4).

    O(n d C) time, O(chunk x C) memory. Ties go to the lowest class index in both rules.
    """
    return collapse_metrics(features, labels, weights=weights, bias=bias, num_classes=num_classes)[
        "nc4_ncc_mismatch"
    ]


@_no_autograd
def ncc_accuracy(features, labels, *, num_classes: int | None = None) -> float:
    """Accuracy of the nearest-class-centre rule with the class means of ``features`` itself."""
    H, y, C = _prepare(features, labels, num_classes)
    res = _engine(H, y, C, None, None, tile=_DEFAULT_TILE, pairwise_limit=0)
    return res.ncc_correct / H.shape[0]


def effective_depth(layer_features: Sequence[Any], labels, *, eps: float = 0.01, num_classes: int | None = None) -> int:
    r""":math:`\epsilon`-effective depth (Galanti et al. 2022; Pan 2023, Def. 3.2.2).

    The smallest 1-based layer index i whose nearest-class-centre error on ``layer_features[i-1]``
    is at most ``eps``; ``len(layer_features)`` when no layer reaches it.
    """
    if not len(layer_features):
        raise ShapeError("layer_features is empty; pass one (n, d_l) feature matrix per layer.")
    for i, h in enumerate(layer_features, start=1):
        if 1.0 - ncc_accuracy(h, labels, num_classes=num_classes) <= eps:
            return i
    return len(layer_features)


def cosine_intra(features, labels, *, num_classes: int | None = None) -> torch.Tensor:
    r"""Per class, the mean over ordered pairs (i, j), i = j included, of :math:`\cos(h_{ci}, h_{cj})`
    (Pan 2023, Sec. 2.2), computed in O(n d) as :math:`\|\sum_i \hat h_{ci}\|^2 / n_c^2`. Returns (C,)."""
    H, y, C = _prepare(features, labels, num_classes)
    count, _, unit = _first_pass(H, y, C, _chunk_rows(H.shape[0], C, H.shape[1], _DEFAULT_TILE))
    um = unit / count[:, None]
    return (um * um).sum(1)


def cosine_inter(features, labels, *, num_classes: int | None = None) -> torch.Tensor:
    r"""(C, C) matrix of mean cosines between samples of classes c and c' (Pan 2023), O(n d + C^2 d).

    Forms a C x C matrix: for many classes use ``collapse_metrics(...)["cosine_inter_max"]``."""
    H, y, C = _prepare(features, labels, num_classes)
    count, _, unit = _first_pass(H, y, C, _chunk_rows(H.shape[0], C, H.shape[1], _DEFAULT_TILE))
    um = unit / count[:, None]
    return um @ um.T


def margins(features, labels, weights, bias=None) -> torch.Tensor:
    r"""Per-sample margins :math:`z_{y_i} - \max_{c\ne y_i} z_c` with :math:`z = Wh + b`. Returns (n,).

    ``margins(...).min()`` is :math:`p_{\min}` of seed 002 Thm 4.1 (with b = 0)."""
    H = check_features(features)
    y, C = check_labels(labels, H.shape[0], None if weights is None else len(weights), device=H.device, require_all=False)
    W, b = check_classifier(weights, bias, C, H.shape[1], device=H.device)
    out = torch.empty(H.shape[0], dtype=torch.float64, device=H.device)
    rows = _chunk_rows(H.shape[0], C, H.shape[1], _DEFAULT_TILE)
    for s in range(0, H.shape[0], rows):
        z = H[s : s + rows].to(torch.float64) @ W.T
        if b is not None:
            z = z + b
        ys = y[s : s + rows]
        diff = z.gather(1, ys[:, None]) - z
        out[s : s + rows] = diff.scatter(1, ys[:, None], math.inf).min(1).values
    return out


def pairwise_margins(features, labels, weights, bias=None, *, normalized: bool = False) -> torch.Tensor:
    r"""Pairwise margins :math:`\gamma_{y,y'}` of seed 002 Def. 4.3, a symmetric (C, C) matrix:

    .. math:: \gamma_{y,y'} = \min\Big(\min_{i: y_i=y} (z_{iy}-z_{iy'}),\ \min_{i: y_i=y'} (z_{iy'}-z_{iy})\Big)

    (NaN on the diagonal); with ``normalized=True`` divided by :math:`\|w_y - w_{y'}\|` (Remark 4.9).
    """
    H = check_features(features)
    C = len(weights)
    y, C = check_labels(labels, H.shape[0], C, device=H.device, require_all=False)
    W, b = check_classifier(weights, bias, C, H.shape[1], device=H.device)
    res = _engine(H, y, C, W, b, tile=_DEFAULT_TILE, pairwise_limit=C) if bool(
        (torch.bincount(y, minlength=C) > 0).all()
    ) else None
    if res is None:
        raise LabelError("pairwise_margins needs at least one sample of every class.")
    gamma = torch.minimum(res.pair_margin, res.pair_margin.T)
    if normalized:
        gamma = gamma / _row_distances(W)
    gamma.fill_diagonal_(math.nan)
    return gamma


def memorization(train_features, observed_labels, true_labels, test_features, test_labels, *, num_classes: int | None = None) -> dict[str, float]:
    r"""Memorization of Nguyen et al. (ICLR 2023) eq. (3):

    .. math:: \mathrm{mem} = \sum_{i:\ \tilde y_i \ne y_i} \|h_i - \mu^{test}_{y_i}\|

    over the training samples whose observed label differs from the true one, with the test-set class
    means. Returns ``{"memorization", "memorization_mean", "noisy_fraction"}``. O((n + n_test) d).
    """
    H = check_features(train_features, "train_features")
    yo, C = check_labels(observed_labels, H.shape[0], num_classes, "observed_labels", device=H.device, require_all=False)
    yt, _ = check_labels(true_labels, H.shape[0], C, "true_labels", device=H.device, require_all=False)
    Ht = check_features(test_features, "test_features", dim=H.shape[1])
    ytest, _ = check_labels(test_labels, Ht.shape[0], C, "test_labels", device=Ht.device)
    test_means = _first_pass(Ht, ytest, C, 4096)[1].to(H.device)
    return _memorization_values(H, yo, yt, test_means)


def dilation(test_features, test_labels, *, num_classes: int | None = None) -> float:
    """Dilation of Nguyen et al.: NC1 of the test features with their true labels."""
    return nc1(test_features, test_labels, num_classes=num_classes)


def gnc2_dist_var(features, labels, *, num_classes: int | None = None) -> float:
    r"""Hyperspherical uniformity (Liu et al. 2023): population variance over class pairs of
    :math:`\|\hat m_a - \hat m_b\|`, :math:`\hat m_c = (\mu_c-\mu_G)/\|\mu_c-\mu_G\|`. Tiled, O(C^2 d)."""
    return _moment_metric(features, labels, "gnc2_dist_var", num_classes)


def gnc2_log_var(features, labels, *, num_classes: int | None = None) -> float:
    r"""Population variance over class pairs of :math:`\log(1/\|\hat m_a - \hat m_b\|)` (Liu et al. 2023)."""
    return _moment_metric(features, labels, "gnc2_log_var", num_classes)


def unc3_var(features, labels, weights, *, num_classes: int | None = None) -> float:
    r"""Uniform duality (Wu & Papyan 2024): unbiased variance over classes of :math:`\langle w_c, \mu_c-\mu_G\rangle`."""
    return _moment_metric(features, labels, "unc3_var", num_classes, weights=weights)


def nc5_ood(features, labels, ood_features, *, num_classes: int | None = None) -> float:
    r"""NC5 (Ammar et al. 2024): mean over classes of :math:`|\cos(\mu_c, \mu_G^{ood})|` with uncentred
    class means and the mean of the out-of-distribution features."""
    H, y, C = _prepare(features, labels, num_classes)
    Ho = check_features(ood_features, "ood_features", dim=H.shape[1])
    mean = _first_pass(H, y, C, 4096)[1]
    return _nc5(mean, Ho)


def simplex_etf(num_classes: int, dim: int | None = None, *, dtype=torch.float64, generator=None) -> torch.Tensor:
    r"""Rows of a simplex ETF: (C, d) with unit rows and pairwise cosine -1/(C-1).

    ``dim`` defaults to C; for dim >= C a random orthonormal embedding (seeded by ``generator``) is
    used when given, else the canonical one :math:`\sqrt{C/(C-1)}(I - \frac1C 11^\top)` padded with zeros.
    """
    C = num_classes
    d = C if dim is None else dim
    if d < C - 1:
        raise ShapeError(f"a simplex ETF of {C} classes needs dim >= {C - 1}; got {d}.")
    E = math.sqrt(C / (C - 1)) * (torch.eye(C, dtype=dtype) - 1.0 / C)
    if d == C - 1:
        # drop the all-ones direction: express E in an orthonormal basis of 1^perp
        Q, _ = torch.linalg.qr(torch.cat([torch.ones(C, 1, dtype=dtype), torch.eye(C, dtype=dtype)[:, : C - 1]], 1))
        return E @ Q[:, 1:]
    if generator is not None:
        Q, _ = torch.linalg.qr(torch.randn(d, C, dtype=dtype, generator=generator))
        return E @ Q.T
    out = torch.zeros(C, d, dtype=dtype)
    out[:, :C] = E
    return out
