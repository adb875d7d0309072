"""Figures of the report. Each function takes data (arrays, dicts) and ``ax=None`` and returns
``(fig, ax)``; none reads the store. Figures are plain :class:`matplotlib.figure.Figure` objects
on the Agg canvas (no pyplot state, no GUI backend), saved with :func:`save_figure`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "new_axes",
    "save_figure",
    "plot_memorization_dilation",
    "plot_metric_vs_param",
    "plot_curves",
    "plot_loss_margin",
    "plot_spread",
    "LOSS_COLORS",
]

LOSS_COLORS = {"ce": "C0", "ls": "C1", "lr": "C2", "mse": "C3"}
_MARKERS = "osD^vPX*<>hp"


def new_axes(ax=None, *, figsize=(5.0, 3.6)):
    """``(fig, ax)``: ``ax``'s figure, or a new Agg figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def save_figure(fig, stem: str | Path) -> tuple[Path, Path]:
    """Save ``fig`` as ``stem.png`` (150 dpi) and ``stem.svg``; returns both paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.svg"
    fig.savefig(png, dpi=150)
    fig.savefig(svg)
    return png, svg


def _color(label: str, i: int) -> str:
    return LOSS_COLORS.get(str(label), f"C{i % 10}")


def plot_memorization_dilation(
    memorization: Sequence[float],
    dilation: Sequence[float],
    losses: Sequence[str],
    etas: Sequence[float],
    *,
    fits: Mapping[str, tuple[float, float]] | None = None,
    xerr: Sequence[float] | None = None,
    yerr: Sequence[float] | None = None,
    ylabel: str = r"$\sqrt{NC_1^{test}}$",
    ax=None,
):
    """Dilation against memorization: one colour per loss, one marker per noise level,
    and a fitted line per loss (seed 000 Fig. 1, top row).

    Parameters
    ----------
    memorization, dilation : array-like of shape (p,)
        One point per (loss, eta) (typically means over seeds).
    losses : sequence of str of length p
    etas : sequence of float of length p
    fits : dict of loss -> (slope, intercept), optional
        Lines drawn over the x-range of that loss's points.
    xerr, yerr : array-like of shape (p,), optional
        Error bars (standard deviations over seeds).
    ax : matplotlib Axes, optional

    Returns
    -------
    (fig, ax)
    """
    fig, ax = new_axes(ax)
    mem = np.asarray(memorization, float)
    dil = np.asarray(dilation, float)
    eta_levels = sorted({float(e) for e in etas})
    marker = {e: _MARKERS[i % len(_MARKERS)] for i, e in enumerate(eta_levels)}
    loss_levels = list(dict.fromkeys(losses))
    for i, loss in enumerate(loss_levels):
        idx = [j for j, l in enumerate(losses) if l == loss]
        color = _color(loss, i)
        for j in idx:
            ax.errorbar(
                mem[j], dil[j],
                xerr=None if xerr is None else xerr[j], yerr=None if yerr is None else yerr[j],
                fmt=marker[float(etas[j])], color=color, ms=6, capsize=2, lw=0.8,
            )
        if fits and loss in fits and all(math.isfinite(v) for v in fits[loss]):
            slope, intercept = fits[loss]
            xs = np.linspace(np.nanmin(mem[idx]), np.nanmax(mem[idx]), 2)
            ax.plot(xs, intercept + slope * xs, "-", color=color, lw=1.2,
                    label=f"{loss.upper()} (slope {slope:.3g})")
        else:
            ax.plot([], [], "-", color=color, label=loss.upper())
    for e in eta_levels:
        ax.plot([], [], marker[e], color="0.4", ls="none", label=f"η={e:g}")
    ax.set_xlabel("memorization")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_metric_vs_param(
    x: Sequence[float],
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    title: str | None = None,
    ax=None,
):
    """Mean ± std of a metric against a parameter, one line per series.

    Parameters
    ----------
    x : array-like of shape (p,)
    series : dict of label -> (means (p,), stds (p,))
    """
    fig, ax = new_axes(ax)
    for i, (label, (m, s)) in enumerate(series.items()):
        m = np.asarray(m, float)
        s = np.asarray(s, float)
        ax.errorbar(x, m, yerr=s, marker="o", ms=4, capsize=2, color=_color(label, i),
                    label=str(label).upper() if str(label) in LOSS_COLORS else str(label))
    return _finish(fig, ax, xlabel, ylabel, title, logx=logx)


def _finish(fig, ax, xlabel: str, ylabel: str, title: str | None, *, logx: bool = False, logy: bool = False):
    """Shared finish of the line plots: scales, labels, title, legend, grid."""
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_curves(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    logy: bool = False,
    title: str | None = None,
    styles: Mapping[str, str] | None = None,
    ax=None,
):
    """Several curves over a common x (epochs, layers)."""
    fig, ax = new_axes(ax)
    for i, (label, y) in enumerate(series.items()):
        fmt = (styles or {}).get(label, "-")
        ax.plot(x[: len(y)], y, fmt, color=f"C{i % 10}", label=str(label), lw=1.2, ms=3)
    return _finish(fig, ax, xlabel, ylabel, title, logy=logy)


def plot_loss_margin(
    epochs: Sequence[float],
    loss: Sequence[float],
    margin: Sequence[float],
    *,
    tpt_epoch: float | None = None,
    title: str | None = None,
    ax=None,
):
    """Train CE loss (left axis, log scale) and margin p_min (right axis) over epochs, with
    the start of the terminal phase marked (seed 002 Fig. 3)."""
    fig, ax = new_axes(ax)
    ax.plot(epochs, loss, color="C0", label="train CE loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train CE loss", color="C0")
    ax2 = ax.twinx()
    ax2.plot(epochs, margin, color="C3", label=r"$p_{min}$")
    ax2.set_ylabel(r"margin $p_{min}$", color="C3")
    if tpt_epoch is not None and math.isfinite(tpt_epoch):
        ax.axvline(tpt_epoch, color="0.5", ls="--", lw=0.8)
        ax.text(tpt_epoch, ax.get_ylim()[1], " TPT", va="top", fontsize=7, color="0.4")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return fig, ax


def plot_spread(
    groups: Mapping[str, Sequence[float]],
    *,
    ylabel: str,
    title: str | None = None,
    ax=None,
):
    """Box plot with the individual values overlaid, one box per group (seed 002 Fig. 4)."""
    fig, ax = new_axes(ax)
    labels = list(groups)
    data = [np.asarray(groups[k], float) for k in labels]
    ax.boxplot(data, tick_labels=labels, widths=0.5)
    for i, d in enumerate(data, start=1):
        jitter = np.linspace(-0.08, 0.08, len(d)) if len(d) > 1 else np.zeros(len(d))
        ax.plot(i + jitter, d, "o", ms=3, color=f"C{i - 1}", alpha=0.8)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return fig, ax
