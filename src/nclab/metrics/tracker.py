r"""Collapse metrics fed batch by batch, alongside an evaluation forward pass.

:class:`CollapseTracker` has two modes:

* ``keep_features=True`` (default): the batches' features are kept (n x d, in their own dtype, on
  their device) and :meth:`CollapseTracker.compute` runs the exact two-pass engine of
  :func:`~nclab.metrics.collapse_metrics` over them. This is the only way to get NC4 / nearest-class-
  centre accuracy from a single forward pass: the NCC rule compares every sample with the *final*
  class means, which are unknown while the pass runs, and no statistic of bounded size determines
  argmin_c ||h_i - mu_c|| for every i.
* ``keep_features=False``: memory O(C d + d^2), independent of n. Everything is computed from the
  streaming :class:`~nclab.metrics.ClassStats` (NC1 from the accumulated d x d scatter) plus what the
  classifier gives per batch (accuracy, margins, pairwise margins); NC4 and ncc_accuracy are then
  absent, and memorization is available when the test class means are passed in advance
  (``reference_means``, e.g. from a tracker run over the test set first).
"""

from __future__ import annotations

import torch

from nclab.errors import ShapeError
from nclab.metrics._validate import check_classifier, check_features, check_labels
from nclab.metrics.decisions import DecisionPass
from nclab.metrics.functional import collapse_metrics, metrics_from_moments
from nclab.metrics.noise import noisy_distance_sum
from nclab.metrics.registry import Metrics
from nclab.metrics.stats import ClassStats

__all__ = ["CollapseTracker"]


