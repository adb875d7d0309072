r"""The whole metric set: :func:`collapse_metrics`, :func:`collapse_metrics_many`, :func:`metrics_from_moments`.

Notation (mapped once to the sources): features :math:`H` of shape (n, d), labels
:math:`y_i \in \{0..C-1\}`, classifier :math:`W` (C, d) and bias :math:`b` (C,). Class means
:math:`\mu_c`, global mean :math:`\mu_G = \frac1C\sum_c \mu_c` (the mean of the class means),
:math:`\Sigma_W = \frac1n\sum_i (h_i-\mu_{y_i})(h_i-\mu_{y_i})^\top`,
:math:`\Sigma_B = \frac1C\sum_c(\mu_c-\mu_G)(\mu_c-\mu_G)^\top`, :math:`M` the (C, d) matrix of centred
means, :math:`U` the uncentred means. Nguyen et al. (ICLR 2023, seed 000) write N for C, K for the
samples per class and M for d; Tirer & Bruna (ICML 2022, seed 004) write K for C.

Every path is the same two passes: :class:`~nclab.metrics.ClassStats` (counts, float64 means,
squared deviations, unit-vector sums) then one :class:`~nclab.metrics.DecisionPass` (NC1's statistic,
NCC and classifier decisions, margins, memorization), then the metric families compose the values
(:mod:`~nclab.metrics.variability`, :mod:`~nclab.metrics.geometry`, :mod:`~nclab.metrics.duality`,
:mod:`~nclab.metrics.classifier`, :mod:`~nclab.metrics.noise`, :mod:`~nclab.metrics.ood`).

Precision: sums over samples are float64; inner products over d in the features' dtype (float16/
bfloat16 promoted to float32); float32 input agrees with float64 on the same numbers to ~1e-9
relative in NC1, float64 input with a loop-by-loop reference to ~1e-12.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import torch

from nclab.errors import DegenerateWarning, ShapeError
from nclab.metrics import _pipeline as P
from nclab.metrics._validate import check_classifier, check_features, check_labels
from nclab.metrics.decisions import Decisions, compute_dtype
from nclab.metrics.duality import duality_metrics
from nclab.metrics.geometry import equinorm, intra_cosines, pair_statistics
from nclab.metrics.classifier import decision_metrics
from nclab.metrics.variability import nc1_from, quotient_from, within_class_note
from nclab.metrics.noise import memorization_metrics
from nclab.metrics.ood import nc5_from_means, ood_mean
from nclab.metrics.registry import METRIC_ORDER, Metrics
from nclab.metrics.stats import ClassMoments

__all__ = ["collapse_metrics", "collapse_metrics_many", "metrics_from_moments", "class_moments", "METRIC_ORDER"]

_no_autograd = torch.inference_mode()
_DEFAULT_TILE = 2048
#: metrics of within-class spread: undefined when no class has two samples
_WITHIN = ("nc1", "nc1_quotient", "cdnv", "cosine_intra_min", "cosine_intra_mean")


def _classifier_rows(weights, moments: ClassMoments) -> torch.Tensor | None:
    """float64 W rows matching the moments' classes (all rows, or those of the classes present)."""
    if weights is None:
        return None
    W = torch.as_tensor(weights).detach().to(device=moments.mean.device, dtype=torch.float64)
    if moments.classes is not None and W.shape[0] != moments.num_classes:
        W = W[moments.classes.to(W.device)]
    return W


def _singletons(moments: ClassMoments, out: dict, notes: dict, *, what: str = "features", stacklevel: int = 3) -> None:
    """Within-class metrics are NaN with the reason when no class has two samples
    (:func:`~nclab.metrics.variability.within_class_note`)."""
    reason = within_class_note(moments, what=what, stacklevel=stacklevel + 1)
    if reason:
        for k in _WITHIN:
            if k in out:
                out[k] = math.nan
                notes[k] = reason
    elif bool((moments.count == 1).any()):
        notes["singleton_classes"] = f"{int((moments.count == 1).sum())} class(es) with one sample: variance taken as 0"


