"""Dataset containers and class-level operations: subsetting and balanced subsampling.

A :class:`Dataset` holds a train and a test :class:`Split`. Every split keeps, per sample,
the *true* label and the *observed* label (Nguyen et al., ICLR 2023, Sec. 4.1: "We call the
original ground truth label of a sample its true label. We call the label after corruption
[...] the observed label."). Without label noise the two coincide. Test splits are never
corrupted.

Symbols: N (paper) = ``num_classes`` here; the first-N-classes subsetting follows seed 001,
App. A.1.1 ("we subsampled the first N classes of each dataset").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from nclab.errors import LabelError, ShapeError, SpecError

__all__ = ["Split", "Dataset", "subset_classes", "balanced_subsample", "make_dataset_from_arrays"]


@dataclass(frozen=True)
class Split:
    """One split of a dataset: inputs, observed labels and true labels.

    Attributes
    ----------
    x : torch.Tensor of shape (n, *input_shape), float32
        Inputs.
    labels : torch.Tensor of shape (n,), int64
        Observed labels (what the network is trained on); in ``[0, num_classes)``.
    true_labels : torch.Tensor of shape (n,), int64
        Ground-truth labels; in ``[0, num_true_classes)``.
    """

    x: torch.Tensor
    labels: torch.Tensor
    true_labels: torch.Tensor

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.labels.shape != (n,) or self.true_labels.shape != (n,):
            raise ShapeError(
                f"labels and true_labels must have shape ({n},) to match x of shape "
                f"{tuple(self.x.shape)}; got {tuple(self.labels.shape)} and "
                f"{tuple(self.true_labels.shape)}."
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def corrupted(self) -> torch.Tensor:
        """Boolean mask (n,) of samples whose observed label differs from the true one."""
        return self.labels != self.true_labels

    def take(self, index: torch.Tensor) -> "Split":
        """The sub-split at ``index`` (a long index tensor or a boolean mask)."""
        return Split(self.x[index], self.labels[index], self.true_labels[index])


@dataclass(frozen=True)
class Dataset:
    """A train/test dataset with observed and true labels.

    Attributes
    ----------
    name : str
        Short name (``"mnist1d"``, ``"mnist"``, ``"teacher"`` ...).
    train, test : Split
        The two splits. ``test.labels`` equals ``test.true_labels``.
    num_classes : int
        Number of observed classes (the width of the network's output). Larger than
        ``num_true_classes`` only for latent noise classes.
    num_true_classes : int
        Number of ground-truth classes.
    info : dict
        Provenance: generator arguments, files read, the noise model and its realised rate.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    num_true_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample."""
        return tuple(self.train.x.shape[1:])

    def check_label_ranges(self) -> None:
        """Raise :class:`LabelError` unless observed labels lie in [0, num_classes) and true labels in
        [0, num_true_classes), in both splits (one pass over the labels)."""
        for split_name, split in (("train", self.train), ("test", self.test)):
            for what, lab, top in (("labels", split.labels, self.num_classes),
                                   ("true_labels", split.true_labels, self.num_true_classes)):
                _check_range(lab, top, f"{split_name} {what} of dataset {self.name!r}", "",
                             "Fix the labels or the class counts of the Dataset.")

    def replace(self, **changes: Any) -> "Dataset":
        """A copy with some fields replaced (``info`` is merged, not replaced)."""
        if "info" in changes:
            changes["info"] = {**self.info, **changes["info"]}
        return dataclasses.replace(self, **changes)


def _check_range(labels: torch.Tensor, top: int, what: str, bound: str, fix: str) -> None:
    """Raise :class:`LabelError` unless every label lies in [0, top) (two host reads of min / max)."""
    if labels.numel():
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= top:
            raise LabelError(f"{what} must lie in [0, {bound}{top}); got range [{lo}, {hi}]. {fix}")


def make_dataset_from_arrays(
    name: str,
    x_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    x_test: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    *,
    num_classes: int | None = None,
    info: dict[str, Any] | None = None,
) -> Dataset:
    """Build a clean (noise-free) :class:`Dataset` from arrays.

    Inputs become float32 tensors and labels int64 tensors; ``num_classes`` defaults to
    ``max(label) + 1`` over both splits.

    Raises
    ------
    LabelError
        If a label is negative or not below ``num_classes``.
    """
    xt = torch.as_tensor(np.asarray(x_train), dtype=torch.float32)
    xs = torch.as_tensor(np.asarray(x_test), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.int64).reshape(-1)
    ys = torch.as_tensor(np.asarray(y_test), dtype=torch.int64).reshape(-1)
    top = int(max(yt.max().item() if len(yt) else -1, ys.max().item() if len(ys) else -1)) + 1
    c = top if num_classes is None else int(num_classes)
    for lab, what in ((yt, "train"), (ys, "test")):
        _check_range(lab, c, f"{what} labels of dataset {name!r}", "num_classes=", "Pass num_classes or remap the labels.")
    return Dataset(
        name=name,
        train=Split(xt, yt, yt.clone()),
        test=Split(xs, ys, ys.clone()),
        num_classes=c,
        num_true_classes=c,
        info=dict(info or {}),
    )


def _class_list(classes: int | Sequence[int], num_classes: int) -> list[int]:
    if isinstance(classes, (int, np.integer)):
        if not 2 <= int(classes) <= num_classes:
            raise SpecError(
                f"classes must be an int in [2, {num_classes}] (the first N classes) or a list "
                f"of class indices; got {classes}."
            )
        return list(range(int(classes)))
    lst = [int(c) for c in classes]
    if len(lst) < 2 or len(set(lst)) != len(lst) or min(lst) < 0 or max(lst) >= num_classes:
        raise SpecError(
            f"classes must list at least 2 distinct indices in [0, {num_classes}); got {lst}."
        )
    return lst


def subset_classes(dataset: Dataset, classes: int | Sequence[int]) -> Dataset:
    """Keep only some classes and relabel them ``0..k-1`` in the given order.

    Parameters
    ----------
    dataset : Dataset
        A dataset without label noise (subset first, then corrupt).
    classes : int or sequence of int
        An int N keeps the first N classes (seed 001, App. A.1.1); a sequence keeps those
        classes, the i-th listed class becoming label i.

    Raises
    ------
    SpecError
        If the dataset already carries label noise, or ``classes`` is invalid.
    """
    if dataset.num_classes != dataset.num_true_classes or bool(dataset.train.corrupted.any()):
        raise SpecError(
            "subset_classes needs a clean dataset: select classes before adding label noise."
        )
    keep = _class_list(classes, dataset.num_classes)
    lut = torch.full((dataset.num_classes,), -1, dtype=torch.int64)
    lut[torch.tensor(keep)] = torch.arange(len(keep))

    def _sub(split: Split) -> Split:
        new = lut[split.true_labels]
        mask = new >= 0
        lab = new[mask]
        return Split(split.x[mask], lab, lab.clone())

    return dataset.replace(
        train=_sub(dataset.train),
        test=_sub(dataset.test),
        num_classes=len(keep),
        num_true_classes=len(keep),
        info={"classes": keep},
    )


def balanced_subsample(
    dataset: Dataset,
    *,
    per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Subsample every class to the same number of samples, drawn without replacement.

    Parameters
    ----------
    dataset : Dataset
        Clean dataset (subsample before adding noise).
    per_class : int or None, default=None
        Training samples kept per (true) class; None keeps ``min_c n_c`` (the smallest class).
    test_per_class : int or None, default=None
        The same for the test split; None leaves the test split as it is.
    seed : int, default=0
        Seed of the ``numpy.random.default_rng`` drawing the samples.

    Raises
    ------
    SpecError
        If a class has fewer samples than requested (the message names the class).
    """
    rng = np.random.default_rng(seed)

    def _sub(split: Split, k: int | None, what: str) -> Split:
        y = split.true_labels.numpy()
        counts = np.bincount(y, minlength=dataset.num_true_classes)
        kk = int(counts.min()) if k is None else int(k)
        if kk < 1:
            raise SpecError(f"per_class must be >= 1; got {kk} for the {what} split.")
        short = np.flatnonzero(counts < kk)
        if short.size:
            c = int(short[0])
            raise SpecError(
                f"{what} class {c} has only {counts[c]} samples but per_class={kk} was requested; "
                f"lower per_class to at most {int(counts.min())}."
            )
        idx = [rng.choice(np.flatnonzero(y == c), size=kk, replace=False) for c in range(len(counts))]
        order = np.sort(np.concatenate(idx))
        return split.take(torch.as_tensor(order))

    train = _sub(dataset.train, per_class, "train")
    test = dataset.test if test_per_class is None else _sub(dataset.test, test_per_class, "test")
    return dataset.replace(train=train, test=test, info={"per_class": per_class, "subsample_seed": seed})
