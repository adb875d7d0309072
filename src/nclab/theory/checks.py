"""Checks of the theory modules that need no UFM solver, in the row format of ``nclab verify``.

* Pan (2023), Prop. 2.2.1 (:mod:`nclab.theory.batchnorm`): the mean squared norm of features
  right after a batch-norm layer (shift 0), over batches of unequal sizes, is
  :math:`\\lVert\\gamma\\rVert^2`. Measured: PyTorch's ``BatchNorm1d`` in training mode;
  predicted: :math:`\\lVert\\gamma\\rVert` (tiny eps) or the eps-corrected formula
  (eps = 1e-5, PyTorch's default).
"""

from __future__ import annotations

__all__ = ["theory_checks"]


def theory_checks(*, quick: bool = False) -> list:
    """The rows (:class:`nclab.ufm.checks.Check`) of the checks above on a small grid."""
    import torch

    from nclab.theory.batchnorm import bn_norm_identity_check
    from nclab.ufm.checks import Check

    rows = []
    grid = [(4, (64,)), (16, (128, 128, 37))] if quick else [
        (4, (64,)), (16, (128, 128, 37)), (64, (512, 512, 3)), (300, (256, 100))]
    for dim, sizes in grid:
        for eps in (1e-12, 1e-5):
            with torch.random.fork_rng():
                measured, predicted, gnorm = bn_norm_identity_check(dim=dim, batch_sizes=sizes,
                                                                    eps=eps, seed=dim)
            want = gnorm if eps == 1e-12 else predicted
            err = abs(measured - want) / want
            rows.append(Check(
                "seed003-prop2.2.1", {"d": dim, "batches": list(sizes), "eps": eps},
                "sqrt(mean ||h||^2) after BN", float(want), float(measured), float(err),
                bool(err <= 1e-9),
                "predicted ||gamma||" if eps == 1e-12 else
                "predicted with the eps correction sum_k gamma_k^2 var_k / (var_k + eps)"))
    return rows