@_no_autograd
def metrics_from_moments(
    moments: ClassMoments,
    *,
    weights=None,
    decisions: Decisions | None = None,
    K: torch.Tensor | None = None,
    tile: int = _DEFAULT_TILE,
    cdnv_exponent: float = 1.0,
    gram_dtype: torch.dtype = torch.float64,
    weighting: str | None = None,
) -> Metrics:
    """Every metric the moments (and W, and a decision pass over the same features) determine.

    NC1 needs NC1's statistic: ``decisions`` (K or a scatter from a
    :class:`~nclab.metrics.DecisionPass`), ``K``, or ``moments.scatter`` (one-pass streaming).
    NCC accuracy, NC4, accuracy, margins and memorization come from ``decisions``. ``gram_dtype`` is
    the precision of the class-pair Gram products (float32 for float32 features). With present-class
    moments (``moments.classes``), W may have every class's row: the matching rows are used.
    """
    if weighting is not None and weighting != moments.weighting:
        if decisions is not None:
            raise ShapeError("weighting changes the centred means the decision pass used: set it in "
                             "ClassStats.compute(weighting=...) before the DecisionPass instead.")
        from dataclasses import replace

        moments = replace(moments, weighting=weighting)
    if decisions is not None:
        moments = P.complete(moments, decisions)
    if moments.sq_dev is None:
        raise ShapeError("these moments have no squared deviations (ClassStats(second_moments=False)): pass the "
                         "decisions of a DecisionPass over the same features.")
    C = moments.num_classes
    mean = moments.mean
    mu_g = moments.global_mean()
    M = mean - mu_g
    W = _classifier_rows(weights, moments)
    if W is not None and W.shape != (C, moments.dim):
        raise ShapeError(f"weights must have shape ({C}, {moments.dim}); got {tuple(W.shape)}.")
    out: dict[str, float] = {}
    notes: dict[str, str] = {}
    stat_K = decisions.K if decisions is not None and decisions.K is not None else K
    stat_S = decisions.scatter if decisions is not None else None
    if stat_K is not None or stat_S is not None or moments.scatter is not None:
        out["nc1"] = nc1_from(moments, K=stat_K, scatter=stat_S)
    out["nc1_quotient"] = quotient_from(moments)
    unit_mean = moments.unit_sum / moments.count[:, None]
    out.update(pair_statistics(M, mu_g, moments.sq_dev / moments.count, unit_mean, W, tile=tile,
                               cdnv_exponent=cdnv_exponent, gram_dtype=gram_dtype))
    out["nc2_equinorm"] = equinorm(M)
    intra = intra_cosines(moments)
    out["cosine_intra_min"] = float(intra.min())
    out["cosine_intra_mean"] = float(intra.mean())
    if W is not None:
        out["nc2_equinorm_w"] = equinorm(W)
        out.update(duality_metrics(M, W, moments.scale))
    if decisions is not None:
        out.update(decision_metrics(decisions, W))
        if decisions.memorization_sum is not None:
            out.update(memorization_metrics(decisions.memorization_sum, decisions.noisy, decisions.n, decisions.scale))
    if moments.classes is not None:
        out["num_classes_present"] = C
    if math.isnan(out.get("nc1_quotient", 0.0)):
        notes["nc1"] = "all class means coincide (Sigma_B = 0)"
    elif math.isnan(out.get("gnc2_log_var", 0.0)):
        notes["gnc2_log_var"] = "two centred class means point the same way: log(1/distance) is infinite"
    _singletons(moments, out, notes, stacklevel=4)
    return Metrics(out, notes)


def class_moments(features, labels, *, num_classes: int | None = None, classes: str | None = "all") -> ClassMoments:
    """Per-class moments of in-memory features (one pass of :class:`~nclab.metrics.ClassStats`)."""
    return P.measured(features, labels, num_classes, classes)[3]


def _metric_set(H, y, C, W, b, classes, *, tile, pairwise_limit, cdnv_exponent, name="features",
                label_name="labels", true=None, reference_means=None, weighting="classes"):
    """(metrics, moments) of one validated set: ClassStats, one DecisionPass, the families."""
    y_loc, Pn, present = P.select_classes(y, C, classes, label_name)
    mom = P.moments_of(H, y_loc, Pn, present=present, total=C, second_moments=False, name=name,
                       weighting=weighting)
    dec = P.decisions_of(mom, H, y_loc, weights=W, bias=b, pairwise_limit=pairwise_limit, true=true,
                         reference_means=reference_means)
    mom = P.complete(mom, dec)
    out = metrics_from_moments(mom, weights=W, decisions=dec, tile=tile, cdnv_exponent=cdnv_exponent,
                               gram_dtype=compute_dtype(H))
    return out, mom


