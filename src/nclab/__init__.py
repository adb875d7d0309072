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
    "measure": ("nclab.hooks", "measure"),
    "collapse_metrics": ("nclab.metrics", "collapse_metrics"),
    "ClassStats": ("nclab.metrics", "ClassStats"),
    "CollapseTracker": ("nclab.metrics", "CollapseTracker"),
    "load_features": ("nclab.io", "load_features"),
    "NCLabError": ("nclab.errors", "NCLabError"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nclab' has no attribute {name!r}")
