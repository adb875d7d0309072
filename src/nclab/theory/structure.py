r"""Reference frames and structural deviations: simplex ETF, orthogonal frame, alignment.

Used to state and check the structural theorems (Tirer & Bruna, ICML 2022, Thms 3.1, 3.2, 4.1, 4.2;
Papyan et al. 2020 simplex ETF). All deviations are scale-free Frobenius distances between matrices
normalised to unit Frobenius norm, 0 for an exact match, at most 2.
"""

from __future__ import annotations

import numpy as np
import torch

from nclab.errors import ShapeError, SpecError  # noqa: F401
from nclab.metrics.geometry import gram_distance, simplex_etf  # simplex_etf: re-exported, one home

__all__ = [
    "simplex_etf",
    "normalized_distance",
    "orthogonal_frame_error",
    "simplex_etf_error",
    "class_means",
    "within_class_relative",
    "extended_structure",
]


def normalized_distance(a, b) -> float:
    r""":math:`\| A/\|A\|_F - B/\|B\|_F \|_F` (0 when A is a positive multiple of B); nan if either is 0."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ShapeError(f"cannot compare shapes {a.shape} and {b.shape}.")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.linalg.norm(a / na - b / nb))


def orthogonal_frame_error(gram) -> float:
    """Distance of a (K, K) Gram matrix to a multiple of the identity (orthogonal frame, NC2-OF):
    :func:`nclab.metrics.geometry.gram_distance`, the one frame distance of nclab."""
    return gram_distance(torch.as_tensor(np.asarray(gram, dtype=np.float64)), kind="of")


def simplex_etf_error(gram) -> float:
    """Distance of a (K, K) Gram matrix to a multiple of :math:`I - 11^T/K` (simplex ETF, NC2-ETF):
    :func:`nclab.metrics.geometry.gram_distance`."""
    return gram_distance(torch.as_tensor(np.asarray(gram, dtype=np.float64)), kind="etf")


def class_means(features, labels, num_classes: int) -> np.ndarray:
    """(C, d) class means of ``features (n, d)``."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    out = np.zeros((num_classes, x.shape[1]))
    for c in range(num_classes):
        out[c] = x[y == c].mean(axis=0)
    return out


def within_class_relative(features, labels, num_classes: int) -> float:
    r"""Within-class spread relative to the total, :math:`\sum_i\|h_i - \mu_{y_i}\|^2 / \sum_i \|h_i\|^2` (0 iff collapsed)."""
    x = np.asarray(features, dtype=np.float64)
    mu = class_means(x, labels, num_classes)
    total = float((x * x).sum())
    if total == 0:
        return float("nan")
    return float(((x - mu[np.asarray(labels)]) ** 2).sum() / total)


def extended_structure(w2, w1, h1, labels, *, num_classes: int, activation: str = "linear") -> dict[str, float]:
    r"""Deviations from the structure of Tirer & Bruna Thm 4.1 (linear) / Thm 4.2 (ReLU).

    With :math:`H_2 = \sigma(W_1H_1)` and class means :math:`\bar H_1, \bar H_2` (columns):

    * ``within_h1``, ``within_h2``: within-class spread (0: collapse, NC1);
    * ``of_h1``, ``of_h2``: :math:`\bar H_i^\top\bar H_i \propto I_K` (orthogonal frame);
    * ``of_w2``: :math:`W_2W_2^\top \propto I_K`;
    * ``align_w2_h2``: :math:`W_2 \propto \bar H_2^\top`;
    * ``align_w1``: :math:`W_1 \propto \bar H_2\bar H_1^\top` (linear model only, Thm 4.1);
    * ``neg_pre_h2`` (ReLU only): :math:`\|\min(W_1H_1, 0)\|_F / \|W_1H_1\|_F`, the part of the
      pre-activations the ReLU removes (Thm 4.2's proof builds a minimiser with :math:`W_1H_1 \ge 0`).

    Parameters
    ----------
    w2 : array (K, d); w1 : array (d, d); h1 : array (d, K n); labels : array (K n,)
    num_classes : int
    activation : {"linear", "relu"}

    Returns
    -------
    dict of str to float. Cost O(d^2 K n).
    """
    w2 = np.asarray(w2, dtype=np.float64)
    w1 = np.asarray(w1, dtype=np.float64)
    h1 = np.asarray(h1, dtype=np.float64)
    pre = w1 @ h1
    h2 = np.maximum(pre, 0.0) if activation == "relu" else pre
    k = num_classes
    m1 = class_means(h1.T, labels, k).T  # (d, K)
    m2 = class_means(h2.T, labels, k).T
    out = {
        "within_h1": within_class_relative(h1.T, labels, k),
        "within_h2": within_class_relative(h2.T, labels, k),
        "of_h1": orthogonal_frame_error(m1.T @ m1),
        "of_h2": orthogonal_frame_error(m2.T @ m2),
        "of_w2": orthogonal_frame_error(w2 @ w2.T),
        "align_w2_h2": normalized_distance(w2, m2.T),
    }
    if activation == "linear":
        out["align_w1"] = normalized_distance(w1, m2 @ m1.T)
    else:
        npre = np.linalg.norm(pre)
        out["neg_pre_h2"] = float(np.linalg.norm(np.minimum(pre, 0.0)) / npre) if npre > 0 else float("nan")
    return out