def _full_means(mom: ClassMoments, C: int) -> torch.Tensor:
    """(C, d) class means in the features' units; NaN rows for classes without samples."""
    mean = mom.mean * mom.scale
    if mom.classes is None:
        return mean
    full = torch.full((C, mom.dim), math.nan, dtype=torch.float64, device=mean.device)
    full[mom.classes] = mean
    return full


@_no_autograd
def collapse_metrics(
    features,
    labels,
    *,
    weights=None,
    bias=None,
    num_classes: int | None = None,
    classes: str | None = None,
    test_features=None,
    test_labels=None,
    true_labels=None,
    ood_features=None,
    tile: int = _DEFAULT_TILE,
    pairwise_limit: int = 2048,
    cdnv_exponent: float = 1.0,
    weighting: str = "classes",
) -> Metrics:
    r"""Every neural-collapse metric of a feature matrix, in two passes over it.

    Parameters
    ----------
    features : Tensor or ndarray of shape (n, d)
        Training features (any real float dtype; statistics accumulate in float64).
    labels : Tensor or ndarray of shape (n,)
        The labels the model was trained on (observed labels under label noise).
    weights : Tensor of shape (C, d), optional
        Last-layer classifier; enables NC2/NC3 of W, NC4, accuracy and margins.
    bias : Tensor of shape (C,), optional
    num_classes : int, optional
        Default: ``labels.max() + 1``.
    classes : {"present", "all"}, optional
        ``"present"`` (default): metrics over the classes with samples, with the matching rows of W and
        b (``num_classes_present`` says how many when some are absent; accuracy and margins are then
        over those classes). ``"all"``: every class needs a sample.
    test_features, test_labels : optional
        Test features with their true labels: enable ``dilation`` (NC1 of the test features) and,
        with ``true_labels``, ``memorization``.
    true_labels : Tensor of shape (n,), optional
        Clean labels of the training samples (label-noise experiments).
    ood_features : Tensor of shape (m, d), optional
        Out-of-distribution features: enables ``nc5_ood``.
    tile : int, default=2048
        Block size of class-pair computations (memory O(tile^2)).
    pairwise_limit : int, default=2048
        Pairwise margins gamma_{y,y'} (a C x C matrix) are formed only for C up to this.
    cdnv_exponent : float, default=1.0
        CDNV denominator is ``(||mu_c - mu_c'||^2) ** cdnv_exponent``.
    weighting : {"classes", "frequency"}, default="classes"
        The global mean that centres the class means: the mean of the class means (the sources'
        definition) or the class-frequency-weighted (sample) mean, as Wu & Papyan (2024) use for a
        language model's imbalanced token classes.

    Returns
    -------
    Metrics
        A dict of floats in the order of :data:`nclab.metrics.registry.METRIC_ORDER`, with ``.notes``
        giving the reason for each undefined value. Keys: see ``docs/metrics.md``.

    Notes
    -----
    Time O(n d C) (+ O(n d^2) when C > d) + O(C^2 d) for class pairs; memory O(C d + tile^2 + d^2)
    beyond the features. Any finite input gives the same values as the same input at unit scale.

    Examples
    --------
    >>> import torch
    >>> y = torch.arange(3).repeat(4)
    >>> round(collapse_metrics(torch.eye(3)[y], y)["nc2_etf"], 12)
    0.0
    """
    H, y, C = P.prepare(features, labels, num_classes)
    n, d = H.shape
    W, b = check_classifier(weights, bias, C, d, device=H.device)
    if (test_features is None) != (test_labels is None):
        raise ShapeError("pass both test_features and test_labels (the test set's true labels).")
    if true_labels is not None and test_features is None:
        raise ShapeError("memorization needs test_features and test_labels beside true_labels.")
    Ht = yt = None
    if test_features is not None:
        Ht = check_features(test_features, "test_features", dim=d, finite=False)
        yt, _ = check_labels(test_labels, Ht.shape[0], C, "test_labels", device=Ht.device, require_all=False)
    true = None
    if true_labels is not None:
        true, _ = check_labels(true_labels, n, C, "true_labels", device=H.device, require_all=False)
    Ho = None if ood_features is None else check_features(ood_features, "ood_features", dim=d)

    notes: dict[str, str] = {}
    ref = None
    if Ht is not None:
        yt_loc, Pt, present_t = P.select_classes(yt, C, classes, "test_labels")
        mt = P.moments_of(Ht, yt_loc, Pt, present=present_t, total=C, second_moments=False, name="test_features",
                          weighting=weighting)
        dt = P.decisions_of(mt, Ht, yt_loc, ncc=False, nc1=True)
        dil = {"nc1": nc1_from(mt, K=dt.K, scatter=dt.scatter)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateWarning)
            _singletons(mt, dil, notes, what="test features")
        if "nc1" in notes:
            notes["dilation"] = notes.pop("nc1")
        ref = _full_means(mt, C) if true is not None else None
    out, mom = _metric_set(H, y, C, W, b, classes, tile=tile, pairwise_limit=pairwise_limit,
                           cdnv_exponent=cdnv_exponent, true=true, reference_means=ref, weighting=weighting)
    notes = {**out.notes, **notes}
    if Ht is not None:
        out["dilation"] = dil["nc1"]
    if Ho is not None:
        out["nc5_ood"] = nc5_from_means(mom.mean, ood_mean(Ho).to(mom.mean.device))
    return Metrics(out, notes)


