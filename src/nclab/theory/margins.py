r"""Margins and the computable terms of the margin bounds of seed 002 (Thm 4.1, 4.4, 4.8, 4.10).

Notation of seed 002: features :math:`z = f(x; w) \in \mathbb{R}^d`, the bias-free linear
classifier :math:`M \in \mathbb{R}^{C \times d}` (rows :math:`M_y`), :math:`N` training samples,
:math:`N_y` of class :math:`y`. In nclab: ``features`` (n, d), ``labels`` (n,), ``weight`` (C, d).

* Pair margin (Def. 4.3): the largest :math:`\gamma_{y,y'}` with
  :math:`(M_y - M_{y'})^\top z \ge \gamma_{y,y'}` on class :math:`y` and
  :math:`\le -\gamma_{y,y'}` on class :math:`y'`, i.e.
  :math:`\gamma_{y,y'} = \min(\min_{S_y} (M_y - M_{y'})^\top z,\ \min_{S_{y'}} (M_{y'} - M_y)^\top z)`;
  positive for every pair exactly when the bias-free classifier separates the train set.
* :math:`p_{\min}` (Thm 4.1) :math:`= \min_{y \ne y'} \min_i \langle M_y - M_{y'}, z_{y,i} \rangle
  = \min_{y \ne y'} \gamma_{y,y'}`. It is the margin of the **bias-free** classifier; the margin
  of the network's classifier with its bias (``margin_min`` of :mod:`nclab.metrics`) differs
  whenever the bias is not constant.
* Cor. 4.5 (balanced classes), term (A) divided by the Rademacher complexity
  :math:`\mathfrak{R}_{N/C}(\mathcal F)` (left symbolic):
  :math:`\frac{1}{C}\sum_{y}\sum_{y' \ne y} 1/\gamma_{y,y'}`.
* Cor. 4.5 term (B): :math:`\frac{1}{\sqrt{NC}}\sum_y\sum_{y'\ne y}
  \sqrt{\log\log_2(4K/\gamma_{y,y'})}`. :math:`K` bounds :math:`|(M_y - M_{y'})^\top f(x; w)|` over
  *all* classifiers and inputs and is not computable; nclab uses its empirical lower bound
  :math:`\hat K = \max_{y \ne y', i} |(M_y - M_{y'})^\top z_i|` on the train set. As the term
  increases with :math:`K`, the value is a lower bound on (B).
* Thm 4.8: :math:`\hat\gamma_{y,y'} = \gamma_{y,y'} / (L \|M_y - M_{y'}\|)`. The Lipschitz
  constant :math:`L` and the covering numbers are left symbolic; nclab records
  :math:`L \min_{y \ne y'} \hat\gamma_{y,y'}`.
* Thm 4.10, as printed: :math:`\mathrm{Acc} \ge 1 - \frac{2d}{C}\sum_y \big(H(1, d, \rho_y, N/C)
  + H(\min_{y'} \gamma_{y,y'}/\|M_y - M_{y'}\| - \sqrt{N/C}, d, \rho_y, N/C)\big)` with
  :math:`H(\alpha, d, \rho, n) = \exp(-n\alpha^2 / (8 d^2 \rho^2))`; :math:`\rho_y` (a supremum
  over the class distribution) is replaced by the largest train feature norm of class y, and
  :math:`N/C` by the mean class count. At realistic sizes the bound is below 0 (vacuous); it
  is recorded as printed.

All terms need every :math:`\gamma_{y,y'} > 0` (the bounds assume separability); otherwise the
bound terms are NaN while the margins are still reported. Cost: O(n d C) time, O(n C) memory.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["pair_margins", "margin_bound_terms", "MARGIN_TERMS"]

#: The keys :func:`margin_bound_terms` returns (before any suffix).
MARGIN_TERMS = ("margin_min_nobias", "margin_pair_mean", "margin_pair_std", "bound44_a",
                "bound44_b", "bound44_k_emp", "bound48_gamma_hat_min", "bound410_acc")


def pair_margins(features, labels, weight, *, num_classes: int | None = None) -> torch.Tensor:
    r"""The pair margins :math:`\gamma_{y,y'}` of Def. 4.3 for the bias-free classifier.

    Parameters
    ----------
    features : tensor of shape (n, d)
    labels : tensor of shape (n,), int
    weight : tensor of shape (C, d)
        The classifier rows :math:`M_y` (the bias, if any, is ignored).
    num_classes : int, optional
        C (default: the rows of ``weight``).

    Returns
    -------
    tensor of shape (C, C), float64
        Symmetric; ``+inf`` on the diagonal and for pairs with an empty class.
    """
    z = torch.as_tensor(features).to(torch.float64)
    y = torch.as_tensor(labels).to(torch.int64).to(z.device)
    m = torch.as_tensor(weight).to(torch.float64).to(z.device)
    c = int(num_classes or m.shape[0])
    logits = z @ m.T  # (n, C): <M_k, z_i>
    own = logits.gather(1, y[:, None])  # <M_{y_i}, z_i>
    diff = own - logits  # (n, C): (M_{y_i} - M_k)^T z_i
    one_sided = torch.full((c, c), math.inf, dtype=torch.float64, device=z.device)
    one_sided.scatter_reduce_(0, y[:, None].expand(-1, c), diff, "amin")  # [y, k]
    gam = torch.minimum(one_sided, one_sided.T)
    gam.fill_diagonal_(math.inf)
    return gam


def margin_bound_terms(features, labels, weight, *, num_classes: int | None = None
                       ) -> dict[str, float]:
    """Every computable term of seed 002's margin bounds (see the module docstring).

    Returns
    -------
    dict of str to float
        ``margin_min_nobias`` (p_min of Thm 4.1), ``margin_pair_mean``, ``margin_pair_std``
        (over the C(C-1)/2 class pairs with samples, App. A.2), ``bound44_a`` ((A) / R),
        ``bound44_b`` ((B) with K = ``bound44_k_emp``), ``bound44_k_emp``,
        ``bound48_gamma_hat_min`` (L times min gamma-hat), ``bound410_acc`` (Thm 4.10 as
        printed). Bound terms are NaN unless every pair margin is positive.
    """
    z = torch.as_tensor(features).to(torch.float64)
    y = torch.as_tensor(labels).to(torch.int64).to(z.device)
    m = torch.as_tensor(weight).to(torch.float64).to(z.device)
    c = int(num_classes or m.shape[0])
    n, d = z.shape
    gam = pair_margins(z, y, m, num_classes=c)
    iu = torch.triu_indices(c, c, 1, device=z.device)
    pairs = gam[iu[0], iu[1]]
    pairs = pairs[torch.isfinite(pairs)]
    out: dict[str, Any] = {k: math.nan for k in MARGIN_TERMS}
    if pairs.numel() == 0:
        return out
    out["margin_min_nobias"] = float(pairs.min())
    out["margin_pair_mean"] = float(pairs.mean())
    out["margin_pair_std"] = float(pairs.std(unbiased=False))
    logits = z @ m.T
    # max over y, y' of |(M_y - M_y')^T z| = max over the row of the logits minus its min
    k_emp = float((logits.amax(dim=1) - logits.amin(dim=1)).amax()) if c > 1 else math.nan
    out["bound44_k_emp"] = k_emp
    if not bool((pairs > 0).all()):
        return out
    off = ~torch.eye(c, dtype=torch.bool, device=z.device) & torch.isfinite(gam)
    g = gam[off]  # ordered pairs (y, y'), y != y'
    out["bound44_a"] = float((1.0 / g).sum() / c)
    out["bound44_b"] = float(torch.sqrt(torch.log(torch.log2(4.0 * k_emp / g))).sum()
                             / math.sqrt(n * c))
    dist = torch.cdist(m, m)  # ||M_y - M_y'||
    ghat = gam / dist
    ghat.fill_diagonal_(math.inf)
    out["bound48_gamma_hat_min"] = float(ghat[off].min())
    counts = torch.bincount(y, minlength=c).to(torch.float64)
    norms = torch.linalg.vector_norm(z, dim=1)
    rho = torch.zeros(c, dtype=torch.float64, device=z.device).scatter_reduce_(
        0, y, norms, "amax")  # norms >= 0, so starting from 0 is exact
    n_per = float(counts.mean())
    min_hat = ghat.amin(dim=1)  # min over y' of gamma_{y,y'} / ||M_y - M_y'||

    def h(alpha, rho_y):
        return torch.exp(-n_per * alpha ** 2 / (8.0 * d ** 2 * rho_y ** 2))

    present = counts > 0
    terms = h(torch.ones_like(rho), rho) + h(min_hat - math.sqrt(n_per), rho)
    out["bound410_acc"] = float(1.0 - 2.0 * d / c * terms[present].sum())
    return out
