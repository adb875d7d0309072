"""``nclab train``: train a network on a dataset with label noise and track neural collapse."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from nclab.cli.app import app, print_json, user_errors

_SUMMARY = (
    ("train_acc", "training accuracy (observed labels)"),
    ("train_acc_true", "training predictions vs true labels"),
    ("test_acc", "test accuracy"),
    ("nc1_train", "NC1 of train features"),
    ("nc1_test", "dilation: NC1 of test features (true labels)"),
    ("memorization", "sum of noisy-sample distances to test means"),
    ("margin_min_train", "smallest train margin (classifier with its bias)"),
    ("cosine_intra_min_train", "min intra-class cosine (train)"),
    ("cosine_inter_max_train", "max inter-class cosine (train)"),
    ("nc2_etf_train", "centred means vs simplex ETF"),
    ("nc3_duality_train", "classifier-means self-duality"),
    ("nc4_ncc_mismatch_train", "classifier vs NCC disagreement"),
    ("effective_depth", "epsilon-effective depth"),
)


@app.command("train")
def train_cmd(
    dataset: Annotated[str, typer.Option(help="mnist1d | mnist | fashion_mnist | cifar10 | svhn | teacher | conic_hull.")] = "mnist1d",
    data_root: Annotated[Optional[Path], typer.Option(help="Directory with the dataset files (file datasets).")] = None,
    preset: Annotated[str, typer.Option(help="quick (CPU-sized MLP) or paper (9x2048 BN MLP, 200 epochs).")] = "quick",
    num_samples: Annotated[Optional[int], typer.Option(help="Samples of a generated dataset.")] = None,
    classes: Annotated[Optional[int], typer.Option(help="Keep the first N classes.")] = None,
    per_class: Annotated[Optional[int], typer.Option(help="Balanced subsample: training samples per class.")] = None,
    eta: Annotated[Optional[float], typer.Option(help="Label-noise rate eta.")] = None,
    noise_kind: Annotated[Optional[str], typer.Option(help="symmetric | latent | pair.")] = None,
    loss: Annotated[Optional[str], typer.Option(help="ce | ls | lr | mse.")] = None,
    alpha: Annotated[Optional[float], typer.Option(help="Smoothing / relaxation degree of ls / lr.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Initial learning rate.")] = None,
    lr_step: Annotated[Optional[int], typer.Option(help="Multiply lr by lr-gamma every this many epochs.")] = None,
    lr_gamma: Annotated[Optional[float], typer.Option(help="Learning-rate step factor.")] = None,
    momentum: Annotated[Optional[float], typer.Option(help="SGD (Nesterov) momentum.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Minibatch size.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="mlp | resnet18 | vgg13.")] = None,
    depth: Annotated[Optional[int], typer.Option(help="MLP hidden layers.")] = None,
    width: Annotated[Optional[int], typer.Option(help="MLP hidden width.")] = None,
    activation: Annotated[Optional[str], typer.Option(help="relu | sigmoid.")] = None,
    batch_norm: Annotated[Optional[str], typer.Option(help="affine | non-affine | none.")] = None,
    penultimate_width: Annotated[Optional[int], typer.Option(help="Feature dimension M (default: number of classes).")] = None,
    head: Annotated[Optional[str], typer.Option(help="linear | etf (fixed simplex ETF, not trained).")] = None,
    head_transform: Annotated[Optional[str], typer.Option(help="none | permute | rotate (ETF head).")] = None,
    head_seed: Annotated[Optional[int], typer.Option(help="Seed of the ETF permutation / rotation.")] = None,
    head_bias: Annotated[Optional[bool], typer.Option("--head-bias/--no-head-bias", help="Bias of the linear head.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights, batch order and noise.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda.")] = "auto",
    eval_every: Annotated[Optional[int], typer.Option(help="Track metrics every k epochs.")] = None,
    eval_subsample: Annotated[Optional[int], typer.Option(help="Track on at most this many samples per split (default: all).")] = None,
    layer_metrics: Annotated[bool, typer.Option("--layer-metrics", help="Per-layer NC1, NCC accuracy, effective depth.")] = False,
    checkpoint_dir: Annotated[Optional[Path], typer.Option(help="Checkpoint every epoch here; resume if a checkpoint exists.")] = None,
    resume: Annotated[bool, typer.Option("--resume/--no-resume", help="Resume from checkpoint-dir.")] = True,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default: torch's choice).")] = None,
    log: Annotated[Optional[str], typer.Option(help="Also log every tracked epoch to tensorboard | mlflow.")] = None,
    log_dir: Annotated[Path, typer.Option(help="Where --log writes (TensorBoard log dir / MLflow directory).")] = Path("nclab-logs"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (final metrics, tpt_epoch, history).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-epoch progress on stderr.")] = False,
) -> None:
    """Train a network under label noise and print its final accuracy and collapse metrics."""
    with user_errors():
        import torch

        from nclab.errors import SpecError
        from nclab.nets import NetSpec
        from nclab.train import TrainConfig, train

        if threads is not None:
            if threads < 1:
                raise SpecError(f"--threads must be >= 1; got {threads}.")
            torch.set_num_threads(threads)
        if preset not in ("quick", "paper"):
            raise SpecError(f"--preset must be 'quick' or 'paper'; got {preset!r}.")
        base = TrainConfig.quick() if preset == "quick" else TrainConfig.paper()
        net_over = {k: v for k, v in dict(
            arch=arch, depth=depth, width=width, activation=activation, batch_norm=batch_norm,
            penultimate_width=penultimate_width, head=head, head_transform=head_transform,
            head_seed=head_seed, head_bias=head_bias,
        ).items() if v is not None}
        over: dict[str, Any] = {k: v for k, v in dict(
            num_samples=num_samples, classes=classes, per_class=per_class, eta=eta, noise_kind=noise_kind,
            loss=loss, alpha=alpha, epochs=epochs, lr=lr, lr_step=lr_step, lr_gamma=lr_gamma, momentum=momentum,
            weight_decay=weight_decay, batch_size=batch_size, eval_every=eval_every, eval_subsample=eval_subsample,
        ).items() if v is not None}
        if dataset != base.dataset and num_samples is None:
            over["num_samples"] = None
        config = base.replace(
            dataset=dataset, data_root=None if data_root is None else str(data_root), seed=seed, device=device,
            layer_metrics=layer_metrics, checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
            resume=resume, net=NetSpec(**{**base.net.to_dict(), **net_over}), **over,
        )
        callback = None if quiet else _progress(config.epochs)
        logger = None
        if log is not None:
            from nclab.measure.loggers import epoch_logger, make_logger

            logger = make_logger(log, log_dir, run_name=f"{dataset}-seed{seed}")
            callback = epoch_logger(logger, callback)
        try:
            result = train(config, callback=callback)
        finally:
            if logger is not None:
                logger.close()
        if as_json:
            print_json(result.to_dict())
            return
        _render(result)


def _progress(total: int):
    from rich.console import Console

    err = Console(stderr=True)

    def cb(epoch: int, rec: dict[str, Any] | None) -> None:
        if rec is not None:
            err.print(
                f"epoch {epoch:>4}/{total}  train {rec['train_acc']:.4f}  test {rec['test_acc']:.4f}  "
                f"nc1 {rec.get('nc1_train', float('nan')):.4g}  dilation {rec.get('nc1_test', float('nan')):.4g}  "
                f"loss {rec['train_loss']:.4g}",
                highlight=False,
                soft_wrap=True,
            )

    return cb


def _render(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    f = result.final
    cfg = result.config
    table = Table(title=f"nclab train: {cfg.dataset}, {result.dataset_info.get('num_classes')} classes, "
                  f"eta {cfg.eta} ({cfg.noise_kind}), loss {cfg.loss}, {result.epochs_run} epochs on {result.device}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("meaning")
    for key, desc in _SUMMARY:
        if key in f:
            v = f[key]
            table.add_row(key, f"{v:.6g}" if isinstance(v, float) else str(v), desc)
    table.add_row("tpt_epoch", str(result.tpt_epoch), "first epoch with 100% train accuracy")
    if result.suboptimal_collapse is not None:
        table.add_row("suboptimal_collapse", str(result.suboptimal_collapse), "M=N=2: one class mean at the origin")
    Console().print(table)
