"""``nclab ufm solve``: solve one unconstrained-features model and set it beside its closed form."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from nclab.cli.app import app, print_json, user_errors

ufm_app = typer.Typer(help="Unconstrained-features models: solve and compare with the theory.",
                      no_args_is_help=True)
app.add_typer(ufm_app, name="ufm")


@ufm_app.command("solve")
def solve_cmd(
    model: Annotated[str, typer.Option(
        "--model", help="plain | positive | extended-linear | extended-relu | fixed-etf | norm-constrained.")] = "plain",
    loss: Annotated[str, typer.Option("--loss", help="ce | ls | lr | mse.")] = "mse",
    alpha: Annotated[float, typer.Option("--alpha", help="Label smoothing / relaxation parameter.")] = 0.0,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (K in seed 004, N in seed 000).")] = 4,
    per_class: Annotated[int, typer.Option("--per-class", help="Samples per class (n; K in seed 000).")] = 5,
    dim: Annotated[int, typer.Option("--dim", help="Feature dimension d.")] = 8,
    lambda_w: Annotated[float, typer.Option("--lambda-w", help="Weight decay on W (and W1).")] = 5e-3,
    lambda_h: Annotated[float, typer.Option("--lambda-h", help="Weight decay on H.")] = 5e-3,
    lambda_b: Annotated[float, typer.Option("--lambda-b", help="Bias decay for --bias regularized.")] = 5e-3,
    bias: Annotated[str, typer.Option("--bias", help="none | regularized | free (plain, positive).")] = "none",
    solver: Annotated[str, typer.Option("--solver", help="fast (L-BFGS + Newton) | gd (plain GD).")] = "fast",
    lr: Annotated[float, typer.Option("--lr", help="GD step size.")] = 0.1,
    max_iter: Annotated[Optional[int], typer.Option("--max-iter", help="Iteration cap.")] = None,
    tol: Annotated[float, typer.Option("--tol", help="Relative gradient-norm tolerance.")] = 1e-10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random start.")] = 0,
    restarts: Annotated[int, typer.Option("--restarts", help="Random starts; the best is kept.")] = 1,
    feature_norm: Annotated[float, typer.Option("--feature-norm", help="norm-constrained: alpha.")] = 1.0,
    weight_norm: Annotated[float, typer.Option("--weight-norm", help="norm-constrained: beta.")] = 1.0,
    etf_rotation_seed: Annotated[Optional[int], typer.Option(
        "--etf-rotation-seed", help="fixed-etf: rotate the ETF by a random orthogonal matrix.")] = None,
    etf_permutation_seed: Annotated[Optional[int], typer.Option(
        "--etf-permutation-seed", help="fixed-etf: permute the ETF vertices at random.")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Solve one UFM to a 1e-10 relative gradient norm and print its summary beside the theorem's values."""
    with user_errors():
        import warnings

        import numpy as np

        from nclab.ufm import UFMProblem, predict, solve

        perm = None
        if etf_permutation_seed is not None:
            perm = tuple(int(i) for i in np.random.default_rng(etf_permutation_seed).permutation(classes))
        problem = UFMProblem(
            model, loss=loss, num_classes=classes, per_class=per_class, dim=dim, lambda_w=lambda_w,
            lambda_h=lambda_h, lambda_b=lambda_b if bias == "regularized" else 0.0, bias=bias, alpha=alpha,
            etf_permutation=perm, etf_rotation_seed=etf_rotation_seed, feature_norm=feature_norm,
            weight_norm=weight_norm,
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = solve(problem, solver=solver, seed=seed, lr=lr, max_iter=max_iter, tol=tol,
                           restarts=restarts, record_every=None, metrics_every=10**9)
        out = result.summary()
        out["predicted"] = predict(problem)
        out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        if json:
            print_json(out)
            return
        _print_table(out)


def _print_table(out: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    pred = out["predicted"] or {}
    table = Table(title=f"UFM {out['model']} / {out['loss']} ({out['solver']} solver)")
    table.add_column("quantity")
    table.add_column("solver", justify="right")
    table.add_column(f"closed form{' (' + pred['theorem'] + ')' if pred else ''}", justify="right")
    table.add_column("rel. error", justify="right")
    for key in ("objective", "W_norm_sq", "H_norm_sq", "W1_norm_sq", "H2_norm_sq"):
        if key not in out:
            continue
        got, want = out[key], pred.get(key)
        err = "" if want is None else f"{abs(got - want) / max(abs(want), 1e-300):.2e}"
        table.add_row(key, f"{got:.12g}", "-" if want is None else f"{want:.12g}", err)
    console = Console()
    console.print(table)
    console.print(f"iterations {out['n_iter']}, evaluations {out['n_evals']}, relative gradient norm "
                  f"{out['grad_norm_rel']:.2e} ({'converged' if out['converged'] else 'NOT converged'}), "
                  f"{out['seconds']:.3f} s")
    metrics = out.get("metrics") or {}
    keys = [k for k in ("nc1", "nc2_etf", "nc2_of", "nc3_duality", "nc2_etf_w", "nc2_of_w", "margin_min")
            if k in metrics]
    if keys:
        console.print("metrics: " + ", ".join(f"{k}={metrics[k]:.3g}" for k in keys))
    for w in out.get("warnings", []):
        console.print(f"[yellow]warning:[/yellow] {w}")
