"""``nclab run | sweep | report | reproduce | export | experiments``: the experiment commands.

Only typer, rich and the standard library are imported at module level; the experiment layer
is imported inside each command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from nclab.cli.app import app, ensure_dir, print_json, user_errors

_SET_HELP = "Override a setting, KEY=VALUE (lists comma-separated); repeatable."
_STORE_HELP = "Results store (SQLite); default $NCLAB_STORE or ./nclab-results.sqlite."


def _describe(name: str, preset: str):
    """Title, source, section builder and deviations of a registered experiment."""
    from nclab.experiments import describe_for_report

    return describe_for_report(name, preset)


def _registered() -> list[str]:
    from nclab.experiments import experiment_names

    return list(experiment_names(include_hidden=False))


def _require_stored(store: Optional[Path], names: list[str]) -> None:
    """An unknown experiment name is an error listing the known ones (not an empty report)."""
    from nclab import store as st

    conn = st.connect(store, create=False)
    try:
        st.require_experiments(conn, names, registered=_registered())
    finally:
        conn.close()


def _progress(flag: Optional[bool]) -> bool:
    return sys.stderr.isatty() if flag is None else flag


class _Bars:
    """Rich progress bars drawn from the runner's events: one bar per stage grid, one per
    running cell for its epochs (the library reports, the CLI draws)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = None
        self._grid = None
        self._cells: dict = {}

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    @property
    def on_event(self):
        return self.handle if self.enabled else None

    def handle(self, ev) -> None:
        from rich.markup import escape

        p = self.progress
        if ev.kind == "stage":
            self._grid = p.add_task(f"[bold]{escape(ev.experiment)} [{escape(ev.stage)}]",
                                    total=ev.total, completed=ev.skipped)
        elif ev.kind == "epoch":
            task = self._cells.get(ev.key)
            if task is None:
                task = self._cells[ev.key] = p.add_task(f"  {escape(ev.key[:60])}",
                                                        total=ev.total)
            p.update(task, completed=ev.epoch, total=ev.total)
        elif ev.kind == "cell_done":
            task = self._cells.pop(ev.key, None)
            if task is not None:
                p.remove_task(task)
            if self._grid is not None:
                p.advance(self._grid)
        elif ev.kind == "stage_done":
            for task in self._cells.values():
                p.remove_task(task)
            self._cells.clear()


def _summary_dict(s) -> dict:
    return {
        "experiment": s.experiment, "preset": s.preset, "store": s.store, "total": s.total,
        "skipped": s.skipped, "done": s.done, "failed": s.failed,
        "elsewhere": getattr(s, "elsewhere", 0), "wall_s": s.wall_s,
        "failures": [{"cell_key": k, "error": e} for k, e in s.failures],
    }


def _finish(summaries: list, as_json: bool) -> None:
    from rich.console import Console

    if as_json:
        print_json([_summary_dict(s) for s in summaries] if len(summaries) != 1
                   else _summary_dict(summaries[0]))
    else:
        console = Console()
        for s in summaries:
            console.print(
                f"[bold]{s.experiment}[/] ({s.preset}): {s.total} cells, {s.skipped} already "
                f"done, {s.done} run, {s.failed} failed"
                + (f", {s.elsewhere} run by another process" if getattr(s, "elsewhere", 0) else "")
                + f" in {s.wall_s:.1f} s -> {s.store}",
                soft_wrap=True, highlight=False,
            )
            for key, err in s.failures[:3]:
                first = err.strip().splitlines()[0] if err.strip() else "?"
                console.print(f"  [red]failed[/] {key}: {first}", highlight=False)
    if any(s.failed for s in summaries):
        raise typer.Exit(code=1)


def _run(name, preset, sets, store, backend, workers, address, progress, as_json, dry_run):
    from nclab.experiments import parse_overrides, plan_experiment, run_experiment

    overrides = parse_overrides(sets)
    if not dry_run:
        from nclab._extras import require_extra

        require_extra("lab", what="running experiments")  # at once, not in every cell
    if dry_run:
        cells = plan_experiment(name, preset, overrides)
        if as_json:
            print_json([{"key": c.key, "stage": c.stage, "config": dict(c.config)}
                        for c in cells])
        else:
            for c in cells:
                typer.echo(c.key)
            typer.echo(f"{len(cells)} cells (stages that need earlier results not listed)")
        return
    with _Bars(_progress(progress)) as bars:
        summary = run_experiment(
            name, preset=preset, overrides=overrides, store=store, backend=backend,
            workers=workers, address=address, on_event=bars.on_event,
        )
    _finish([summary], as_json)


