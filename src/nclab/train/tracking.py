"""The tracked evaluation pass: accuracy, loss and every collapse metric in one forward pass.

One pass over the test set (true labels) then one over the training set (observed labels), in
eval mode and without gradients. The passes keep each batch's logits and penultimate features
(n x (C + d) floats); loss and accuracy come from the logits, every collapse metric of both sets from
one :func:`~nclab.metrics.collapse_metrics_many` call on the features, so no second forward pass is
needed. Per-layer metrics (on request) feed one :class:`~nclab.metrics.CollapseTracker` per tap.

Metric sources: NC1..NC4 (Papyan et al. 2020; seed 000 eq. 2), dilation = NC1 of the test
features and memorization (seed 000 Sec. 4.1, eq. 3), margin ``margin_min`` (with the bias; seed 002's bias-free p_min comes from the
``extra_metrics`` hook, :mod:`nclab.theory.margins`), intra-
and inter-class cosines and the epsilon-effective depth (seed 003 Sec. 2.2, Def. 3.2.2).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from nclab.data import Split
from nclab.metrics import CollapseTracker, collapse_metrics, collapse_metrics_many, effective_depth
from nclab.metrics.noise import memorization_metrics, noisy_distance_sum

__all__ = ["tracked_evaluation", "suboptimal_collapse"]


def _head_params(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    head = model.head
    w = head.weight.detach()
    b = getattr(head, "bias", None)
    scale = float(getattr(head, "scale", 1.0))  # a fixed ETF head computes scale * h W^T
    return (w if scale == 1.0 else w * scale), (None if b is None else b.detach())


def _class_means(h: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """float64 class means (num_classes, d); a class without samples gets 0."""
    means = torch.zeros(num_classes, h.shape[1], dtype=torch.float64, device=h.device)
    means.index_add_(0, y, h.to(torch.float64))
    return means / torch.bincount(y, minlength=num_classes).clamp_min(1)[:, None].to(torch.float64)


def _latent_memorization(h: torch.Tensor, obs: torch.Tensor, true: torch.Tensor, test_h: torch.Tensor,
                         test_y: torch.Tensor, num_true: int) -> dict[str, float]:
    """Seed 001 A.1.3: distance of each latent-class sample to the test mean of its original class
    (the observed labels of latent classes lie beyond the true classes, so :func:`memorization`, which
    checks them against one class count, does not apply)."""
    return _memorization_values(h, obs, true, _class_means(test_h, test_y, num_true))


def _memorization_values(h, obs, true, test_means) -> dict[str, float]:
    """Seed 000 eq. (3) (:func:`nclab.metrics.noise.noisy_distance_sum`) as record entries."""
    total, noisy = noisy_distance_sum(h, obs, true, test_means)
    return memorization_metrics(float(total), noisy, h.shape[0])


def _hits(z: torch.Tensor, *label_sets: torch.Tensor) -> list[int]:
    """Rows whose first-index arg max of the logits z equals each label set."""
    pred = z.argmax(1)
    return [int((pred == y).sum()) for y in label_sets]


def _same_labels(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two label vectors are equal (NumPy on the CPU: a few us against ~40 us)."""
    if a.device.type == "cpu" and b.device.type == "cpu":
        return bool(np.array_equal(a.numpy(), b.numpy()))
    return not bool((a != b).any())


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


