r"""The decision pass: one chunked pass over the features, given the final class means and the classifier.

Nearest-class-centre (NCC) decisions need the *final* class means, which no bounded statistic of a
single pass determines; so every metric that compares samples with the means or the classifier comes
from one second pass, :class:`DecisionPass`, after :class:`~nclab.metrics.ClassStats` has produced
the means. Per chunk of rows it makes **one product** of the centred rows with :math:`[M; W]`, and
from it:

* the NCC scores :math:`(h-\mu_G)\cdot m_c - \|m_c\|^2/2` (the arg max is the nearest class mean),
* the logits :math:`w_c\cdot h + b_c`,
* each row's margin to the best other class for both rules, whose sign decides "predicted = own
  class" exactly (ties and doubly wrong rows take an exact first-index ``argmax``, so the counts follow
  ``torch.argmax`` semantics): NCC accuracy, accuracy, NC4 disagreement, :math:`p_{\min}` and the mean
  margin (seed 002 Thm 4.1),
* the directed class-pair margin minima :math:`A_{y,c} = \min_{i: y_i = y} z_{iy} - z_{ic}` (seed 002
  Def. 4.3) for C up to ``pairwise_limit``,
* NC1's statistic: with C <= d, :math:`K = \sum_i (M r_i)(M r_i)^\top` (C x C), so that NC1 never forms
  a d x d matrix (:func:`~nclab.metrics.nc1_value`); with C > d, the d x d within-class scatter,
* with reference (test) class means and true labels, the memorization distances of seed 000 eq. (3).

Precision: centring by the class mean rounded once to the features' precision (``hi``) keeps nearly
collapsed float32 features accurate; the rounding offset ``lo = mean - hi`` is removed from K exactly
at the end (:math:`\sum_{i\in c} r'_i = n_c\,lo_c`). Sums over samples are float64; products over d run
in the features' precision (float16/bfloat16 promoted to float32).

Cost: O(n d C) time (+ O(n d^2) when C > d), memory O(rows x 2C + C d + C^2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nclab.errors import LabelError, ShapeError
from nclab.metrics._validate import check_classifier, check_features, check_labels
from nclab.metrics.noise import noisy_distance_sum
from nclab.metrics.stats import ClassMoments

__all__ = ["DecisionPass", "Decisions", "compute_dtype", "margin_rows"]

_MAX_ROWS = 1 << 16
_BLOCK_BYTES = 1 << 28
_K_ROWS = 512  # rows per float32 product of K before float64 accumulation
_ELEMS = 1 << 20


def _host_sync_cheap(device: torch.device) -> bool:
    """Whether a data-dependent branch (a host sync) costs nothing: on CPU. Accelerators take the
    sync-free path (a full argmax, which is cheap there)."""
    return device.type == "cpu"


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """Precision of the products over d: float64 for float64 features, else float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def chunk_rows(n: int, C: int, d: int) -> int:
    """Rows per chunk: about 2^20 elements of rows x max(d, 2C); with 2C > d at least 2048 rows (few-
    row products run at half speed) within a 256 MB block (128 rows at C = 250,000)."""
    elems = _ELEMS // max(d, 2 * C, 1)
    most = _MAX_ROWS
    if 2 * C > d:
        most = max(2048, min(elems, _MAX_ROWS))
        elems = _BLOCK_BYTES // (4 * 2 * C)
    return int(max(1, min(max(128, min(most, elems)), n)))


