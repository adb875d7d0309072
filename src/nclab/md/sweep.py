r"""Sweeps of the MD model over the noise level (and alpha, C_MD), and their figures.

The model's counterpart of seed 000 Fig. 1: dilation :math:`r_*/\|h_1-h_2\|` against memorization
:math:`\eta\|h_2-u_1\|` for CE and LS, marking where the printed assumptions of Thm 4.3 hold and
whether its inequality :math:`\mathrm{dil}_{CE} > \mathrm{dil}_{LS}` holds, inside and outside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nclab.errors import SpecError
from nclab.md.model import solve_md
from nclab.md.theorem import assumption_4_2

__all__ = ["MDSweepPoint", "MDSweep", "md_sweep", "plot_md_sweep", "plot_theorem_check"]


@dataclass(frozen=True)
class MDSweepPoint:
    """CE and LS solutions of one (eta, alpha, C_MD) setting, and the Thm 4.3 bookkeeping."""

    eta: float
    alpha: float
    c_md: float
    dilation_ce: float
    dilation_ls: float
    memorization_ce: float
    memorization_ls: float
    r_star_ce: float
    r_star_ls: float
    r_max_ce: float
    r_max_ls: float
    gamma: float
    assumptions_hold: bool  # Assumption 4.2 as printed (binary model only)
    rigorous_condition: bool  # corrected sufficient condition, docs/md_model.md Sec. 5

    @property
    def theorem_holds(self) -> bool:
        """Thm 4.3's inequality: dilation_CE > dilation_LS."""
        return self.dilation_ce > self.dilation_ls

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["theorem_holds"] = self.theorem_holds
        return d


@dataclass(frozen=True)
class MDSweep:
    """A grid of MD solutions; ``points`` ordered by (alpha, c_md, eta)."""

    points: tuple[MDSweepPoint, ...]
    lambda_w: float
    lambda_h: float
    dist: str
    num_classes: int

    def settings(self) -> list[tuple[float, float]]:
        """The distinct (alpha, c_md) pairs, in order."""
        return list(dict.fromkeys((p.alpha, p.c_md) for p in self.points))

    def select(self, alpha: float, c_md: float) -> list[MDSweepPoint]:
        return [p for p in self.points if p.alpha == alpha and p.c_md == c_md]


def md_sweep(
    etas,
    *,
    alphas=(0.1,),
    c_mds=(1.0,),
    lambda_w: float,
    lambda_h: float,
    dist: str = "circle",
    num_classes: int = 2,
    n_grid: int | None = None,
) -> MDSweep:
    """Solve the MD model for CE and LS on every (alpha, c_md, eta) of the grid.

    Parameters
    ----------
    etas : array_like of shape (k,)
        Noise levels > 0.
    alphas : sequence of float, default=(0.1,)
        LS parameters alpha_0 in (0, 1).
    c_mds : sequence of float, default=(1.0,)
        Memorization-dilation slopes.
    lambda_w, lambda_h, dist, num_classes, n_grid
        As in :func:`nclab.md.solve_md`.

    Returns
    -------
    MDSweep

    Notes
    -----
    CE does not depend on alpha and is solved once per (c_md, eta): cost is
    ``len(c_mds) * len(etas) * (1 + len(alphas))`` MD solves.
    """
    etas = np.atleast_1d(np.asarray(etas, dtype=float))
    if etas.size == 0 or np.any(~np.isfinite(etas)) or np.any(etas <= 0):
        raise SpecError("etas must be a non-empty list of finite noise levels > 0.")
    kw = dict(lambda_w=lambda_w, lambda_h=lambda_h, dist=dist, num_classes=num_classes, n_grid=n_grid)
    ce_cache = {}
    points = []
    for alpha in alphas:
        if not (0.0 < float(alpha) < 1.0):
            raise SpecError(f"each alpha must lie in (0, 1); got {alpha!r}.")
        for c_md in c_mds:
            for eta in etas:
                key = (float(c_md), float(eta))
                if key not in ce_cache:
                    ce_cache[key] = solve_md(alpha=0.0, eta=eta, c_md=c_md, **kw)
                ce = ce_cache[key]
                ls = solve_md(alpha=alpha, eta=eta, c_md=c_md, **kw)
                a = assumption_4_2(alpha=alpha, lambda_w=lambda_w, lambda_h=lambda_h, eta=eta,
                                   c_md=c_md, dist=dist)
                binary = int(num_classes) == 2
                points.append(MDSweepPoint(
                    eta=float(eta), alpha=float(alpha), c_md=float(c_md),
                    dilation_ce=ce.dilation, dilation_ls=ls.dilation,
                    memorization_ce=ce.memorization, memorization_ls=ls.memorization,
                    r_star_ce=ce.r_star, r_star_ls=ls.r_star, r_max_ce=ce.r_max, r_max_ls=ls.r_max,
                    gamma=ce.h_dist / ls.h_dist,
                    assumptions_hold=binary and a.holds,
                    rigorous_condition=binary and a.rigorous_condition,
                ))
    return MDSweep(tuple(points), float(lambda_w), float(lambda_h), dist, int(num_classes))


