"""What the experiment modules share: value types, the training settings, the quick sizes.

Each configuration model's defaults are the source's own settings (the ``paper`` preset);
``quick`` shrinks data, network and epochs so that every experiment runs on 2 CPU cores with
MNIST-1D or synthetic data; ``tiny`` is the smoke-test size used by the test suite. Where a
source omits a setting, the default is marked ``# not in source`` and ``docs/experiments.md``
says what was chosen.

Sources (``/work/shared/seeds``): seed 000/001 Nguyen et al., Memorization-Dilation (ICLR
2023) with appendices; seed 002 "Towards demystifying the generalization behaviors when
neural collapse emerges"; seed 003 Pan, MS thesis (2023), Ch. 3; seed 004 Tirer & Bruna,
Extended UFM (ICML 2022), Sec. 6.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from nclab.experiments.spec import Deviation, ExperimentConfig

__all__ = ["Prob", "PosInt", "NonNegFloat", "Seed", "Loss", "Dataset", "Arch", "BatchNorm",
           "NoiseKind", "CELLS", "TrainSettings", "TRAIN_QUICK", "TRAIN_TINY",
           "quick_scale", "SEED001_DEPTH", "Eta", "check_etas"]

Prob = Annotated[float, Field(ge=0.0, lt=1.0)]
PosInt = Annotated[int, Field(ge=1)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Seed = Annotated[int, Field(ge=0)]
Loss = Literal["ce", "ls", "lr", "mse"]
Dataset = Literal["mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "teacher",
                  "conic_hull"]
Arch = Literal["mlp", "cnn1d", "resnet18", "resnet32", "vgg11", "vgg13", "densenet121"]  # = nclab.nets.ARCHS
BatchNorm = Literal["affine", "non-affine", "none"]

NoiseKind = Literal["symmetric", "latent", "pair"]  # = nclab.data.noise.NOISE_KINDS (tested)
Eta = float  # a label-noise rate; checked with its kind by check_etas (nclab.data.noise.check_noise)


def check_etas(etas, kind: str = "symmetric") -> None:
    """The one validation of noise rates (:func:`nclab.data.noise.check_noise`), applied to
    every value of an experiment's ``etas`` axis, so that a bad ``--set etas=...`` fails at
    the spec, with the same message as everywhere else."""
    from nclab.data.noise import check_noise

    for eta in etas:
        check_noise(eta, kind)

CELLS = "nclab.experiments.cells"


class TrainSettings(ExperimentConfig):
    """Network and optimiser settings shared by the training experiments.

    Defaults follow seed 001 App. A.1.1: MLP with 9 hidden layers (``depth = 8`` blocks of
    width 2048, then the feature layer of width M = N), batch norm and ReLU, SGD with Nesterov
    momentum 0.9, learning rate 0.1 multiplied by 0.1 every 40 epochs, weight decay 1e-3,
    batch size 512, 200 epochs.

    ``depth`` counts the hidden blocks of width ``width`` *before* the feature layer, so the
    network has ``depth + 2`` linear layers (``depth`` blocks, the feature layer, the head).
    """

    data_root: Optional[str] = None  # folder of the dataset files (MNIST, CIFAR-10, SVHN)
    num_samples: Optional[PosInt] = None  # MNIST-1D / synthetic sample count; None = default
    arch: Arch = "mlp"
    depth: PosInt = 8  # + the M-wide feature layer = 9 hidden layers (SEED001_DEPTH)
    width: PosInt = 2048
    activation: Literal["relu", "sigmoid"] = "relu"
    batch_norm: BatchNorm = "affine"
    bn_after_activation: bool = False
    feature_dim: Optional[PosInt] = None  # penultimate width M; None = number of classes
    bias: bool = True
    epochs: PosInt = 200
    lr: Annotated[float, Field(gt=0.0)] = 0.1
    lr_step: PosInt = 40
    lr_gamma: Annotated[float, Field(gt=0.0, le=1.0)] = 0.1
    momentum: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.9
    nesterov: bool = True
    weight_decay: NonNegFloat = 1e-3
    batch_size: PosInt = 512
    eval_every: PosInt = 1
    layer_metrics: bool = False  # per-layer NC1 / NCC accuracy / cosines (depthwise)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def preflight(self) -> None:
        """Checks that need the user's machine, run before any cell (not at validation, so
        that the paper presets validate everywhere)."""
        from nclab.errors import SpecError

        names = set(getattr(self, "datasets", ()) or ())
        on_disk = sorted(names & _FILE_DATASETS)
        if on_disk and not self.data_root:
            raise SpecError(
                f"datasets {', '.join(on_disk)} are read from files; pass --set data_root=DIR "
                "(the folder with their standard files) or use --preset quick (MNIST-1D)"
            )


_FILE_DATASETS = {"mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"}


TRAIN_QUICK = {
    "num_samples": 4000, "depth": 4, "width": 256, "epochs": 40, "lr": 0.05, "lr_step": 15,
    "batch_size": 128, "weight_decay": 5e-4, "device": "cpu",
}
TRAIN_TINY = {
    "num_samples": 600, "depth": 2, "width": 32, "epochs": 3, "lr": 0.05, "lr_step": 2,
    "batch_size": 128, "weight_decay": 5e-4, "device": "cpu",
}


#: Seed 001's MLP depth, decided once for every experiment that uses it.
SEED001_DEPTH = Deviation(
    "MLP depth (seed 001 A.1.1)",
    "\"9 hidden layers with 2048 neurons\" and \"the feature dimension M is set to N\"",
    "8 hidden layers of 2048 and the M-wide feature layer: 9 hidden layers in all",
    "the only reading under which the text and the authors' public code agree "
    "(julilien/MemorizationDilation, MLP(depth=9): 8 x 2048 then the N-wide layer); the other "
    "reading (9 x 2048 plus an N-wide layer) has 10 hidden layers",
    ("paper",),
)


def quick_scale(what: str) -> Deviation:
    """The deviation every quick preset shares: smaller data, network and training."""
    return Deviation("scale", "the source's data set, network and epochs",
                     what, "runs on 2 CPU cores within the 20-minute budget of "
                     "`nclab reproduce --quick`", ("quick", "tiny"))
