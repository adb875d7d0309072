"""A small 1-D convolutional network for signal inputs such as MNIST-1D (Greydanus 2020: a 40-sample
1-D signal per example).

``cnn1d``: ``depth`` blocks of Conv1d (kernel 5 in the first, 3 after; stride 2 from the second on,
padding keeping the length) - BatchNorm1d - ReLU with ``width`` channels, then a global average pool:
``width``-dimensional features. The quick-preset stand-in for seed 004's ResNet18 on MNIST-1D
(`depthwise-resnet`): convolutional layers whose per-layer collapse can be measured, at CPU cost.

Taps: ``conv1`` ... ``conv{depth}`` (outputs (n, width, L_l); ``pool_spatial`` averages them over L),
``pool`` (the features).
"""

from __future__ import annotations

from torch import nn

__all__ = ["cnn1d_blocks"]


def cnn1d_blocks(input_shape: tuple[int, ...], *, depth: int, width: int) -> list[tuple[str, nn.Module]]:
    """The blocks of ``cnn1d`` for inputs of shape (L,) or (channels, L)."""
    channels = 1 if len(input_shape) == 1 else int(input_shape[0])
    blocks: list[tuple[str, nn.Module]] = []
    c = channels
    for i in range(max(1, depth)):
        layers: list[nn.Module] = []
        if i == 0 and len(input_shape) == 1:
            layers.append(nn.Unflatten(1, (1, int(input_shape[0]))))  # (n, L) -> (n, 1, L)
        k, stride = (5, 1) if i == 0 else (3, 2)
        layers += [nn.Conv1d(c, width, k, stride, k // 2, bias=False), nn.BatchNorm1d(width), nn.ReLU()]
        blocks.append((f"conv{i + 1}", nn.Sequential(*layers)))
        c = width
    blocks.append(("pool", nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten())))
    return blocks