Preset = Annotated[str, typer.Option("--preset", "-p", help="quick | paper | tiny.")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", "-s", help=_SET_HELP)]
Store = Annotated[Optional[Path], typer.Option("--store", help=_STORE_HELP)]
Progress = Annotated[Optional[bool], typer.Option("--progress/--no-progress",
                                                  help="Progress bars (default: on a tty).")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List the cells and exit.")]


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Experiment name (see `nclab experiments`).")],
    preset: Preset = "quick",
    sets: Sets = None,
    store: Store = None,
    progress: Progress = None,
    as_json: Json = False,
    dry_run: DryRun = False,
) -> None:
    """Run one experiment's cells one after the other in this process (resumable)."""
    with user_errors():
        _run(name, preset, sets, store, "serial", None, None, progress, as_json, dry_run)


@app.command("sweep")
def sweep_command(
    name: Annotated[str, typer.Argument(help="Experiment name (see `nclab experiments`).")],
    preset: Preset = "quick",
    sets: Sets = None,
    store: Store = None,
    backend: Annotated[str, typer.Option(help="local (process pool) | ray.")] = "local",
    address: Annotated[Optional[str], typer.Option(
        help="Ray cluster address (default: start a local Ray instance).")] = None,
    workers: Annotated[Optional[int], typer.Option(
        help="Parallel cells (default: number of CPUs).")] = None,
    progress: Progress = None,
    as_json: Json = False,
    dry_run: DryRun = False,
) -> None:
    """Expand an experiment's grid and run its cells in parallel; rerun to resume."""
    with user_errors():
        if backend not in ("local", "ray"):
            from nclab.errors import SpecError

            raise SpecError(f"--backend must be local or ray; got {backend!r}")
        _run(name, preset, sets, store, backend, workers, address, progress, as_json, dry_run)


@app.command("report")
def report_command(
    names: Annotated[Optional[list[str]], typer.Argument(
        help="Experiments to include (default: all in the store).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("report"),
    store: Store = None,
    preset: Annotated[Optional[str], typer.Option(
        help="Only runs of this preset (default: each experiment's latest).")] = None,
) -> None:
    """Write the figures (PNG, SVG) and a self-contained HTML report from the store."""
    with user_errors():
        from nclab._extras import require_extra

        require_extra("lab", what="nclab report")
        from nclab.report import build_report

        ensure_dir(out, "--out")
        if names:
            _require_stored(store, names)
        path = build_report(store, out, names=names or None, preset=preset,
                            describe=_describe)
        typer.echo(str(path))


@app.command("reproduce")
def reproduce_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("reproduce"),
    quick: Annotated[bool, typer.Option("--quick/--paper",
                                        help="Quick presets (2 CPU cores) or the papers'.")]
    = True,
    store: Annotated[Optional[Path], typer.Option(
        "--store", help="Results store; default OUT/results.sqlite.")] = None,
    backend: Annotated[str, typer.Option(help="local | ray.")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address.")] = None,
    workers: Annotated[Optional[int], typer.Option(help="Parallel cells.")] = None,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", help="Run only these experiments (repeatable).")] = None,
    progress: Progress = None,
) -> None:
    """Run every experiment's preset end to end, then write one report (resumable)."""
    with user_errors():
        import time

        from rich.console import Console

        from nclab._extras import require_extra

        require_extra("lab", what="nclab reproduce")

        from nclab.experiments import experiment_names, get_experiment, run_experiment
        from nclab.report import build_report

        console = Console(stderr=True)
        preset = "quick" if quick else "paper"
        ensure_dir(out, "--out")
        store = store if store is not None else out / "results.sqlite"
        names = only or [n for n in experiment_names(include_hidden=False)
                         if n != "synthetic-smoke"]
        t0 = time.time()
        summaries, skipped = [], []
        for name in names:
            exp = get_experiment(name)
            missing = exp.missing()
            if missing:
                skipped.append(name)
                console.print(f"[yellow]skip[/] {name}: needs {', '.join(missing)}")
                continue
            console.print(f"[bold]{name}[/] ({preset}): {exp.title}")
            with _Bars(_progress(progress)) as bars:
                summaries.append(run_experiment(
                    name, preset=preset, store=store, backend=backend, workers=workers,
                    address=address, on_event=bars.on_event))
        path = build_report(store, out, names=[s.experiment for s in summaries] or None,
                            preset=preset, describe=_describe)
        console.print(f"report: {path} ({time.time() - t0:.0f} s)")
        _finish(summaries, False)


@app.command("export")
def export_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("export"),
    fmt: Annotated[str, typer.Option("--format", help="csv | parquet.")] = "csv",
    store: Store = None,
    experiment: Annotated[Optional[str], typer.Option(help="Only this experiment.")] = None,
) -> None:
    """Export the store's runs, per-epoch and final metrics as CSV or Parquet."""
    with user_errors():
        from nclab import store as st
        from nclab.errors import SpecError

        if fmt not in ("csv", "parquet"):
            raise SpecError(f"--format must be csv or parquet; got {fmt!r}")
        conn = st.connect(store, create=False)
        try:
            if experiment is not None:
                st.require_experiments(conn, [experiment], registered=_registered())
            writer = st.export_csv if fmt == "csv" else st.export_parquet
            for path in writer(conn, out, experiment=experiment):
                typer.echo(str(path))
        finally:
            conn.close()


@app.command("experiments")
def experiments_command(as_json: Json = False) -> None:
    """List the registered experiments with their sources and grid sizes per preset."""
    with user_errors():
        from nclab.experiments import experiment_names, get_experiment, plan_experiment

        rows = []
        for name in experiment_names(include_hidden=False):
            exp = get_experiment(name)
            sizes = {p: len(plan_experiment(exp, p)) for p in exp.presets}
            rows.append({"name": name, "title": exp.title, "source": exp.source,
                         "cells": sizes, "missing": exp.missing()})
        if as_json:
            print_json(rows)
            return
        from rich.console import Console
        from rich.table import Table

        table = Table("experiment", "reproduces", "cells quick/paper", "ready")
        for r in rows:
            table.add_row(r["name"], r["source"],
                          f"{r['cells'].get('quick', '-')}/{r['cells'].get('paper', '-')}",
                          "yes" if not r["missing"] else "needs " + ", ".join(r["missing"]))
        Console().print(table)