def _axes(ax):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
    else:
        fig = ax.figure
    return fig, ax


def plot_md_sweep(sweep: MDSweep, ax=None):
    """Dilation against memorization for CE (circles) and LS (squares).

    Filled markers: the printed assumptions of Thm 4.3 hold; hollow: they do not.  A thin segment
    joins the CE and LS points of the same setting: green where Thm 4.3's inequality holds, red
    where it fails.  Returns ``(fig, ax)``.
    """
    fig, ax = _axes(ax)
    colors = ax._get_lines.get_next_color  # noqa: SLF001 - matplotlib's own colour cycle
    for alpha, c_md in sweep.settings():
        pts = sweep.select(alpha, c_md)
        col = colors()
        for p in pts:
            ax.plot([p.memorization_ce, p.memorization_ls], [p.dilation_ce, p.dilation_ls],
                    color="tab:green" if p.theorem_holds else "tab:red", lw=0.7, alpha=0.6, zorder=1)
            fill = col if p.assumptions_hold else "none"
            ax.scatter(p.memorization_ce, p.dilation_ce, marker="o", facecolors=fill, edgecolors=col, zorder=2)
            ax.scatter(p.memorization_ls, p.dilation_ls, marker="s", facecolors=fill, edgecolors=col, zorder=2)
        ax.plot([], [], color=col, marker="s", ls="", label=f"alpha={alpha:g}, C_MD={c_md:g}")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="k", label="CE")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="k", label="LS")
    ax.scatter([], [], marker="o", facecolors="k", edgecolors="k", label="Assumption 4.2 holds")
    ax.plot([], [], color="tab:red", lw=0.7, label="Thm 4.3 fails")
    ax.set_xlabel(r"memorization $\eta\,\|h_2 - u_1\|$")
    ax.set_ylabel(r"dilation $r_*/\|h_1 - h_2\|$")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title(f"MD model ({sweep.dist}, N={sweep.num_classes})")
    ax.legend(fontsize=7)
    return fig, ax


def plot_theorem_check(sweep: MDSweep, ax=None):
    """Ratio dilation_CE / dilation_LS against eta; Thm 4.3 claims > 1 inside its assumptions.

    Filled markers: the printed assumptions hold; hollow: they do not.  Returns ``(fig, ax)``.
    """
    fig, ax = _axes(ax)
    for alpha, c_md in sweep.settings():
        pts = sweep.select(alpha, c_md)
        eta = np.array([p.eta for p in pts])
        ratio = np.array([p.dilation_ce / p.dilation_ls if p.dilation_ls > 0 else np.nan for p in pts])
        inside = np.array([p.assumptions_hold for p in pts])
        (line,) = ax.plot(eta, ratio, lw=1, label=f"alpha={alpha:g}, C_MD={c_md:g}")
        col = line.get_color()
        ax.scatter(eta[inside], ratio[inside], color=col, zorder=3)
        ax.scatter(eta[~inside], ratio[~inside], facecolors="none", edgecolors=col, zorder=3)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel(r"noise level $\eta$")
    ax.set_ylabel(r"dilation$_{CE}$ / dilation$_{LS}$")
    ax.set_title("Thm 4.3 (filled: assumptions hold)")
    ax.legend(fontsize=7)
    return fig, ax
