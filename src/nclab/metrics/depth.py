r"""Depth-wise collapse: the epsilon-effective depth (Galanti et al. 2022; Pan 2023, seed 003 Def. 3.2.2)."""

from __future__ import annotations

from typing import Any, Sequence

from nclab.errors import ShapeError
from nclab.metrics.classifier import ncc_accuracy

__all__ = ["effective_depth"]


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