@_no_autograd
def collapse_metrics_many(
    feature_sets: Sequence[tuple[Any, Any]],
    *,
    weights=None,
    bias=None,
    num_classes: int | None = None,
    classes: str | None = None,
    tile: int = _DEFAULT_TILE,
    pairwise_limit: int = 2048,
    cdnv_exponent: float = 1.0,
    names: Sequence[str] | None = None,
    return_means: bool = False,
    weighting: str = "classes",
) -> list[Metrics] | tuple[list[Metrics], list[torch.Tensor]]:
    """:func:`collapse_metrics` of several (features, labels) sets against one classifier, e.g. the
    train features (observed labels) and test features (true labels) of a tracked epoch.

    Equal to ``[collapse_metrics(H, y, weights=..., ...) for H, y in feature_sets]``. ``names`` name
    the sets in error messages (default ``features``, ``features[1]``, ...). With ``return_means=True``
    it returns ``(metrics, means)``, ``means`` the float64 class means (C, d) of each set (NaN rows for
    absent classes).

    Examples
    --------
    >>> import torch
    >>> y = torch.arange(3).repeat(4)
    >>> [m["nc1"] for m in collapse_metrics_many([(torch.eye(3)[y], y), (torch.eye(3)[y] * 2, y)])]
    [0.0, 0.0]
    """
    if not len(feature_sets):
        raise ShapeError("feature_sets is empty; pass at least one (features, labels) pair.")
    names = list(names) if names is not None else ["features"] + [f"features[{i}]" for i in range(1, len(feature_sets))]
    prepared = [P.prepare(H, y, num_classes, name) for (H, y), name in zip(feature_sets, names)]
    C = max(c for _, _, c in prepared) if num_classes is None else num_classes
    d = prepared[0][0].shape[1]
    for (H, _, _), name in zip(prepared, names):
        if H.shape[1] != d:
            raise ShapeError(f"{name} has dimension {H.shape[1]} but the first set has {d}; all sets share one classifier.")
    W, b = check_classifier(weights, bias, C, d, device=prepared[0][0].device)
    metrics, means = [], []
    for (H, y, _), name in zip(prepared, names):
        out, mom = _metric_set(H, y, C, W, b, classes, tile=tile, pairwise_limit=pairwise_limit,
                               cdnv_exponent=cdnv_exponent, name=name, weighting=weighting)
        metrics.append(out)
        means.append(_full_means(mom, C))
    return (metrics, means) if return_means else metrics
