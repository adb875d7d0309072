r"""Streaming per-class statistics: the one-pass, mergeable accumulator behind every NC metric.

For features :math:`h_i \in \mathbb{R}^d` with labels :math:`y_i \in \{0..C-1\}` the state is, in
float64 on the features' device,

* ``count``  (C,)   :math:`n_c`,
* ``mean``   (C, d) :math:`\mu_c`,
* ``sq_dev`` (C,)   :math:`\sum_{i: y_i=c} \|h_i-\mu_c\|^2`,
* ``scatter`` (d, d) the pooled within-class scatter :math:`\sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`
  (optional: ``track_scatter=False`` keeps memory at O(C d)),
* ``unit_sum`` (C, d) :math:`\sum_{i: y_i=c} h_i/\|h_i\|` (for the cosine measures of Pan, 2023).

Batches are merged with the exact parallel-variance formula of Chan, Golub & LeVeque (1979), as
``torchmetrics`` does for Pearson's r: merging two partitions with counts :math:`n_1, n_2` and mean
difference :math:`\delta_c` adds :math:`\frac{n_1 n_2}{n_1+n_2}\delta_c\delta_c^\top` per class. The
result is independent of batch order and batch size up to rounding, and an empty accumulator is the
identity of :meth:`ClassStats.merge`.

Cost of :meth:`ClassStats.update` on a batch of b rows: O(b d) plus O(b d^2) for the scatter
(the cross term touches only the classes present in the batch, at most b of them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nclab.errors import LabelError, ShapeError
from nclab.metrics._validate import check_features, check_labels

__all__ = ["ClassStats", "ClassMoments"]


@dataclass(frozen=True)
class ClassMoments:
    """Frozen first and second per-class moments (float64). Produced by :meth:`ClassStats.compute`.

    Attributes
    ----------
    count : Tensor of shape (C,)
    mean : Tensor of shape (C, d)
    sq_dev : Tensor of shape (C,)
        Sum over the class of squared distances to its mean.
    unit_sum : Tensor of shape (C, d)
        Sum over the class of the L2-normalised features (zero features contribute 0).
    scatter : Tensor of shape (d, d) or None
        Pooled within-class scatter (not divided by n).
    """

    count: torch.Tensor
    mean: torch.Tensor
    sq_dev: torch.Tensor
    unit_sum: torch.Tensor
    scatter: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return int(self.count.shape[0])

    @property
    def dim(self) -> int:
        return int(self.mean.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.count.sum().item())


def _unit_rows(h64: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norm; all-zero rows stay zero. (b, d) -> (b, d)."""
    norms = torch.linalg.vector_norm(h64, dim=1, keepdim=True)
    return h64 / torch.where(norms > 0, norms, torch.ones_like(norms))


