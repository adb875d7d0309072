"""One entry point that loads a dataset by name and applies the usual pipeline.

Pipeline (order matters): load or generate -> first N classes -> balanced subsample ->
per-channel standardisation (file datasets) -> label noise on the training split.
"""

from __future__ import annotations

import os
from typing import Sequence

from nclab.data.base import Dataset, balanced_subsample, subset_classes
from nclab.data.files import load_cifar10, load_cifar100, load_fashion_mnist, load_mnist, load_svhn
from nclab.data.mnist1d import make_mnist1d
from nclab.data.noise import NoiseKind, add_label_noise
from nclab.data.synthetic import make_conic_hull, make_teacher
from nclab.errors import SpecError

__all__ = ["DATASETS", "FILE_DATASETS", "load_dataset"]

DATASETS = ("mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100", "cifar100_coarse", "svhn", "teacher", "conic_hull")
_FILE_LOADERS = {
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "cifar100_coarse": lambda root: load_cifar100(root, label_type="coarse"),
    "svhn": load_svhn,
}
FILE_DATASETS = tuple(_FILE_LOADERS)
"""The datasets read from files under a ``root`` directory (the others are generated)."""


def _standardise(ds: Dataset) -> Dataset:
    x = ds.train.x
    dims = [0] + list(range(2, x.ndim))  # per channel for images (n, C, H, W)
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-8)
    norm = lambda s: type(s)((s.x - mean) / std, s.labels, s.true_labels)  # noqa: E731
    return ds.replace(train=norm(ds.train), test=norm(ds.test), info={"standardised": True})


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    num_samples: int | None = None,
    classes: int | Sequence[int] | None = None,
    per_class: int | None = None,
    eta: float = 0.0,
    noise_kind: NoiseKind = "symmetric",
    seed: int = 0,
    noise_seed: int | None = None,
) -> Dataset:
    """Load (or generate) a dataset by name, select classes, subsample and corrupt labels.

    Parameters
    ----------
    name : {"mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100", "cifar100_coarse", "svhn", "teacher", "conic_hull"}
        Dataset. File datasets need ``root`` (nothing is downloaded), laid out as torchvision
        writes them (see ``docs/datasets.md``); ``cifar100`` has the 100 fine classes,
        ``cifar100_coarse`` the 20 superclasses.
    root : path or None, default=None
        Directory holding the files of a file dataset.
    num_samples : int or None, default=None
        Total samples of a generated dataset (MNIST-1D: 5000, synthetic: 10000 by default).
    classes : int, sequence of int or None, default=None
        Keep the first N classes (int) or the listed ones; None keeps all.
    per_class : int or None, default=None
        Balanced subsample of the training split to this many samples per class.
    eta : float, default=0.0
        Label-noise rate (0 = clean); validated with the kind by
        :func:`nclab.data.noise.check_noise`.
    noise_kind : {"symmetric", "latent", "pair"}, default="symmetric"
        Noise model (see :mod:`nclab.data.noise`).
    seed : int, default=0
        Seed of the synthetic generators and of the subsample; also the noise seed unless
        ``noise_seed`` is given. MNIST-1D keeps its generator seed 42 (the package default)
        so that the data do not change with the training seed.
    noise_seed : int or None, default=None
        Separate seed of the label corruption.

    Raises
    ------
    SpecError
        Unknown name or invalid option. InputFileError: a file dataset's files are missing.
    """
    key = name.lower().replace("-", "_")
    key = {"fmnist": "fashion_mnist", "cifar_10": "cifar10", "cifar_100": "cifar100"}.get(key, key)
    if key not in DATASETS:
        raise SpecError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    n_cls = classes if isinstance(classes, int) else None
    if key == "mnist1d":
        ds = make_mnist1d(num_samples=num_samples or 5000, classes=n_cls or 10)
        if classes is not None and not isinstance(classes, int):
            ds = subset_classes(ds, classes)
    elif key == "teacher":
        ds = make_teacher(num_samples=num_samples or 10000, seed=seed)
    elif key == "conic_hull":
        ds = make_conic_hull(num_samples=num_samples or 10000, seed=seed)
    else:
        if root is None:
            raise SpecError(f"dataset {name!r} is read from files: pass root=<directory with its files>.")
        ds = _FILE_LOADERS[key](root)
    if classes is not None and key != "mnist1d":
        ds = subset_classes(ds, classes)
    if per_class is not None:
        ds = balanced_subsample(ds, per_class=per_class, seed=seed)
    if key in _FILE_LOADERS:
        ds = _standardise(ds)
    if eta:
        ds = add_label_noise(ds, eta, kind=noise_kind, seed=seed if noise_seed is None else noise_seed)
    return ds

