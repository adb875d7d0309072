"""A network as a named sequence of blocks plus a classifier head, with feature taps.

Every block has a name; ``forward_taps(x, names)`` returns the logits and the flattened output
of the named blocks computed in the same forward pass (no hooks, no second pass). The last
block's output is the penultimate-layer feature vector h (tap ``"features"`` is its alias), on
which the collapse metrics are computed; per-layer metrics use the other taps.
"""

from __future__ import annotations

from typing import Collection, Sequence

import torch
from torch import nn

from nclab.errors import SpecError

__all__ = ["TappedNet"]


class TappedNet(nn.Module):
    """Blocks applied in order, then ``head``; ``tap_names`` lists the block names.

    Parameters
    ----------
    blocks : sequence of (name, module)
        The feature extractor, in order; the last block outputs the penultimate features.
    head : nn.Module
        Classifier on the flattened features (``nn.Linear`` or a fixed ETF head).
    """

    def __init__(self, blocks: Sequence[tuple[str, nn.Module]], head: nn.Module) -> None:
        super().__init__()
        names = [n for n, _ in blocks]
        if len(set(names)) != len(names) or "features" in names[:-1] or "logits" in names:
            raise SpecError(f"block names must be unique and not 'logits'; got {names}.")
        self.tap_names: tuple[str, ...] = tuple(names)
        self.blocks = nn.ModuleList([m for _, m in blocks])
        self.head = head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features h, shape (n, d)."""
        for blk in self.blocks:
            x = blk(x)
        return x.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_taps(
        self, x: torch.Tensor, taps: Collection[str] = ("features",), *, pool_spatial: bool = False
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and the flattened outputs of the requested blocks, in one pass.

        ``"features"`` names the penultimate features (the last block) whatever its name.
        With ``pool_spatial=True`` a convolutional tap (n, c, H, W) or (n, c, L) is averaged over its
        spatial axes to (n, c) instead of flattened to (n, c H W), which keeps per-layer metrics affordable.

        Raises
        ------
        SpecError
            If a requested tap is not a block name.
        """
        want = set(taps)
        unknown = want - set(self.tap_names) - {"features"}
        if unknown:
            raise SpecError(f"unknown tap(s) {sorted(unknown)}; this network has taps {list(self.tap_names)}.")
        out: dict[str, torch.Tensor] = {}
        for name, blk in zip(self.tap_names, self.blocks):
            x = blk(x)
            if name in want:
                out[name] = x.mean(dim=tuple(range(2, x.ndim))) if (pool_spatial and x.ndim >= 3) else x.flatten(1)
        h = x.flatten(1)
        if "features" in want:
            out["features"] = h
        return self.head(h), out

    @property
    def feature_dim(self) -> int:
        """Dimension d of the penultimate features."""
        w = getattr(self.head, "weight", None)
        if w is None:
            raise SpecError("the head has no weight; cannot infer the feature dimension.")
        return int(w.shape[1])