class ClassStats:
    r"""One-pass accumulator of per-class counts, means, within-class scatter and unit-vector sums.

    Parameters
    ----------
    num_classes : int
        Number of classes C (labels must lie in ``[0, C)``).
    track_scatter : bool, default=True
        Keep the (d, d) pooled within-class scatter, needed for NC1 when the features are streamed.
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

    def __init__(self, num_classes: int, *, track_scatter: bool = True, device=None) -> None:
        if not (isinstance(num_classes, int) and num_classes >= 2):
            raise LabelError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
        self.num_classes = num_classes
        self.track_scatter = track_scatter
        self.device = None if device is None else torch.device(device)
        self.dim: int | None = None
        self.count: torch.Tensor | None = None
        self.mean: torch.Tensor | None = None
        self.sq_dev: torch.Tensor | None = None
        self.unit_sum: torch.Tensor | None = None
        self.scatter: torch.Tensor | None = None

    # -- state -----------------------------------------------------------------------------
    def _init_state(self, dim: int, device: torch.device) -> None:
        self.dim = dim
        self.device = device
        opts = dict(dtype=torch.float64, device=device)
        C = self.num_classes
        self.count = torch.zeros(C, **opts)
        self.mean = torch.zeros(C, dim, **opts)
        self.sq_dev = torch.zeros(C, **opts)
        self.unit_sum = torch.zeros(C, dim, **opts)
        self.scatter = torch.zeros(dim, dim, **opts) if self.track_scatter else None

    def reset(self) -> "ClassStats":
        """Forget everything seen so far."""
        self.dim = None
        self.count = self.mean = self.sq_dev = self.unit_sum = self.scatter = None
        return self

    @property
    def is_empty(self) -> bool:
        return self.count is None or float(self.count.sum()) == 0.0

    # -- update / merge --------------------------------------------------------------------
    def update(self, features, labels) -> "ClassStats":
        """Add a batch: ``features`` of shape (b, d), ``labels`` of shape (b,). Returns ``self``."""
        h = check_features(features, "features", dim=self.dim)
        y, _ = check_labels(labels, h.shape[0], self.num_classes, device=h.device, require_all=False)
        if self.dim is None:
            self._init_state(h.shape[1], self.device or h.device)
        h64 = h.to(device=self.device, dtype=torch.float64)
        y = y.to(self.device)
        part = _batch_moments(h64, y, self.num_classes, self.track_scatter)
        self._merge_parts(*part)
        return self

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
        if self.dim is None:
            self._init_state(other.dim, self.device or other.device)
        elif other.dim != self.dim:
            raise ShapeError(f"cannot merge ClassStats of dimension {other.dim} into dimension {self.dim}.")
        dev = self.device
        self._merge_parts(
            other.count.to(dev),
            other.mean.to(dev),
            other.sq_dev.to(dev),
            other.unit_sum.to(dev),
            other.scatter.to(dev) if self.track_scatter else None,
        )
        return self

    def _merge_parts(self, n2, m2, s2, u2, S2) -> None:
        """Chan et al. merge of a partition (n2, m2, s2, u2, S2) into the state."""
        n1 = self.count
        n = n1 + n2
        safe = torch.where(n > 0, n, torch.ones_like(n))
        delta = m2 - self.mean  # (C, d)
        w = n1 * n2 / safe  # (C,), zero where either side is empty
        self.mean += delta * (n2 / safe)[:, None]
        self.sq_dev += s2 + w * (delta * delta).sum(1)
        self.unit_sum += u2
        if self.track_scatter:
            self.scatter += S2
            active = (w > 0).nonzero().flatten()
            if active.numel():
                d_a = delta[active]
                self.scatter += d_a.T @ (d_a * w[active, None])
        self.count = n

    def compute(self) -> ClassMoments:
        """Frozen copy of the moments; never mutates the state."""
        if self.is_empty:
            raise LabelError("ClassStats has seen no sample; call update() with at least one batch first.")
        empty = (self.count == 0).nonzero().flatten()
        if empty.numel():
            shown = ", ".join(str(int(c)) for c in empty[:5])
            raise LabelError(
                f"class(es) {shown} have no sample; every one of the num_classes={self.num_classes} classes "
                "needs at least one sample. Pass the number of classes actually present or remap labels."
            )
        return ClassMoments(
            count=self.count.clone(),
            mean=self.mean.clone(),
            sq_dev=self.sq_dev.clone(),
            unit_sum=self.unit_sum.clone(),
            scatter=None if self.scatter is None else self.scatter.clone(),
        )


def _batch_moments(h64: torch.Tensor, y: torch.Tensor, C: int, with_scatter: bool):
    """Moments of one batch in float64: (count (C,), mean (C,d), sq_dev (C,), unit_sum (C,d), scatter)."""
    d = h64.shape[1]
    count = torch.bincount(y, minlength=C).to(h64.dtype)
    sums = torch.zeros(C, d, dtype=h64.dtype, device=h64.device).index_add_(0, y, h64)
    mean = sums / torch.where(count > 0, count, torch.ones_like(count))[:, None]
    r = h64 - mean[y]
    sq_dev = torch.zeros(C, dtype=h64.dtype, device=h64.device).index_add_(0, y, (r * r).sum(1))
    unit_sum = torch.zeros_like(sums).index_add_(0, y, _unit_rows(h64))
    scatter = r.T @ r if with_scatter else None
    return count, mean, sq_dev, unit_sum, scatter
