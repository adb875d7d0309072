"""From kept features or merged class statistics to the metric dict, over all or the present classes.

``classes="present"`` keeps the classes that have at least one sample, re-indexed 0..C'-1 in
increasing order, with the matching rows of the classifier W and bias b; every metric is then the
strict metric of that re-indexed problem (the test in ``tests/measure/test_present.py`` checks
exactly this). The result says how many classes were present (``num_classes_present``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from nclab.errors import LabelError, ShapeError, SpecError
from nclab.metrics import ClassMoments, ClassStats, collapse_metrics, metrics_from_moments

CLASSES = ("present", "all")


def check_classes(classes: str) -> None:
    if classes not in CLASSES:
        raise SpecError(f"classes must be 'present' or 'all'; got {classes!r}.")


def _labels_1d(y: torch.Tensor, name: str) -> torch.Tensor:
    if y.dim() != 1:
        raise ShapeError(f"{name} must have shape (n,); got {tuple(y.shape)}.")
    if y.is_floating_point():
        if not bool(torch.all(y == torch.round(y))):
            raise LabelError(f"{name} must be integers; got non-integer values.")
    return y.long()


def present_index(count: torch.Tensor) -> torch.Tensor:
    """Indices (C',) of the classes with at least one sample, ascending."""
    idx = (count > 0).nonzero().flatten()
    if idx.numel() < 2:
        raise LabelError(
            f"only {idx.numel()} class(es) have samples; collapse metrics need at least 2 classes with samples."
        )
    return idx


def _remap(y: torch.Tensor, lookup: torch.Tensor, name: str) -> torch.Tensor:
    z = lookup[y]
    if bool((z < 0).any()):
        bad = sorted({int(c) for c in y[z < 0][:5]})
        raise LabelError(
            f"{name} hold class(es) {bad} with no training sample; with classes='present' every {name[:-1]} "
            "must be a present class. Pass classes='all' (strict) or drop those samples."
        )
    return z


def metrics_of_features(
    features: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    *,
    weights=None,
    bias=None,
    num_classes: int | None = None,
    classes: str = "present",
    test_features=None,
    test_labels=None,
    true_labels=None,
    ood_features=None,
) -> dict[str, Any]:
    """Metrics of in-memory features given as chunks (concatenated once when there are several)."""
    check_classes(classes)
    H = features[0] if len(features) == 1 else torch.cat([f.reshape(f.shape[0], -1) for f in features])
    y = labels[0] if len(labels) == 1 else torch.cat(list(labels))
    y = _labels_1d(torch.as_tensor(y), "labels")
    W = None if weights is None else torch.as_tensor(weights)
    b = None if bias is None else torch.as_tensor(bias)
    C = num_classes if num_classes is not None else (W.shape[0] if W is not None else None)
    extra: dict[str, Any] = dict(test_features=test_features, test_labels=test_labels, true_labels=true_labels,
                                 ood_features=ood_features)
    out: dict[str, Any]
    if classes == "all" or y.numel() == 0 or int(y.min()) < 0:
        # strict: every class needs a sample (the metrics layer says so in one line)
        out = dict(collapse_metrics(H, y, weights=W, bias=b, num_classes=C, **extra))
        out["num_samples"] = int(y.shape[0])
        return out
    C = C if C is not None else int(y.max()) + 1
    if int(y.max()) >= C:
        raise LabelError(f"labels must lie in [0, num_classes={C}); got max label {int(y.max())}. "
                         f"Pass num_classes={int(y.max()) + 1} or remap the labels.")
    count = torch.bincount(y, minlength=C)
    idx = present_index(count)
    lookup = torch.full((C,), -1, dtype=torch.long)
    lookup[idx] = torch.arange(idx.numel())
    lookup = lookup.to(y.device)
    if W is not None:
        if W.dim() != 2 or W.shape[0] != C:
            raise ShapeError(f"weights must have shape (num_classes={C}, d); got {tuple(W.shape)}.")
        W = W[idx.to(W.device)]
    if b is not None:
        if b.shape != (C,):
            raise ShapeError(f"bias must have shape (num_classes={C},); got {tuple(b.shape)}.")
        b = b[idx.to(b.device)]
    if test_labels is not None:
        extra["test_labels"] = _remap(_labels_1d(torch.as_tensor(test_labels), "test_labels").to(y.device), lookup,
                                      "test_labels")
    if true_labels is not None:
        extra["true_labels"] = _remap(_labels_1d(torch.as_tensor(true_labels), "true_labels").to(y.device), lookup,
                                      "true_labels")
    out = dict(collapse_metrics(H, lookup[y], weights=W, bias=b, num_classes=int(idx.numel()), **extra))
    out["num_samples"] = int(y.shape[0])
    out["num_classes"] = C
    out["num_classes_present"] = int(idx.numel())
    return out


def moments_of(stats: ClassStats, classes: str) -> tuple[ClassMoments, torch.Tensor | None]:
    """The (re-indexed when ``classes='present'``) moments of ``stats`` and the present-class index."""
    check_classes(classes)
    if classes == "all" or stats.is_empty:
        return stats.compute(), None
    idx = present_index(stats.count)
    m = ClassMoments(
        count=stats.count[idx].clone(), mean=stats.mean[idx].clone(), sq_dev=stats.sq_dev[idx].clone(),
        unit_sum=stats.unit_sum[idx].clone(), scatter=None if stats.scatter is None else stats.scatter.clone(),
    )
    return m, idx


def metrics_of_stats(stats: ClassStats, *, weights=None, bias=None, classes: str = "present") -> dict[str, Any]:
    """Every metric the merged class moments determine (the statistics needing the final means
    per sample, NC4 / NCC accuracy / accuracy / margins, come from a second pass)."""
    moments, idx = moments_of(stats, classes)
    W = None
    if weights is not None:
        W = weights.to(device=moments.mean.device, dtype=torch.float64)
        if idx is not None:
            W = W[idx.to(W.device)]
    out: dict[str, Any] = dict(metrics_from_moments(moments, weights=W))
    out["num_samples"] = moments.num_samples
    if idx is not None:
        out["num_classes"] = stats.num_classes
        out["num_classes_present"] = int(idx.numel())
    return out
