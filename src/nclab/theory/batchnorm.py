r"""Batch norm and feature norms: seed 003 (Pan, 2023), Proposition 2.2.1.

For features taken immediately after a batch-norm layer with scale vector :math:`\gamma` and
shift :math:`\beta = 0`, over every batch of a pass (batches of any sizes, the last one smaller
included), the mean squared feature norm is fixed by the scale alone:

.. math:: \sqrt{\tfrac{1}{N}\textstyle\sum_{i=1}^N \lVert h_i \rVert^2} = \lVert \gamma \rVert .

Proof (seed 003 App. A.1): in a batch of size B each coordinate k is standardised,
:math:`\hat x^{(k)}_i = (x^{(k)}_i - m^{(k)})/s^{(k)}` with the batch mean and the *biased*
standard deviation, so :math:`\sum_i (\hat x^{(k)}_i)^2 = B`; then
:math:`\sum_i \lVert h_i \rVert^2 = \sum_k (\gamma_k)^2 \sum_i (\hat x^{(k)}_i)^2 = B \lVert\gamma\rVert^2`,
and summing over the batches gives :math:`N \lVert\gamma\rVert^2`.

With the :math:`\epsilon` of a real BN layer (:math:`s^{(k)} = \sqrt{\sigma^{2(k)} + \epsilon}`)
the identity becomes :math:`\sum_i \lVert h_i\rVert^2 = \sum_b B_b \sum_k \gamma_k^2\,
\sigma_b^{2(k)}/(\sigma_b^{2(k)} + \epsilon)`, which :func:`bn_mean_sq_norm` computes; it tends
to :math:`\lVert\gamma\rVert^2` as :math:`\epsilon \to 0`. A coordinate that is constant within a
batch (:math:`\sigma^2 = 0`) contributes 0, not :math:`\gamma_k^2`: the proposition assumes
non-degenerate batches.
"""

from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["bn_mean_sq_norm", "bn_norm_identity_check"]


def bn_mean_sq_norm(batches: Sequence[torch.Tensor], gamma: torch.Tensor, *, eps: float = 0.0
                    ) -> float:
    r"""Predicted :math:`\frac1N\sum_i\lVert h_i\rVert^2` of ``BN(x)`` in training mode with
    scale ``gamma``, shift 0 and ``eps``, over ``batches`` (each of shape (B_b, d)).

    With ``eps = 0`` and non-constant coordinates this is :math:`\lVert\gamma\rVert^2`
    (Prop. 2.2.1); see the module docstring for the general formula.
    """
    g2 = torch.as_tensor(gamma, dtype=torch.float64) ** 2
    total, count = 0.0, 0
    for x in batches:
        x = torch.as_tensor(x, dtype=torch.float64)
        var = x.var(dim=0, unbiased=False)
        total += float(x.shape[0] * (g2 * var / (var + eps)).sum())
        count += x.shape[0]
    return total / count


def bn_norm_identity_check(*, dim: int = 16, batch_sizes: Sequence[int] = (128, 128, 37),
                           eps: float = 1e-12, seed: int = 0) -> tuple[float, float, float]:
    r"""Run ``torch.nn.BatchNorm1d`` (training mode, random :math:`\gamma`, :math:`\beta = 0`)
    over random batches and return ``(measured, predicted, ||gamma||)`` where ``measured`` is
    :math:`\sqrt{\frac1N\sum\lVert h_i\rVert^2}` of the layer's outputs and ``predicted`` is
    :math:`\sqrt{\texttt{bn\_mean\_sq\_norm}}` (``||gamma||`` up to O(eps / variance); PyTorch
    needs ``eps > 0`` in training mode, hence the tiny default)."""
    g = torch.Generator().manual_seed(seed)
    bn = torch.nn.BatchNorm1d(dim, eps=eps, dtype=torch.float64).train()
    with torch.no_grad():
        bn.weight.copy_(torch.rand(dim, generator=g, dtype=torch.float64) * 3 + 0.1)
        bn.bias.zero_()
    batches = [torch.randn(b, dim, generator=g, dtype=torch.float64) * 5 + 2 for b in batch_sizes]
    with torch.no_grad():
        sq = sum(float((bn(x) ** 2).sum()) for x in batches)
    n = sum(batch_sizes)
    measured = (sq / n) ** 0.5
    predicted = bn_mean_sq_norm(batches, bn.weight.detach(), eps=eps) ** 0.5
    return measured, predicted, float(torch.linalg.vector_norm(bn.weight.detach()))
