"""The registered experiments: one per figure or table of the sources.

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

from nclab.experiments.spec import Experiment, ExperimentConfig, Stage, register

__all__: list[str] = []

Prob = Annotated[float, Field(ge=0.0, lt=1.0)]
PosInt = Annotated[int, Field(ge=1)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
Seed = Annotated[int, Field(ge=0)]
Loss = Literal["ce", "ls", "lr", "mse"]
Dataset = Literal["mnist1d", "mnist", "fashion_mnist", "cifar10", "svhn", "teacher", "conic_hull"]
Arch = Literal["mlp", "resnet18", "vgg13"]
BatchNorm = Literal["affine", "non-affine", "none"]

_CELLS = "nclab.experiments.cells"


class TrainSettings(ExperimentConfig):
    """Network and optimiser settings shared by the training experiments.

    Defaults follow seed 001 App. A.1.1: MLP with 9 hidden layers of width 2048, batch norm
    and ReLU, penultimate width M = N, SGD with Nesterov momentum 0.9, learning rate 0.1
    multiplied by 0.1 every 40 epochs, weight decay 1e-3, batch size 512, 200 epochs.
    """

    data_root: Optional[str] = None  # folder of the dataset files (MNIST, CIFAR-10, SVHN)
    num_samples: Optional[PosInt] = None  # MNIST-1D / synthetic sample count; None = default
    arch: Arch = "mlp"
    depth: PosInt = 9
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


_FILE_DATASETS = {"mnist", "fashion_mnist", "cifar10", "svhn"}


# --------------------------------------------------------------------------- synthetic-smoke


class SyntheticSmoke(ExperimentConfig):
    """Least squares by gradient descent (see :mod:`nclab.experiments.synthetic`)."""

    n_train: PosInt = 200
    n_test: PosInt = 200
    dim: PosInt = 10
    noise: NonNegFloat = 0.1
    lrs: tuple[Annotated[float, Field(gt=0.0)], ...] = (0.05, 0.2, 0.5, 1.5)
    seeds: tuple[Seed, ...] = (0, 1, 2)
    epochs: PosInt = 60
    epoch_delay_s: NonNegFloat = 0.0


register(Experiment(
    name="synthetic-smoke",
    title="Gradient descent on least squares (pipeline smoke test)",
    source="textbook: linear convergence of GD on a quadratic",
    config=SyntheticSmoke,
    stages=(Stage("main", "nclab.experiments.synthetic:least_squares_gd",
                  {"lr": "lrs", "seed": "seeds"}),),
    presets={
        "paper": {},
        "quick": {"seeds": (0, 1)},
        "tiny": {"lrs": (0.1, 0.5), "seeds": (0,), "epochs": 20, "dim": 5, "n_train": 50,
                 "n_test": 50},
    },
    notes="Not from a source: a cheap deterministic computation that exercises the runner, "
          "the store and the report without the science libraries.",
))


# --------------------------------------------------------------------------- md-label-noise


class MDLabelNoise(TrainSettings):
    """Seed 000 Sec. 4.1 (Fig. 1, 2) and seed 001 App. A.1.1-A.1.2 (Fig. 5-8)."""

    datasets: tuple[Dataset, ...] = ("mnist", "fashion_mnist", "cifar10", "svhn")
    classes: tuple[Annotated[int, Field(ge=2)], ...] = (2, 3, 5, 10)
    etas: tuple[Prob, ...] = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4)  # range [0.025, 0.4] in source
    losses: tuple[Loss, ...] = ("ce", "ls", "lr", "mse")
    alpha: Prob = 0.1  # LS smoothing / LR relaxation degree
    seeds: tuple[Seed, ...] = tuple(range(10))  # main text: ten seeds (A.1.1 says 5)
    noise_model: Literal["symmetric", "latent", "pair"] = "symmetric"


_TRAIN_QUICK = {
    "num_samples": 4000, "depth": 4, "width": 256, "epochs": 40, "lr": 0.05, "lr_step": 15,
    "batch_size": 128, "weight_decay": 5e-4, "device": "cpu",
}
_TRAIN_TINY = {
    "num_samples": 600, "depth": 2, "width": 32, "epochs": 3, "lr": 0.05, "lr_step": 2,
    "batch_size": 128, "weight_decay": 5e-4, "device": "cpu",
}

register(Experiment(
    name="md-label-noise",
    title="Dilation (sqrt NC1 test) against memorization under label noise, per loss",
    source="seed 000 Fig. 1/2; seed 001 App. A.1.1-A.1.2, Fig. 5-8",
    config=MDLabelNoise,
    stages=(Stage("main", f"{_CELLS}:train_cell",
                  {"dataset": "datasets", "num_classes": "classes", "eta": "etas",
                   "loss": "losses", "seed": "seeds"}),),
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "datasets": ("mnist1d",), "classes": (2,),
                  "etas": (0.05, 0.1, 0.2, 0.3), "seeds": (0, 1, 2)},
        "tiny": {**_TRAIN_TINY, "datasets": ("mnist1d",), "classes": (2,), "etas": (0.1,),
                 "losses": ("ce", "ls"), "seeds": (0,)},
    },
    requires=("nclab.train:train",),
    notes="Paper datasets need the files on disk (--set data_root=...). The quick preset uses "
          "MNIST-1D with N=2 and a 4x256 MLP for 40 epochs.",
))


# --------------------------------------------------------------------------- md-latent-classes


class MDLatentClasses(MDLabelNoise):
    """Seed 001 App. A.1.3, Fig. 9: a fraction eta of each class becomes a latent class."""

    datasets: tuple[Dataset, ...] = ("mnist", "cifar10")
    classes: tuple[Annotated[int, Field(ge=2)], ...] = (2,)
    etas: tuple[Prob, ...] = (0.025, 0.05, 0.1, 0.15, 0.2)  # range [0.025, 0.2] in source
    seeds: tuple[Seed, ...] = tuple(range(5))
    feature_dim: Optional[PosInt] = 2  # "we keep d = N = 2"
    noise_model: Literal["symmetric", "latent", "pair"] = "latent"


register(Experiment(
    name="md-latent-classes",
    title="Dilation against memorization with latent noise classes",
    source="seed 001 App. A.1.3, Fig. 9",
    config=MDLatentClasses,
    stages=(Stage("main", f"{_CELLS}:train_cell",
                  {"dataset": "datasets", "num_classes": "classes", "eta": "etas",
                   "loss": "losses", "seed": "seeds"}),),
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "datasets": ("mnist1d",), "etas": (0.05, 0.1, 0.2),
                  "losses": ("ce", "ls"), "seeds": (0, 1)},
        "tiny": {**_TRAIN_TINY, "datasets": ("mnist1d",), "etas": (0.1,), "losses": ("ce",),
                 "seeds": (0,)},
    },
    requires=("nclab.train:train",),
))


# --------------------------------------------------------------------------- md-large-scale


class MDLargeScale(TrainSettings):
    """Seed 001 App. A.2, Table 2, with the hyperparameter search of A.2.1 (Table 1)."""

    datasets: tuple[Dataset, ...] = ("mnist", "fashion_mnist", "cifar10", "svhn")
    archs: tuple[Arch, ...] = ("resnet18", "vgg13")
    etas: tuple[Prob, ...] = (0.0, 0.1, 0.2, 0.3)
    losses: tuple[Loss, ...] = ("ce", "ls")
    seeds: tuple[Seed, ...] = (0, 1, 2)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None  # None = all classes
    # Table 1 search space; tuned on a 20% validation split at eta = 0
    tune_samples: PosInt = 30
    tune_epochs: Optional[PosInt] = None  # None = epochs (Hyperband stops early)
    tune_lr_min: Annotated[float, Field(gt=0.0)] = 1e-5
    tune_lr_max: Annotated[float, Field(gt=0.0)] = 0.5
    tune_lr_gammas: tuple[Annotated[float, Field(gt=0.0, le=1.0)], ...] = (0.01, 0.1, 0.5)
    tune_alpha_min: Prob = 0.01
    tune_alpha_max: Prob = 0.25
    val_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    tune_search: Literal["bayes", "random"] = "bayes"  # GP + expected improvement
    tune_seed: Seed = 0

    @model_validator(mode="after")
    def _ranges(self):
        if self.tune_lr_min >= self.tune_lr_max or self.tune_alpha_min > self.tune_alpha_max:
            raise ValueError("tune ranges need min < max")
        return self


_LS_STAGES = (
    Stage("tune", f"{_CELLS}:tune_cell", {"dataset": "datasets", "arch": "archs",
                                          "loss": "losses"},
          drop=("etas", "seeds"), cpus=0.01),
    Stage("main", f"{_CELLS}:train_cell", {"dataset": "datasets", "arch": "archs",
                                          "eta": "etas", "loss": "losses", "seed": "seeds"},
          needs="tune", match=("dataset", "arch", "loss"),
          drop=("tune_samples", "tune_epochs", "tune_lr_min", "tune_lr_max", "tune_lr_gammas",
                "tune_alpha_min", "tune_alpha_max", "tune_search", "tune_seed")),
)

register(Experiment(
    name="md-large-scale",
    title="Test accuracy of CE vs LS under label noise, tuned by Ray Tune (Table 2)",
    source="seed 001 App. A.2, Tables 1-2",
    config=MDLargeScale,
    stages=_LS_STAGES,
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "datasets": ("mnist1d",), "archs": ("mlp",),
                  "num_classes": 10, "feature_dim": 64, "epochs": 30, "seeds": (0, 1),
                  "tune_samples": 4, "tune_epochs": 8},
        "tiny": {**_TRAIN_TINY, "datasets": ("mnist1d",), "archs": ("mlp",),
                 "num_classes": 3, "etas": (0.0, 0.2), "losses": ("ls",), "seeds": (0,),
                 "tune_samples": 2, "tune_epochs": 2},
    },
    requires=("nclab.train:train",),
    notes="Quick uses an MLP on MNIST-1D (ResNet18/VGG13 need images). The paper tuned with "
          "skopt's Bayesian optimisation plus Hyperband; nclab runs its own Gaussian-process "
          "searcher (nclab.experiments.search.GPSearch, expected improvement) with Ray Tune's "
          "Hyperband scheduler.",
))


# --------------------------------------------------------------------------- tpt-margins


class TPTMargins(TrainSettings):
    """Seed 002 Sec. 5.1, Fig. 3: CE loss and margin p_min on the train set over epochs.

    Seed 002's App. A.1 (training details) is not in the source text; the optimiser follows
    seed 001 A.2 and the networks are the closest ones nclab has (ResNet18, VGG13 instead of
    ResNet32, VGG11, DenseNet121).
    """

    datasets: tuple[Dataset, ...] = ("cifar10",)
    archs: tuple[Arch, ...] = ("resnet18", "vgg13")
    seeds: tuple[Seed, ...] = (0,)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None
    weight_decay: NonNegFloat = 5e-4  # not in source
    losses: tuple[Loss, ...] = ("ce",)


register(Experiment(
    name="tpt-margins",
    title="Train CE loss and margin p_min over epochs (terminal phase)",
    source="seed 002 Sec. 5.1, Thm 4.1, Fig. 3",
    config=TPTMargins,
    stages=(Stage("main", f"{_CELLS}:train_cell",
                  {"dataset": "datasets", "arch": "archs", "loss": "losses",
                   "seed": "seeds"}),),
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "datasets": ("mnist1d",), "archs": ("mlp",),
                  "num_classes": 10, "feature_dim": 64, "epochs": 60, "lr_step": 25,
                  "seeds": (0,)},
        "tiny": {**_TRAIN_TINY, "datasets": ("mnist1d",), "archs": ("mlp",),
                 "num_classes": 3, "seeds": (0,)},
    },
    requires=("nclab.train:train",),
))


# --------------------------------------------------------------------------- etf-permutations


class ETFPermutations(TrainSettings):
    """Seed 002 Sec. 5.2, Fig. 4: fixed simplex-ETF heads differing by a permutation or a
    rotation, trained with the same seed; spread of test accuracy and loss."""

    datasets: tuple[Dataset, ...] = ("cifar10",)
    archs: tuple[Arch, ...] = ("resnet18",)
    transforms: tuple[Literal["permute", "rotate"], ...] = ("permute", "rotate")
    transform_seeds: tuple[Seed, ...] = tuple(range(10))
    seed: Seed = 0  # the same training seed for every head
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None
    feature_dim: Optional[PosInt] = 512
    weight_decay: NonNegFloat = 5e-4  # not in source
    loss: Loss = "ce"


register(Experiment(
    name="etf-permutations",
    title="Test accuracy spread of permuted / rotated fixed ETF classifiers",
    source="seed 002 Sec. 5.2, Fig. 4",
    config=ETFPermutations,
    stages=(Stage("main", f"{_CELLS}:train_cell",
                  {"dataset": "datasets", "arch": "archs", "transform": "transforms",
                   "transform_seed": "transform_seeds"}),),
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "datasets": ("mnist1d",), "archs": ("mlp",),
                  "num_classes": 10, "feature_dim": 32, "epochs": 30,
                  "transform_seeds": tuple(range(5))},
        "tiny": {**_TRAIN_TINY, "datasets": ("mnist1d",), "archs": ("mlp",),
                 "num_classes": 3, "feature_dim": 4, "transform_seeds": (0, 1)},
    },
    requires=("nclab.train:train",),
))


# --------------------------------------------------------------------------- bn-weight-decay


class BNWeightDecay(TrainSettings):
    """Seed 003 Sec. 3.1, Fig. 3.1: a 6-layer ReLU MLP on a synthetic teacher-network dataset
    (10000 Gaussian inputs labelled by a random 3-layer network), with affine / non-affine /
    no batch norm, across weight decays; min intra- and max inter-class cosine."""

    datasets: tuple[Dataset, ...] = ("teacher",)
    num_samples: Optional[PosInt] = 10000
    bn_after_activation: bool = True  # Def. 3.2.1: BN(ReLU(W h + b))
    batch_norms: tuple[BatchNorm, ...] = ("affine", "non-affine", "none")
    weight_decays: tuple[NonNegFloat, ...] = (1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 7e-3, 1e-2)
    seeds: tuple[Seed, ...] = (0,)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None  # teacher: 4 classes; not in source
    depth: PosInt = 6
    width: PosInt = 512  # not in source
    feature_dim: Optional[PosInt] = 512  # not in source
    epochs: PosInt = 300
    lr: Annotated[float, Field(gt=0.0)] = 0.0679
    lr_step: PosInt = 100  # "decays [n] times by 0.1": n lost in the text
    nesterov: bool = False
    batch_size: PosInt = 128
    loss: Loss = "ce"


register(Experiment(
    name="bn-weight-decay",
    title="Intra/inter-class cosine under batch norm x weight decay",
    source="seed 003 Sec. 3.1, Fig. 3.1",
    config=BNWeightDecay,
    stages=(Stage("main", f"{_CELLS}:train_cell",
                  {"dataset": "datasets", "batch_norm": "batch_norms",
                   "weight_decay": "weight_decays", "seed": "seeds"}),),
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "num_samples": 2000, "depth": 6, "width": 128,
                  "feature_dim": 32, "epochs": 40, "lr": 0.0679, "lr_step": 15,
                  "nesterov": False, "weight_decays": (1e-4, 1e-3, 5e-3)},
        "tiny": {**_TRAIN_TINY, "num_samples": 300, "num_classes": 3, "feature_dim": 8,
                 "batch_norms": ("affine", "none"), "weight_decays": (1e-3,)},
    },
    requires=("nclab.train:train",),
))


# --------------------------------------------------------------------------- depthwise


class Depthwise(TrainSettings):
    """Seed 003 Sec. 3.2, Fig. 3.3 (15-layer BN MLP on teacher data, per-layer NCC accuracy
    and cosines across weight decays) beside seed 004 Sec. 6, Fig. 5 (per-layer NC1/NC2/NC3 of
    the linear and ReLU extended UFM; the network of seed 004 is ResNet18 on MNIST, lr 0.05
    /10 every 40 epochs, wd 5e-4: ``--set datasets=mnist arch=resnet18 lr=0.05 ...``)."""

    datasets: tuple[Dataset, ...] = ("teacher",)
    num_samples: Optional[PosInt] = 10000
    bn_after_activation: bool = True  # Def. 3.2.1: BN(ReLU(W h + b))
    weight_decays: tuple[NonNegFloat, ...] = (1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 5e-3, 1e-2)
    seeds: tuple[Seed, ...] = (0,)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None  # teacher: 4 classes; not in source
    depth: PosInt = 15
    width: PosInt = 512  # not in source
    feature_dim: Optional[PosInt] = 512  # not in source
    epochs: PosInt = 300
    lr: Annotated[float, Field(gt=0.0)] = 0.0679
    lr_step: PosInt = 100
    nesterov: bool = False
    batch_size: PosInt = 128
    loss: Loss = "ce"
    layer_metrics: bool = True
    # extended UFM (seed 004 Sec. 6): K classes, n per class, widths, lambdas, GD step 0.1
    ufm_models: tuple[Literal["extended-linear", "extended-relu"], ...] = (
        "extended-linear", "extended-relu")
    ufm_classes: Annotated[int, Field(ge=2)] = 4  # not recoverable from the text
    ufm_per_class: PosInt = 10
    ufm_dim: PosInt = 20
    ufm_lambda: Annotated[float, Field(gt=0.0)] = 5e-3
    ufm_steps: PosInt = 100000
    ufm_step_size: Annotated[float, Field(gt=0.0)] = 0.1
    ufm_init_scale: Annotated[float, Field(gt=0.0)] = 0.1


_NET_ONLY = ("ufm_models", "ufm_classes", "ufm_per_class", "ufm_dim", "ufm_lambda",
             "ufm_steps", "ufm_step_size", "ufm_init_scale")
_UFM_ONLY = tuple(TrainSettings.model_fields) + ("datasets", "weight_decays", "seeds",
                                                 "num_classes", "loss")

register(Experiment(
    name="depthwise",
    title="Per-layer collapse of a real network beside the extended UFM",
    source="seed 003 Sec. 3.2, Fig. 3.3; seed 004 Sec. 6, Fig. 5",
    config=Depthwise,
    stages=(
        Stage("main", f"{_CELLS}:train_cell",
              {"dataset": "datasets", "weight_decay": "weight_decays", "seed": "seeds"},
              drop=_NET_ONLY),
        Stage("ufm", f"{_CELLS}:extended_ufm_cell", {"ufm_model": "ufm_models"},
              drop=_UFM_ONLY),
    ),
    presets={
        "paper": {},
        "quick": {**_TRAIN_QUICK, "num_samples": 2000, "depth": 8, "width": 128,
                  "feature_dim": 32, "epochs": 40, "lr": 0.0679, "lr_step": 15,
                  "nesterov": False, "weight_decays": (5e-4, 5e-3), "ufm_steps": 3000,
                  "ufm_step_size": 0.5},
        "tiny": {**_TRAIN_TINY, "num_samples": 300, "num_classes": 3, "feature_dim": 8,
                 "depth": 3, "weight_decays": (1e-3,), "ufm_steps": 200, "ufm_classes": 3,
                 "ufm_per_class": 4, "ufm_dim": 6},
    },
    requires=("nclab.train:train", "nclab.ufm:solve"),
))


# --------------------------------------------------------------------------- ufm-theory


class UFMTheory(ExperimentConfig):
    """The ``nclab verify`` study (issue 3) as an experiment: each theorem check of the
    sources on its parameter grid; ``grids`` picks ``quick`` or the full ``default`` grid."""

    grids: tuple[Literal["quick", "default"], ...] = ("default",)


register(Experiment(
    name="ufm-theory",
    title="Theorem checks: closed forms against numerical solvers",
    source="seed 000 Thm 3.2; seed 002 Thm 4.1; seed 003 Thm 2.3.1; seed 004 Thm 3.1-4.2",
    config=UFMTheory,
    stages=(Stage("main", f"{_CELLS}:verify_cell", {"grid": "grids"}),),
    presets={"paper": {}, "quick": {"grids": ("quick",)}, "tiny": {"grids": ("quick",)}},
    requires=("nclab.ufm.checks:run_checks",),
))


# --------------------------------------------------------------------------- md-model


class MDModel(ExperimentConfig):
    """The memorization-dilation model of seed 000 Def. 4.1 swept over the noise level
    (``nclab md sweep``, issue 4): dilation against memorization for CE (alpha = 0) and LS.
    Defaults are those of ``nclab md sweep`` (12 log-spaced eta in [1e-4, 0.5])."""

    etas: tuple[Annotated[float, Field(gt=0.0, lt=1.0)], ...] = (0.0001, 0.000217, 0.00047, 0.00102, 0.00221, 0.0048, 0.0104, 0.0226, 0.049, 0.106, 0.231, 0.5)
    c_mds: tuple[Annotated[float, Field(gt=0.0)], ...] = (1.0,)
    alphas: tuple[Annotated[float, Field(gt=0.0, lt=1.0)], ...] = (0.1,)
    lambda_w: Annotated[float, Field(gt=0.0)] = 1e-3
    lambda_h: Annotated[float, Field(gt=0.0)] = 1e-3
    dist: Literal["circle", "gaussian", "two-point"] = "circle"
    num_classes: Annotated[int, Field(ge=2)] = 2  # N > 2: beyond the paper (issue 4)


register(Experiment(
    name="md-model",
    title="The MD model: dilation against memorization, CE vs LS",
    source="seed 000 Def. 4.1, Thm 4.3; seed 001 App. C",
    config=MDModel,
    stages=(Stage("main", f"{_CELLS}:md_model_cell",
                  {"alpha": "alphas", "c_md": "c_mds", "eta": "etas"}),),
    presets={
        "paper": {},
        "quick": {},
        "tiny": {"etas": (0.001, 0.2)},
    },
    requires=("nclab.md.model:compare_ce_ls", "nclab.md.theorem:assumption_4_2"),
))