@torch.inference_mode()  # eval forward + metrics: no autograd bookkeeping
def tracked_evaluation(
    model: nn.Module,
    train: Split,
    test: Split,
    loss_fn: nn.Module,
    *,
    num_classes: int,
    num_true_classes: int,
    batch_size: int = 2048,
    layer_metrics: bool = False,
    effective_depth_eps: float = 0.01,
    extra_metrics: Callable[..., dict[str, float]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Evaluate ``model`` on ``test`` then ``train`` and compute every tracked metric.

    Parameters
    ----------
    model : TappedNet
        Network with ``forward_taps`` and a ``head``; put in eval mode here.
    train, test : Split
        Splits already on the model's device. Train metrics use the observed labels, test
        metrics the true labels.
    loss_fn : nn.Module
        Training loss, reported as ``train_loss`` / ``test_loss`` (mean over samples).
    num_classes, num_true_classes : int
        Observed and true class counts (they differ only for latent noise classes; test
        metrics then use the classifier rows of the true classes).
    batch_size : int, default=2048
    layer_metrics : bool, default=False
        Per-tap NC1, NCC accuracy, cosines and the effective depth (train features).
    effective_depth_eps : float, default=0.01
    extra_metrics : callable, optional
        Hook for quantities outside the metric set: ``extra_metrics(h_train, labels_train,
        weight, bias) -> dict`` (train features, observed labels, the head), merged into the
        record (``nclab.train.loop`` passes the margin-bound terms of
        :func:`nclab.theory.margin_bound_terms` when ``TrainConfig.margin_bounds``).

    Returns
    -------
    record : dict
        ``train_loss, train_acc, train_acc_true, test_loss, test_acc``; every train metric of
        :func:`~nclab.metrics.collapse_metrics` suffixed ``_train`` (``nc1_train`` ...), every
        test metric suffixed ``_test`` (the dilation is ``nc1_test``, the margin with the bias
        ``margin_min_train``), ``memorization`` (0 without noise); with layer metrics a
        ``layers`` dict and ``effective_depth``.
    extra : dict
        ``train_class_means`` (2, 2) float64 for the sub-optimal-collapse check, present only when
        C = d = 2 (the M = N = 2 setting it applies to).
    """
    model.eval()
    w, b = _head_params(model)
    taps = list(model.tap_names) if layer_metrics else ["features"]
    if "features" not in taps:
        taps.append("features")
    ct = num_true_classes
    rec: dict[str, Any] = {}

    # the forward passes keep each batch's logits and features; loss and accuracy are then computed
    # once per split: fewer eager operations than per batch (both measured the same within noise on
    # the quick preset, docs/training.md "Performance")
    test_logits, test_feats = [], []
    for s in range(0, len(test), batch_size):
        logits, out = model.forward_taps(test.x[s : s + batch_size], ["features"])
        test_logits.append(logits)
        test_feats.append(out["features"])
    z = _cat(test_logits)
    rec["test_loss"] = float(loss_fn(z, test.true_labels))
    rec["test_acc"] = _hits(z, test.true_labels)[0] / len(test)

    layer_tr = {t: CollapseTracker(num_classes) for t in model.tap_names[:-1]} if layer_metrics else {}
    train_logits, train_feats = [], []
    for s in range(0, len(train), batch_size):
        logits, out = model.forward_taps(train.x[s : s + batch_size], taps, pool_spatial=True)
        train_logits.append(logits)
        train_feats.append(out["features"])
        for name, tr in layer_tr.items():
            tr.update(out[name], train.labels[s : s + batch_size])
    z = _cat(train_logits)
    rec["train_loss"] = float(loss_fn(z, train.labels))
    hits, hits_true = _hits(z, train.labels, train.true_labels)
    rec["train_acc"], rec["train_acc_true"] = hits / len(train), hits_true / len(train)

    # every collapse metric of the train features (observed labels) and the test features (true
    # labels), both sets in one call
    h_train, h_test = _cat(train_feats), _cat(test_feats)
    train_means = test_means = None
    if ct == num_classes:
        (m_train, m_test), (train_means, test_means) = collapse_metrics_many(
            [(h_train, train.labels), (h_test, test.true_labels)], weights=w, bias=b, num_classes=num_classes,
            names=["train features", "test features"], return_means=True,
        )
    else:  # latent noise classes: test metrics use the classifier rows of the true classes
        m_train = collapse_metrics(h_train, train.labels, weights=w, bias=b, num_classes=num_classes)
        m_test = collapse_metrics(h_test, test.true_labels, weights=w[:ct], bias=None if b is None else b[:ct],
                                  num_classes=ct)
    rec.update({f"{k}_train": v for k, v in m_train.items()})
    rec.update({f"{k}_test": v for k, v in m_test.items()})
    if extra_metrics is not None:  # hook: quantities outside the metric set (margin bounds)
        rec.update(extra_metrics(h_train, train.labels, w, b))
    if not _same_labels(train.labels, train.true_labels):
        if test_means is not None:  # seed 000 eq. (3) with the test means the metric call computed
            mem = _memorization_values(h_train, train.labels, train.true_labels, test_means.to(h_train.device))
        else:
            mem = _latent_memorization(h_train, train.labels, train.true_labels, h_test, test.true_labels, ct)
        rec.update(mem)
    else:
        rec.update(memorization=0.0, memorization_mean=0.0, noisy_fraction=0.0)

    if layer_metrics:
        layers: dict[str, dict[str, float]] = {}
        feats = []
        for name in model.tap_names:
            last = name == model.tap_names[-1]
            m = m_train if last else layer_tr[name].compute()
            keys = ("nc1", "ncc_accuracy", "cosine_intra_min", "cosine_inter_max", "nc2_etf", "nc2_of", "nc2_equinorm",
                    "nc2_equiangular", "nc3_etf", "nc3_duality")  # NC3 exists only where the head's W applies
            layers[name] = {k: m[k] for k in keys if k in m}
            feats.append(h_train if last else layer_tr[name].features)
        rec["layers"] = layers
        rec["effective_depth"] = effective_depth(feats, train.labels, eps=effective_depth_eps, num_classes=num_classes)

    extra: dict[str, Any] = {}
    if (num_classes, h_train.shape[1]) == (2, 2):  # the only shape the sub-optimal check applies to
        extra["train_class_means"] = train_means if train_means is not None else _class_means(h_train, train.labels, 2)
    return rec, extra


def suboptimal_collapse(class_means: torch.Tensor, *, tol: float = 0.1) -> tuple[bool | None, float]:
    """M = N = 2: is one class centroid (near) the origin? (seed 001, App. A.1.1, Fig. 4a)

    Returns ``(flag, ratio)`` with ratio = min_c ||mu_c|| / max_c ||mu_c|| and flag = ratio < tol;
    ``(None, nan)`` unless the means are 2 x 2.
    """
    if tuple(class_means.shape) != (2, 2):
        return None, math.nan
    norms = torch.linalg.vector_norm(class_means.to(torch.float64), dim=1)
    top = float(norms.max())
    ratio = float(norms.min()) / top if top > 0 else math.nan
    return (bool(ratio < tol) if math.isfinite(ratio) else True), ratio
