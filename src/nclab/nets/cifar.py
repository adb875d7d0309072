"""ResNet18 and VGG13 in their CIFAR forms (32 x 32 inputs, 3 x 3 stem, no stem max-pool).

ResNet18: He et al. (CVPR 2016) with the CIFAR adaptation used throughout the neural-collapse
literature (Papyan et al. 2020; seed 001, Table 2; seed 004 Sec. 6): a 3x3 stride-1 stem,
four stages of two BasicBlocks (64, 128, 256, 512 channels), global average pooling, 512-d
features. VGG13: Simonyan & Zisserman (ICLR 2015) configuration B with batch norm,
64-64-M-128-128-M-256-256-M-512-512-M-512-512-M, 512-d features.

Taps: ``stem``, ``layer1.0`` ... ``layer4.1``, ``pool`` (ResNet18); ``conv1`` ... ``conv10``
and ``pool`` (VGG13; a max-pool belongs to the conv block before it).
"""

from __future__ import annotations

from torch import nn

__all__ = ["resnet18_blocks", "vgg13_blocks"]


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


_VGG13 = [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]


def vgg13_blocks(in_channels: int = 3) -> list[tuple[str, nn.Module]]:
    """Named blocks of a CIFAR VGG13 with batch norm (features of dimension 512)."""
    blocks: list[tuple[str, nn.Module]] = []
    c_in, k = in_channels, 0
    for v in _VGG13:
        if v == "M":
            name, seq = blocks[-1]
            blocks[-1] = (name, nn.Sequential(*seq, nn.MaxPool2d(2)))
            continue
        k += 1
        blocks.append((f"conv{k}", nn.Sequential(nn.Conv2d(c_in, int(v), 3, padding=1), nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True))))
        c_in = int(v)
    blocks.append(("pool", nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())))
    return blocks
