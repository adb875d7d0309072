r"""The memorization-dilation (MD) model: seed 000 Def. 4.1, proof ingredients from seed 001 App. C.

Problem (binary case, corrected as documented in ``docs/md_model.md``):

.. math::

    \min_{U \ge 0,\ r \ge 0}\ \mathcal R(U, r) = F(r) + \eta\, G(U)
    \quad\text{s.t.}\quad
    \eta\|h_1 - u_2\| \le \frac{C_{MD}\, r}{\|h_1 - h_2\|},\quad
    \eta\|h_2 - u_1\| \le \frac{C_{MD}\, r}{\|h_1 - h_2\|},

where

- :math:`(W, H)` is the NC configuration of Assumption 4.2.1 (:func:`nclab.md._nc._nc_configuration`),
- :math:`F(r) = \sum_{n=1}^{2} \int \big(\ell_\alpha(W, h_n + v, y_n^{(\alpha)}) + \lambda\|h_n + v\|^2\big)\, d\mu_r^n(v)`
  (the printed F repeats class 1 in its second term: a typo),
- :math:`G(U) = \sum_{n} \ell_\alpha(W, u_n, y_n^{(\alpha)}) + \lambda \|u_n\|^2`, :math:`\lambda = \lambda_H`,
- :math:`u_1` is the embedding of the samples of true class 2 that carry label 1 (and vice versa).

Symbols -> code: :math:`\lambda_W, \lambda_H` -> ``lambda_w, lambda_h``; :math:`C_{MD}` -> ``c_md``;
:math:`\eta` -> ``eta``; :math:`r_*` -> ``r_star``; :math:`r_{\max} = \eta\|h_1-h_2\|^2/C_{MD}` -> ``r_max``;
:math:`R = C_{MD} r / (\eta \|h_1 - h_2\|)` -> radius of the feasible disc.

Inner problem (over U, convex): solved exactly.  In the plane of :math:`h_1, h_2` (Lemma C.1) with
:math:`u_1 = x e_1 + y e_2`, the objective :math:`\varphi_\alpha(c\rho(y - x)) + \lambda(x^2 + y^2)`
depends on :math:`\delta = y - x` and on :math:`x^2 + y^2`; minimising :math:`x^2+y^2` over the
feasible chord :math:`\{y - x = \delta\}` has a closed form, and what is left is a convex function of
the single variable :math:`\delta`, minimised by golden-section search to machine precision.

Outer problem (over r): dense grid on :math:`[0, r_{\max}]` (the optimum never exceeds
:math:`r_{\max}`: there G is constant and F strictly increasing), then bounded Brent refinement
around the best grid point.  The issue warns that the objective need not be convex in r; in fact
the whole MD problem is jointly convex in (U, r) (constraints (4)-(5) are second-order cones in
(u, r), F is an average of convex functions of r), so r -> min_U R(U, r) is convex
(``docs/md_model.md`` Sec. 5); the grid is kept as a safeguard that needs no such argument.

N > 2 (beyond the paper): symmetric noise, a fraction :math:`\eta/(N-1)` of every class relabelled to
each other class.  The noisy embedding :math:`u_{nm}` (label n, true class m) pays
:math:`\eta/(N-1)\,(\ell_\alpha(W, u_{nm}, y_n) + \lambda\|u_{nm}\|^2)` and satisfies
:math:`\eta\|h_m - u_{nm}\| \le C_{MD} r / \|h_n - h_m\|`; for N = 2 this is Def. 4.1.  By symmetry
:math:`u_{nm} = x e_n + y e_m + z\sum_{k\ne n,m} e_k`, a 3-variable convex problem solved by SLSQP.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from nclab._resources import check_memory
from nclab.errors import ConvergenceWarning, SpecError
from nclab.md._dist import _binary_nodes, _check_dist, _class_nodes
from nclab.md._losses import _ls_grad, _ls_loss, _phi, _softplus
from nclab.md._nc import _NCConfig, _nc_configuration

__all__ = ["MDResult", "MDComparison", "solve_md", "compare_ce_ls", "md_objective"]

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class MDResult:
    """Solution of the MD problem for one loss (one value of alpha).

    Attributes
    ----------
    r_star : float
        Optimal dilation parameter r* (standard deviation of mu_r).
    dilation : float
        Normalised dilation r* / ||h_1 - h_2||.
    r_max : float
        eta ||h_1 - h_2||^2 / C_MD: the r at which the noisy samples can sit on their label's mean.
    memorization : float
        eta ||h_2 - u_1|| (class 1; the other classes are equal by symmetry).
    u : ndarray of shape (N, N, M)
        u[n, m]: noisy embedding with label n and true class m (u[n, n] = h_n).
        For N = 2, ``u1 = u[0, 1]`` and ``u2 = u[1, 0]``.
    objective : float
        MD risk F(r*) + eta G(U(r*)).
    h, w : ndarray of shape (N, M)
        Class means h_n and classifier rows w_n of the NC configuration.
    profile_r, profile_objective : ndarray of shape (n_grid,)
        The reduced objective r -> min_U R(U, r) on the grid used by the outer search.
    """

    alpha: float
    lambda_w: float
    lambda_h: float
    eta: float
    c_md: float
    dist: str
    num_classes: int
    r_star: float
    dilation: float
    r_max: float
    memorization: float
    h_dist: float
    objective: float
    u: np.ndarray = field(repr=False)
    h: np.ndarray = field(repr=False)
    w: np.ndarray = field(repr=False)
    profile_r: np.ndarray = field(repr=False)
    profile_objective: np.ndarray = field(repr=False)

    @property
    def u1(self) -> np.ndarray:
        """Noisy embedding labelled class 1 whose true class is 2 (u[0, 1])."""
        return self.u[0, 1]

    @property
    def u2(self) -> np.ndarray:
        """Noisy embedding labelled class 2 whose true class is 1 (u[1, 0])."""
        return self.u[1, 0]

    def as_dict(self) -> dict:
        """The scalar outputs plus u1, u2 as lists (JSON-ready)."""
        return {
            "r_star": self.r_star,
            "dilation": self.dilation,
            "r_max": self.r_max,
            "memorization": self.memorization,
            "alpha": self.alpha,
            "h_dist": self.h_dist,
            "objective": self.objective,
            "u1": self.u1.tolist(),
            "u2": self.u2.tolist(),
        }


@dataclass(frozen=True)
class MDComparison:
    """CE (alpha = 0) and LS (alpha = alpha_0) solutions of the same MD problem."""

    ce: MDResult
    ls: MDResult

    @property
    def gamma(self) -> float:
        """||H^CE|| / ||H^LS|| (seed 000 eq. (6))."""
        return self.ce.h_dist / self.ls.h_dist

    @property
    def theorem_4_3_holds(self) -> bool:
        """Whether r*_CE/||h1-h2||_CE > r*_LS/||h1-h2||_LS (the inequality of Thm 4.3)."""
        return self.ce.dilation > self.ls.dilation


# ---------------------------------------------------------------------------------------------
# binary inner problem: exact
# ---------------------------------------------------------------------------------------------


def _chord_point(delta, rho, R):
    """Point (x, y) of {x, y >= 0, x^2 + (y - rho)^2 <= R^2, y - x = delta} of least norm."""
    disc = np.sqrt(np.maximum(2.0 * R * R - (delta - rho) ** 2, 0.0))
    tau_lo = 0.5 * (-(delta - rho) - disc)
    tau = np.maximum(np.maximum(0.0, -delta), tau_lo)
    return tau, tau + delta


def _inner_binary(cfg: _NCConfig, R, lam: float, *, n_iter: int = 100):
    """Exact minimiser (x, y) of (P_u1) in the plane for radii R (k,); u_1 = x e_1 + y e_2."""
    R = np.atleast_1d(np.asarray(R, dtype=float))
    rho, c, alpha = cfg.rho, cfg.c, cfg.alpha
    r_feas = math.sqrt(2.0) * rho  # R >= sqrt(2) rho  <=>  h_1 feasible  <=>  r >= r_max
    lo = np.where(R <= r_feas, rho - math.sqrt(2.0) * R, -np.sqrt(np.maximum(R * R - rho * rho, 0.0)))
    hi = rho + R

    def f(delta):
        x, y = _chord_point(delta, rho, R)
        return _phi(c * rho * delta, alpha) + lam * (x * x + y * y)

    a, b = lo.copy(), hi.copy()
    x1 = b - _GOLDEN * (b - a)
    x2 = a + _GOLDEN * (b - a)
    f1, f2 = f(x1), f(x2)
    for _ in range(n_iter):
        left = f1 <= f2
        b = np.where(left, x2, b)
        a = np.where(left, a, x1)
        x2n = np.where(left, x1, a + _GOLDEN * (b - a))
        x1n = np.where(left, b - _GOLDEN * (b - a), x2)
        x1, x2 = x1n, x2n
        f1, f2 = f(x1), f(x2)
    delta = 0.5 * (a + b)
    # the end points of [lo, hi] are feasible too; keep whichever of the three is best
    cands = np.stack([delta, lo, hi])
    vals = np.stack([f(delta), f(lo), f(hi)])
    delta = np.take_along_axis(cands, np.argmin(vals, axis=0)[None], axis=0)[0]
    x, y = _chord_point(delta, rho, R)
    done = R >= r_feas
    x = np.where(done, rho, x)
    y = np.where(done, 0.0, y)
    return x, y


def _g_binary(cfg: _NCConfig, x, y, lam: float):
    """Noisy-sample risk of u_1 = x e_1 + y e_2: phi(<w_2 - w_1, u_1>) + lam ||u_1||^2."""
    return _phi(cfg.c * cfg.rho * (y - x), cfg.alpha) + lam * (x * x + y * y)


def _f_binary(cfg: _NCConfig, r, lam: float, dist: str):
    """Half of F: int l(h_1 + v) + lam ||h_1 + v||^2 dmu_r(v), vectorised in r (exact quadrature)."""
    r = np.atleast_1d(np.asarray(r, dtype=float))
    xi, wts = _binary_nodes(dist)
    t = -cfg.margin + cfg.d_norm * r[:, None] * xi[None, :]
    return _softplus(t) @ wts + 0.5 * cfg.alpha * cfg.margin + lam * (cfg.rho**2 + r * r)


# ---------------------------------------------------------------------------------------------
# general N inner problem (3 variables, convex, SLSQP)
# ---------------------------------------------------------------------------------------------


def _coords(v, n):
    x, y = v[0], v[1]
    z = v[2] if n > 2 else 0.0
    u = np.full(n, z)
    u[0], u[1] = x, y
    return u


def _inner_general(cfg: _NCConfig, R: float, lam: float, x0=None):
    """Minimiser (x, y, z) of the noisy-sample risk of u_01 = x e_0 + y e_1 + z sum_{k>1} e_k."""
    n, rho, scale, alpha = cfg.num_classes, cfg.rho, cfg.c * cfg.rho, cfg.alpha
    k = 3 if n > 2 else 2
    if R >= math.sqrt(2.0) * rho:
        return np.array([rho, 0.0, 0.0][:k])
    if R <= 0.0:
        return np.array([0.0, rho, 0.0][:k])
    mult = np.array([1.0, 1.0, n - 2.0][:k])

    def fun(v):
        u = _coords(v, n)
        z = scale * u
        val = float(_ls_loss(z, 0, alpha)) + lam * float(mult @ (v * v))
        gz = scale * _ls_grad(z, 0, alpha)
        grad = np.array([gz[0], gz[1], gz[2:].sum()][:k]) + 2.0 * lam * mult * v
        return val, grad

    def con(v):
        w = v.copy()
        w[1] -= rho
        return R * R - float(mult @ (w * w))

    def con_jac(v):
        w = v.copy()
        w[1] -= rho
        return -2.0 * mult * w

    if x0 is None or con(np.asarray(x0)) < 0:
        step = 0.5 * R / math.sqrt(2.0)
        x0 = np.array([step, rho - step, 0.0][:k])
    res = minimize(
        fun,
        np.asarray(x0, dtype=float),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, None)] * k,
        constraints=[{"type": "ineq", "fun": con, "jac": con_jac}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    # SLSQP status 8 ("positive directional derivative in line search") means it stalled at the
    # precision limit of ftol; accept it when the point is feasible (checked against brute force
    # in tests/md/test_nclass.py).
    stalled = res.status == 8 and con(res.x) > -1e-9 * max(R * R, 1.0) and np.all(res.x > -1e-12)
    if not (res.success or stalled):
        warnings.warn(
            f"MD inner problem (N={n}, R={R:.3g}) did not converge: {res.message}; "
            "results for num_classes > 2 may be inaccurate, try a coarser n_grid.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return np.maximum(res.x, 0.0)


def _g_general(cfg: _NCConfig, v, lam: float) -> float:
    n = cfg.num_classes
    u = _coords(v, n)
    mult = np.array([1.0, 1.0, n - 2.0][: len(v)])
    return float(_ls_loss(cfg.c * cfg.rho * u, 0, cfg.alpha)) + lam * float(mult @ (v * v))


def _f_general(cfg: _NCConfig, r, lam: float, nodes) -> np.ndarray:
    """Class-0 part of F via the node set of :func:`_class_nodes`, vectorised in r."""
    r = np.atleast_1d(np.asarray(r, dtype=float))
    V, wts = nodes
    base = np.zeros(cfg.num_classes)
    base[0] = cfg.rho
    pts = base[None, None, :] + r[:, None, None] * V[None, :, :]
    loss = _ls_loss(cfg.c * cfg.rho * pts, 0, cfg.alpha) @ wts
    return loss + lam * (cfg.rho**2 + r * r)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def _memory_bytes(num_classes, dim, points: int, *, with_u: bool) -> int:
    """Lower bound of the float64 working set of the MD solve (bytes), from the sizes alone.

    H and W (N, M) each; for N > 2 the class-0 nodes (4096, N) and, per batch of ``points``
    dilations, the node points and their logits (points, 4096, N) each; with ``with_u`` the
    returned noisy features U (N, N, M).
    """
    n = int(num_classes)
    m = n if dim is None else max(int(dim), n)
    values = 2 * n * m
    if n > 2:
        values += 4096 * n + 2 * int(points) * 4096 * n
    if with_u:
        values += n * n * m
    return 8 * values


def _check_size(num_classes, dim, points: int, *, with_u: bool) -> None:
    try:
        n = int(num_classes)
    except (TypeError, ValueError):
        return  # not a number: _nc_configuration names the problem
    if n < 2:
        return
    check_memory(_memory_bytes(n, dim, points, with_u=with_u), f"the MD model with num_classes={n}",
                 "Use fewer classes (the N-class extension is meant for N up to a few hundred).")


def _validate(eta, c_md, n_grid):
    eta = float(eta)
    if not math.isfinite(eta) or eta < 0:
        raise SpecError(f"eta (noise level) must be a finite number >= 0; got {eta!r}.")
    c_md = float(c_md)
    if not math.isfinite(c_md) or c_md <= 0:
        raise SpecError(f"c_md (memorization-dilation slope) must be > 0; got {c_md!r}.")
    if int(n_grid) < 3:
        raise SpecError(f"n_grid must be >= 3; got {n_grid!r}.")
    return eta, c_md, int(n_grid)


class _Reduced:
    """r -> min_U MD risk, for one configuration (binary: exact; N > 2: SLSQP, warm-started)."""

    def __init__(self, cfg: _NCConfig, eta: float, c_md: float, dist: str):
        self.cfg, self.eta, self.c_md, self.dist = cfg, eta, c_md, dist
        self.lam = cfg.lambda_h
        self.binary = cfg.num_classes == 2
        self.nodes = None if self.binary else _class_nodes(dist, cfg.num_classes)
        self._last = None

    def radius(self, r):
        return self.c_md * np.asarray(r, dtype=float) / (self.eta * self.cfg.h_dist)

    def clean(self, r):
        if self.binary:
            return _f_binary(self.cfg, r, self.lam, self.dist)
        return _f_general(self.cfg, r, self.lam, self.nodes)

    def inner(self, r):
        """Per-class optimal noisy coordinates, shape (k, 2 or 3)."""
        R = np.atleast_1d(self.radius(r))
        if self.binary:
            x, y = _inner_binary(self.cfg, R, self.lam)
            return np.stack([x, y], axis=1)
        out = []
        for Rj in R:
            v = _inner_general(self.cfg, float(Rj), self.lam, self._last)
            self._last = v
            out.append(v)
        return np.array(out)

    def noisy(self, coords):
        if self.binary:
            return _g_binary(self.cfg, coords[:, 0], coords[:, 1], self.lam)
        return np.array([_g_general(self.cfg, v, self.lam) for v in coords])

    def __call__(self, r):
        """Full MD risk N [F_half(r) + eta g(u(r))] (= F + eta G for N = 2), shape (k,)."""
        n = self.cfg.num_classes
        return n * (self.clean(r) + self.eta * self.noisy(self.inner(r)))


def md_objective(
    r,
    *,
    alpha: float,
    lambda_w: float,
    lambda_h: float,
    eta: float,
    c_md: float,
    dist: str = "circle",
    num_classes: int = 2,
) -> np.ndarray:
    r"""Reduced MD risk :math:`r \mapsto \min_U \mathcal R(U, r)` (inner problem solved exactly).

    Parameters
    ----------
    r : array_like of shape (k,)
        Dilations r >= 0.
    alpha, lambda_w, lambda_h, eta, c_md, dist, num_classes
        As in :func:`solve_md`; eta must be > 0.

    Returns
    -------
    ndarray of shape (k,)
    """
    eta, c_md, _ = _validate(eta, c_md, 3)
    if eta == 0:
        raise SpecError("md_objective needs eta > 0 (with eta = 0 the noisy term vanishes).")
    _check_size(num_classes, None, np.size(r), with_u=False)
    cfg = _nc_configuration(alpha, lambda_w=lambda_w, lambda_h=lambda_h, num_classes=num_classes)
    return _Reduced(cfg, eta, c_md, _check_dist(dist))(np.atleast_1d(np.asarray(r, dtype=float)))


def solve_md(
    *,
    alpha: float,
    lambda_w: float,
    lambda_h: float,
    eta: float,
    c_md: float,
    dist: str = "circle",
    num_classes: int = 2,
    dim: int | None = None,
    n_grid: int | None = None,
) -> MDResult:
    r"""Solve the memorization-dilation problem of seed 000 Def. 4.1 (and its N-class extension).

    .. math::

        \min_{U \ge 0, r \ge 0} F_{\lambda,\alpha}(W, H, r) + \eta\, G_{\lambda,\alpha}(W, U, r)
        \quad\text{s.t. (4), (5)},\qquad \lambda = \lambda_H,

    with (W, H) the NC configuration of Assumption 4.2.1.  See the module docstring for the
    problem with its corrections and ``docs/md_model.md`` for the derivations.

    Parameters
    ----------
    alpha : float
        LS parameter in [0, 1); 0 is cross-entropy.
    lambda_w, lambda_h : float
        Weight decays (> 0); the MD model's regulariser is lambda = lambda_h.
    eta : float
        Noise level >= 0.
    c_md : float
        Memorization-dilation slope C_MD > 0.
    dist : {"circle", "gaussian", "two-point"}, default="circle"
        The clean-feature distribution mu_r (see :mod:`nclab.md._dist`).
    num_classes : int, default=2
        N; N > 2 is the symmetric-noise extension.
    dim : int or None, default=None
        Feature dimension M >= N of the returned vectors (None: M = N).  The solution does not
        depend on M (Lemma C.1).
    n_grid : int or None, default=None
        Grid points of the outer search on [0, r_max] (None: 257 for N = 2, 49 for N > 2).

    Returns
    -------
    MDResult

    Raises
    ------
    SpecError
        For out-of-range parameters, or when the NC configuration collapses to W = H = 0.

    Notes
    -----
    Cost for N = 2: O(n_grid * 160) vectorised evaluations of closed forms (a few ms).
    For N > 2: one 3-variable SLSQP per r evaluation (about 0.1 s in total).

    Examples
    --------
    >>> res = solve_md(alpha=0.0, lambda_w=1e-3, lambda_h=1e-3, eta=0.0, c_md=1.0)
    >>> res.r_star, res.r_max
    (0.0, 0.0)
    """
    dist = _check_dist(dist)
    if n_grid is None:
        n_grid = 257 if int(num_classes) == 2 else 49
    eta, c_md, n_grid = _validate(eta, c_md, n_grid)
    _check_size(num_classes, dim, n_grid, with_u=True)
    cfg = _nc_configuration(alpha, lambda_w=lambda_w, lambda_h=lambda_h, num_classes=num_classes, dim=dim)
    n, m = cfg.H.shape
    delta = cfg.h_dist
    r_max = eta * delta**2 / c_md
    red = _Reduced(cfg, eta, c_md, dist)

    if eta == 0.0:  # no noisy samples: r_* = 0, U = H, the risk is N F_half(0)
        u = np.broadcast_to(cfg.H[:, None, :], (n, n, m)).copy()
        obj = float(n * red.clean(0.0)[0])
        return MDResult(float(alpha), cfg.lambda_w, cfg.lambda_h, eta, c_md, dist, n, 0.0, 0.0, 0.0, 0.0,
                        delta, obj, u, cfg.H.copy(), cfg.W.copy(), np.zeros(1), np.array([obj]))

    grid = r_max * np.linspace(0.0, 1.0, n_grid)
    vals = red(grid)
    j = int(np.argmin(vals))
    r_best, v_best = float(grid[j]), float(vals[j])
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, n_grid - 1)]
    if hi > lo:
        opt = minimize_scalar(
            lambda r: float(red(np.array([r]))[0]),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-13 * max(r_max, 1e-300)},
        )
        if opt.fun < v_best:
            r_best, v_best = float(opt.x), float(opt.fun)

    coords = red.inner(np.array([r_best]))[0]
    red._last = None
    u = np.zeros((n, n, m))
    for a in range(n):
        for b in range(n):
            if a == b:
                u[a, b] = cfg.H[a]
                continue
            vec = np.zeros(m)
            vec[a], vec[b] = coords[0], coords[1]
            if n > 2:
                others = [k for k in range(n) if k not in (a, b)]
                vec[others] = coords[2]
            u[a, b] = vec
    memorization = eta * float(np.linalg.norm(cfg.H[1] - u[0, 1]))
    return MDResult(
        alpha=float(alpha),
        lambda_w=cfg.lambda_w,
        lambda_h=cfg.lambda_h,
        eta=eta,
        c_md=c_md,
        dist=dist,
        num_classes=n,
        r_star=r_best,
        dilation=r_best / delta,
        r_max=r_max,
        memorization=memorization,
        h_dist=delta,
        objective=v_best,
        u=u,
        h=cfg.H.copy(),
        w=cfg.W.copy(),
        profile_r=grid,
        profile_objective=vals,
    )


def compare_ce_ls(
    *,
    alpha: float,
    lambda_w: float,
    lambda_h: float,
    eta: float,
    c_md: float,
    dist: str = "circle",
    num_classes: int = 2,
    n_grid: int | None = None,
) -> MDComparison:
    """Solve the MD problem for CE (alpha = 0) and LS (the given alpha > 0) with equal settings.

    Parameters
    ----------
    alpha : float
        The LS parameter alpha_0 in (0, 1).
    lambda_w, lambda_h, eta, c_md, dist, num_classes, n_grid
        As in :func:`solve_md`.

    Returns
    -------
    MDComparison
    """
    if not (0.0 < float(alpha) < 1.0):
        raise SpecError(f"alpha (the LS parameter alpha_0) must lie in (0, 1); got {alpha!r}.")
    kw = dict(lambda_w=lambda_w, lambda_h=lambda_h, eta=eta, c_md=c_md, dist=dist,
              num_classes=num_classes, n_grid=n_grid)
    return MDComparison(ce=solve_md(alpha=0.0, **kw), ls=solve_md(alpha=alpha, **kw))
