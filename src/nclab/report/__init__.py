"""Figures and a self-contained HTML report built from the results store.

:func:`build_report` reads the runs of the requested experiments from the store (through
:mod:`nclab.store`), hands them to the experiment's section builder
(:mod:`nclab.report.sections`), saves every figure as PNG and SVG under ``OUT/figures`` and
writes ``OUT/report.html`` with the figures embedded (base64), each figure beside the claims of
the source it tests and the verdict computed from the data, and the tables (mean ± std over
seeds). The plot functions (:mod:`nclab.report.figures`) take data and ``ax=None`` and return
``(fig, ax)``; they never read the store.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

from nclab.report.analysis import RunData, fit_line, format_mean_std, mean_std, slope_z
from dataclasses import dataclass
from typing import Any

from nclab.report.sections import Claim, Section, SectionBuilder, Table, build_section

__all__ = [
    "build_report",
    "load_runs",
    "SectionInfo",
    "RunData",
    "Section",
    "Claim",
    "Table",
    "fit_line",
    "slope_z",
    "mean_std",
    "format_mean_std",
]


@dataclass(frozen=True)
class SectionInfo:
    """What the report needs to know of an experiment besides its runs.

    Attributes
    ----------
    title, source : str
        Section header.
    builder : callable or None
        ``builder(name, title, source, runs) -> Section``; None: the generic tables.
    deviations : sequence of (topic, the source says, nclab does, why)
        The rows of the report's deviations table for the preset shown.
    """

    title: str
    source: str = ""
    builder: SectionBuilder | None = None
    deviations: Sequence[tuple[str, str, str, str]] = ()


def _info(describe, name: str, preset: str) -> SectionInfo:
    if describe is None:
        return SectionInfo(name)
    got: Any = describe(name, preset)
    return got if isinstance(got, SectionInfo) else SectionInfo(*got)


def load_runs(conn, experiment: str, *, preset: str | None = None) -> tuple[list[RunData], str]:
    """The done runs of ``experiment`` as :class:`RunData` and the preset they come from.

    With ``preset=None`` the preset of the most recent run is used (a store may hold both a
    quick and a paper sweep of the same experiment; they are never mixed in one section).
    """
    from nclab import store as st

    runs = st.fetch_runs(conn, experiment)
    if not runs:
        return [], preset or ""
    if preset is None:
        preset = max(runs, key=lambda r: r.run_id).preset
    runs = [r for r in runs if r.preset == preset]
    ids = [r.run_id for r in runs]
    final = st.fetch_final(conn, ids)
    hist = st.fetch_history(conn, ids)
    return [RunData(r.cell_key, r.stage, r.axes, r.config, final[r.run_id], hist[r.run_id],
                    r.extras) for r in runs], preset


def build_report(
    store: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    preset: str | None = None,
    describe: Callable[[str, str], SectionInfo] | None = None,
    title: str = "nclab: reproducing the sources",
) -> Path:
    """Write ``OUT/report.html`` and ``OUT/figures/*.{png,svg}`` from the store.

    Parameters
    ----------
    store : path-like or None
        The results store (default :func:`nclab.store.default_store_path`).
    out : path-like
        Output folder (created).
    names : sequence of str, optional
        Experiments to include, in this order; default: every experiment in the store.
    preset : str, optional
        Only runs of this preset; default: per experiment, the preset of its latest run.
    describe : callable, optional
        ``(name, preset) -> SectionInfo`` (title, source, section builder, deviations); the
        experiment layer provides it (:func:`nclab.experiments.describe_for_report`). Default:
        the name as title and the generic tables.
    title : str

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    InputFileError
        The store does not exist.
    """
    from nclab import store as st
    from nclab.report.figures import save_figure
    from nclab.report.html import render_html

    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    store_path = store if store is not None else st.default_store_path()
    conn = st.connect(store_path, create=False)
    try:
        if names is None:
            names = list(dict.fromkeys(e for e, _, _ in st.list_experiments(conn)))
        sections, images, presets, deviations = [], {}, {}, []
        versions: dict[str, str] = {}
        for name in names:
            runs, used = load_runs(conn, name, preset=preset)
            presets[name] = used
            info = _info(describe, name, used)
            sec = build_section(name, info.title, info.source, runs, info.builder)
            if runs:
                deviations.extend((name, used) + tuple(d) for d in info.deviations)
            for fid, fig in sec.figures.items():
                images[(name, fid)] = save_figure(fig, out / "figures" / f"{name}--{fid}")
            sections.append(sec)
            for r in st.fetch_runs(conn, name)[-1:]:
                versions = r.versions or versions
    finally:
        conn.close()
    meta = {"store": str(store_path)}
    meta.update({k: v for k, v in versions.items() if k in ("nclab", "torch", "numpy",
                                                            "python")})
    text = render_html(sections, images, out, title=title, meta=meta, presets=presets,
                       deviations=deviations)
    path = out / "report.html"
    path.write_text(text, encoding="utf-8")
    return path