class CollapseTracker:
    """Accumulate features batch by batch and compute every collapse metric at the end.

    Parameters
    ----------
    num_classes : int
    weights : Tensor of shape (C, d), optional
    bias : Tensor of shape (C,), optional
    keep_features : bool, default=True
        See the module docstring: exact NC4 needs the features; False gives O(d^2 + C d) memory.
    reference_means : Tensor of shape (C, d), optional
        Test-set class means for streaming memorization (``keep_features=False``).
    pairwise_limit : int, default=2048
    classes : {"present", "all"}, optional
        As in :func:`~nclab.metrics.collapse_metrics`.
    weighting : {"classes", "frequency"}, default="classes"
        The global mean, as in :func:`~nclab.metrics.collapse_metrics`.
    sync : bool, default=True
        Under an initialised ``torch.distributed`` process group, :meth:`compute` reduces every rank's
        statistics exactly (:mod:`nclab.metrics.distributed`): each rank returns the metrics of the
        union of the shards. ``process_group`` picks the group (default: the world).

    Examples
    --------
    >>> import torch
    >>> tr = CollapseTracker(3)
    >>> for _ in range(2):
    ...     _ = tr.update(torch.eye(3).repeat(2, 1), torch.arange(3).repeat(2))
    >>> tr.compute()["nc1"]
    0.0
    """

    def __init__(
        self,
        num_classes: int,
        *,
        weights=None,
        bias=None,
        keep_features: bool = True,
        reference_means=None,
        pairwise_limit: int = 2048,
        tile: int = 2048,
        classes: str | None = None,
        sync: bool = True,
        process_group=None,
        weighting: str = "classes",
    ) -> None:
        self.num_classes = num_classes
        self._weights = weights
        self._bias = bias
        self.keep_features = keep_features
        self.pairwise_limit = pairwise_limit
        self.tile = tile
        self.classes = classes
        self.sync = sync
        self.weighting = weighting
        self.process_group = process_group
        self._reference_means = reference_means
        self.reset()

    def reset(self) -> "CollapseTracker":
        self._feats: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._true: list[torch.Tensor] = []
        self._stats = ClassStats(self.num_classes, track_scatter=True)
        self._dec: DecisionPass | None = None
        self._mem = 0.0
        self._noisy = 0
        self._n = 0
        return self

    def update(self, features, labels, true_labels=None) -> "CollapseTracker":
        """Add a batch of features (b, d) with their labels (b,) and optional clean labels (b,)."""
        # kept features are checked finite once, on their float64 class sums, when computing
        h = check_features(features, finite=not self.keep_features)
        y, _ = check_labels(labels, h.shape[0], self.num_classes, device=h.device, require_all=False)
        t = None
        if true_labels is not None:
            t, _ = check_labels(true_labels, h.shape[0], self.num_classes, "true_labels", device=h.device, require_all=False)
        if self.keep_features:
            self._feats.append(h)
            self._labels.append(y)
            if t is not None:
                self._true.append(t)
            elif self._true:
                raise ShapeError("true_labels were given for some batches but not for this one.")
            return self
        self._stats._update(h, y)
        if self._weights is not None:
            if self._dec is None:
                W, b = check_classifier(self._weights, self._bias, self.num_classes, h.shape[1], device=h.device)
                self._dec = DecisionPass.classifier(W, b, pairwise_limit=self.pairwise_limit)
            self._dec._update(h, y)
        if t is not None and self._reference_means is not None:
            ref = torch.as_tensor(self._reference_means, dtype=torch.float64, device=h.device)
            total, count = noisy_distance_sum(h, y, t, ref)
            self._mem += float(total)
            self._noisy += count
        self._n += h.shape[0]
        return self

    @property
    def features(self) -> torch.Tensor:
        """The kept features (only with ``keep_features=True``)."""
        if not self.keep_features:
            raise ShapeError("this tracker does not keep features (keep_features=False).")
        return torch.cat(self._feats)

    @property
    def labels(self) -> torch.Tensor:
        return torch.cat(self._labels)

    def compute(self, **extra) -> Metrics:
        """Every metric of what was seen; ``extra`` (e.g. ``test_features``, ``test_labels``,
        ``ood_features``) is forwarded to :func:`~nclab.metrics.collapse_metrics`."""
        from nclab.metrics.distributed import is_distributed

        distributed = self.sync and is_distributed(self.process_group)
        if distributed:
            return self._compute_distributed(extra)
        if self.keep_features:
            if not self._feats:
                raise ShapeError("CollapseTracker has seen no batch; call update() first.")
            true = torch.cat(self._true) if self._true else None
            return collapse_metrics(
                self.features,
                self.labels,
                weights=self._weights,
                bias=self._bias,
                num_classes=self.num_classes,
                classes=self.classes,
                true_labels=true if "test_features" in extra else None,
                tile=self.tile,
                pairwise_limit=self.pairwise_limit,
                weighting=self.weighting,
                **extra,
            )
        classes = "present" if self.classes is None else self.classes
        mom = self._stats.compute(classes=classes, weighting=self.weighting)
        dec = None if self._dec is None else self._dec.compute()
        out = metrics_from_moments(mom, weights=None if dec is None else self._dec.W, decisions=None, tile=self.tile)
        if dec is not None:
            from nclab.metrics.classifier import decision_metrics

            out.update(decision_metrics(dec, self._dec.W))
        if self._reference_means is not None and self._noisy:
            out["memorization"] = self._mem
            out["memorization_mean"] = self._mem / self._noisy
        return Metrics(out, out.notes)

    def _compute_distributed(self, extra) -> Metrics:
        """Every rank's shard reduced exactly: ClassStats all-reduced, then (kept features) one
        DecisionPass per rank against the global means, all-reduced in turn."""
        from nclab.metrics.distributed import all_reduce_decisions, all_reduce_stats
        from nclab.metrics.classifier import decision_metrics

        if extra:
            raise ShapeError(f"CollapseTracker under torch.distributed computes the tracked features only; pass "
                             f"{', '.join(sorted(extra))} to collapse_metrics on one rank instead.")
        group = self.process_group
        classes = "present" if self.classes is None else self.classes
        if not self.keep_features:
            all_reduce_stats(self._stats, group)
            mom = self._stats.compute(classes=classes, weighting=self.weighting)
            W = None
            if self._dec is not None:
                all_reduce_decisions(self._dec, group)
                W = self._dec.W
            out = metrics_from_moments(mom, weights=W, tile=self.tile)
            if W is not None:
                out.update(decision_metrics(self._dec.compute(), W))
            return Metrics(out, out.notes)
        stats = ClassStats(self.num_classes, track_scatter=False, second_moments=True)
        H = torch.cat(self._feats) if self._feats else None
        if H is not None:
            stats._update(H, torch.cat(self._labels))
        all_reduce_stats(stats, group)
        mom = stats.compute(classes=classes, weighting=self.weighting)
        dp = DecisionPass(mom, self._weights, self._bias, pairwise_limit=self.pairwise_limit)
        if H is not None:
            dp._update(H, torch.cat(self._labels))
        all_reduce_decisions(dp, group)
        return metrics_from_moments(mom, weights=self._weights, decisions=dp.compute(), tile=self.tile)
