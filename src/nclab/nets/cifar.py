"""CIFAR forms (32 x 32 inputs, 3 x 3 stem, no stem max-pool) of the convolutional networks.

ResNet18: He et al. (CVPR 2016) with the CIFAR adaptation used throughout the neural-collapse
literature (Papyan et al. 2020; seed 001, Table 2; seed 004 Sec. 6): a 3x3 stride-1 stem,
four stages of two BasicBlocks (64, 128, 256, 512 channels), global average pooling, 512-d
features.

VGG11 / VGG13: Simonyan & Zisserman (ICLR 2015) configurations A / B with batch norm after every
convolution (conv bias kept, as in the common CIFAR ports), five 2x2 max-pools, 512-d features:
A = 64-M-128-M-256-256-M-512-512-M-512-512-M, B = 64-64-M-128-128-M-256-256-M-512-512-M-512-512-M.
VGG11 is a network of seed 002 (Sec. 5, Fig. 3-4).

ResNet32: the CIFAR ResNet of He et al. (CVPR 2016, Sec. 4.2): a 3x3 conv of 16 channels, three
stages of n = 5 BasicBlocks with 16, 32, 64 channels (6n + 2 = 32 layers), global average
pooling, 64-d features. Shortcuts are option A of that section: identity, and where the shape
changes, stride-2 subsampling with zero-padded extra channels ("so all shortcuts are
parameter-free", 0.46 M parameters, Table 6). A network of seed 002 (Sec. 5).

DenseNet121: Huang et al. (CVPR 2017) with the CIFAR stem used by seed 002's networks and the
common CIFAR ports: a 3x3 conv to 2k = 64 channels (no 7x7 conv, no max-pool), four dense blocks
of 6, 12, 24, 16 bottleneck layers (BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k, growth rate
k = 32, concatenated), transitions with compression 0.5 (BN-ReLU-1x1 conv-2x2 average pool), a
final BN-ReLU and global average pooling: 1024-d features.

Taps: ``stem``, ``layer1.0`` ... ``layer4.1``, ``pool`` (ResNet18); ``conv1`` ... ``conv8`` /
``conv10`` and ``pool`` (VGG11 / VGG13; a max-pool belongs to the conv block before it);
``stem``, ``layer1.0`` ... ``layer3.4``, ``pool`` (ResNet32); ``stem``, ``dense1``, ``trans1``,
``dense2``, ``trans2``, ``dense3``, ``trans3``, ``dense4``, ``pool`` (DenseNet121). The global
pooling is adaptive and VGG's max-pools round up (``ceil_mode``; the same maps as flooring for
32 x 32), so 28 x 28 inputs (MNIST, seed 001 Table 2) work in every network.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "CNN_BLOCKS",
    "CNN_FEATURE_DIMS",
    "densenet121_blocks",
    "resnet18_blocks",
    "resnet32_blocks",
    "vgg11_blocks",
    "vgg13_blocks",
]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):  # noqa: D102
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class _PadShortcut(nn.Module):
    """Option-A shortcut (He et al. 2016, Sec. 4.2): subsample by ``stride``, zero-pad the new channels."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.extra = c_out - c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = x[:, :, :: self.stride, :: self.stride]
        lo = self.extra // 2
        return F.pad(x, (0, 0, 0, 0, lo, self.extra - lo))


