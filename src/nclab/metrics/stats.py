r"""Streaming per-class statistics: the one-pass, mergeable accumulator behind every NC metric.

For features :math:`h_i \in \mathbb{R}^d` with labels :math:`y_i \in \{0..C-1\}` the state is, in
float64 on the features' device,

* ``count``  (C,)   :math:`n_c`,
* ``mean``   (C, d) :math:`\mu_c`,
* ``sq_dev`` (C,)   :math:`\sum_{i: y_i=c} \|h_i-\mu_c\|^2`,
* ``unit_sum`` (C, d) :math:`\sum_{i: y_i=c} h_i/\|h_i\|` (for the cosine measures of Pan, 2023),
* ``scatter`` (d, d) the pooled within-class scatter :math:`\sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`
  (optional: needed for NC1 only when the features are seen once; ``track_scatter=False`` keeps
  memory at O(C d) and :class:`~nclab.metrics.DecisionPass` supplies NC1's statistic instead).

Batches are merged with the exact parallel-variance formula of Chan, Golub & LeVeque (1979), as
``torchmetrics`` does for Pearson's r: merging two partitions with counts :math:`n_1, n_2` and mean
difference :math:`\delta_c` adds :math:`\frac{n_1 n_2}{n_1+n_2}\delta_c\delta_c^\top` per class. Only
the classes present in a batch are touched. The result is independent of batch order and size up to
rounding, and an empty accumulator is the identity of :meth:`ClassStats.merge`.

Scale: every metric is scale-invariant or scale-covariant, but squares of features near 1e155 (or
products of float32 features near 1e19) overflow. The first batch fixes a power-of-two ``scale`` (1
for features of ordinary size, |h| in [2^-32, 2^32]) and the state holds h / scale: dividing by a
power of two is exact, so the numbers equal those of the same features at unit scale; covariant
metrics are multiplied back (:func:`~nclab.metrics.metrics_from_moments`).

Cost of :meth:`ClassStats.update` on a batch of b rows with k distinct labels: O(b d + k d), plus
O(b d^2) with the scatter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from nclab.errors import LabelError, NonFiniteError, ShapeError
from nclab.metrics._validate import check_alloc, check_features, check_finite, check_labels

__all__ = ["ClassStats", "ClassMoments", "accumulate", "power_of_two_scale"]

#: Elements per chunk of in-memory features fed to ClassStats (a cache-sized 4 MB float64 block, reused).
_CHUNK_ELEMS = 1 << 18
#: Features whose largest magnitude lies in [2^-32, 2^32] are accumulated unscaled.
_SAFE_EXP = 32


def power_of_two_scale(h: torch.Tensor) -> float:
    """A power of two near max|h| when that lies outside [2^-32, 2^32], else 1.0 (exact rescaling)."""
    if not h.numel():
        return 1.0
    lo, hi = torch.aminmax(h)
    top = max(abs(float(lo)), abs(float(hi)))
    if top == 0.0 or not math.isfinite(top):
        return 1.0
    e = math.frexp(top)[1]
    return math.ldexp(1.0, e) if abs(e) > _SAFE_EXP else 1.0


@dataclass(frozen=True)
class ClassMoments:
    """Frozen first and second per-class moments (float64). Produced by :meth:`ClassStats.compute`.

    Attributes
    ----------
    count : Tensor of shape (C,)
    mean : Tensor of shape (C, d)
        In units of ``scale`` (the features are ``scale`` times these).
    sq_dev : Tensor of shape (C,) or None
        Sum over the class of squared distances to its mean (units of ``scale**2``); None when the
        accumulator kept first moments only (a :class:`~nclab.metrics.DecisionPass` then supplies it).
    unit_sum : Tensor of shape (C, d)
        Sum over the class of the L2-normalised features (zero features contribute 0).
    scatter : Tensor of shape (d, d) or None
        Pooled within-class scatter (not divided by n; units of ``scale**2``).
    scale : float
        Power of two the features were divided by (1.0 for features of ordinary size).
    classes : Tensor of shape (C,) or None
        The original class index of each row when the moments cover only the classes present
        (``compute(classes="present")``); None when they cover every class 0..C-1.
    total_classes : int or None
        The number of classes the accumulator was made for (with ``classes``).
    weighting : {"classes", "frequency"}
        How :meth:`global_mean` weights the class means (every centred metric uses it).
    """

    count: torch.Tensor
    mean: torch.Tensor
    sq_dev: torch.Tensor | None
    unit_sum: torch.Tensor
    scatter: torch.Tensor | None = None
    scale: float = 1.0
    classes: torch.Tensor | None = None
    total_classes: int | None = None
    weighting: str = "classes"

    def __post_init__(self) -> None:
        if self.weighting not in ("classes", "frequency"):
            from nclab.errors import SpecError

            raise SpecError(f"weighting must be 'classes' or 'frequency'; got {self.weighting!r}.")

    def global_mean(self) -> torch.Tensor:
        r"""The global mean :math:`\mu_G` (d,): the mean of the class means (``weighting="classes"``,
        the sources' definition) or the class-frequency-weighted mean, i.e. the sample mean
        (``"frequency"``, as Wu & Papyan (2024) centre a language model's imbalanced token classes)."""
        if self.weighting == "frequency":
            return (self.count @ self.mean) / self.count.sum()
        return self.mean.mean(0)

    def centred(self) -> torch.Tensor:
        """The centred class means M = mean - global_mean() (C, d)."""
        return self.mean - self.global_mean()

    @property
    def num_classes(self) -> int:
        return int(self.count.shape[0])

    @property
    def dim(self) -> int:
        return int(self.mean.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.count.sum().item())

    def select(self, classes: torch.Tensor) -> "ClassMoments":
        """The moments of a subset of classes (indices into these rows), e.g. those present."""
        base = self.classes[classes] if self.classes is not None else classes
        return replace(
            self,
            count=self.count[classes],
            mean=self.mean[classes],
            sq_dev=None if self.sq_dev is None else self.sq_dev[classes],
            unit_sum=self.unit_sum[classes],
            classes=base,
            total_classes=self.total_classes or self.num_classes,
        )


def _unit_rows(h64: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norm; all-zero rows stay zero. (b, d) -> (b, d)."""
    norms = torch.linalg.vector_norm(h64, dim=1, keepdim=True)
    return h64 / torch.where(norms > 0, norms, torch.ones_like(norms))


class ClassStats:
    r"""One-pass accumulator of per-class counts, means, squared deviations, unit-vector sums and
    (optionally) the pooled within-class scatter.

    Parameters
    ----------
    num_classes : int
        Number of classes C (labels must lie in ``[0, C)``).
    track_scatter : bool, default=True
        Keep the (d, d) pooled within-class scatter, needed for NC1 when the features are seen once.
    second_moments : bool, default=True
        Keep ``sq_dev``. ``False`` when a :class:`~nclab.metrics.DecisionPass` follows: it computes the
        squared deviations about the *final* means exactly and at no extra cost (the in-memory path).
    device : torch.device or str, optional
        Where the state lives; default: the device of the first batch.

    Examples
    --------
    >>> import torch
    >>> h = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 4.0]])
    >>> y = torch.tensor([0, 0, 1, 1])
    >>> st = ClassStats(2).update(h[:3], y[:3]).update(h[3:], y[3:])
    >>> st.compute().mean.tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """

    def __init__(self, num_classes: int, *, track_scatter: bool = True, second_moments: bool = True,
                 device=None) -> None:
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise LabelError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
        if track_scatter and not second_moments:
            raise ShapeError("track_scatter needs second_moments=True.")
        self.num_classes = num_classes
        self.track_scatter = track_scatter
        self.second_moments = second_moments
        self.device = None if device is None else torch.device(device)
        self.reset()

    # -- state -----------------------------------------------------------------------------
    def _init_state(self, dim: int, device: torch.device, scale: float) -> None:
        C = self.num_classes
        check_alloc(8.0 * (2 * C * dim + 2 * C + (dim * dim if self.track_scatter else 0)),
                    f"per-class statistics of {C:,} classes in dimension {dim:,}")
        self.dim = dim
        self.device = device
        self.scale = scale
        opts = dict(dtype=torch.float64, device=device)
        self.count = torch.zeros(C, **opts)
        self.mean = torch.zeros(C, dim, **opts)
        self.sq_dev = torch.zeros(C, **opts)
        self.unit_sum = torch.zeros(C, dim, **opts)
        self.scatter = torch.zeros(dim, dim, **opts) if self.track_scatter else None

    def reset(self) -> "ClassStats":
        """Forget everything seen so far."""
        self.dim: int | None = None
        self.scale = 1.0
        self.count = self.mean = self.sq_dev = self.unit_sum = self.scatter = None
        return self

    @property
    def is_empty(self) -> bool:
        return self.count is None or float(self.count.sum()) == 0.0

    # -- update / merge --------------------------------------------------------------------
    def update(self, features, labels) -> "ClassStats":
        """Add a batch: ``features`` of shape (b, d), ``labels`` of shape (b,). Returns ``self``."""
        h = check_features(features, "features", dim=self.dim, finite=False)
        y, _ = check_labels(labels, h.shape[0], self.num_classes, device=h.device, require_all=False)
        self._update(h, y)
        return self

    def _update(self, h: torch.Tensor, y: torch.Tensor, name: str = "features", buffer=None) -> None:
        """:meth:`update` on validated input (finiteness is checked on the batch sums); ``buffer``: a
        reusable float64 (>= b, 2d) scratch block (fresh multi-MB blocks per batch cost page faults)."""
        if self.dim is None:
            self._init_state(h.shape[1], self.device or h.device, power_of_two_scale(h))
        y = y.to(self.device)
        block, count, sums, unit = _class_sums(h, y, self.num_classes, self.scale, self.device, buffer)
        self._check_sums(sums, h, name)
        active = (count > 0).nonzero().flatten()
        every = active.numel() == self.num_classes
        if not every:  # only the classes of this batch
            count, sums, unit = count[active], sums[active], unit[active]
        mean_b = sums / count[:, None]
        sq = S = None
        if self.second_moments:
            # per-class sums of squared deviations from the batch means, summed once per row
            if every:
                pos = y
            else:
                pos = torch.full((self.num_classes,), -1, dtype=torch.long, device=self.device)
                pos[active] = torch.arange(active.numel(), device=self.device)
                pos = pos[y]
            r = block[:, : self.dim].sub_(mean_b[pos])
            sq = torch.zeros(active.numel(), dtype=torch.float64, device=self.device)
            sq.index_add_(0, pos, (r * r).sum(1))
            S = r.T @ r if self.track_scatter else None
        self._merge_parts(active, count, mean_b, sq, unit, S)

    def _check_sums(self, sums, h, name) -> None:
        """NaN/inf in any feature reaches its class sum: name the bad values, or the overflow."""
        if not bool(torch.isfinite(sums).all()):
            check_finite(h, name)
            raise NonFiniteError(
                f"{name} overflow after rescaling by 2^{math.frexp(self.scale)[1] - 1}: the batches span more "
                "than ~10^300 in magnitude; rescale them to a common range."
            )

    def _add_sums(self, count, sums, unit, h, name) -> None:
        """Merge one batch given by its per-class counts, float64 sums and unit sums (first moments
        only: the accumulator keeps no second moments)."""
        self._check_sums(sums, h, name)
        active = (count > 0).nonzero().flatten()
        if active.numel() != self.num_classes:
            count, sums, unit = count[active], sums[active], unit[active]
        self._merge_parts(active, count, sums / count[:, None], None, unit, None)

    def merge(self, other: "ClassStats") -> "ClassStats":
        """Merge another accumulator (e.g. from another worker) into this one. Returns ``self``."""
        if not isinstance(other, ClassStats):
            raise TypeError(f"can only merge a ClassStats, got {type(other).__name__}")
        if other.num_classes != self.num_classes:
            raise ShapeError(f"cannot merge ClassStats with {other.num_classes} and {self.num_classes} classes.")
        if other.is_empty:
            return self
        if self.track_scatter and not other.track_scatter:
            raise ShapeError("cannot merge a ClassStats without scatter into one that tracks it.")
        if self.second_moments and not other.second_moments:
            raise ShapeError("cannot merge a ClassStats without second moments into one that keeps them.")
        if self.dim is None:
            self._init_state(other.dim, self.device or other.device, other.scale)
        elif other.dim != self.dim:
            raise ShapeError(f"cannot merge ClassStats of dimension {other.dim} into dimension {self.dim}.")
        dev = self.device
        f = other.scale / self.scale  # a power of two: exact
        active = (other.count > 0).nonzero().flatten().to(dev)
        o = active.to(other.count.device)
        self._merge_parts(
            active,
            other.count[o].to(dev),
            other.mean[o].to(dev) * f,
            other.sq_dev[o].to(dev) * (f * f) if self.second_moments else None,
            other.unit_sum[o].to(dev),
            other.scatter.to(dev) * (f * f) if self.track_scatter else None,
        )
        return self

    def _merge_parts(self, idx, n2, m2, s2, u2, S2) -> None:
        """Chan et al. merge of a partition over the classes ``idx`` (n2 (k,), m2 (k, d), s2 (k,),
        u2 (k, d), S2 (d, d)) into the state."""
        every = idx.numel() == self.num_classes  # idx is sorted: then it is 0..C-1

        def at(t):
            return t if every else t[idx]

        def add(t, v):  # t[idx] += v (index_add_ runs row by row on CPU: 50x slower for a full block)
            if every:
                t += v
            else:
                t.index_put_((idx,), v, accumulate=True)

        n1 = at(self.count)
        n = n1 + n2
        delta = m2 - at(self.mean)
        w = n1 * n2 / n  # n2 > 0 for every class of idx; zero where this side is empty
        add(self.mean, delta * (n2 / n)[:, None])
        if self.second_moments:
            add(self.sq_dev, s2 + w * (delta * delta).sum(1))
        add(self.unit_sum, u2)
        if self.track_scatter:
            self.scatter += S2
            both = (w > 0).nonzero().flatten()
            if both.numel():
                d_a = delta[both]
                self.scatter += d_a.T @ (d_a * w[both, None])
        add(self.count, n2)

    def compute(self, *, classes: str = "all", weighting: str = "classes") -> ClassMoments:
        """Frozen copy of the moments; never mutates the state.

        ``classes="all"`` requires a sample of every class; ``"present"`` returns the moments of the
        classes with samples (``ClassMoments.classes`` holds their original indices). ``weighting``:
        see :meth:`ClassMoments.global_mean`.
        """
        if classes not in ("all", "present"):
            raise ShapeError(f"classes must be 'all' or 'present'; got {classes!r}.")
        if self.is_empty:
            raise LabelError("ClassStats has seen no sample; call update() with at least one batch first.")
        moments = ClassMoments(
            count=self.count.clone(),
            mean=self.mean.clone(),
            sq_dev=self.sq_dev.clone() if self.second_moments else None,
            unit_sum=self.unit_sum.clone(),
            scatter=None if self.scatter is None else self.scatter.clone(),
            scale=self.scale,
            weighting=weighting,
        )
        empty = self.count == 0
        if not bool(empty.any()):
            return moments
        if classes == "all":
            missing = empty.nonzero().flatten()[:5].tolist()
            shown = ", ".join(str(c) for c in missing)
            raise LabelError(
                f"class(es) {shown} have no sample; every one of the num_classes={self.num_classes} classes "
                "needs at least one sample. Use classes='present', pass the number of classes actually "
                "present, or remap labels."
            )
        present = (~empty).nonzero().flatten()
        if present.numel() < 2:
            raise LabelError(f"only {present.numel()} class has samples; neural-collapse metrics need at least 2.")
        return moments.select(present)


def _fill_block(h: torch.Tensor, scale: float, buffer: torch.Tensor) -> torch.Tensor:
    """[h / scale | h / |h|] in float64, written into ``buffer`` (>= b, 2d); zero rows stay zero."""
    b, d = h.shape
    block = buffer[:b]
    h64 = block[:, :d]
    h64.copy_(h)
    if scale != 1.0:
        h64.mul_(1.0 / scale)
    # norms in float32 for float32 rows (a unit row to ~1e-7, as the features themselves), then one
    # float64 reciprocal per row and a multiply
    src = h if (h.dtype == torch.float32 and scale == 1.0) else h64
    inv = torch.linalg.vector_norm(src, dim=1, keepdim=True).to(torch.float64).clamp_min_(1e-300).reciprocal_()
    torch.mul(h64, inv, out=block[:, d:])
    return block


def _class_sums(h: torch.Tensor, y: torch.Tensor, C: int, scale: float, device, buffer=None):
    """The (b, 2d) float64 block [h / scale | unit rows] of a batch (:func:`_fill_block`) and its
    per-class counts (C,), sums (C, d) and unit-row sums (C, d), with one index_add of the block."""
    b, d = h.shape
    if buffer is None or buffer.shape[0] < b or buffer.shape[1] != 2 * d or buffer.device != torch.device(device):
        buffer = torch.empty(b, 2 * d, dtype=torch.float64, device=device)
    block = _fill_block(h.to(device), scale, buffer)
    acc = torch.zeros(C, 2 * d, dtype=torch.float64, device=device).index_add_(0, y, block)
    count = torch.bincount(y, minlength=C).to(torch.float64)
    return block, count, acc[:, :d], acc[:, d:]


def accumulate(H: torch.Tensor, y: torch.Tensor, C: int, *, track_scatter: bool = False, second_moments: bool = True,
               name: str = "features") -> ClassStats:
    """A :class:`ClassStats` over in-memory features, in chunks of about ``_CHUNK_ELEMS`` elements
    through one reused float64 block; ``H`` and ``y`` are validated already."""
    stats = ClassStats(C, track_scatter=track_scatter, second_moments=second_moments, device=H.device)
    rows = min(H.shape[0], max(1, _CHUNK_ELEMS // max(H.shape[1], 1)))
    buffer = torch.empty(rows, 2 * H.shape[1], dtype=torch.float64, device=H.device)  # allocated once
    if second_moments or track_scatter:
        for s in range(0, H.shape[0], rows):
            stats._update(H[s : s + rows], y[s : s + rows], name, buffer)
        return stats
    # first moments only: plain sums need no merge per chunk; the whole set is one batch of ClassStats
    stats._init_state(H.shape[1], H.device, power_of_two_scale(H[:rows]))
    d = H.shape[1]
    acc = torch.zeros(C, 2 * d, dtype=torch.float64, device=H.device)
    for s in range(0, H.shape[0], rows):
        block = _fill_block(H[s : s + rows], stats.scale, buffer)
        acc.index_add_(0, y[s : s + rows], block)
    count = torch.bincount(y, minlength=C).to(torch.float64)
    stats._add_sums(count, acc[:, :d], acc[:, d:], H, name)
    return stats

