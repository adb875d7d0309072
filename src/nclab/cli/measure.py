"""``nclab measure``: every collapse metric of a feature file, as a table or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nclab.cli.app import app, print_json, user_errors

def _help() -> str:
    from nclab.metrics.registry import METRIC_ORDER

    return ("Measure neural collapse (NC1-NC5, CDNV, cosines, margins, memorization) of saved features. "
            "Metric keys, in the order printed (docs/metrics.md): " + ", ".join(METRIC_ORDER) + ".")


@app.command(help=_help())
def measure(
    files: Annotated[Optional[list[Path]], typer.Argument(help="Feature file(s) (.npz, .pt, .safetensors) with 'features' and 'labels'; several files are shards of one set, merged exactly.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object of metric values.")] = False,
    num_classes: Annotated[Optional[int], typer.Option(help="Number of classes (default: max label + 1).")] = None,
    classes: Annotated[str, typer.Option(help="all (every class needs a sample) | present (metrics over the classes with samples).")] = "all",
    demo: Annotated[bool, typer.Option("--demo", help="Train a small MLP on a Gaussian-mixture task (nclab.demo), save its features and measure them.")] = False,
    out: Annotated[Path, typer.Option(help="Where --demo writes its feature file.")] = Path("nclab-demo/features.npz"),
) -> None:
    """Measure neural collapse (NC1-NC5, CDNV, cosines, margins, memorization) of saved features."""
    with user_errors():
        from nclab.errors import SpecError

        if demo:
            from nclab.demo import make_demo

            if not as_json:
                typer.echo("training a 3x256 BN MLP on a 10-class Gaussian mixture (a few seconds) ...", err=True)
            info = make_demo(out)
            if not as_json:
                typer.echo(f"wrote {info['path']}: train acc {info['train_acc']:.3f}, test acc {info['test_acc']:.3f}", err=True)
            files = [Path(info["path"])]
        if not files:
            raise SpecError("pass a feature file (nclab measure FILE) or --demo.")
        from nclab.measure.files import measure_files

        result = measure_files(files, num_classes=num_classes, classes=classes)
        notes = getattr(result, "notes", {})
        if as_json:
            print_json({**result, "notes": notes} if notes else result)
            return
        from rich.console import Console
        from rich.table import Table

        names = ", ".join(str(f) for f in files)
        table = Table(title=f"{names}  (n={result['num_samples']})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("meaning")
        from nclab.metrics.registry import describe

        for k, v in result.items():
            table.add_row(k, f"{v:.6g}", notes.get(k) or describe(k))
        Console().print(table)
        for k, why in notes.items():
            if k not in result:
                typer.echo(f"note: {why}", err=True)
