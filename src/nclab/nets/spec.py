"""Declarative network specification and the factory that builds it."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from nclab.errors import SpecError
from nclab.nets.base import TappedNet
from nclab.nets.cifar import CNN_BLOCKS, CNN_FEATURE_DIMS
from nclab.nets.conv1d import cnn1d_blocks
from nclab.nets.heads import FixedETFHead
from nclab.nets.mlp import mlp_blocks

__all__ = ["ARCHS", "NetSpec", "build_net"]

_CONSTRAINTS: dict[str, tuple[str, ...]] = {
    "arch": ("mlp", "cnn1d", *CNN_BLOCKS),
    "activation": ("relu", "sigmoid"),
    "batch_norm": ("affine", "non-affine", "none"),
    "head": ("linear", "etf"),
    "head_transform": ("none", "permute", "rotate"),
}

ARCHS: tuple[str, ...] = _CONSTRAINTS["arch"]
"""Architecture names accepted by ``NetSpec.arch``: ``mlp``, the 1-D ``cnn1d`` (``depth`` conv layers of
``width`` channels, for signals such as MNIST-1D) and the CIFAR CNNs."""


@dataclass(frozen=True)
class NetSpec:
    """A network: architecture, sizes, normalisation and classifier head.

    Attributes
    ----------
    arch : {"mlp", "cnn1d", "resnet18", "resnet32", "vgg11", "vgg13", "densenet121"}, default="mlp"
        Architecture; the CNNs are the CIFAR forms of :mod:`nclab.nets.cifar` and need image
        inputs (C, H, W). Native feature dimensions: ResNet18 / VGG11 / VGG13 512, ResNet32 64,
        DenseNet121 1024.
    depth : int, default=9
        MLP hidden layers (paper preset: 9).
    width : int, default=2048
        MLP hidden width (paper preset: 2048).
    activation : {"relu", "sigmoid"}, default="relu"
        MLP activation.
    batch_norm : {"affine", "non-affine", "none"}, default="affine"
        MLP batch norm mode (seed 003, Sec. 3.1).
    bn_after_activation : bool, default=False
        MLP block order Linear -> act -> BN (seed 003, Def. 3.2.1) instead of Linear -> BN -> act.
    penultimate_width : int or None, default=None
        Feature dimension M; None means M = number of classes for the MLP (seed 001) and the
        native dimension for the CNNs (an int adds a Linear-BN-ReLU feature block to a CNN).
    head : {"linear", "etf"}, default="linear"
        Trainable linear head, or a fixed simplex-ETF head (seed 002, Sec. 5.2); when the
        number of classes C exceeds d + 1 the fixed head is the classifier of a cross-entropy
        UFM instead, as seed 002 does (see :func:`nclab.nets.heads.classifier_frame`).
    head_bias : bool, default=True
        Bias of the linear head (an ETF head has none).
    head_transform : {"none", "permute", "rotate"}, default="none"
        Seeded permutation or rotation of the fixed ETF.
    head_seed : int, default=0
        Seed of that permutation / rotation.
    head_scale : float, default=1.0
        Fixed logit scale of the ETF head.
    """

    arch: Literal["mlp", "cnn1d", "resnet18", "resnet32", "vgg11", "vgg13", "densenet121"] = "mlp"
    depth: int = 9
    width: int = 2048
    activation: Literal["relu", "sigmoid"] = "relu"
    batch_norm: Literal["affine", "non-affine", "none"] = "affine"
    bn_after_activation: bool = False
    penultimate_width: int | None = None
    head: Literal["linear", "etf"] = "linear"
    head_bias: bool = True
    head_transform: Literal["none", "permute", "rotate"] = "none"
    head_seed: int = 0
    head_scale: float = 1.0

    def __post_init__(self) -> None:
        for name, allowed in _CONSTRAINTS.items():
            v = getattr(self, name)
            if v not in allowed:
                raise SpecError(f"NetSpec.{name} must be one of {allowed}; got {v!r}.")
        if not (isinstance(self.depth, int) and self.depth >= 0):
            raise SpecError(f"NetSpec.depth must be an int >= 0; got {self.depth!r}.")
        if not (isinstance(self.width, int) and self.width >= 1):
            raise SpecError(f"NetSpec.width must be an int >= 1; got {self.width!r}.")
        if self.penultimate_width is not None and not (
            isinstance(self.penultimate_width, int) and self.penultimate_width >= 1
        ):
            raise SpecError(f"NetSpec.penultimate_width must be None or an int >= 1; got {self.penultimate_width!r}.")
        if self.head_transform != "none" and self.head != "etf":
            raise SpecError("NetSpec.head_transform needs head='etf' (a trained head is not permuted or rotated).")
        if not (math.isfinite(self.head_scale) and self.head_scale > 0):
            raise SpecError(f"NetSpec.head_scale must be a positive number; got {self.head_scale!r}.")

    @classmethod
    def paper_mlp(cls, **overrides: Any) -> "NetSpec":
        """Seed 001 App. A.1.1: 9 x 2048 MLP with affine BN and ReLU, M = N, linear head with bias."""
        return cls(**{"arch": "mlp", "depth": 9, "width": 2048, "batch_norm": "affine", **overrides})

    @classmethod
    def quick_mlp(cls, **overrides: Any) -> "NetSpec":
        """A CPU-sized MLP with the same layout: 4 x 256, affine BN, ReLU, M = N."""
        return cls(**{"arch": "mlp", "depth": 4, "width": 256, "batch_norm": "affine", **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-ready)."""
        return dataclasses.asdict(self)


