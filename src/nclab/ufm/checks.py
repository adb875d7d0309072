r"""Numerical checks of every theorem on a parameter grid: the engine of ``nclab verify``.

Each check solves the model (fast float64 solver, relative gradient norm 1e-10) and compares a
measured quantity with the theorem's prediction. ``rel_error`` is :math:`|m - p|/|p|`, or the absolute
error :math:`|m - p|` when the prediction is 0 (zero minimisers, exact structural statements).
A check *holds* when ``rel_error <= tolerance`` (1e-6 for closed forms: the solver's stopping rule
leaves norms accurate to about 1e-8) or, for the qualitative statements (seed 002 Thm 4.1, the
rates of seed 003 Thm 2.3.1), when the stated monotonicity is observed.

Grids include points near and beyond each threshold: :math:`\rho = K\sqrt{n\lambda_W\lambda_H}` of
0.1 to 2 (Tirer & Bruna Thms 3.1/3.2), :math:`Kc` on both sides of :math:`2^{-4/3}` (Thm 4.1), and
:math:`\gamma` on both sides of :math:`(N-1)/N` (Nguyen et al. Thm 3.2, corrected).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["Check", "run_checks", "convergence_traces", "margin_trace"]

TOL = 1e-6


@dataclass(frozen=True)
class Check:
    """One comparison: theorem, parameters, predicted and measured values, relative error, verdict."""

    theorem: str
    params: dict
    quantity: str
    predicted: float
    measured: float
    rel_error: float
    holds: bool
    note: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _rel(measured: float, predicted: float) -> float:
    if predicted == 0 or not math.isfinite(predicted):
        return abs(measured - predicted)
    return abs(measured - predicted) / abs(predicted)


def _row(theorem, params, quantity, predicted, measured, *, tol=TOL, note="", holds=None, extra=None):
    err = _rel(float(measured), float(predicted))
    ok = err <= tol if holds is None else holds
    return Check(theorem, dict(params), quantity, float(predicted), float(measured), float(err), bool(ok), note,
                 extra or {})


def _solve(problem, **kw):
    from nclab.errors import ConvergenceWarning
    from nclab.ufm.solvers import solve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return solve(problem, track_metrics=False, **kw)


# ----------------------------------------------------------------------------- seed 000 Thm 3.2
def _check_positive(quick: bool) -> list[Check]:
    from nclab.theory import positive_nc_norms, positive_nc_paper_condition
    from nclab.ufm.problems import UFMProblem

    grid = [(3, 2, 1e-3, 0.1), (2, 3, 5e-3, 0.0), (3, 2, 0.1, 0.6)]
    if not quick:
        grid += [(4, 3, 1e-3, 0.0), (5, 2, 2e-3, 0.2), (3, 2, 0.05, 0.5), (2, 2, 0.2, 0.0), (4, 2, 0.02, 0.6)]
    rows = []
    for n_cls, k, lam, alpha in grid:
        loss = "ls" if alpha > 0 else "ce"
        sol = positive_nc_norms(n_cls, lam, lam, alpha, num_per_class=k)
        p = UFMProblem("positive", loss=loss, alpha=alpha, num_classes=n_cls, per_class=k, dim=n_cls + 1,
                       lambda_w=lam, lambda_h=lam)
        r = _solve(p, restarts=2)
        params = {"N": n_cls, "K": k, "M": n_cls + 1, "lambda_w": lam, "lambda_h": lam, "alpha": alpha,
                  "gamma": round(sol.gamma, 6), "limit": round((n_cls - 1) / n_cls, 6),
                  "paper_condition": positive_nc_paper_condition(n_cls, lam, lam, alpha)}
        note = "nonzero NC configuration" if sol.nonzero else "beyond threshold: zero minimiser"
        rows.append(_row("seed000-thm3.2", params, "objective", sol.objective, r.objective, note=note))
        rows.append(_row("seed000-thm3.2", params, "W_norm_sq", sol.W_norm_sq, r.W_norm_sq, note=note))
        rows.append(_row("seed000-thm3.2", params, "H_norm_sq", sol.H_norm_sq, r.H_norm_sq, note=note))
        # the formula as printed (eq. 26: h^2 = (1/C) sqrt(K lw/lh) log(...), C = 1/sqrt(K(N-1)), with
        # sqrt((N-1) lw lh) in the logarithm), for contrast
        g_paper = (n_cls - 1) / n_cls * alpha + 2 * math.sqrt((n_cls - 1) * lam * lam)
        arg = (n_cls - 1) * (1 - g_paper) / g_paper
        h_sq_paper = k * math.sqrt(n_cls - 1) * math.log(arg) if arg > 0 else float("nan")
        rows.append(_row("seed000-thm3.2 (as printed)", params, "H_norm_sq", h_sq_paper, r.H_norm_sq,
                         note="printed closed form, shown for contrast; see docs/theory.md §1"))
    return rows


# ----------------------------------------------------------------------------- seed 004 Thm 3.1/3.2
def _check_mse_plain(quick: bool) -> list[Check]:
    from nclab.theory import mse_ufm_minimizer, orthogonal_frame_error, simplex_etf_error
    from nclab.ufm.problems import UFMProblem

    k, n, d = 4, 5, 6
    rhos = [0.1, 0.9, 1.2] if quick else [0.1, 0.5, 0.9, 0.99, 1.1, 2.0]
    rows = []
    for bias in ("none", "free"):
        for rho in rhos:
            lam = rho / (k * math.sqrt(n))
            sol = mse_ufm_minimizer(k, n, lam, lam, bias=bias, feature_dim=d)
            p = UFMProblem("plain", loss="mse", num_classes=k, per_class=n, dim=d, lambda_w=lam, lambda_h=lam,
                           bias=bias)
            r = _solve(p)
            thm = "seed004-thm3.1" if bias == "none" else "seed004-thm3.2"
            params = {"K": k, "n": n, "d": d, "lambda_w": lam, "lambda_h": lam, "bias": bias,
                      "K*sqrt(n*lw*lh)": rho}
            note = "zero minimiser (beyond threshold)" if not sol.nonzero else ""
            rows.append(_row(thm, params, "objective", sol.objective, r.objective, note=note))
            rows.append(_row(thm, params, "W_norm_sq", sol.W_norm_sq, r.W_norm_sq, note=note))
            rows.append(_row(thm, params, "H_norm_sq", sol.H_norm_sq, r.H_norm_sq, note=note))
            w = r.matrices["W"]
            err = np.linalg.norm(w @ w.T - sol.WWt) / max(np.linalg.norm(sol.WWt), 1.0)
            rows.append(_row(thm, params, "||WW^T - closed form||", 0.0, err))
            if sol.nonzero:
                frame = orthogonal_frame_error if bias == "none" else simplex_etf_error
                rows.append(_row(thm, params, "OF error of WW^T" if bias == "none" else "ETF error of WW^T",
                                 0.0, frame(w @ w.T)))
    return rows


def _check_softmax_plain(quick: bool) -> list[Check]:
    from nclab.theory import simplex_etf_error, softmax_ufm_minimizer
    from nclab.ufm.problems import UFMProblem

    grid = [(4, 3, 5e-3, 0.0, "none"), (3, 2, 0.2, 0.0, "none")]
    if not quick:
        grid += [(4, 3, 5e-3, 0.1, "free"), (5, 2, 1e-2, 0.2, "regularized"), (3, 4, 0.1, 0.3, "none")]
    rows = []
    for c, n, lam, alpha, bias in grid:
        sol = softmax_ufm_minimizer(c, n, lam, lam, alpha=alpha, feature_dim=c)
        p = UFMProblem("plain", loss="ls" if alpha else "ce", alpha=alpha, num_classes=c, per_class=n, dim=c,
                       lambda_w=lam, lambda_h=lam, bias=bias, lambda_b=lam if bias == "regularized" else 0.0)
        r = _solve(p, restarts=2)
        params = {"C": c, "n": n, "d": c, "lambda_w": lam, "lambda_h": lam, "alpha": alpha, "bias": bias,
                  "gamma": round(sol.gamma, 6), "limit": round((c - 1) / c, 6)}
        note = "" if sol.nonzero else "zero minimiser (beyond threshold)"
        rows.append(_row("seed001-B.1", params, "objective", sol.objective, r.objective, note=note))
        rows.append(_row("seed001-B.1", params, "W_norm_sq", sol.W_norm_sq, r.W_norm_sq, note=note))
        rows.append(_row("seed001-B.1", params, "H_norm_sq", sol.H_norm_sq, r.H_norm_sq, note=note))
        if sol.nonzero:
            w = r.matrices["W"]
            rows.append(_row("seed001-B.1", params, "ETF error of WW^T", 0.0, simplex_etf_error(w @ w.T)))
    return rows


# ----------------------------------------------------------------------------- seed 004 Thm 4.1/4.2
def _check_extended(quick: bool) -> list[Check]:
    from nclab.theory import extended_mse_minimizer, extended_structure
    from nclab.ufm.problems import UFMProblem

    k, n, d = 3, 4, 5
    factors = [0.2, 1.1] if quick else [0.1, 0.5, 0.9, 1.1, 1.5]
    rows = []
    for model in ("extended-linear", "extended-relu"):
        for fac in factors:
            lam = (fac * 2 ** (-4 / 3) / k) / n ** (1 / 3)  # K (n lam^3)^{1/3} = fac * 2^{-4/3}
            sol = extended_mse_minimizer(k, n, lam, lam, lam, feature_dim=d)
            p = UFMProblem(model, loss="mse", num_classes=k, per_class=n, dim=d, lambda_w=lam, lambda_h=lam)
            r = min((_solve(p, restarts=3 if quick else 5, init_scale=s) for s in (0.1, 1.0)),
                    key=lambda res: res.objective)
            thm = "seed004-thm4.1" if model == "extended-linear" else "seed004-thm4.2"
            params = {"K": k, "n": n, "d": d, "lambda": lam, "K*c": round(sol.threshold, 6),
                      "2^(-4/3)": round(2 ** (-4 / 3), 6)}
            note = "" if sol.nonzero else "zero minimiser (beyond threshold)"
            rows.append(_row(thm, params, "objective", sol.objective, r.objective, note=note))
            rows.append(_row(thm, params, "W2_norm_sq", sol.W2_norm_sq, r.W_norm_sq, note=note))
            rows.append(_row(thm, params, "H2_norm_sq", sol.H2_norm_sq, float((r.matrices["H"] ** 2).sum()),
                             note=note))
            if sol.nonzero:
                act = "relu" if model == "extended-relu" else "linear"
                m = r.matrices
                st = extended_structure(m["W"], m["W1"], m["H1"], p.labels(), num_classes=k, activation=act)
                keys = ["within_h2", "of_h2", "of_w2", "align_w2_h2"]
                if act == "linear":
                    keys += ["within_h1", "of_h1", "align_w1"]
                worst = max(keys, key=lambda key: st[key])
                rows.append(_row(thm, params, f"structure (max of {len(keys)} deviations)", 0.0, st[worst],
                                 tol=1e-5, note=f"worst: {worst}", extra={kk: st[kk] for kk in keys}))
    return rows


# ----------------------------------------------------------------------------- seed 003 Sec. 2.3
def _check_norm_bounded(quick: bool) -> list[Check]:
    from nclab.theory import class_cosine_similarities, cosine_similarity_limits, min_ce_loss_norm_bounded
    from nclab.ufm.problems import UFMProblem

    grid = [(4, 1.5, 1.0), (3, 0.5, 0.5)] if quick else [(2, 1.0, 1.0), (4, 1.5, 1.0), (3, 0.5, 0.5), (6, 2.0, 1.5)]
    rows = []
    for c, a, b in grid:
        m = min_ce_loss_norm_bounded(c, a, b)
        p = UFMProblem("norm-constrained", loss="ce", num_classes=c, per_class=3, dim=c, feature_norm=a,
                       weight_norm=b)
        r = _solve(p, restarts=2)
        params = {"C": c, "N": 3, "d": c, "alpha": a, "beta": b}
        rows.append(_row("seed003-min-loss", params, "min CE loss", m, r.objective))
        intra, inter = class_cosine_similarities(r.matrices["H"].T, p.labels(), num_classes=c)
        lim_intra, lim_inter = cosine_similarity_limits(c)
        rows.append(_row("seed003-thm2.3.1", params, "min intra-class cosine", lim_intra, float(intra.min())))
        off = inter[~np.eye(c, dtype=bool)]
        rows.append(_row("seed003-thm2.3.1", params, "max inter-class cosine", lim_inter, float(off.max())))
        rows.append(_rate_row(p, r, c, params))
    return rows


def _rate_row(p, r, c, params) -> Check:
    """Near-optimal points: 1 - intra = O(sqrt(eps)) and inter + 1/(C-1) = O(eps^(1/6)) as eps -> 0."""
    from nclab.theory import class_cosine_similarities, min_ce_loss_norm_bounded

    rng = np.random.default_rng(0)
    m = min_ce_loss_norm_bounded(c, p.feature_norm, p.weight_norm)
    direction = rng.standard_normal(r.x.size)
    ratios_intra, ratios_inter, eps_list = [], [], []
    for scale in (1e-1, 1e-2, 1e-3):
        x = r.x + scale * np.linalg.norm(r.x) * direction / np.linalg.norm(direction)
        f, _ = p.objective_grad(x)
        eps = max(f - m, 1e-300)
        h = p.realize(x)["H"]
        intra, inter = class_cosine_similarities(h.T, p.labels(), num_classes=c)
        off = inter[~np.eye(c, dtype=bool)]
        eps_list.append(eps)
        ratios_intra.append((1 - intra.min()) / math.sqrt(eps))
        ratios_inter.append(max(off.max() + 1 / (c - 1), 0.0) / eps ** (1 / 6))
    ok = all(ratios_intra[i + 1] <= ratios_intra[i] * 1.5 for i in range(2)) and all(
        ratios_inter[i + 1] <= ratios_inter[i] * 1.5 for i in range(2))
    return _row("seed003-thm2.3.1 (rates)", params, "(1-intra)/sqrt(eps) at eps -> 0", 0.0, ratios_intra[-1],
                holds=ok, note="bounded ratios: O(sqrt eps) intra, O(eps^1/6) inter",
                extra={"eps": eps_list, "intra_ratio": ratios_intra, "inter_ratio": ratios_inter})


# ----------------------------------------------------------------------------- fixed ETF (seed 002 §5.2)
def _check_fixed_etf(quick: bool) -> list[Check]:
    from nclab.theory import fixed_etf_minimizer
    from nclab.ufm.problems import UFMProblem

    losses = [("ce", 0.0), ("lr", 0.1)] if quick else [("ce", 0.0), ("ls", 0.1), ("lr", 0.1), ("mse", 0.0)]
    k, n, d, lam = 4, 3, 6, 5e-3
    rows = []
    for loss, alpha in losses:
        sol = fixed_etf_minimizer(k, n, lam, loss=loss, alpha=alpha)
        for variant, kw in (("identity", {}), ("permuted", {"etf_permutation": (3, 1, 0, 2)}),
                            ("rotated", {"etf_rotation_seed": 1})):
            p = UFMProblem("fixed-etf", loss=loss, alpha=alpha, num_classes=k, per_class=n, dim=d, lambda_h=lam,
                           **kw)
            r = _solve(p)
            params = {"C": k, "n": n, "d": d, "lambda_h": lam, "loss": loss, "alpha": alpha, "etf": variant}
            rows.append(_row("seed002-fixed-etf", params, "objective", sol.objective, r.objective))
    return rows


# ----------------------------------------------------------------------------- seed 002 Thm 4.1
def margin_trace(*, num_classes=4, per_class=5, dim=8, lr=0.5, iters=4000, record_every=50, seed=0):
    """GD on the unregularised CE UFM: (iteration, CE loss, p_min) along the path (seed 002 Thm 4.1).

    :math:`p_{\\min} = \\min_{y \\ne y'}\\min_i \\langle w_y - w_{y'}, h_{y,i}\\rangle`.
    """
    from nclab.ufm.problems import UFMProblem

    p = UFMProblem("plain", loss="ce", num_classes=num_classes, per_class=per_class, dim=dim,
                   lambda_w=0.0, lambda_h=0.0)
    labels = p.labels()
    trace = []

    def cb(it, f, x):
        if it % record_every == 0:
            m = p.realize(x)
            logits = (m["W"] @ m["H"]).T
            own = logits[np.arange(len(labels)), labels]
            other = logits.copy()
            other[np.arange(len(labels)), labels] = -np.inf
            trace.append((it, f, float((own - other.max(axis=1)).min())))
        return False

    _solve(p, solver="gd", lr=lr, max_iter=iters, seed=seed, callback=cb, tol=0.0)
    return trace


def _check_margin(quick: bool) -> list[Check]:
    iters = 3000 if quick else 20000
    trace = margin_trace(iters=iters, record_every=50)
    its, loss, pmin = (np.array(v) for v in zip(*trace))
    start = int(np.argmax(pmin > 0)) if np.any(pmin > 0) else len(pmin)
    tail = pmin[start:]
    monotone = len(tail) > 1 and bool(np.all(np.diff(tail) >= -1e-12))
    loss_down = bool(np.all(np.diff(loss) <= 1e-12)) and loss[-1] < 0.05 * loss[0]
    params = {"C": 4, "n": 5, "d": 8, "lr": 0.5, "iters": iters, "lambda": 0.0}
    return [_row("seed002-thm4.1", params, "p_min growth after separation (last / first positive)",
                 float("nan"), float(tail[-1] / tail[0]) if len(tail) else float("nan"),
                 holds=monotone and loss_down and len(tail) > 1 and tail[-1] > tail[0],
                 note=f"CE {loss[0]:.3g} -> {loss[-1]:.3g}; p_min non-decreasing from iteration {int(its[start])}",
                 extra={"iterations": its.tolist(), "loss": loss.tolist(), "p_min": pmin.tolist()})]


def run_checks(*, quick: bool = False) -> list[Check]:
    """Run every theorem check; ``quick`` uses a reduced grid (well under a minute on 2 cores).

    Returns
    -------
    list of Check
        Rows in the order: seed 000 Thm 3.2, plain CE/LS UFM (seed 001 B.1), seed 004 Thms 3.1/3.2,
        4.1/4.2, seed 003, fixed ETF, seed 002 Thm 4.1.
    """
    from nclab.ufm._threads import single_thread

    with single_thread():
        rows = []
        for fn in (_check_positive, _check_softmax_plain, _check_mse_plain, _check_extended, _check_norm_bounded, _check_fixed_etf,
                   _check_margin):
            rows.extend(fn(quick))
    return rows


def convergence_traces(*, quick: bool = False) -> dict:
    """GD traces (objective and NC metrics against iterations) of seed 004 Figs. 2 and 5.

    Fig. 2: plain MSE UFM, K = 4, n = 10, d = 20, lambda_W = lambda_H = 5e-3, standard-normal start,
    step 0.1; bias-free (Thm 3.1) and unregularised bias (Thm 3.2). Fig. 5: extended linear and ReLU
    models, start scaled by 0.1, same step, metrics of H1 and H2 (and the pre-ReLU features). The
    source lost the exact sizes in conversion; these are representative choices.

    Returns
    -------
    dict of str to dict
        ``{name: {"iterations": [...], "objective": [...], "<level>.<metric>": [...]}}``.
    """
    from nclab.ufm._threads import single_thread
    from nclab.ufm.problems import UFMProblem

    iters = 1500 if quick else 30000
    every = max(1, iters // (30 if quick else 100))
    setups = {
        "fig2_bias_free": UFMProblem("plain", loss="mse", num_classes=4, per_class=10, dim=20),
        "fig2_free_bias": UFMProblem("plain", loss="mse", num_classes=4, per_class=10, dim=20, bias="free"),
        "fig5_linear": UFMProblem("extended-linear", loss="mse", num_classes=4, per_class=10, dim=20),
        "fig5_relu": UFMProblem("extended-relu", loss="mse", num_classes=4, per_class=10, dim=20),
    }
    out = {}
    with single_thread():
        for name, p in setups.items():
            r = _solve_tracked(p, iters, every)
            tr = {"iterations": [h.iteration for h in r.history], "objective": [h.objective for h in r.history]}
            for h in r.history:
                for level, met in h.level_metrics.items():
                    for key in ("nc1", "nc2_etf", "nc2_of", "nc3_duality", "nc3_etf"):
                        if key in met:
                            tr.setdefault(f"{level}.{key}", []).append(met[key])
            out[name] = tr
    return out


def _solve_tracked(p, iters, every):
    from nclab.ufm.solvers import solve

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return solve(p, solver="gd", lr=0.1, max_iter=iters, record_every=every, tol=0.0, warn=False)
