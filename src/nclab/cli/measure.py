"""``nclab measure``: every collapse metric of a feature file, as a table or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from nclab.cli.app import app, print_json, user_errors

_DESCRIPTIONS = {
    "nc1": "tr(Sw Sb^+)/C, within-class variability",
    "nc1_quotient": "tr(Sw)/tr(Sb)",
    "cdnv": "class-distance normalised variance",
    "nc2_equinorm": "std/mean of centred-mean norms",
    "nc2_equinorm_w": "std/mean of classifier-row norms",
    "nc2_equiangular": "mean |cos + 1/(C-1)| of centred means",
    "nc2_equiangular_w": "mean |cos + 1/(C-1)| of classifier rows",
    "nc2_etf": "centred means vs simplex ETF",
    "nc2_of": "uncentred means vs orthogonal frame",
    "nc2_etf_w": "classifier vs simplex ETF",
    "nc2_of_w": "classifier vs orthogonal frame",
    "nc3_duality": "||W/|W| - M/|M|||^2, self-duality",
    "nc3_etf": "W M^T vs simplex ETF",
    "nc4_ncc_mismatch": "classifier vs nearest-class-centre disagreement",
    "ncc_accuracy": "nearest-class-centre accuracy",
    "accuracy": "classifier accuracy",
    "cosine_intra_min": "min over classes of mean intra-class cosine",
    "cosine_intra_mean": "mean intra-class cosine",
    "cosine_inter_max": "max over class pairs of mean inter-class cosine",
    "margin_min": "p_min, smallest sample margin",
    "margin_mean": "mean sample margin",
    "margin_normalized_min": "min gamma_yy' / ||w_y - w_y'||",
    "gnc2_dist_var": "variance of pairwise distances of unit means",
    "gnc2_log_var": "variance of log inverse distances",
    "unc3_var": "variance of <w_c, mu_c - mu_G>",
    "dilation": "NC1 of test features (true labels)",
    "memorization": "sum of noisy-sample distances to test means",
    "memorization_mean": "per noisy sample",
    "noisy_fraction": "fraction of noisy training labels",
    "nc5_ood": "mean |cos(mu_c, mu_G^ood)|",
    "num_samples": "samples measured",
    "num_classes": "classes of the classifier / labels",
    "num_classes_present": "classes with at least one sample",
}


@app.command()
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
        if as_json:
            print_json(result)
            return
        from rich.console import Console
        from rich.table import Table

        names = ", ".join(str(f) for f in files)
        table = Table(title=f"{names}  (n={result['num_samples']})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("meaning")
        for k, v in result.items():
            table.add_row(k, f"{v:.6g}", _DESCRIPTIONS.get(k, ""))
        Console().print(table)
