"""From kept features or merged class statistics (plus a decision pass) to the metric dict.

``classes="present"`` keeps the classes that have at least one sample (the metrics core's
``classes="present"``: re-indexed rows with the matching rows of W and b, ``num_classes_present`` in
the result); ``classes="all"`` is strict.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from nclab.errors import SpecError
from nclab.metrics import ClassStats, DecisionPass, collapse_metrics, metrics_from_moments

CLASSES = ("present", "all")


def check_classes(classes: str) -> None:
    if classes not in CLASSES:
        raise SpecError(f"classes must be 'present' or 'all'; got {classes!r}.")


def metrics_of_features(
    features: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    *,
    weights=None,
    bias=None,
    num_classes: int | None = None,
    classes: str = "present",
    **extra,
) -> dict[str, Any]:
    """Metrics of in-memory features given as chunks (concatenated once when there are several)."""
    check_classes(classes)
    H = features[0] if len(features) == 1 else torch.cat(list(features))
    y = labels[0] if len(labels) == 1 else torch.cat(list(labels))
    out = dict(collapse_metrics(H, y, weights=weights, bias=bias, num_classes=num_classes, classes=classes, **extra))
    out["num_samples"] = int(H.shape[0])
    if "num_classes_present" in out:
        out["num_classes"] = int(num_classes if num_classes is not None else
                                 (weights.shape[0] if weights is not None else int(torch.as_tensor(y).max()) + 1))
    return out


def moments_of(stats: ClassStats, classes: str, weighting: str = "classes"):
    check_classes(classes)
    return stats.compute(classes=classes, weighting=weighting)


def decision_pass(moments, weights=None, bias=None) -> DecisionPass:
    return DecisionPass(moments, weights, bias)


def metrics_of_stats(stats: ClassStats, *, weights=None, bias=None, classes: str = "present",
                     moments=None, decisions=None) -> dict[str, Any]:
    """Every metric the merged moments (and a decision pass over the same samples) determine."""
    moments = moments if moments is not None else moments_of(stats, classes)
    out: dict[str, Any] = dict(metrics_from_moments(moments, weights=weights, decisions=decisions))
    out["num_samples"] = moments.num_samples
    if moments.classes is not None:
        out["num_classes"] = stats.num_classes
        out["num_classes_present"] = moments.num_classes
    return out
