r"""Classifier heads: a trainable linear head and a fixed simplex-ETF head.

A simplex equiangular tight frame of C unit vectors in R^d (d >= C - 1) has the Gram matrix

.. math:: M M^\top = \frac{C}{C-1}\Big(I_C - \frac{1}{C}\mathbf 1\mathbf 1^\top\Big),

i.e. unit norms and pairwise inner products -1/(C-1) (Papyan et al., PNAS 2020). Yang et al.
(NeurIPS 2022) fix the classifier to such a frame; seed 002 (Sec. 5.2) trains with an ETF head
``M* P_i`` (classes permuted) or ``R_i M*`` (features rotated by an orthogonal R_i) and never
updates it, to show that equivalent ETFs generalise differently. Rows of ``weight`` here are
the class vectors, so the column permutation ``M* P`` of the paper is a row permutation and
``R M*`` is ``weight @ R.T``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from nclab.errors import SpecError

__all__ = ["simplex_etf", "random_orthogonal", "FixedETFHead"]


def simplex_etf(num_classes: int, dim: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    r"""The canonical simplex ETF: C unit rows in R^d with inner products -1/(C-1).

    .. math:: M = \sqrt{\tfrac{C}{C-1}}\,(I_C - \tfrac1C \mathbf 1\mathbf 1^\top)\,U

    with U = [I_C, 0] (C x d) when d >= C, and U an orthonormal basis (C x (C-1)) of the
    complement of the all-ones vector when d = C - 1.

    Raises
    ------
    SpecError
        If ``num_classes < 2`` or ``dim < num_classes - 1``.
    """
    c, d = int(num_classes), int(dim)
    if c < 2:
        raise SpecError(f"a simplex ETF needs num_classes >= 2; got {c}.")
    if d < c - 1:
        raise SpecError(f"a simplex ETF of {c} classes needs dim >= {c - 1}; got dim={d}. Widen the features.")
    centred = torch.eye(c, dtype=torch.float64) - 1.0 / c
    scale = math.sqrt(c / (c - 1))
    if d >= c:
        m = torch.zeros(c, d, dtype=torch.float64)
        m[:, :c] = scale * centred
    else:  # d == c - 1: orthonormal basis of 1-perp from the QR of the centring matrix
        q, _ = torch.linalg.qr(centred[:, : c - 1])
        m = scale * q
    return m.to(dtype)


def random_orthogonal(dim: int, *, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Haar-distributed orthogonal (d, d) matrix: QR of a seeded Gaussian with the sign fix of Mezzadri (2007)."""
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(dtype)


class FixedETFHead(nn.Module):
    """Linear classifier fixed to a (permuted or rotated) simplex ETF; never trained.

    ``logits = scale * features @ weight.T`` with ``weight`` a buffer (not a parameter), so no
    optimizer, weight decay or ``requires_grad`` switch can change it.

    Parameters
    ----------
    num_classes : int
        C.
    dim : int
        Feature dimension d >= C - 1.
    transform : {"none", "permute", "rotate"}, default="none"
        ``permute``: rows permuted by a seeded random permutation (the paper's ``M* P``);
        ``rotate``: rows multiplied by a seeded Haar orthogonal matrix (``R M*``).
    seed : int, default=0
        Seed of the permutation / rotation.
    scale : float, default=1.0
        Fixed logit scale.
    """

    weight: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        transform: Literal["none", "permute", "rotate"] = "none",
        seed: int = 0,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        m = simplex_etf(num_classes, dim)
        if transform == "permute":
            g = torch.Generator().manual_seed(int(seed))
            m = m[torch.randperm(num_classes, generator=g)]
        elif transform == "rotate":
            m = m @ random_orthogonal(dim, seed=seed).T
        elif transform != "none":
            raise SpecError(f"head transform must be 'none', 'permute' or 'rotate'; got {transform!r}.")
        self.register_buffer("weight", m.to(torch.float32))
        self.transform = transform
        self.seed = int(seed)
        self.scale = float(scale)
        self.bias = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * (features @ self.weight.T)

    def extra_repr(self) -> str:
        c, d = self.weight.shape
        return f"num_classes={c}, dim={d}, transform={self.transform}, seed={self.seed}, scale={self.scale}"
