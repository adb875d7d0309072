"""The parts every report section is made of, and the helpers the section builders share.

A section builder lives in the module of its experiment (``nclab.experiments.library.<name>``,
named by ``Experiment.section``); it takes the experiment's runs
(:class:`~nclab.report.analysis.RunData`, all stages) and returns a :class:`Section`. Verdicts
are sentences computed from the data with the rule stated in the sentence itself (a fitted
slope and its standard error, a count of settings, a correlation); ``supported`` is
``True``/``False``, or ``None`` when the data cannot test the claim (too few points, the
terminal phase never reached, ...).

A builder that raises is a bug and fails the report (and the tests); a section says that a
figure "could not be drawn" only for a reason found in the data, and names it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from nclab.report.analysis import RunData, format_mean_std, group_runs

__all__ = ["Claim", "Table", "Section", "SectionBuilder", "build_section", "generic_section",
           "generic_tables", "fmt", "metric", "series", "two_panels", "wide_figure"]


@dataclass(frozen=True)
class Claim:
    """A claim of a source, the figure that tests it, and the verdict from the data."""

    text: str
    source: str
    verdict: str
    supported: bool | None
    figure: str | None = None


@dataclass(frozen=True)
class Table:
    """A table of strings (the first row is not the header)."""

    title: str
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass
class Section:
    """The report section of one experiment."""

    name: str
    title: str
    source: str
    n_runs: int
    figures: dict[str, Any] = field(default_factory=dict)  # id -> matplotlib Figure
    captions: dict[str, str] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


SectionBuilder = Callable[[str, str, str, Sequence[RunData]], Section]


def fmt(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` significant digits; ``"nan"`` for None / NaN / inf."""
    return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def metric(run: RunData, name: str) -> float:
    """The run's final metric ``name`` (NaN when absent or not finite)."""
    v = run.final.get(name)
    return float(v) if v is not None and math.isfinite(v) else math.nan


def series(run: RunData, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of the finite records of ``name`` in the run's history."""
    pts = [(h["epoch"], h[name]) for h in run.history
           if h.get(name) is not None and math.isfinite(h[name])]
    if not pts:
        return np.zeros(0), np.zeros(0)
    e, v = zip(*pts)
    return np.asarray(e, float), np.asarray(v, float)


def _seedless_axes(runs: Sequence[RunData]) -> list[str]:
    keys: list[str] = []
    for r in runs:
        for k in r.axes:
            if k != "seed" and k not in keys:
                keys.append(k)
    return keys


def generic_section(name: str, title: str, source: str, runs: Sequence[RunData]) -> Section:
    """Mean ± std over seeds of every final metric, grouped by the other grid axes."""
    sec = Section(name, title, source, len(runs))
    if runs:
        sec.tables.extend(generic_tables(runs))
    return sec


def generic_tables(runs: Sequence[RunData], metrics: Sequence[str] | None = None,
                   title: str = "Final metrics (mean ± std over seeds)") -> list[Table]:
    """One table per stage: the runs grouped by every axis but the seed, mean ± std of
    ``metrics`` (default: the first 12 final metric names in alphabetical order)."""
    by_stage: dict[str, list[RunData]] = defaultdict(list)
    for r in runs:
        by_stage[r.stage].append(r)
    tables = []
    for stage, srs in by_stage.items():
        keys = _seedless_axes(srs)
        names = list(metrics) if metrics else sorted({k for r in srs for k in r.final})[:12]
        rows = []
        for gk, grp in group_runs(srs, keys).items():
            rows.append([str(v) for v in gk] + [str(len(grp))]
                        + [format_mean_std([r.get(m) for r in grp]) for m in names])
        t = title if stage == "main" else f"{title}, stage {stage}"
        tables.append(Table(t, list(keys) + ["runs"] + names, rows))
    return tables


def two_panels(figsize=(9.5, 3.6)):
    """A new Agg figure with two side-by-side axes: ``(fig, axes)``."""
    return wide_figure(2, figsize=figsize)


def wide_figure(n: int, *, figsize=None, sharey: bool = False):
    """A new Agg figure with ``n`` side-by-side axes: ``(fig, axes)`` (axes a 1-d array)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (4.0 * n, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, np.atleast_1d(fig.subplots(1, n, sharey=sharey))


def build_section(name: str, title: str, source: str, runs: Sequence[RunData],
                  builder: SectionBuilder | None = None) -> Section:
    """The section of experiment ``name``: ``builder``'s, or the generic tables without one.

    An exception of the builder propagates: a broken section is a bug, not a note.
    """
    if builder is None:
        return generic_section(name, title, source, runs)
    return builder(name, title, source, runs)
