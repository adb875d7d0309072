r"""Solvers of the unconstrained-features models: the papers' plain gradient descent and a fast solver.

``solver="gd"``
    :math:`x_{t+1} = \Pi(x_t - \eta\nabla f(x_t))` with fixed step :math:`\eta` (0.1 in Tirer & Bruna),
    :math:`\Pi` the projection onto :math:`H \ge 0` for the positive model (identity otherwise).
    For reproducing the papers' convergence curves.
``solver="fast"``
    SciPy's L-BFGS-B (:func:`scipy.optimize.minimize`, ``method="L-BFGS-B"``) in float64 with exact
    hand-derived gradients, bounds only where features must be non-negative (positive model);
    ``maxcor`` = 10 pairs up to 10^4 variables, 5 above (on the benchmark problem, 64 640
    variables, 5 pairs need 34 iterations to the 1e-8 target and 10 pairs 41). Then, where needed,
    a projected Newton-CG polish (exact Hessian-vector products by double back-propagation in
    torch, on the free variables; steps accepted when they lower the projected-gradient norm without
    raising the objective beyond round-off).

Why the polish stays: L-BFGS-B's line search works on the objective, which stops resolving the
decrease near the optimum; there it stalls at relative gradient norms of 1.7e-10 to 1.5e-7, above
``tol`` = 1e-10, on 14 of the 18 problems of the solver tests' model x loss grid at two sizes
(the extended-linear CE model at 1.4e-8, the extended ReLU model at 1.5e-7); one to a few Newton
steps (3 to 12 Hessian-vector products) take all of them below 1e-13. Where L-BFGS-B alone
reaches ``tol`` the polish is not run.

Why no own L-BFGS: ``benchmarks/ufm.py`` sets SciPy's code beside nclab's former hand-written
L-BFGS (two-loop recursion with in-place BLAS) on the plain MSE UFM (K = 10, n = 100, d = 64) to
the 1e-8 closed-form target: both reach it in 34 iterations; SciPy's costs 1.3-2.3x the own code
in time (its L-BFGS-B step does more work per iteration) and still meets the >= 50x-over-gradient-
descent target (numbers in ``docs/theory.md``), so the own code was removed.

The relative gradient norm is :math:`\|\Pi_g(x)\|_2 / \|\Pi_g(x_0)\|_2`, where :math:`\Pi_g` is the
projected gradient (components at the bound H = 0 that point outward are dropped).

Every solve returns a frozen :class:`SolveResult` with the iterate, the objective trace and the
collapse metrics (:func:`nclab.metrics.collapse_metrics`) at recorded iterations.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from nclab._resources import check_memory
from nclab.errors import ConvergenceWarning, SpecError
from nclab.ufm._threads import single_thread as _single_thread
from nclab.ufm.problems import UFMProblem

__all__ = ["SolveResult", "HistoryRecord", "solve", "objective_and_gradient", "solution_metrics"]


@dataclass(frozen=True)
class HistoryRecord:
    """One recorded iterate: iteration, objective, relative gradient norm, collapse metrics (may be empty)."""

    iteration: int
    objective: float
    grad_norm_rel: float
    metrics: dict = field(default_factory=dict)
    level_metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SolveResult:
    """Result of :func:`solve` (frozen; arrays are read-only).

    Attributes
    ----------
    problem : UFMProblem
    solver : str
        ``"fast"`` or ``"gd"``.
    x : ndarray
        The final flat iterate.
    params : dict of str to ndarray
        The optimisation variables by name (``W``, ``H``, ``b`` / ``W2``, ``W1``, ``H1`` / ``H`` / ``V``, ``U``).
    matrices : dict of str to ndarray
        The model's classifier ``W`` (C, d), last-layer features ``H`` (d, N) and, where they exist,
        ``b``, ``W1``, ``H1``, ``pre``.
    objective : float
    n_iter : int
        Iterations (GD steps; L-BFGS-B iterations plus Newton steps).
    n_evals : int
        Objective/gradient evaluations (Hessian-vector products counted separately in ``n_hvp``).
    n_hvp : int
    converged : bool
        Whether ``grad_norm_rel <= tol``.
    grad_norm : float
        Projected gradient norm at ``x``.
    grad_norm_rel : float
        ``grad_norm`` divided by the projected gradient norm at the start.
    seconds : float
        Wall time of the iterations (including metrics tracked along the way, not the final ones).
    history : tuple of HistoryRecord
    metrics : dict of str to float
        Collapse metrics of the last-layer features (``H.T``, with ``W`` and ``b``).
    level_metrics : dict of str to dict
        Metrics per feature level (``"H"``; ``"H1"``, ``"H2"`` and ``"pre"`` for extended models).
    """

    problem: UFMProblem
    solver: str
    x: np.ndarray
    params: dict
    matrices: dict
    objective: float
    n_iter: int
    n_evals: int
    n_hvp: int
    converged: bool
    grad_norm: float
    grad_norm_rel: float
    seconds: float
    history: tuple
    metrics: dict
    level_metrics: dict

    @property
    def W_norm_sq(self) -> float:
        """Squared Frobenius norm of the classifier W (W2 for the extended models)."""
        return float((self.matrices["W"] ** 2).sum())

    @property
    def H_norm_sq(self) -> float:
        """Squared Frobenius norm of the free features (H; H1 for the extended models)."""
        h = self.matrices.get("H1", self.matrices["H"])
        return float((h**2).sum())

    def summary(self) -> dict:
        """A JSON-ready dict: objective, norms, solver statistics and the metrics."""
        out = {
            "model": self.problem.model,
            "loss": self.problem.loss,
            "solver": self.solver,
            "objective": self.objective,
            "W_norm_sq": self.W_norm_sq,
            "H_norm_sq": self.H_norm_sq,
        }
        if "W1" in self.matrices:
            out["W1_norm_sq"] = float((self.matrices["W1"] ** 2).sum())
            out["H2_norm_sq"] = float((self.matrices["H"] ** 2).sum())
        if "b" in self.matrices:
            out["b"] = self.matrices["b"].tolist()
        out.update(
            n_iter=self.n_iter,
            n_evals=self.n_evals,
            converged=self.converged,
            grad_norm=self.grad_norm,
            grad_norm_rel=self.grad_norm_rel,
            seconds=self.seconds,
            metrics=dict(self.metrics),
        )
        if len(self.level_metrics) > 1:
            out["level_metrics"] = {k: dict(v) for k, v in self.level_metrics.items()}
        return out


class _Oracle:
    """Objective, gradient and Hessian-vector products of a problem at flat numpy float64 vectors."""

    def __init__(self, problem: UFMProblem) -> None:
        self.problem = problem
        self.labels = torch.as_tensor(problem.labels())
        self.n_evals = 0
        self.n_hvp = 0

    def fg(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.n_evals += 1
        return self.problem.objective_grad(x)

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        self.n_hvp += 1
        with _single_thread():
            xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            f = self.problem.objective_torch(xt, self.labels)
            (g,) = torch.autograd.grad(f, xt, create_graph=True)
            (hv,) = torch.autograd.grad(g @ torch.as_tensor(v), xt)
        return hv.numpy()


def objective_and_gradient(problem: UFMProblem, x) -> tuple[float, np.ndarray]:
    """Objective and gradient of ``problem`` at the flat vector ``x`` (float64)."""
    return _Oracle(problem).fg(np.asarray(x, dtype=np.float64))


def _proj_grad(x: np.ndarray, g: np.ndarray, lb: np.ndarray | None) -> np.ndarray:
    if lb is None:
        return g
    at_bound = (x <= lb) & (g > 0)
    return np.where(at_bound, 0.0, g)


def solution_metrics(problem: UFMProblem, x) -> tuple[dict, dict]:
    """Collapse metrics of the iterate ``x``: (last level, per level). Empty when unavailable.

    Uses :func:`nclab.metrics.collapse_metrics` with features ``H.T``, the classifier and bias; for
    the extended models also the first-level features ``H1`` (and the pre-activations for ReLU).
    Degenerate iterates (e.g. the zero minimiser) give NaN-valued or missing metrics, not errors.
    """
    try:
        from nclab.metrics import collapse_metrics
    except ImportError:  # metrics library not available in this checkout
        return {}, {}
    from nclab.errors import NCLabError

    m = problem.realize(np.asarray(x, dtype=np.float64))
    labels = problem.labels()
    c = problem.num_classes

    def one(features, **kw):
        with warnings.catch_warnings(), _single_thread():
            warnings.simplefilter("ignore")
            try:
                out = collapse_metrics(
                    torch.as_tensor(np.ascontiguousarray(features)), torch.as_tensor(labels), num_classes=c,
                    **{k: torch.as_tensor(np.ascontiguousarray(v)) for k, v in kw.items()},
                )
            except (NCLabError, ZeroDivisionError, FloatingPointError):
                return {}
        return {k: float(v) for k, v in out.items()}

    kw = {"weights": m["W"]}
    if "b" in m:
        kw["bias"] = m["b"]
    last = one(m["H"].T, **kw)
    levels = {"H": last}
    if "H1" in m:
        levels = {"H1": one(m["H1"].T), "H2": last}
        if problem.model == "extended-relu":
            levels["pre"] = one(m["pre"].T)
    return last, levels


def _freeze(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def solve(
    problem: UFMProblem,
    *,
    solver: str = "fast",
    seed: int = 0,
    init: np.ndarray | None = None,
    init_scale: float | None = None,
    tol: float = 1e-10,
    max_iter: int | None = None,
    lr: float = 0.1,
    record_every: int | None = None,
    track_metrics: bool = True,
    callback: Callable[[int, float, np.ndarray], bool] | None = None,
    warn: bool = True,
    restarts: int = 1,
    metrics_every: int | None = None,
) -> SolveResult:
    r"""Minimise an unconstrained-features model.

    .. math:: \min_x f(x) \quad\text{s.t.}\quad x \ge \ell

    where :math:`f` is ``problem``'s objective (:class:`~nclab.ufm.problems.UFMProblem`) and
    :math:`\ell` the lower bounds (0 on H for the positive model, :math:`-\infty` otherwise).

    Parameters
    ----------
    problem : UFMProblem
    solver : {"fast", "gd"}, default="fast"
        L-BFGS-B + projected Newton-CG polish, or plain (projected) gradient descent with step ``lr``.
    seed : int, default=0
        Seed of the random start (``numpy.random.default_rng(seed)``), see ``UFMProblem.init``.
    init : ndarray, optional
        Flat start vector (overrides ``seed``/``init_scale``).
    init_scale : float, optional
        Scale of the standard-normal start (default 1, 0.1 for the extended models).
    tol : float, default=1e-10
        Stop when the relative projected gradient norm is <= tol.
    max_iter : int, optional
        Iteration cap (default 20 000 for ``fast``, 100 000 for ``gd``).
    lr : float, default=0.1
        GD step size.
    record_every : int, optional
        Record objective/gradient (and metrics) every this many iterations (default: 1 for
        ``fast``; about 200 records over ``max_iter`` for ``gd``). The last iterate is always recorded.
    track_metrics : bool, default=True
        Compute collapse metrics along the way and at the end (costs O(N d^2) each).
    metrics_every : int, optional
        Compute metrics at every this-many-th record (default: every record for ``gd``, every 10th
        for ``fast``); the first and the last records always carry metrics.
    callback : callable, optional
        ``callback(iteration, objective, x) -> bool``, called at every iteration; returning True stops.
    warn : bool, default=True
        Emit :class:`~nclab.errors.ConvergenceWarning` when ``tol`` is not reached.
    restarts : int, default=1
        Solve from the random starts of seeds ``seed, ..., seed + restarts - 1`` and return the one
        with the least objective (the ReLU extended model has non-global local minima).

    Returns
    -------
    SolveResult

    Raises
    ------
    SpecError
        Unknown solver, non-positive step, bad start vector.
    """
    if solver not in ("fast", "gd"):
        raise SpecError(f"solver must be 'fast' or 'gd'; got {solver!r}.")
    if not (isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol >= 0 and math.isfinite(tol)):
        raise SpecError(f"tol must be a finite number >= 0 (a relative gradient norm); got {tol!r}.")
    check_memory(problem.memory_bytes(solver),
                 f"the {solver} solver on {problem.num_params():,} parameters",
                 "Reduce the problem size, or use solver='gd' (fewer vectors held).")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise SpecError(f"restarts must be an integer >= 1; got {restarts!r}.")
    if restarts > 1 and init is None:
        best = None
        for k in range(restarts):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = solve(problem, solver=solver, seed=seed + k, init_scale=init_scale, tol=tol,
                          max_iter=max_iter, lr=lr, record_every=record_every, track_metrics=track_metrics,
                          callback=callback, warn=False, metrics_every=metrics_every)
            if best is None or r.objective < best.objective:
                best = r
        if warn and not best.converged and callback is None:
            warnings.warn(
                f"{solver} solver stopped at relative gradient norm {best.grad_norm_rel:.2e} > tol={tol:g}; "
                "raise max_iter or loosen tol.", ConvergenceWarning, stacklevel=2)
        return best
    if not (lr > 0 and math.isfinite(lr)):
        raise SpecError(f"lr must be a finite step size > 0; got {lr!r}.")
    if max_iter is None:
        max_iter = 20_000 if solver == "fast" else 100_000
    if max_iter < 0:
        raise SpecError(f"max_iter must be >= 0; got {max_iter}.")
    if record_every is None:
        record_every = 1 if solver == "fast" else max(1, max_iter // 200)
    if metrics_every is None:
        metrics_every = 10 if solver == "fast" else 1
    lb = problem.lower_bounds()
    if init is None:
        x0 = problem.init(np.random.default_rng(seed), scale=init_scale)
    else:
        x0 = np.array(init, dtype=np.float64).ravel()
        if x0.shape != (problem.num_params(),):
            raise SpecError(f"init must have {problem.num_params()} entries; got {x0.size}.")
    if lb is not None:
        x0 = np.maximum(x0, lb)

    oracle = _Oracle(problem)
    history: list[HistoryRecord] = []
    f0, g0 = oracle.fg(x0)
    gnorm0 = float(np.linalg.norm(_proj_grad(x0, g0, lb))) or 1.0

    def record(it, f, g, x, force=False):
        if not force and it % record_every:
            return
        if history and history[-1].iteration == it:
            return
        with_metrics = track_metrics and (force or not history or len(history) % metrics_every == 0)
        met, lev = solution_metrics(problem, x) if with_metrics else ({}, {})
        gn = float(np.linalg.norm(_proj_grad(x, g, lb))) / gnorm0
        history.append(HistoryRecord(it, float(f), gn, met, lev))

    t0 = time.perf_counter()
    with _single_thread():
        if solver == "gd":
            x, f, g, n_iter = _gd(oracle, x0, f0, g0, lb, lr, tol * gnorm0, max_iter, record, callback)
        else:
            x, f, g, n_iter = _fast(oracle, x0, f0, g0, lb, tol * gnorm0, max_iter, record, callback)
    seconds = time.perf_counter() - t0
    gnorm = float(np.linalg.norm(_proj_grad(x, g, lb)))
    met, lev = solution_metrics(problem, x) if track_metrics else ({}, {})
    last = HistoryRecord(n_iter, float(f), gnorm / gnorm0, met, lev)
    if history and history[-1].iteration == n_iter:
        history[-1] = last
    else:
        history.append(last)
    converged = gnorm <= tol * gnorm0
    if warn and not converged and callback is None:
        warnings.warn(
            f"{solver} solver stopped at relative gradient norm {gnorm / gnorm0:.2e} > tol={tol:g} after "
            f"{n_iter} iterations; raise max_iter or loosen tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    params = {k: _freeze(v) for k, v in problem.unflatten(x).items()}
    mats = {k: _freeze(v) for k, v in problem.realize(x).items()}
    return SolveResult(
        problem, solver, _freeze(x), params, mats, float(f), n_iter, oracle.n_evals, oracle.n_hvp,
        bool(converged), gnorm, gnorm / gnorm0, seconds, tuple(history), met, lev,
    )


def _gd(oracle, x, f, g, lb, lr, tol_abs, max_iter, record, callback):
    it = 0
    while True:
        record(it, f, g, x)
        if callback is not None and callback(it, f, x):
            break
        if it >= max_iter or np.linalg.norm(_proj_grad(x, g, lb)) <= tol_abs:
            break
        x = x - lr * g
        if lb is not None:
            x = np.maximum(x, lb)
        f, g = oracle.fg(x)
        it += 1
        if not math.isfinite(f):
            warnings.warn(
                f"gradient descent diverged at iteration {it} (objective {f}); lower lr.",
                ConvergenceWarning,
                stacklevel=3,
            )
            break
    return x, f, g, it


def _fast(oracle, x0, f0, g0, lb, tol_abs, max_iter, record, callback):
    record(0, f0, g0, x0)
    if callback is not None and callback(0, f0, x0):
        return x0, f0, g0, 0
    x, f, g, it, stopped = _lbfgsb(oracle, x0, f0, g0, lb, tol_abs, max_iter, record, callback)
    if stopped or np.linalg.norm(_proj_grad(x, g, lb)) <= tol_abs:
        return x, f, g, it
    return _newton_polish(oracle, x, f, g, lb, tol_abs, it, max_iter, record, callback)


def _lbfgsb(oracle, x0, f0, g0, lb, tol_abs, max_iter, record, callback):
    """SciPy's L-BFGS-B (``maxcor`` = 10 pairs, 5 above 10^4 variables); bounds only where ``lb``
    is given (positive model).

    ``ftol`` = ``gtol`` = 0: the run stops on the relative projected-gradient norm checked in the
    callback, or where L-BFGS-B's line search stalls on round-off (then the Newton polish goes on).
    """
    from scipy.optimize import minimize

    state = {"it": 0, "x": x0, "f": f0, "g": g0, "stopped": False}
    cache: dict = {}

    def fun(x):
        f, g = oracle.fg(x)
        cache["x"], cache["f"], cache["g"] = x.copy(), f, g
        return f, g

    def cb(intermediate_result):
        x = intermediate_result.x
        if "x" in cache and np.array_equal(cache["x"], x):
            f, g = cache["f"], cache["g"]
        else:
            f, g = oracle.fg(x)
        state["it"] += 1
        state.update(x=x.copy(), f=f, g=g)
        record(state["it"], f, g, x)
        if callback is not None and callback(state["it"], f, x):
            state["stopped"] = True
            raise StopIteration
        if np.linalg.norm(_proj_grad(x, g, lb)) <= tol_abs:
            raise StopIteration

    bounds = None if lb is None else [(lo if np.isfinite(lo) else None, None) for lo in lb]
    if np.linalg.norm(_proj_grad(x0, g0, lb)) > tol_abs and max_iter > 0:
        minimize(
            fun, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=cb,
            options={"maxiter": max_iter, "maxcor": 10 if x0.size <= 10_000 else 5, "ftol": 0.0, "gtol": 0.0,
                     "maxfun": 10 * max_iter + 100, "maxls": 40},
        )
    return state["x"], state["f"], state["g"], state["it"], state["stopped"]


def _cg(matvec, b, *, rtol, maxiter):
    """Conjugate gradients for A p = b (A symmetric PSD on the relevant subspace); stops on negative curvature."""
    p = np.zeros_like(b)
    r = b.copy()
    d = r.copy()
    rr = float(r @ r)
    bnorm = math.sqrt(rr)
    for _ in range(maxiter):
        ad = matvec(d)
        dad = float(d @ ad)
        if dad <= 1e-300:
            if not p.any():
                p = b.copy()  # no curvature information: fall back to the (scaled) gradient step
            break
        step = rr / dad
        p += step * d
        r -= step * ad
        rr_new = float(r @ r)
        if math.sqrt(rr_new) <= rtol * bnorm:
            break
        d = r + (rr_new / rr) * d
        rr = rr_new
    return p


def _newton_polish(oracle, x, f, g, lb, tol_abs, it, max_iter, record, callback, max_steps=60):
    """Projected Newton-CG on the free variables with a projected-gradient-norm merit."""
    n_steps = 0
    while n_steps < max_steps and it < max_iter:
        pg = _proj_grad(x, g, lb)
        gn = float(np.linalg.norm(pg))
        if gn <= tol_abs:
            break
        free = np.ones_like(x) if lb is None else (pg != 0).astype(np.float64) + (x > lb)
        free = (free > 0).astype(np.float64)
        p = _cg(lambda v: oracle.hvp(x, v * free) * free, -pg * free, rtol=min(1e-2, math.sqrt(gn)), maxiter=500)
        t, accepted = 1.0, False
        while t > 1e-6:
            xn = x + t * p
            if lb is not None:
                xn = np.maximum(xn, lb)
            fn, gnew = oracle.fg(xn)
            gnn = float(np.linalg.norm(_proj_grad(xn, gnew, lb)))
            if gnn < gn and fn <= f + 1e-13 * max(1.0, abs(f)):
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        x, f, g = xn, fn, gnew
        it += 1
        n_steps += 1
        record(it, f, g, x)
        if callback is not None and callback(it, f, x):
            break
    return x, f, g, it
