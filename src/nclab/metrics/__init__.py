"""Neural-collapse metrics: one registry, one accumulator, one decision pass, the metric families.

* :mod:`~nclab.metrics.registry` — every metric's key, description, source, needs, invariances.
* :class:`ClassStats` — the one accumulator (float64 class moments, exact merge).
* :class:`DecisionPass` — the one pass given the final means and the classifier (NCC and classifier
  decisions, margins, NC4, NC1's statistic, memorization distances).
* families — :mod:`~nclab.metrics.variability`, :mod:`~nclab.metrics.geometry` (NC2, CDNV, cosines),
  :mod:`~nclab.metrics.duality` (NC3), :mod:`~nclab.metrics.classifier` (decisions, NC4, margins),
  :mod:`~nclab.metrics.noise` (memorization), :mod:`~nclab.metrics.depth`, :mod:`~nclab.metrics.ood`.

See ``docs/metrics.md`` for every definition with its formula, source and function.
"""

import importlib
from typing import TYPE_CHECKING

#: public name -> defining module; imported on first use, so that ``import nclab.metrics.registry``
#: (the CLI's help text) does not import torch
_LAZY = {
    "ClassMoments": "nclab.metrics.stats",
    "ClassStats": "nclab.metrics.stats",
    "CollapseTracker": "nclab.metrics.tracker",
    "DecisionPass": "nclab.metrics.decisions",
    "Decisions": "nclab.metrics.decisions",
    "METRICS": "nclab.metrics.registry",
    "METRIC_ORDER": "nclab.metrics.registry",
    "Metrics": "nclab.metrics.registry",
    "cdnv": "nclab.metrics.geometry",
    "class_moments": "nclab.metrics.functional",
    "collapse_metrics": "nclab.metrics.functional",
    "collapse_metrics_many": "nclab.metrics.functional",
    "cosine_inter": "nclab.metrics.geometry",
    "cosine_intra": "nclab.metrics.geometry",
    "dilation": "nclab.metrics.variability",
    "effective_depth": "nclab.metrics.depth",
    "gnc2_dist_var": "nclab.metrics.geometry",
    "gnc2_log_var": "nclab.metrics.geometry",
    "margins": "nclab.metrics.classifier",
    "memorization": "nclab.metrics.noise",
    "metrics_from_moments": "nclab.metrics.functional",
    "nc1": "nclab.metrics.variability",
    "nc1_quotient": "nclab.metrics.variability",
    "nc1_value": "nclab.metrics.variability",
    "nc2_equiangular": "nclab.metrics.geometry",
    "nc2_equinorm": "nclab.metrics.geometry",
    "nc2_etf": "nclab.metrics.geometry",
    "nc2_of": "nclab.metrics.geometry",
    "nc3_cosine": "nclab.metrics.duality",
    "nc3_duality": "nclab.metrics.duality",
    "nc3_etf": "nclab.metrics.duality",
    "nc4_ncc_mismatch": "nclab.metrics.classifier",
    "nc5_ood": "nclab.metrics.ood",
    "ncc_accuracy": "nclab.metrics.classifier",
    "pairwise_margins": "nclab.metrics.classifier",
    "simplex_etf": "nclab.metrics.geometry",
    "unc3_var": "nclab.metrics.duality",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nclab.metrics' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from nclab.metrics.decisions import DecisionPass, Decisions
    from nclab.metrics.depth import effective_depth
    from nclab.metrics.duality import nc3_cosine, nc3_duality, nc3_etf, unc3_var
    from nclab.metrics.functional import class_moments, collapse_metrics, collapse_metrics_many, metrics_from_moments
    from nclab.metrics.geometry import (
        cdnv,
        cosine_inter,
        cosine_intra,
        gnc2_dist_var,
        gnc2_log_var,
        nc2_equiangular,
        nc2_equinorm,
        nc2_etf,
        nc2_of,
        simplex_etf,
    )
    from nclab.metrics.classifier import margins, nc4_ncc_mismatch, ncc_accuracy, pairwise_margins
    from nclab.metrics.variability import dilation, nc1, nc1_quotient, nc1_value
    from nclab.metrics.noise import memorization
    from nclab.metrics.ood import nc5_ood
    from nclab.metrics.registry import METRIC_ORDER, METRICS, Metrics
    from nclab.metrics.stats import ClassMoments, ClassStats
    from nclab.metrics.tracker import CollapseTracker

__all__ = [
    "METRICS",
    "METRIC_ORDER",
    "ClassMoments",
    "ClassStats",
    "CollapseTracker",
    "DecisionPass",
    "Decisions",
    "Metrics",
    "cdnv",
    "class_moments",
    "collapse_metrics",
    "collapse_metrics_many",
    "cosine_inter",
    "cosine_intra",
    "dilation",
    "effective_depth",
    "gnc2_dist_var",
    "gnc2_log_var",
    "margins",
    "memorization",
    "metrics_from_moments",
    "nc1",
    "nc1_quotient",
    "nc1_value",
    "nc2_equiangular",
    "nc2_equinorm",
    "nc2_etf",
    "nc2_of",
    "nc3_cosine",
    "nc3_duality",
    "nc3_etf",
    "nc4_ncc_mismatch",
    "nc5_ood",
    "ncc_accuracy",
    "pairwise_margins",
    "simplex_etf",
    "unc3_var",
]
