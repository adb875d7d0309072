"""``nclab verify``: check every theorem of the sources numerically on a grid of parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nclab.cli.app import app, ensure_dir, print_json, user_errors


@app.command("verify")
def verify(
    quick: Annotated[bool, typer.Option("--quick", help="Reduced grid (well under a minute).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print a JSON list of checks instead of a table.")] = False,
    plots: Annotated[Optional[Path], typer.Option(
        "--plots", help="Directory for the convergence figures of seed 004 Figs. 2 and 5.")] = None,
) -> None:
    """Solve each model on a grid (near and beyond every threshold) and compare with its closed form.

    Exit status 1 when a check of a (corrected) theorem fails; rows marked "as printed" show the
    source's printed formulas for contrast and do not count.
    """
    with user_errors():
        from nclab.ufm.checks import convergence_traces, run_checks

        if plots is not None:
            from nclab._extras import require

            require("matplotlib", what="nclab verify --plots")  # before the checks, not after
            ensure_dir(plots, "--plots")
        from nclab.theory.checks import theory_checks

        rows = [*run_checks(quick=quick), *theory_checks(quick=quick)]
        written = []
        if plots is not None:
            written = _write_plots(convergence_traces(quick=quick), rows, plots)
        failed = [r for r in rows if not r.holds and "as printed" not in r.theorem]
        if json:
            print_json([_json_row(r) for r in rows])
        else:
            _print_table(rows, written)
        if failed:
            raise typer.Exit(code=1)


def _json_row(r) -> dict:
    return {
        "theorem": r.theorem,
        "params": r.params,
        "quantity": r.quantity,
        "predicted": r.predicted,
        "measured": r.measured,
        "rel_error": r.rel_error,
        "holds": r.holds,
        "note": r.note,
    }


def _print_table(rows, written) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="nclab verify: theorems against the numerical solver")
    for col, just in (("theorem", "left"), ("parameters", "left"), ("quantity", "left"), ("predicted", "right"),
                      ("measured", "right"), ("rel. error", "right"), ("", "left")):
        table.add_column(col, justify=just)
    for r in rows:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in r.params.items())
        if "as printed" in r.theorem:
            verdict = "[dim]source differs[/dim]" if not r.holds else "agrees"
        else:
            verdict = "[green]holds[/green]" if r.holds else "[red]FAILS[/red]"
        table.add_row(r.theorem, params, r.quantity, _fmt(r.predicted), _fmt(r.measured), f"{r.rel_error:.1e}",
                      verdict)
    console = Console(width=200)
    console.print(table)
    counted = [r for r in rows if "as printed" not in r.theorem]
    n_ok = sum(r.holds for r in counted)
    console.print(f"{n_ok}/{len(counted)} checks hold.")
    for path in written:
        console.print(f"wrote {path}")


def _fmt(v) -> str:
    if isinstance(v, float):
        return "-" if v != v else f"{v:.6g}"
    return str(v)


def _write_plots(traces: dict, rows, directory: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written = []
    figs = {
        "seed004_fig2.png": (["fig2_bias_free", "fig2_free_bias"],
                             "Plain MSE UFM, GD step 0.1 (seed 004 Fig. 2)"),
        "seed004_fig5.png": (["fig5_linear", "fig5_relu"],
                             "Extended UFM, GD step 0.1 (seed 004 Fig. 5)"),
    }
    for fname, (names, title) in figs.items():
        fig, axes = plt.subplots(len(names), 2, figsize=(11, 4 * len(names)), squeeze=False)
        for row, name in enumerate(names):
            tr = traces[name]
            its = tr["iterations"]
            ax = axes[row][0]
            ax.semilogy(its, tr["objective"])
            ax.set_title(f"{name}: objective")
            ax.set_xlabel("iteration")
            ax = axes[row][1]
            for key, vals in tr.items():
                if key in ("iterations", "objective") or len(vals) != len(its):
                    continue
                arr = [max(v, 1e-16) for v in vals]
                ax.semilogy(its, arr, label=key)
            ax.set_title(f"{name}: NC metrics")
            ax.set_xlabel("iteration")
            ax.legend(fontsize=7)
        fig.suptitle(title)
        fig.tight_layout()
        path = directory / fname
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    margin = next((r for r in rows if r.theorem == "seed002-thm4.1"), None)
    if margin is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.semilogy(margin.extra["iterations"], margin.extra["loss"], label="CE loss")
        ax2 = ax.twinx()
        ax2.plot(margin.extra["iterations"], margin.extra["p_min"], color="C1", label="p_min")
        ax.set_xlabel("iteration")
        ax.set_ylabel("CE loss")
        ax2.set_ylabel("p_min")
        ax.set_title("Unregularised CE UFM, GD (seed 002 Thm 4.1)")
        fig.tight_layout()
        path = directory / "seed002_thm41_margin.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(str(path))
    return written
