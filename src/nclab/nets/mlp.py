"""Multi-layer perceptrons with optional batch normalisation.

Paper preset (seed 001, App. A.1.1): 9 hidden layers of width 2048, each with batch norm and
ReLU (or sigmoid), a penultimate feature layer of width M (= number of classes N by default,
"The feature dimension M is set to the number of classes N") and a linear softmax classifier.
Seed 003 (Sec. 3.1) compares BN with affine parameters, BN without them ("fixing gamma = 1 and
beta = 0") and no BN; Def. 3.2.1 there puts BN after the activation, which
``bn_after_activation=True`` reproduces (default: Linear -> BN -> activation).

Layout: ``depth`` hidden blocks ``block1 .. block{depth}`` of width ``width``, then the block
``features`` of width M, then the head. Every block is a tap.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from nclab.errors import SpecError

__all__ = ["mlp_blocks"]

Activation = Literal["relu", "sigmoid"]
BatchNorm = Literal["affine", "non-affine", "none"]


def _block(n_in: int, n_out: int, activation: str, batch_norm: str, bn_after: bool) -> nn.Sequential:
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}[activation]()
    layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
    bn = None if batch_norm == "none" else nn.BatchNorm1d(n_out, affine=batch_norm == "affine")
    if bn is not None and not bn_after:
        layers.append(bn)
    layers.append(act)
    if bn is not None and bn_after:
        layers.append(bn)
    return nn.Sequential(*layers)


def mlp_blocks(
    in_features: int,
    *,
    depth: int,
    width: int,
    penultimate_width: int,
    activation: Activation = "relu",
    batch_norm: BatchNorm = "affine",
    bn_after_activation: bool = False,
) -> list[tuple[str, nn.Module]]:
    """Named blocks of an MLP: a flatten + ``depth`` hidden blocks + the feature block.

    Raises
    ------
    SpecError
        Invalid depth, width, activation or batch-norm mode.
    """
    if activation not in ("relu", "sigmoid"):
        raise SpecError(f"activation must be 'relu' or 'sigmoid'; got {activation!r}.")
    if batch_norm not in ("affine", "non-affine", "none"):
        raise SpecError(f"batch_norm must be 'affine', 'non-affine' or 'none'; got {batch_norm!r}.")
    if depth < 0 or width < 1 or penultimate_width < 1 or in_features < 1:
        raise SpecError(
            f"MLP sizes must be positive (depth >= 0); got depth={depth}, width={width}, "
            f"penultimate_width={penultimate_width}, in_features={in_features}."
        )
    blocks: list[tuple[str, nn.Module]] = []
    prev = in_features
    for i in range(depth):
        blk = _block(prev, width, activation, batch_norm, bn_after_activation)
        if i == 0:
            blk = nn.Sequential(nn.Flatten(), *blk)
        blocks.append((f"block{i + 1}", blk))
        prev = width
    feat = _block(prev, penultimate_width, activation, batch_norm, bn_after_activation)
    if depth == 0:
        feat = nn.Sequential(nn.Flatten(), *feat)
    blocks.append(("features", feat))
    return blocks
