"""Input validation at the public boundary of :mod:`nclab.metrics` (kernels trust their input)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from nclab.errors import LabelError, NonFiniteError, ShapeError

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def as_tensor(x: Any, name: str) -> torch.Tensor:
    """Convert a NumPy array / tensor / nested list to a dense real tensor without copying when
    possible; sparse, quantized and complex input is refused with the fix in one line."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if t.layout != torch.strided:
            raise ShapeError(f"{name} is a sparse tensor ({t.layout}); pass {name}.to_dense().")
        if t.is_quantized:
            raise ShapeError(f"{name} is a quantized tensor; pass {name}.dequantize().")
        if t.is_complex():
            raise ShapeError(f"{name} is complex; pass real features (e.g. torch.view_as_real({name}).flatten(1)).")
        return t
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "c":
            raise ShapeError(f"{name} is complex ({x.dtype}); pass real features.")
        if x.dtype == np.float16 or x.dtype.kind in "fiub":
            with warnings.catch_warnings():  # read-only (memory-mapped) arrays: nclab never writes to its input
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                return torch.from_numpy(np.ascontiguousarray(x))
        raise ShapeError(f"{name} has dtype {x.dtype}; pass a numeric array.")
    if type(x).__module__.startswith("scipy.sparse"):
        raise ShapeError(f"{name} is a SciPy sparse matrix; pass {name}.toarray().")
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ShapeError(f"{name} could not be converted to a tensor ({exc}).") from None
    return as_tensor(t, name)


def check_alloc(nbytes: float, what: str) -> None:
    """Refuse an allocation that cannot fit in this machine's memory, before making it."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every platform
        return
    if nbytes > total:
        raise ShapeError(
            f"{what} would need {nbytes / 2**30:,.1f} GiB but this machine has {total / 2**30:,.1f} GiB; "
            "check the number of classes and the feature dimension."
        )


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
    if t.shape[1] == 0:
        raise ShapeError(f"{name} has zero width (shape {tuple(t.shape)}); pass features with at least one dimension.")
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
        missing = missing_classes(t, num_classes)
        if missing:
            shown = ", ".join(str(c) for c in missing[:5])
            more = "" if len(missing) <= 5 else f" (and {len(missing) - 5} more)"
            raise LabelError(
                f"class(es) {shown}{more} have no sample in {name}; every class needs at least one "
                "sample. Pass num_classes matching the labels present, remap the labels, or use "
                "classes='present'."
            )
    return t, num_classes


def present_classes(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Sorted class indices with at least one sample. Memory O(min(C, n)): with far more classes than
    samples the labels are sorted instead of counted, so no C-sized array is made."""
    if num_classes <= 4 * y.numel() + 1024:
        return (torch.bincount(y, minlength=num_classes) > 0).nonzero().flatten()
    return torch.unique(y)


def missing_classes(y: torch.Tensor, num_classes: int) -> list[int]:
    """Class indices without a sample (the first few hundred at most)."""
    present = present_classes(y, num_classes)
    if present.numel() == num_classes:
        return []
    if num_classes > 4 * y.numel() + 1024:  # report the first missing ones without a C-sized array
        have = set(present[:1000].tolist())
        return [c for c in range(min(num_classes, 1200)) if c not in have][:200]
    mask = torch.ones(num_classes, dtype=torch.bool, device=y.device)
    mask[present] = False
    return mask.nonzero().flatten()[:200].tolist()


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