class _OptionABlock(BasicBlock):
    """BasicBlock whose shape-changing shortcut is the parameter-free option A."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__(c_in, c_out, stride)
        if stride != 1 or c_in != c_out:
            self.shortcut = _PadShortcut(c_in, c_out, stride)


def resnet18_blocks(in_channels: int = 3) -> list[tuple[str, nn.Module]]:
    """Named blocks of a CIFAR ResNet18 (features of dimension 512)."""
    blocks: list[tuple[str, nn.Module]] = [
        ("stem", nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)))
    ]
    c_in = 64
    for stage, (c_out, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
        for j in range(2):
            blocks.append((f"layer{stage}.{j}", BasicBlock(c_in, c_out, stride if j == 0 else 1)))
            c_in = c_out
    blocks.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return blocks


def resnet32_blocks(in_channels: int = 3, *, blocks_per_stage: int = 5) -> list[tuple[str, nn.Module]]:
    """Named blocks of the CIFAR ResNet-(6n+2) of He et al. (n = 5: ResNet32; features of dimension 64)."""
    blocks: list[tuple[str, nn.Module]] = [
        ("stem", nn.Sequential(nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True)))
    ]
    c_in = 16
    for stage, (c_out, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        for j in range(blocks_per_stage):
            blocks.append((f"layer{stage}.{j}", _OptionABlock(c_in, c_out, stride if j == 0 else 1)))
            c_in = c_out
    blocks.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return blocks


_VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
_VGG13 = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def _vgg_blocks(cfg: list, in_channels: int) -> list[tuple[str, nn.Module]]:
    blocks: list[tuple[str, nn.Module]] = []
    c_in, k = in_channels, 0
    for v in cfg:
        if v == "M":
            name, seq = blocks[-1]
            # ceil_mode: 32 -> 16 -> 8 -> 4 -> 2 -> 1 as before, and 28 x 28 (MNIST) -> 14 -> 7 -> 4 -> 2 -> 1
            # instead of a 0 x 0 map after the fifth pool
            blocks[-1] = (name, nn.Sequential(*seq, nn.MaxPool2d(2, ceil_mode=True)))
            continue
        k += 1
        blocks.append((f"conv{k}", nn.Sequential(nn.Conv2d(c_in, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True))))
        c_in = int(v)
    blocks.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return blocks


def vgg11_blocks(in_channels: int = 3) -> list[tuple[str, nn.Module]]:
    """Named blocks of a CIFAR VGG11 with batch norm (configuration A; features of dimension 512)."""
    return _vgg_blocks(_VGG11, in_channels)


def vgg13_blocks(in_channels: int = 3) -> list[tuple[str, nn.Module]]:
    """Named blocks of a CIFAR VGG13 with batch norm (configuration B; features of dimension 512)."""
    return _vgg_blocks(_VGG13, in_channels)


class _DenseLayer(nn.Module):
    """Bottleneck layer of a dense block: BN-ReLU-1x1 conv (4k) - BN-ReLU-3x3 conv (k), concatenated to the input."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


def densenet121_blocks(
    in_channels: int = 3, *, growth: int = 32, layers: tuple[int, ...] = (6, 12, 24, 16), compression: float = 0.5
) -> list[tuple[str, nn.Module]]:
    """Named blocks of a CIFAR DenseNet-BC-121 (growth 32, blocks 6-12-24-16; features of dimension 1024)."""
    c = 2 * growth
    blocks: list[tuple[str, nn.Module]] = [("stem", nn.Conv2d(in_channels, c, 3, padding=1, bias=False))]
    for i, n in enumerate(layers, start=1):
        dense = []
        for _ in range(n):
            dense.append(_DenseLayer(c, growth))
            c += growth
        blocks.append((f"dense{i}", nn.Sequential(*dense)))
        if i < len(layers):
            c_out = int(c * compression)
            blocks.append((f"trans{i}", nn.Sequential(
                nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c_out, 1, bias=False), nn.AvgPool2d(2)
            )))
            c = c_out
    blocks.append(("pool", nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return blocks


CNN_BLOCKS: dict[str, Callable[[int], list[tuple[str, nn.Module]]]] = {
    "resnet18": resnet18_blocks,
    "resnet32": resnet32_blocks,
    "vgg11": vgg11_blocks,
    "vgg13": vgg13_blocks,
    "densenet121": densenet121_blocks,
}
"""Block builders of the convolutional architectures, by ``NetSpec.arch`` name."""

CNN_FEATURE_DIMS: dict[str, int] = {"resnet18": 512, "resnet32": 64, "vgg11": 512, "vgg13": 512, "densenet121": 1024}
"""Native penultimate feature dimension d of each convolutional architecture."""
