"""Measuring collapse in real models: models and loaders, feature files, several processes, frameworks.

The package is callable: ``nclab.measure(model, loader, ...)`` is :func:`nclab.measure.model.measure`.

========================  ==========================================================================
``measure``               every metric of a model over a loader (classifiers, vision backbones, LMs)
``find_head``             the classifier head a model's penultimate features feed
``load_features``         read a ``.npz`` / ``.pt`` / ``.safetensors`` feature file (memory-mapped)
``save_features``         write one
``measure_files``         metrics of one feature file or of several shards merged exactly
``all_reduce_stats``      exact ``ClassStats`` merge across a ``torch.distributed`` group
``CollapseCallback``      PyTorch Lightning callback (needs ``lightning``)
``CollapseTrainerCallback``  Hugging Face ``Trainer`` callback (needs ``transformers``)
``make_logger``           TensorBoard / MLflow metric logger (needs ``tensorboard`` / ``mlflow``)
========================  ==========================================================================

Layer: above :mod:`nclab.metrics`, below the CLI. The framework integrations import their framework
only when first used.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from nclab.measure.distributed import all_reduce_stats
from nclab.measure.files import FEATURE_KEYS, load_features, measure_files, save_features
from nclab.measure.model import DEFAULT_MAX_FEATURE_BYTES, find_head, measure

_LAZY = {
    "CollapseCallback": "nclab.measure.lightning",
    "CollapseTrainerCallback": "nclab.measure.hf",
    "make_logger": "nclab.measure.loggers",
}

__all__ = [
    "DEFAULT_MAX_FEATURE_BYTES",
    "FEATURE_KEYS",
    "all_reduce_stats",
    "find_head",
    "load_features",
    "measure",
    "measure_files",
    "save_features",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nclab.measure' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``nclab.measure`` is both this package and, called, the function :func:`measure`."""

    def __call__(self, model, loader, **kwargs):
        return measure(model, loader, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
