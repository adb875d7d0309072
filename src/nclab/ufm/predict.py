"""Closed-form predictions for a :class:`~nclab.ufm.problems.UFMProblem`, where a theorem applies.

Maps each problem to the theorem of :mod:`nclab.theory` that covers it and returns the predicted
``objective``, ``W_norm_sq`` and ``H_norm_sq`` (the same quantities :class:`SolveResult` reports),
plus the theorem's name and the condition parameter; None where no theorem applies (e.g. MSE on the
plain UFM with regularised bias, LR on the plain UFM, the extended model with CE, the positive model
with LR/MSE or with a bias).
"""

from __future__ import annotations

from nclab.errors import SpecError
from nclab.ufm.problems import UFMProblem

__all__ = ["predict"]


def predict(problem: UFMProblem) -> dict | None:
    """Predicted ``objective``, ``W_norm_sq``, ``H_norm_sq`` (and ``theorem``) of ``problem``, or None.

    Parameters
    ----------
    problem : UFMProblem

    Returns
    -------
    dict or None
        Keys ``theorem``, ``objective``, ``W_norm_sq``, ``H_norm_sq`` and model-specific extras
        (``nonzero``, ``threshold``, ``margin``, ``W1_norm_sq``, ``H2_norm_sq``).
    """
    from nclab import theory as T

    p = problem
    c, n, d = p.num_classes, p.per_class, p.dim
    try:
        if p.model == "plain" and p.loss == "mse" and p.bias in ("none", "free"):
            if p.lambda_w <= 0 or p.lambda_h <= 0:
                return None
            s = T.mse_ufm_minimizer(c, n, p.lambda_w, p.lambda_h, bias=p.bias, feature_dim=d)
            out = {
                "theorem": "seed004-thm3.1" if p.bias == "none" else "seed004-thm3.2",
                "objective": s.objective, "W_norm_sq": s.W_norm_sq, "H_norm_sq": s.H_norm_sq,
                "threshold": s.rho, "nonzero": s.nonzero,
            }
            if s.b is not None:
                out["b"] = s.b.tolist()
            return out
        if p.model == "plain" and p.loss in ("ce", "ls"):
            if p.lambda_w <= 0 or p.lambda_h <= 0:
                return None
            s = T.softmax_ufm_minimizer(c, n, p.lambda_w, p.lambda_h, alpha=p.alpha if p.loss == "ls" else 0.0,
                                        feature_dim=d)
            return {
                "theorem": "seed001-B.1", "objective": s.objective, "W_norm_sq": s.W_norm_sq,
                "H_norm_sq": s.H_norm_sq, "margin": s.margin, "nonzero": s.nonzero, "threshold": s.gamma,
            }
        if p.model == "positive" and p.loss in ("ce", "ls") and p.bias == "none":
            if p.lambda_w <= 0 or p.lambda_h <= 0:
                return None
            alpha = p.alpha if p.loss == "ls" else 0.0
            s = T.positive_nc_norms(c, p.lambda_w, p.lambda_h, alpha, num_per_class=n, feature_dim=d)
            return {
                "theorem": "seed000-thm3.2", "objective": s.objective, "W_norm_sq": s.W_norm_sq,
                "H_norm_sq": s.H_norm_sq, "margin": s.margin, "nonzero": s.nonzero, "threshold": s.gamma,
            }
        if p.model.startswith("extended") and p.loss == "mse":
            if min(p.lambda_w, p.lambda_w1_eff, p.lambda_h) <= 0:
                return None
            s = T.extended_mse_minimizer(c, n, p.lambda_w, p.lambda_w1_eff, p.lambda_h, feature_dim=d)
            return {
                "theorem": "seed004-thm4.1" if p.model == "extended-linear" else "seed004-thm4.2",
                "objective": s.objective, "W_norm_sq": s.W2_norm_sq, "H_norm_sq": s.H1_norm_sq,
                "W1_norm_sq": s.W1_norm_sq, "H2_norm_sq": s.H2_norm_sq, "threshold": s.threshold,
                "nonzero": s.nonzero,
            }
        if p.model == "fixed-etf" and p.lambda_h > 0:
            s = T.fixed_etf_minimizer(c, n, p.lambda_h, loss=p.loss, alpha=p.alpha)
            return {
                "theorem": "fixed-etf", "objective": s.objective, "W_norm_sq": s.W_norm_sq,
                "H_norm_sq": s.H_norm_sq, "margin": s.margin,
            }
        if p.model == "norm-constrained" and p.loss == "ce" and d >= c - 1:
            m = T.min_ce_loss_norm_bounded(c, p.feature_norm, p.weight_norm)
            return {
                "theorem": "seed003-thm2.3.1", "objective": m,
                "W_norm_sq": c * p.weight_norm**2, "H_norm_sq": p.num_samples * p.feature_norm**2,
            }
    except SpecError:  # the theorem's dimension condition fails
        return None
    return None