def build_net(spec: NetSpec, *, input_shape: tuple[int, ...], num_classes: int) -> TappedNet:
    """Build the network of ``spec`` for inputs of ``input_shape`` (without the batch axis).

    Parameters are initialised from torch's global generator; seed it (as
    :func:`nclab.train.train` does) for reproducible weights.

    Raises
    ------
    SpecError
        A CNN on non-image inputs.
    """
    if num_classes < 2:
        raise SpecError(f"num_classes must be >= 2; got {num_classes}.")
    if spec.arch == "mlp":
        m = spec.penultimate_width or num_classes
        n_in = int(math.prod(input_shape))
        blocks = mlp_blocks(
            n_in, depth=spec.depth, width=spec.width, penultimate_width=m,
            activation=spec.activation, batch_norm=spec.batch_norm,
            bn_after_activation=spec.bn_after_activation,
        )
        dim = m
    elif spec.arch == "cnn1d":
        if len(input_shape) not in (1, 2):
            raise SpecError(f"cnn1d needs signal inputs of shape (L,) or (channels, L); got {tuple(input_shape)}.")
        blocks = cnn1d_blocks(tuple(input_shape), depth=spec.depth, width=spec.width)
        dim = spec.width
        if spec.penultimate_width is not None:
            m = spec.penultimate_width
            blocks.append(("features", nn.Sequential(nn.Linear(dim, m), nn.BatchNorm1d(m), nn.ReLU())))
            dim = m
    else:
        if len(input_shape) != 3:
            raise SpecError(
                f"{spec.arch} needs image inputs of shape (channels, H, W); got {tuple(input_shape)}. Use arch='mlp'."
            )
        blocks = CNN_BLOCKS[spec.arch](input_shape[0])
        dim = CNN_FEATURE_DIMS[spec.arch]
        if spec.penultimate_width is not None:
            m = spec.penultimate_width
            blocks.append(("features", nn.Sequential(nn.Linear(dim, m), nn.BatchNorm1d(m), nn.ReLU())))
            dim = m
    if spec.head == "etf":
        head: nn.Module = FixedETFHead(num_classes, dim, transform=spec.head_transform, seed=spec.head_seed, scale=spec.head_scale)
    else:
        head = nn.Linear(dim, num_classes, bias=spec.head_bias)
    return TappedNet(blocks, head)
