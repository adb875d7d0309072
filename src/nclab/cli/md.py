"""``nclab md``: the memorization-dilation model (seed 000 Sec. 4.2), CE vs label smoothing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nclab.cli.app import app, print_json, user_errors

md_app = typer.Typer(
    help="Memorization-dilation model: optimal dilation of CE vs label smoothing.",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(md_app, name="md")

_LW = Annotated[float, typer.Option("--lambda-w", help="Weight decay on W (lambda_W).")]
_LH = Annotated[float, typer.Option("--lambda-h", help="Weight decay on H; the MD regulariser lambda.")]
_CMD = Annotated[float, typer.Option("--cmd", help="Memorization-dilation slope C_MD.")]
_DIST = Annotated[str, typer.Option("--dist", help="Clean-feature distribution: circle|gaussian|two-point.")]
_NCLS = Annotated[int, typer.Option("--num-classes", help="N; N > 2 is the symmetric-noise extension.")]
_JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@md_app.callback()
def md(
    ctx: typer.Context,
    lambda_w: _LW = 1e-3,
    lambda_h: _LH = 1e-3,
    alpha: Annotated[float, typer.Option("--alpha", help="LS parameter alpha_0 in (0, 1).")] = 0.1,
    eta: Annotated[float, typer.Option("--eta", help="Noise level eta >= 0.")] = 0.01,
    cmd: _CMD = 1.0,
    dist: _DIST = "circle",
    num_classes: _NCLS = 2,
    json: _JSON = False,
) -> None:
    """Solve the MD model for CE (alpha = 0) and LS (--alpha) and print them side by side."""
    if ctx.invoked_subcommand is not None:
        return
    with user_errors():
        from nclab.md import assumption_4_2, compare_ce_ls

        res = compare_ce_ls(alpha=alpha, lambda_w=lambda_w, lambda_h=lambda_h, eta=eta, c_md=cmd,
                            dist=dist, num_classes=num_classes)
        if json:
            print_json({"ce": res.ce.as_dict(), "ls": res.ls.as_dict()})
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"MD model: eta={eta:g}, C_MD={cmd:g}, lambda_W={lambda_w:g}, "
                            f"lambda_H={lambda_h:g}, {dist}, N={num_classes}")
        table.add_column("quantity")
        table.add_column("CE (alpha=0)", justify="right")
        table.add_column(f"LS (alpha={alpha:g})", justify="right")
        for key, label in [("r_star", "r*"), ("dilation", "r*/||h1-h2||"), ("r_max", "r_max"),
                           ("memorization", "memorization"), ("h_dist", "||h1-h2||")]:
            table.add_row(label, f"{getattr(res.ce, key):.6g}", f"{getattr(res.ls, key):.6g}")
        table.add_row("u1", _vec(res.ce.u1), _vec(res.ls.u1))
        table.add_row("u2", _vec(res.ce.u2), _vec(res.ls.u2))
        console = Console()
        console.print(table)
        line = f"Thm 4.3 inequality (dilation CE > LS): {'holds' if res.theorem_4_3_holds else 'FAILS'}"
        if num_classes == 2:
            a = assumption_4_2(alpha=alpha, lambda_w=lambda_w, lambda_h=lambda_h, eta=eta, c_md=cmd,
                               dist=dist)
            line += f"; Assumption 4.2 {'holds' if a.holds else 'does not hold'} (gamma={a.gamma:.4g})"
        console.print(line)


def _vec(v) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"


@md_app.command("sweep")
def sweep(
    lambda_w: _LW = 1e-3,
    lambda_h: _LH = 1e-3,
    alpha: Annotated[Optional[list[float]], typer.Option("--alpha", help="LS parameter(s); repeat.")] = None,
    cmd: Annotated[Optional[list[float]], typer.Option("--cmd", help="C_MD value(s); repeat.")] = None,
    eta_min: Annotated[float, typer.Option("--eta-min", help="Smallest noise level.")] = 1e-4,
    eta_max: Annotated[float, typer.Option("--eta-max", help="Largest noise level.")] = 0.5,
    num: Annotated[int, typer.Option("--num", help="Number of noise levels (log-spaced).")] = 12,
    dist: _DIST = "circle",
    num_classes: _NCLS = 2,
    out: Annotated[Path, typer.Option("--out", help="Figure file (PNG/PDF/SVG).")] = Path("md_sweep.png"),
    json: _JSON = False,
) -> None:
    """Sweep eta (and alpha, C_MD): dilation vs memorization for CE and LS, and a Thm 4.3 check."""
    with user_errors():
        import numpy as np

        from nclab._extras import require

        require("matplotlib", what="nclab md sweep (its figure)")  # before the sweep, not after

        from nclab.errors import SpecError
        from nclab.md import md_sweep, plot_md_sweep, plot_theorem_check

        if not (0 < eta_min <= eta_max) or num < 1:
            raise SpecError("need 0 < --eta-min <= --eta-max and --num >= 1.")
        etas = np.geomspace(eta_min, eta_max, num)
        sw = md_sweep(etas, alphas=tuple(alpha or [0.1]), c_mds=tuple(cmd or [1.0]), lambda_w=lambda_w,
                      lambda_h=lambda_h, dist=dist, num_classes=num_classes)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
        plot_md_sweep(sw, ax=ax1)
        plot_theorem_check(sw, ax=ax2)
        fig.tight_layout()
        try:
            fig.savefig(out, dpi=120)
        except (OSError, ValueError) as exc:
            from nclab.errors import InputFileError

            raise InputFileError(f"cannot write figure {out}: {exc}; pass a writable --out path.") from None
        finally:
            plt.close(fig)
        rows = [p.as_dict() for p in sw.points]
        if json:
            print_json({"figure": str(out), "points": rows})
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"MD sweep ({dist}, N={num_classes}); figure: {out}")
        for col in ("alpha", "C_MD", "eta", "dil CE", "dil LS", "mem CE", "mem LS", "Ass. 4.2", "Thm 4.3"):
            table.add_column(col, justify="right")
        for p in sw.points:
            table.add_row(f"{p.alpha:g}", f"{p.c_md:g}", f"{p.eta:.3g}", f"{p.dilation_ce:.4g}",
                          f"{p.dilation_ls:.4g}", f"{p.memorization_ce:.4g}", f"{p.memorization_ls:.4g}",
                          "yes" if p.assumptions_hold else "no", "holds" if p.theorem_holds else "FAILS")
        Console().print(table)
