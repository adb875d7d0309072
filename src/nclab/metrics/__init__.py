"""Neural-collapse metrics: one registry, one accumulator, one decision pass, the metric families.

* :mod:`~nclab.metrics.registry` — every metric's key, description, source, needs, invariances.
* :class:`ClassStats` — the one accumulator (float64 class moments, exact merge).
* :class:`DecisionPass` — the one pass given the final means and the classifier (NCC and classifier
  decisions, margins, NC4, NC1's statistic, memorization distances).
* families — :mod:`~nclab.metrics.nc1`, :mod:`~nclab.metrics.geometry` (NC2, CDNV, cosines),
  :mod:`~nclab.metrics.duality` (NC3), :mod:`~nclab.metrics.margins` (decisions, NC4, margins),
  :mod:`~nclab.metrics.noise` (memorization), :mod:`~nclab.metrics.depth`, :mod:`~nclab.metrics.ood`.

See ``docs/metrics.md`` for every definition with its formula, source and function.
"""

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
from nclab.metrics.margins import margins, nc4_ncc_mismatch, ncc_accuracy, pairwise_margins
from nclab.metrics.nc1 import dilation, nc1, nc1_quotient, nc1_value
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
