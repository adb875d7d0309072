"""From (features, labels) to validated tensors, the classes measured, moments and decisions.

The one route every front door takes (:func:`~nclab.metrics.collapse_metrics`, the single-metric
functions, :class:`~nclab.metrics.CollapseTracker`): validate, choose the classes (all, or those with
samples), accumulate :class:`~nclab.metrics.ClassStats`, then run one
:class:`~nclab.metrics.DecisionPass` for whatever needs the final means.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from nclab.errors import LabelError, ShapeError
from nclab.metrics._validate import check_classifier, check_features, check_labels, missing_classes, present_classes  # noqa: F401
from nclab.metrics.decisions import DecisionPass
from nclab.metrics.stats import ClassMoments, accumulate

CLASSES = ("present", "all")


def prepare(features, labels, num_classes=None, name: str = "features", label_name: str = "labels"):
    """Validated features (n, d) (finiteness is checked on the class sums), labels (n,) and C."""
    H = check_features(features, name, finite=False)
    y, C = check_labels(labels, H.shape[0], num_classes, label_name, device=H.device, require_all=False)
    return H, y, C


def select_classes(y: torch.Tensor, C: int, classes: str | None, name: str = "labels"):
    """``(labels re-indexed to the classes measured, number of them, their original indices or None)``.

    ``classes="all"`` requires a sample of every class; ``"present"`` (the default, ``None``) keeps
    the classes with samples. Memory O(min(C, n)): no C-sized array when C far exceeds n."""
    classes = "present" if classes is None else classes
    if classes not in CLASSES:
        raise ShapeError(f"classes must be 'present' or 'all'; got {classes!r}.")
    if classes == "all":
        check_labels(y, y.shape[0], C, name, device=y.device, require_all=True)
        return y, C, None
    present = present_classes(y, C)
    if present.numel() == C:
        return y, C, None
    if present.numel() < 2:
        raise LabelError(f"{name} hold {present.numel()} distinct class; neural-collapse metrics need at least 2.")
    return torch.searchsorted(present, y), int(present.numel()), present


def moments_of(H, y, C, *, present=None, total=None, track_scatter=False, second_moments=True,
               name="features", weighting="classes") -> ClassMoments:
    """Moments of validated in-memory features whose labels index the classes measured
    (``second_moments=False``: first moments only; a decision pass supplies ``sq_dev``)."""
    mom = accumulate(H, y, C, track_scatter=track_scatter, second_moments=second_moments, name=name).compute(
        weighting=weighting)
    if present is not None:
        mom = replace(mom, classes=present, total_classes=total)
    return mom


def decisions_of(mom: ClassMoments, H, y, *, weights=None, bias=None, ncc=True, nc1=True, pairwise_limit=2048,
                 true=None, reference_means=None):
    """One :class:`DecisionPass` over validated in-memory features (labels index the moments' rows)."""
    dp = DecisionPass(mom, weights, bias, ncc=ncc, nc1=nc1, pairwise_limit=pairwise_limit,
                      reference_means=reference_means)
    dp._update(H, y, true, local=True)
    return dp.compute()


def complete(mom: ClassMoments, dec) -> ClassMoments:
    """The moments with the decision pass's squared deviations when they had none."""
    return mom if mom.sq_dev is not None or dec.sq_dev is None else replace(mom, sq_dev=dec.sq_dev)


def measured(features, labels, num_classes=None, classes=None, *, name="features", label_name="labels",
             weights=None, bias=None, track_scatter=False, second_moments=True):
    """Validate and accumulate: ``(H, y_local, C_total, moments, W, b)``."""
    H, y, C = prepare(features, labels, num_classes, name, label_name)
    W, b = check_classifier(weights, bias, C, H.shape[1], device=H.device)
    y_loc, P, present = select_classes(y, C, classes, label_name)
    mom = moments_of(H, y_loc, P, present=present, total=C, track_scatter=track_scatter,
                     second_moments=second_moments, name=name)
    return H, y_loc, C, mom, W, b


__all__ = ["prepare", "select_classes", "moments_of", "decisions_of", "measured", "complete", "missing_classes"]
