"""Datasets and label-noise models for collapse experiments.

Embedded default: MNIST-1D generated offline (:func:`make_mnist1d`). Files a user already has:
:func:`load_mnist`, :func:`load_fashion_mnist`, :func:`load_cifar10`, :func:`load_cifar100`,
:func:`load_svhn` (torchvision's on-disk layouts, ``docs/datasets.md``).
Synthetic sets of seed 003: :func:`make_teacher`, :func:`make_conic_hull`. Class operations:
:func:`subset_classes`, :func:`balanced_subsample`. Label noise keeping true and observed
labels: :func:`add_label_noise` (symmetric, latent noise classes, pair-flip).
:func:`load_dataset` chains them from names and options.
"""

from __future__ import annotations

from nclab.data.base import Dataset, Split, balanced_subsample, make_dataset_from_arrays, subset_classes
from nclab.data.files import load_cifar10, load_cifar100, load_fashion_mnist, load_mnist, load_svhn, read_idx
from nclab.data.mnist1d import make_mnist1d
from nclab.data.noise import (
    NOISE_KINDS,
    add_label_noise,
    latent_noise_classes,
    pair_flip_noise,
    symmetric_noise,
)
from nclab.data.registry import DATASETS, FILE_DATASETS, load_dataset
from nclab.data.synthetic import conic_hull_directions, make_conic_hull, make_teacher

__all__ = [
    "DATASETS",
    "FILE_DATASETS",
    "Dataset",
    "NOISE_KINDS",
    "Split",
    "add_label_noise",
    "balanced_subsample",
    "conic_hull_directions",
    "latent_noise_classes",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "load_svhn",
    "make_conic_hull",
    "make_dataset_from_arrays",
    "make_mnist1d",
    "make_teacher",
    "pair_flip_noise",
    "read_idx",
    "subset_classes",
    "symmetric_noise",
]
