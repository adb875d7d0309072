r"""Classifier heads: a trainable linear head and a fixed simplex-ETF head.

A simplex equiangular tight frame of C unit vectors in R^d (d >= C - 1) has the Gram matrix

.. math:: M M^\top = \frac{C}{C-1}\Big(I_C - \frac{1}{C}\mathbf 1\mathbf 1^\top\Big),

i.e. unit norms and pairwise inner products -1/(C-1) (Papyan et al., PNAS 2020). Yang et al.
(NeurIPS 2022) fix the classifier to such a frame; seed 002 (Sec. 5.2) trains with an ETF head
``M* P_i`` (classes permuted) or ``R_i M*`` (features rotated by an orthogonal R_i) and never
updates it, to show that equivalent ETFs generalise differently. Rows of ``weight`` here are
the class vectors, so the column permutation ``M* P`` of the paper is a row permutation and
``R M*`` is ``weight @ R.T``. The frame itself is :func:`nclab.metrics.simplex_etf` (its one home).

No simplex ETF of C vectors exists in R^d when C - 1 > d (e.g. CIFAR-100 on the 64-d features
of ResNet32). Seed 002 (Sec. 5.2, "The category number v.s. feature dimension") then "obtain[s]
the structure by optimizing CE loss on the unconstrained feature models" and otherwise proceeds
as for d >= C - 1; :func:`classifier_frame` does the same (see its docstring for the model).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Literal

import numpy as np
import torch
from torch import nn

from nclab.errors import SpecError

__all__ = ["UFM_FRAME_DECAY", "classifier_frame", "random_orthogonal", "FixedETFHead"]

UFM_FRAME_DECAY = 5e-4
"""Weight decay lambda_W = lambda_H of the CE UFM that gives the fixed head when C - 1 > d."""


def classifier_frame(num_classes: int, dim: int) -> tuple[torch.Tensor, str]:
    r"""The fixed classifier of C classes in R^d: a simplex ETF, or a CE-UFM frame when C - 1 > d.

    For d >= C - 1 this is :func:`nclab.metrics.simplex_etf` (unit rows, cosines -1/(C-1)).
    For d < C - 1 (no simplex ETF exists) it is the classifier W of the minimiser of the
    cross-entropy unconstrained-features model with one collapsed feature per class (seed 002,
    Sec. 5.2),

    .. math:: \min_{W \in \mathbb R^{C\times d},\,H \in \mathbb R^{d\times C}}
              \frac1C\sum_{c=1}^C \mathrm{CE}(W h_c, c) + \frac{\lambda}{2}\|W\|_F^2 + \frac{\lambda}{2}\|H\|_F^2,

    with :math:`\lambda` = :data:`UFM_FRAME_DECAY` (seed 002 does not state its UFM's
    regularisation), solved by :func:`nclab.ufm.solve` (best of 3 seeded starts), then scaled to
    :math:`\|W\|_F^2 = C` (mean squared row norm 1, as the ETF's unit rows). At any stationary
    point the rows sum to zero (:math:`\lambda \mathbf 1^\top W = -\tfrac1C \mathbf 1^\top (P - Y) H^\top = 0`);
    for d >= C - 1 the same model's minimiser is a simplex ETF (Zhu et al., NeurIPS 2021), so the
    two branches agree where both apply (checked in the tests).

    Returns
    -------
    frame : torch.Tensor of shape (C, d), float64
    kind : {"simplex-etf", "ufm-ce"}

    Raises
    ------
    SpecError
        If ``num_classes < 2`` or ``dim < 1``, or the UFM solver does not converge.
    """
    c, d = int(num_classes), int(dim)
    if c < 2 or d < 1:
        raise SpecError(f"a classifier frame needs num_classes >= 2 and dim >= 1; got num_classes={c}, dim={d}.")
    if d >= c - 1:
        from nclab.metrics import simplex_etf

        return simplex_etf(c, d, dtype=torch.float64), "simplex-etf"
    return _ufm_frame(c, d).clone(), "ufm-ce"


@functools.lru_cache(maxsize=16)
def _ufm_frame(c: int, d: int) -> torch.Tensor:
    """CE-UFM classifier (C, d) scaled to ||W||_F^2 = C; cached (deterministic in (C, d))."""
    from nclab.errors import ConvergenceWarning
    from nclab.ufm import UFMProblem, solve

    p = UFMProblem("plain", loss="ce", num_classes=c, per_class=1, dim=d,
                   lambda_w=UFM_FRAME_DECAY, lambda_h=UFM_FRAME_DECAY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r = solve(p, seed=0, restarts=3, track_metrics=False, max_iter=50_000)
    if not r.converged:
        raise SpecError(
            f"the CE UFM giving the fixed head of {c} classes in {d} dimensions did not converge; "
            f"widen the features to dim >= {c - 1} for a simplex ETF."
        )
    w = torch.tensor(np.array(r.matrices["W"], dtype=np.float64)).reshape(c, d)
    return w * math.sqrt(c) / torch.linalg.matrix_norm(w)


def random_orthogonal(dim: int, *, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A Haar-distributed orthogonal (d, d) matrix: QR of a seeded Gaussian with the sign fix of Mezzadri (2007)."""
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(dtype)


class FixedETFHead(nn.Module):
    """Linear classifier fixed to a (permuted or rotated) simplex ETF; never trained.

    ``frame`` is ``"simplex-etf"``, or ``"ufm-ce"`` when C - 1 > d (:func:`classifier_frame`).

    ``logits = scale * features @ weight.T`` with ``weight`` a buffer (not a parameter), so no
    optimizer, weight decay or ``requires_grad`` switch can change it.

    Parameters
    ----------
    num_classes : int
        C.
    dim : int
        Feature dimension d; d >= C - 1 gives a simplex ETF, d < C - 1 the CE-UFM frame of
        :func:`classifier_frame` (seed 002, Sec. 5.2).
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
        m, self.frame = classifier_frame(num_classes, dim)
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
        return (f"num_classes={c}, dim={d}, frame={self.frame}, transform={self.transform}, "
                f"seed={self.seed}, scale={self.scale}")
