"""Label-noise models that keep the true and the observed label of every training sample.

* ``symmetric`` (Nguyen et al., ICLR 2023, Sec. 4.1: "corrupting the instance of each class
  label n in the training data with probability eta [...], where corruption means drawing a
  label uniformly at random from the label space Y"): with probability eta the observed label
  is redrawn uniformly from **all** C classes, the true one included. The expected fraction of
  samples whose observed label differs from the true one is therefore eta (C - 1) / C, not
  eta; ``info["noise"]["realised_flip_rate"]`` reports the realised fraction.
* ``latent`` (seed 001, App. A.1.3: "for each original class, we split an instance fraction
  eta of each class apart and introduce new latent (noise) classes"): exactly
  ``round(eta * n_c)`` samples of class c, chosen at random, get the new observed label
  ``C + c``; the network then has 2C outputs while the true labels stay in ``[0, C)``.
* ``pair`` (pair-flip, beyond the papers; Han et al., NeurIPS 2018): with probability eta the
  observed label becomes ``(y + 1) mod C``.

Corruption is a pure function of ``(labels, eta, seed)`` through ``numpy.random.default_rng``;
only the training split is corrupted.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from nclab.data.base import Dataset, Split
from nclab.errors import SpecError

__all__ = ["NOISE_KINDS", "NoiseKind", "ETA_MAX", "check_noise", "symmetric_noise", "pair_flip_noise",
           "latent_noise_classes", "add_label_noise"]

#: The noise models, the one list every layer uses (TrainConfig, the experiment specs, the CLI).
NOISE_KINDS = ("symmetric", "latent", "pair")
NoiseKind = Literal["symmetric", "latent", "pair"]
#: Largest rate per kind: symmetric and pair noise are defined for every eta in [0, 1]; latent
#: classes move round(eta n_c) samples of each class, so beyond 1/2 the "latent" class would be
#: the larger part of the original one.
ETA_MAX = {"symmetric": 1.0, "pair": 1.0, "latent": 0.5}


def check_noise(eta: float, kind: str = "symmetric") -> tuple[float, str]:
    """The one validation of a label-noise setting: ``kind`` in :data:`NOISE_KINDS` and
    ``0 <= eta <= ETA_MAX[kind]``; returns ``(float(eta), kind)``.

    Called at every boundary that takes a noise rate (:func:`add_label_noise`,
    :class:`nclab.train.TrainConfig`, the experiment specs), so the rule and its message are
    the same everywhere.

    Raises
    ------
    SpecError
        Unknown kind, or eta outside ``[0, ETA_MAX[kind]]`` (or not a number).
    """
    if kind not in NOISE_KINDS:
        raise SpecError(f"noise kind must be one of {', '.join(NOISE_KINDS)}; got {kind!r}.")
    try:
        value = float(eta)
    except (TypeError, ValueError):
        raise SpecError(f"noise rate eta must be a number; got {eta!r}.") from None
    hi = ETA_MAX[kind]
    if not 0.0 <= value <= hi:  # also rejects NaN
        raise SpecError(f"noise rate eta must lie in [0, {hi:g}] for {kind} noise; got {eta!r}.")
    return value, kind


def symmetric_noise(labels: np.ndarray, eta: float, *, num_classes: int, seed: int = 0) -> np.ndarray:
    r"""Symmetric label noise: with probability eta draw the label uniformly from all classes.

    .. math:: P(\tilde y = j \mid y) = (1 - \eta)\,[j = y] + \eta / C

    Source: Nguyen et al. (ICLR 2023), Sec. 4.1. The realised flip rate has mean eta (C-1)/C.

    Parameters
    ----------
    labels : ndarray of shape (n,)
        True labels in ``[0, num_classes)``.
    eta : float
        Corruption probability in [0, 1].
    num_classes : int
        C.
    seed : int, default=0
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of shape (n,), int64
        Observed labels.
    """
    eta, _ = check_noise(eta, "symmetric")
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    hit = rng.random(y.shape[0]) < eta
    draw = rng.integers(0, num_classes, size=y.shape[0])
    return np.where(hit, draw, y)


def pair_flip_noise(labels: np.ndarray, eta: float, *, num_classes: int, seed: int = 0) -> np.ndarray:
    r"""Pair-flip noise: with probability eta the label becomes (y + 1) mod C.

    .. math:: P(\tilde y = (y+1) \bmod C \mid y) = \eta,\quad P(\tilde y = y \mid y) = 1 - \eta
    """
    eta, _ = check_noise(eta, "pair")
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    hit = rng.random(y.shape[0]) < eta
    return np.where(hit, (y + 1) % num_classes, y)


def latent_noise_classes(labels: np.ndarray, eta: float, *, num_classes: int, seed: int = 0) -> np.ndarray:
    """Latent noise classes: a fraction eta of each class c moves to a new class C + c.

    Source: seed 001, App. A.1.3. Exactly ``round(eta * n_c)`` samples of class c, drawn
    without replacement, are moved; the observed labels then lie in ``[0, 2C)``.
    """
    eta, _ = check_noise(eta, "latent")
    y = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    out = y.copy()
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        k = int(round(eta * idx.size))
        if k:
            out[rng.choice(idx, size=k, replace=False)] = num_classes + c
    return out


def add_label_noise(dataset: Dataset, eta: float, *, kind: NoiseKind = "symmetric", seed: int = 0) -> Dataset:
    """Corrupt the training labels of a clean dataset; true labels are kept.

    Parameters
    ----------
    dataset : Dataset
        A dataset without noise.
    eta : float
        Noise rate (meaning per ``kind``, see the module docstring).
    kind : {"symmetric", "latent", "pair"}, default="symmetric"
        Noise model.
    seed : int, default=0
        Seed of the corruption.

    Returns
    -------
    Dataset
        Same inputs; ``train.labels`` corrupted, ``train.true_labels`` unchanged;
        ``num_classes`` doubled for ``latent``; ``info["noise"]`` records kind, eta, seed and
        the realised flip rate.

    Raises
    ------
    SpecError
        If the dataset is already noisy, ``kind`` is unknown or eta out of range.
    """
    eta, kind = check_noise(eta, kind)
    if dataset.num_classes != dataset.num_true_classes or bool(dataset.train.corrupted.any()):
        raise SpecError("add_label_noise needs a clean dataset; the training labels are already corrupted.")
    c = dataset.num_classes
    y = dataset.train.true_labels.numpy()
    fn = {"symmetric": symmetric_noise, "pair": pair_flip_noise, "latent": latent_noise_classes}[kind]
    obs = fn(y, eta, num_classes=c, seed=seed)
    train = Split(dataset.train.x, torch.as_tensor(obs, dtype=torch.int64), dataset.train.true_labels)
    num_obs = 2 * c if kind == "latent" else c
    rate = float(np.mean(obs != y)) if y.size else 0.0
    return dataset.replace(
        train=train,
        num_classes=num_obs,
        info={"noise": {"kind": kind, "eta": float(eta), "seed": int(seed), "realised_flip_rate": rate}},
    )
