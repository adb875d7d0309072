"""Input validation at the public boundary of :mod:`nclab.metrics` (kernels trust their input)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from nclab.errors import LabelError, NonFiniteError, ShapeError

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """Convert a NumPy array / tensor / nested list to a tensor without copying when possible."""
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == np.float16 or x.dtype.kind in "fiub":
            return torch.from_numpy(np.ascontiguousarray(x))
        raise ShapeError(f"{name} has dtype {x.dtype}; pass a numeric array.")
    try:
        return torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ShapeError(f"{name} could not be converted to a tensor ({exc}).") from None


def check_features(x: Any, name: str = "features", *, dim: int | None = None, finite: bool = True) -> torch.Tensor:
    """A floating (n, d) matrix, checked finite unless ``finite=False`` (the caller then checks the
    float64 class sums, which are finite exactly when the features are); integers become float64."""
    t = as_tensor(x, name)
    if t.ndim != 2:
        raise ShapeError(
            f"{name} must be a 2-D (n_samples, dim) array; got shape {tuple(t.shape)}. "
            "Flatten per-sample features to one row each."
        )
    if t.shape[0] == 0:
        raise ShapeError(f"{name} has no rows; pass at least one sample.")
    if t.dtype not in _FLOAT_DTYPES:
        t = t.to(torch.float64)
    if dim is not None and t.shape[1] != dim:
        raise ShapeError(f"{name} has dimension {t.shape[1]} but {dim} was expected.")
    if finite:
        check_finite(t, name)
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise :class:`NonFiniteError` if ``t`` holds NaN or inf."""
    if not t.is_floating_point():
        return
    if t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64):
        finite = bool(np.isfinite(t.numpy()).all())  # NumPy: a fraction of PyTorch's overhead when small
    else:
        finite = bool(torch.isfinite(t).all())
    if not finite:
        bad = int((~torch.isfinite(t)).sum())
        raise NonFiniteError(
            f"{name} contains {bad} NaN/inf value(s); remove or fix those samples "
            "(a diverged model or an overflow in float16 are the usual causes)."
        )


def check_labels(
    y: Any,
    n: int,
    num_classes: int | None,
    name: str = "labels",
    *,
    device: torch.device | None = None,
    require_all: bool = True,
) -> tuple[torch.Tensor, int]:
    """Integer labels of length ``n`` in ``[0, num_classes)``; returns (labels, num_classes)."""
    t = as_tensor(y, name)
    if t.ndim != 1:
        raise ShapeError(f"{name} must be 1-D with one label per sample; got shape {tuple(t.shape)}.")
    if t.shape[0] != n:
        raise ShapeError(f"{name} has {t.shape[0]} entries but the features have {n} rows; they must match.")
    if t.is_floating_point():
        if not bool((t == t.round()).all()):
            raise LabelError(f"{name} must be integers; got non-integer values.")
    elif t.dtype == torch.bool:
        raise LabelError(f"{name} must be integer class indices, not booleans.")
    t = t.to(device=device, dtype=torch.long)
    host = t.device.type == "cpu"  # NumPy's reductions cost a fraction of PyTorch's on small arrays
    if host:
        tn = t.numpy()
        lo, hi = int(tn.min()), int(tn.max())
    else:
        lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one reduction, one host transfer
    if lo < 0:
        raise LabelError(f"{name} must be >= 0; got min label {lo}. Remap the labels to 0..C-1.")
    if num_classes is None:
        num_classes = hi + 1
    elif hi >= num_classes:
        raise LabelError(
            f"{name} must lie in [0, num_classes={num_classes}); got max label {hi}. "
            f"Pass num_classes={hi + 1} or remap the labels."
        )
    if num_classes < 2:
        raise LabelError(f"neural-collapse metrics need at least 2 classes; {name} has {num_classes}.")
    if require_all:
        counts = np.bincount(tn, minlength=num_classes) if host else torch.bincount(t, minlength=num_classes)
        if not bool(counts.all()):
            empty = np.flatnonzero(counts == 0).tolist() if host else (counts == 0).nonzero().flatten().tolist()
            shown = ", ".join(str(c) for c in empty[:5])
            more = "" if len(empty) <= 5 else f" (and {len(empty) - 5} more)"
            raise LabelError(
                f"class(es) {shown}{more} have no sample in {name}; every class needs at least one "
                "sample. Pass num_classes matching the labels present, or remap the labels."
            )
    return t, num_classes


def check_classifier(
    weights: Any, bias: Any, num_classes: int, dim: int, *, device: torch.device
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Classifier weights (C, d) and bias (C,), both float64 on ``device``."""
    if weights is None:
        if bias is not None:
            raise ShapeError("bias was given without weights; pass the classifier weights (C, d) too.")
        return None, None
    w = as_tensor(weights, "weights")
    if w.ndim != 2 or w.shape != (num_classes, dim):
        raise ShapeError(
            f"weights must have shape (num_classes, dim) = ({num_classes}, {dim}); got {tuple(w.shape)}. "
            "Pass the last linear layer's weight (nn.Linear.weight has this layout)."
        )
    w = w.to(device=device, dtype=torch.float64)
    check_finite(w, "weights")
    b = None
    if bias is not None:
        b = as_tensor(bias, "bias")
        if b.ndim != 1 or b.shape[0] != num_classes:
            raise ShapeError(f"bias must have shape ({num_classes},); got {tuple(b.shape)}.")
        b = b.to(device=device, dtype=torch.float64)
        check_finite(b, "bias")
    return w, b
