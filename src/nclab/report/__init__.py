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
from nclab.report.sections import SECTIONS, Claim, Section, Table, build_section

__all__ = [
    "build_report",
    "load_runs",
    "RunData",
    "Section",
    "Claim",
    "Table",
    "SECTIONS",
    "fit_line",
    "slope_z",
    "mean_std",
    "format_mean_std",
]


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
    describe: Callable[[str], tuple[str, str]] | None = None,
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
        ``name -> (title, source)`` for the section headers (the CLI passes the registry's);
        default uses the name.
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
        sections, images, presets = [], {}, {}
        versions: dict[str, str] = {}
        for name in names:
            runs, used = load_runs(conn, name, preset=preset)
            presets[name] = used
            ttl, src = describe(name) if describe else (name, "")
            sec = build_section(name, ttl, src, runs)
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
    text = render_html(sections, images, out, title=title, meta=meta, presets=presets)
    path = out / "report.html"
    path.write_text(text, encoding="utf-8")
    return path
