"""nclab: measure, model and reproduce neural collapse.

Top-level shortcuts are imported lazily so that ``import nclab`` (and ``nclab --help``) stays light:

>>> import nclab
>>> nclab.collapse_metrics  # doctest: +ELLIPSIS
<function collapse_metrics at ...>
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "measure": ("nclab.measure", None),  # the package, callable as measure(model, loader)
    "collapse_metrics": ("nclab.metrics", "collapse_metrics"),
    "ClassStats": ("nclab.metrics", "ClassStats"),
    "CollapseTracker": ("nclab.metrics", "CollapseTracker"),
    "load_features": ("nclab.measure.files", "load_features"),
    "NCLabError": ("nclab.errors", "NCLabError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        mod = importlib.import_module(module)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nclab' has no attribute {name!r}")