def margin_rows(X3: torch.Tensor, ys: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
    r"""Margins :math:`x_{i,y_i} - \max_{c\ne y_i} x_{ic}` of scores X3 (k, halves, C) with labels
    ys (k,): (k, halves). The one margin formula of nclab (seed 002 Thm 4.1's :math:`p_{\min}` is the
    minimum over rows of the logits' margin). ``X3`` is left as it was."""
    k, halves, _ = X3.shape
    at = ys[:, None, None].expand(k, halves, 1)
    if own is None:
        own = X3.gather(2, at).squeeze(2)
    X3.scatter_(2, at, -math.inf)
    marg = own - X3.amax(2)
    X3.scatter_(2, at, own[:, :, None])  # restore
    return marg


@dataclass(frozen=True)
class Decisions:
    r"""What a :class:`DecisionPass` saw (sums, counts and minima; mergeable). Units of ``scale``.

    Attributes
    ----------
    n : int
    count : Tensor of shape (C,)
        Rows per class seen by the pass.
    ncc_correct, correct, nc4_mismatch : int or None
        Rows whose NCC / classifier decision is their label; rows where the two rules disagree.
    margin_min, margin_sum : float or None
        Smallest and summed classifier margins :math:`z_{y_i} - \max_{c\ne y_i} z_c`.
    pair_margin : Tensor of shape (C, C) or None
        Directed pair minima :math:`A_{y,c}` (inf where class y has no sample).
    K : Tensor of shape (C, C) or None
        :math:`\sum_i (M r_i)(M r_i)^\top` (C <= d).
    scatter : Tensor of shape (d, d) or None
        Within-class scatter (C > d).
    sq_dev : Tensor of shape (C,) or None
        Per-class squared deviations about the final means, when the moments had none.
    memorization_sum : float or None
        :math:`\sum_{i:\tilde y_i\ne y_i}\|h_i - \mu^{ref}_{y_i}\|` over rows whose true label differs.
    noisy : int
        Rows whose true label differs from the label.
    scale : float
    """

    n: int
    count: torch.Tensor
    ncc_correct: int | None
    correct: int | None
    nc4_mismatch: int | None
    margin_min: float | None
    margin_sum: float | None
    pair_margin: torch.Tensor | None
    K: torch.Tensor | None
    scatter: torch.Tensor | None
    sq_dev: torch.Tensor | None
    memorization_sum: float | None
    noisy: int
    scale: float = 1.0


class DecisionPass:
    r"""The second pass over the features: NCC and classifier decisions, margins, pair margins,
    NC1's statistic and memorization distances, given the final class moments.

    Parameters
    ----------
    moments : ClassMoments
        Final moments of the same features (:meth:`ClassStats.compute`); with ``moments.classes``
        (present classes only) labels are re-indexed and the matching rows of W and b are used.
    weights : Tensor of shape (C, d), optional
    bias : Tensor of shape (C,), optional
    ncc : bool, default=True
        Compute the NCC decisions (NCC accuracy, NC4).
    nc1 : bool, default=True
        Accumulate NC1's statistic (K or the scatter).
    pairwise_limit : int, default=2048
        Directed pair margins for C up to this.
    reference_means : Tensor of shape (C, d), optional
        Class means (original units) for memorization; rows with ``true_labels`` are compared with them.

    Examples
    --------
    >>> import torch
    >>> from nclab.metrics import ClassStats
    >>> h, y = torch.eye(3).repeat(2, 1), torch.arange(3).repeat(2)
    >>> mom = ClassStats(3).update(h, y).compute()
    >>> DecisionPass(mom).update(h, y).compute().ncc_correct
    6
    """

    def __init__(self, moments: ClassMoments | None, weights=None, bias=None, *, ncc: bool = True, nc1: bool = True,
                 pairwise_limit: int = 2048, reference_means=None) -> None:
        if moments is None:  # classifier decisions only: accuracy and margins need no class means
            if weights is None:
                raise ShapeError("a DecisionPass without class moments needs the classifier weights.")
            w = torch.as_tensor(weights)
            C, d, dev, total, scale = int(w.shape[0]), int(w.shape[1]), w.device, int(w.shape[0]), 1.0
            ncc = nc1 = False
        else:
            C, d, dev = moments.num_classes, moments.dim, moments.mean.device
            total, scale = moments.total_classes or C, moments.scale
        self.moments = moments
        self.num_classes, self.dim, self.scale, self.total = C, d, scale, total
        W, b = check_classifier(weights, bias, total, d, device=dev)
        if moments is not None and moments.classes is not None and W is not None:
            W = W[moments.classes]
            b = None if b is None else b[moments.classes]
        self.W, self.b = W, b
        self.ncc, self.nc1 = ncc, nc1
        self.decide = ncc or W is not None  # NCC scores and logits are needed at all
        self.pairwise_limit = pairwise_limit
        self.ref = None
        if reference_means is not None:
            ref = torch.as_tensor(reference_means, dtype=torch.float64, device=dev)
            if ref.shape != (total, d):
                raise ShapeError(f"reference_means must have shape ({total}, {d}); got {tuple(ref.shape)}.")
            self.ref = ref / scale
        self._cdt: torch.dtype | None = None
        self._buf: dict | None = None
        self._ob: torch.Tensor | None = None
        f64 = torch.float64
        self._count = torch.zeros(C, dtype=f64, device=dev)
        self._stats = torch.zeros(5, dtype=f64, device=dev)  # ncc, correct, mismatch, margin sum, memorization
        self._mmin = torch.full((), math.inf, dtype=f64, device=dev)
        self._noisy = 0
        self._n = 0
        self._pair = None
        self.proj = moments is not None and C <= d
        self._K = torch.zeros(C, C, dtype=f64, device=dev) if (nc1 and self.proj) else None
        self._scatter = torch.zeros(d, d, dtype=f64, device=dev) if (nc1 and not self.proj) else None
        # squared deviations about the final means, when the moments kept first moments only
        self._sq = torch.zeros(C, dtype=f64, device=dev) if (moments is not None and moments.sq_dev is None) else None

    @classmethod
    def classifier(cls, weights, bias=None, *, pairwise_limit: int = 2048) -> "DecisionPass":
        """A pass of the classifier's decisions only (accuracy, margins, pair margins): no class means
        needed, so it runs alongside :class:`~nclab.metrics.ClassStats` in a single pass."""
        return cls(None, weights, bias, pairwise_limit=pairwise_limit)

    # -- set-up on the first chunk (the products run in the features' precision) -----------------
    def _setup(self, cdt: torch.dtype) -> None:
        self._cdt = cdt
        mom, W, b = self.moments, self.W, self.b
        C, d = self.num_classes, self.dim
        dev = self._count.device
        has_w = W is not None
        bias = 0.0 if b is None else b / self.scale  # logits of h / scale: W h / scale + b / scale
        if has_w and C <= self.pairwise_limit:
            self._pair = torch.full((C, C), math.inf, dtype=cdt, device=dev)
        if mom is None:
            self.mu_g = torch.zeros(d, dtype=torch.float64, device=dev)
            self.rhs = torch.cat([W, (self.mu_g @ W.T + bias)[:, None]], 1).to(cdt)
            self.mu_g_c = self.mu_g.to(cdt)
            return
        mean = mom.mean
        self.mu_g = mom.global_mean()
        M = mean - self.mu_g
        self.M = M
        sqn_m = (M * M).sum(1)
        if self.proj:
            # r' = h - hi_y with hi = mean rounded to cdt; one product r'[M; W]^T gives Z' = M r' (NC1),
            # the NCC scores and the logits, each up to a per-class constant from one table:
            # score_c(h) = Z'_c + [(hi_y - mu_G).m_c - ||m_c||^2/2],  logit_c(h) = (W r')_c + [hi_y.w_c + b_c]
            hi = mean.to(cdt)
            hi64 = hi.to(torch.float64)
            self.lo = mean - hi64
            parts = [hi]
            if self.decide:
                parts.append(((hi64 - self.mu_g) @ M.T - 0.5 * sqn_m).to(cdt))
                if has_w:
                    parts.append((hi64 @ W.T + bias).to(cdt))
            self.table = torch.cat(parts, 1)
            self.rhs = (torch.cat([M, W]) if has_w else M).to(cdt)
        else:
            # C > d: products of [h - mu_G, 1] with [m_c, -||m_c||^2/2 ; w_c, mu_G.w_c + b_c]
            rhs = [torch.cat([M, -0.5 * sqn_m[:, None]], 1)]
            if has_w:
                rhs.append(torch.cat([W, (self.mu_g @ W.T + bias)[:, None]], 1))
            self.rhs = torch.cat(rhs).to(cdt)
            self.mu_g_c = self.mu_g.to(cdt)

    # -- update ------------------------------------------------------------------------------------
    def update(self, features, labels, true_labels=None) -> "DecisionPass":
        """Add a batch: ``features`` (b, d), ``labels`` (b,), optional ``true_labels`` (b,) for
        memorization (needs ``reference_means``). Returns ``self``."""
        total = self.total
        h = check_features(features, "features", dim=self.dim)
        y, _ = check_labels(labels, h.shape[0], total, device=h.device, require_all=False)
        t = None
        if true_labels is not None:
            t, _ = check_labels(true_labels, h.shape[0], total, "true_labels", device=h.device, require_all=False)
        self._update(h, y, t)
        return self

    def _update(self, H: torch.Tensor, y: torch.Tensor, true: torch.Tensor | None = None, *,
                local: bool = False) -> None:
        """:meth:`update` on validated input, in chunks; ``local``: labels already index the rows of
        the moments (present classes re-indexed)."""
        classes = None if self.moments is None else self.moments.classes
        if true is not None and self.ref is not None:
            self._memorize(H, classes[y] if (local and classes is not None) else y, true)
        if not (self.decide or self.nc1 or self._sq is not None):
            self._n += H.shape[0]
            return
        if classes is not None and not local:  # original label -> row of the moments, no C-sized table
            classes = classes.to(y.device)
            pos = torch.searchsorted(classes, y).clamp_max_(classes.numel() - 1)
            if not bool((classes[pos] == y).all()):
                raise LabelError("the decision pass saw a label whose class has no sample in the moments; "
                                 "pass the same features to both passes.")
            y = pos
        if self._cdt is None:
            self._setup(compute_dtype(H))
        n = H.shape[0]
        rows = chunk_rows(n, self.num_classes, self.dim)
        for s in range(0, n, rows):
            self._chunk(H[s : s + rows], y[s : s + rows])
        self._n += n

    def _memorize(self, H, y, true) -> None:
        total, count = noisy_distance_sum(H, y, true, self.ref, 1.0 / self.scale)
        self._stats[4] += total
        self._noisy += count

    def _obuf(self, k: int, dtype, dev) -> torch.Tensor:
        if self._ob is None or self._ob.shape[0] < k:
            self._ob = torch.empty(k, self.num_classes, dtype=dtype, device=dev)
        return self._ob[:k]

    def _buffers(self, k: int, dev) -> dict[str, torch.Tensor]:
        """Chunk scratch allocated once per pass (fresh multi-MB blocks per chunk cost page faults)."""
        if self._buf is None or self._buf["r"].shape[0] < k:
            cdt = self._cdt
            self._buf = {
                "g": torch.empty(k, self.table.shape[1], dtype=cdt, device=dev) if self.proj else None,
                "r": torch.empty(k, self.dim, dtype=cdt, device=dev),
                "x": torch.empty(k, self.rhs.shape[0], dtype=cdt, device=dev),
            }
        return self._buf

    def _chunk(self, hs: torch.Tensor, ys: torch.Tensor) -> None:
        cdt, f64 = self._cdt, torch.float64
        C, d = self.num_classes, self.dim
        k = hs.shape[0]
        inv = 1.0 / self.scale
        self._count += torch.bincount(ys, minlength=C)
        hc = hs.to(cdt) if inv == 1.0 else hs.to(cdt) * inv
        buf = self._buffers(k, hs.device)
        if self.proj:
            g = torch.index_select(self.table, 0, ys, out=buf["g"][:k])
            r = torch.sub(hc, g[:, :d], out=buf["r"][:k])
            if self._sq is not None:  # ||r'||^2 about hi; the offset lo is removed in compute()
                self._sq.index_add_(0, ys, torch.linalg.vector_norm(r, dim=1).to(f64).square_())
            X = torch.matmul(r, self.rhs.T, out=buf["x"][:k])
            if self._K is not None:
                Z = X[:, :C]
                # Z'^T Z' in float64 for few classes; else float32 products over 512-row slices summed in
                # float64 (longer float32 sums lose accuracy: 1e-7 relative in NC1 at 2048 rows)
                if cdt == f64 or C <= 64:
                    Z64 = Z.to(f64)
                    self._K += Z64.T @ Z64
                else:
                    for a in range(0, k, _K_ROWS):
                        Za = Z[a : a + _K_ROWS]
                        self._K += (Za.T @ Za).to(f64)
            if not self.decide:
                return
            X.add_(g[:, d:])  # -> [NCC scores | logits]
        else:
            if self._scatter is not None or self._sq is not None:
                r = hs.to(f64) * inv - self.moments.mean[ys]
                if self._scatter is not None:
                    self._scatter += r.T @ r
                if self._sq is not None:
                    self._sq.index_add_(0, ys, (r * r).sum(1))
            if not self.decide:
                return
            a = torch.cat([hc - self.mu_g_c, torch.ones(k, 1, dtype=cdt, device=hs.device)], 1)
            X = torch.matmul(a, self.rhs.T, out=buf["x"][:k])
        self._decide(X, ys)

    def _decide(self, X: torch.Tensor, ys: torch.Tensor) -> None:
        """Counts, margins and pair minima from the (k, halves * C) block [NCC scores | logits]."""
        C = self.num_classes
        k = ys.shape[0]
        has_w = self.W is not None
        halves = X.shape[1] // C
        X3 = X.view(k, halves, C)
        # margins without index reductions (argmax is ~6x slower than amax on CPU): own value minus the
        # best other class, per half; its sign decides argmax == y exactly unless it is 0 (a tie).
        own = X3.gather(2, ys[:, None, None].expand(k, halves, 1)).squeeze(2)  # (k, halves)
        if self._pair is not None:  # directed pair minima need own - z_c per entry (logits half)
            O = torch.sub(own[:, -1:], X3[:, -1], out=self._obuf(k, X.dtype, X.device))
            O.scatter_(1, ys[:, None], math.inf)
            self._pair.scatter_reduce_(0, ys[:, None].expand(k, C), O, "amin")
        marg = margin_rows(X3, ys, own)  # (k, halves)
        if has_w:
            lm = marg[:, -1]
            self._stats[3] += lm.sum(dtype=torch.float64)
            self._mmin = torch.minimum(self._mmin, lm.min().to(torch.float64))
        # rows with a tie or NaN, or wrong for both rules: exact first-index argmax
        decided = (marg != 0) & ~torch.isnan(marg)
        if halves == 2:
            sure = decided.all(1) & (marg > 0).any(1)
        else:
            sure = decided[:, 0]
        pos = marg > 0
        if self.ncc:
            self._stats[0] += (sure & pos[:, 0]).sum()
        if has_w:
            self._stats[1] += (sure & pos[:, -1]).sum()
            if halves == 2:
                self._stats[2] += (sure & (pos[:, 0] != pos[:, 1])).sum()
        if _host_sync_cheap(ys.device):  # argmax on the unsure rows only
            idx = (~sure).nonzero().flatten()
            if not idx.numel():
                return
            pred = X3[idx].argmax(2)
            hit = pred == ys[idx, None]
            sel = None
        else:  # accelerators: argmax of every row, masked (no host sync)
            pred = X3.argmax(2)
            sel = ~sure
            hit = (pred == ys[:, None]) & sel[:, None]
        if self.ncc:
            self._stats[0] += hit[:, 0].sum()
        if has_w:
            self._stats[1] += hit[:, -1].sum()
            if halves == 2:
                diff = pred[:, 0] != pred[:, 1]
                self._stats[2] += (diff & sel).sum() if sel is not None else diff.sum()

    # -- state (as torchmetrics declares it: each accumulator with its reduction) ----------------
    def state(self) -> dict[str, tuple[torch.Tensor, str]]:
        """The accumulators with their reduction, ``"sum"`` or ``"min"``: what a distributed
        reduction combines (:func:`nclab.metrics.distributed.all_reduce_decisions`); put the reduced
        tensors back with :meth:`load_state`. Call :meth:`prepare` first on a pass that saw no row."""
        f64 = torch.float64
        out = {
            "count": (self._count, "sum"),
            "stats": (self._stats, "sum"),
            "rows": (torch.tensor([float(self._n), float(self._noisy)], dtype=f64, device=self._count.device), "sum"),
            "margin_min": (self._mmin.reshape(1), "min"),
        }
        for name in ("_K", "_scatter", "_sq"):
            if getattr(self, name) is not None:
                out[name[1:]] = (getattr(self, name), "sum")
        if self._pair is not None:
            out["pair"] = (self._pair, "min")
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        """Set the accumulators from (reduced) tensors of the shapes :meth:`state` gives."""
        self._count = state["count"].reshape(self._count.shape).clone()
        self._stats = state["stats"].reshape(5).clone()
        self._n, self._noisy = (int(v) for v in state["rows"].tolist())
        self._mmin = state["margin_min"].reshape(()).clone()
        for name in ("K", "scatter", "sq"):
            if name in state:
                setattr(self, "_" + name, state[name].reshape(getattr(self, "_" + name).shape).clone())
        if "pair" in state:
            self._pair = state["pair"].reshape(self._pair.shape).to(self._pair.dtype).clone()

    @property
    def compute_dtype(self) -> torch.dtype | None:
        """Precision of the products (None until the pass saw a row or :meth:`prepare` ran)."""
        return self._cdt

    def prepare(self, dtype: torch.dtype) -> None:
        """Set up the products for features of ``dtype`` (a rank that saw no row before a reduction)."""
        if self._cdt is None:
            self._setup(compute_dtype(torch.empty(0, dtype=dtype)))

    # -- merge / compute -----------------------------------------------------------------------
    def merge(self, other: "DecisionPass") -> "DecisionPass":
        """Merge a pass over another shard (same moments and classifier). Returns ``self``."""
        if not isinstance(other, DecisionPass):
            raise TypeError(f"can only merge a DecisionPass, got {type(other).__name__}")
        if (other.num_classes, other.dim, other.scale) != (self.num_classes, self.dim, self.scale):
            raise ShapeError("cannot merge decision passes made for different moments.")
        self._count += other._count
        self._stats += other._stats
        self._mmin = torch.minimum(self._mmin, other._mmin)
        self._n += other._n
        self._noisy += other._noisy
        if other._pair is not None:
            self._pair = other._pair.clone() if self._pair is None else torch.minimum(self._pair, other._pair)
        for name in ("_K", "_scatter", "_sq"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and theirs is not None:
                mine += theirs
        if self._cdt is None:
            self._cdt = other._cdt
            if other._cdt is not None:
                self._setup(other._cdt)
        return self

    def compute(self) -> Decisions:
        """The decision statistics; K has the centring offset removed."""
        has_w = self.W is not None
        K = None
        if self._K is not None:
            K = self._K.clone()
            if self._cdt is not None:  # exact removal of the centring offset lo (module docstring)
                E = self.lo @ self.M.T
                K -= E.T @ (self._count[:, None] * E)
        sq = None
        if self._sq is not None:
            sq = self._sq.clone()
            if self.proj and self._cdt is not None:  # sum ||r'||^2 = sum ||r||^2 + n_c ||lo_c||^2
                sq -= self._count * (self.lo * self.lo).sum(1)
            sq.clamp_min_(0.0)
        st = self._stats.tolist()
        return Decisions(
            n=self._n,
            count=self._count.clone(),
            ncc_correct=int(st[0]) if self.ncc else None,
            correct=int(st[1]) if has_w else None,
            nc4_mismatch=int(st[2]) if (has_w and self.ncc) else None,
            margin_min=float(self._mmin) if has_w else None,
            margin_sum=st[3] if has_w else None,
            pair_margin=None if self._pair is None else self._pair.to(torch.float64),
            K=K,
            scatter=None if self._scatter is None else self._scatter.clone(),
            sq_dev=sq,
            memorization_sum=st[4] if self.ref is not None else None,
            noisy=self._noisy,
            scale=self.scale,
        )
