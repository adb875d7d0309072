"""Checks of the theory modules that need no UFM solver, in the row format of ``nclab verify``.

* Self-duality in its cosine form (Pan 2023, seed 003 Sec. 2.2; Papyan et al. 2020 NC3): at the
  minimiser of the bias-free CE unconstrained-features model the classifier rows are positive multiples
  of the centred class means, so :func:`nclab.metrics.nc3_cosine` is 1 (measured on the solver's
  minimiser, to the solver's tolerance).
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
    rows.extend(_cosine_duality_rows(quick))
    return rows


def _cosine_duality_rows(quick: bool) -> list:
    """nc3_cosine of the CE-UFM minimiser (bias-free) is 1: W rows parallel to the centred means."""
    import numpy as np

    from nclab.metrics import nc3_cosine
    from nclab.ufm.checks import Check
    from nclab.ufm.problems import UFMProblem
    from nclab.ufm.solvers import solve

    rows = []
    grid = [(4, 8)] if quick else [(4, 8), (6, 5), (10, 12)]
    for C, d in grid:
        p = UFMProblem("plain", loss="ce", num_classes=C, per_class=3, dim=d, lambda_w=5e-3, lambda_h=5e-3)
        r = solve(p)
        W, H = r.matrices["W"], r.matrices["H"]  # (C, d), (d, N)
        cos = nc3_cosine(np.ascontiguousarray(H.T), p.labels(), W)
        err = abs(1.0 - cos)
        rows.append(Check("seed003-cosine-duality", {"C": C, "d": d, "per_class": 3, "loss": "ce"},
                          "mean_c cos(w_c, mu_c - mu_G) at the UFM minimiser", 1.0, float(cos), float(err),
                          bool(r.converged and err <= 1e-6),
                          "self-duality: W rows are positive multiples of the centred means"))
    return rows
