"""Training configuration (frozen, validated at construction) and the training result."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from nclab.data.noise import NoiseKind, check_noise
from nclab.errors import SpecError
from nclab.nets import NetSpec

__all__ = ["TrainConfig", "TrainResult", "IDENTITY_EXCLUDED"]

_CHOICES: dict[str, tuple[Any, ...]] = {
    "loss": ("ce", "ls", "lr", "mse"),
    "device": ("auto", "cpu", "cuda"),
}

#: Fields that do not change the trained weights: a checkpoint written under other values of
#: these fields can be resumed (``epochs`` may be extended; evaluation settings may change).
IDENTITY_EXCLUDED = frozenset(
    {"epochs", "device", "checkpoint_dir", "resume", "eval_every", "eval_batch_size", "eval_subsample",
     "layer_metrics", "effective_depth_eps", "suboptimal_tol", "margin_bounds"}
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run (``nclab.train.train(config)``).

    Attributes
    ----------
    dataset : str, default="mnist1d"
        ``mnist1d`` (generated offline), ``mnist``, ``fashion_mnist``, ``cifar10``, ``svhn``
        (files under ``data_root``), ``teacher`` or ``conic_hull`` (seed 003).
    data_root : str or None, default=None
        Directory with the files of a file dataset.
    num_samples : int or None, default=None
        Size of a generated dataset (train + test); None = the generator's default.
    classes : int or None, default=None
        Keep the first N classes (seed 001); None keeps all.
    per_class : int or None, default=None
        Balanced subsample of the training split (samples per class).
    eta : float, default=0.0
        Label-noise rate of the training labels (the name it has from the experiment spec to
        :mod:`nclab.data.noise`); validated with the kind by :func:`nclab.data.noise.check_noise`.
    noise_kind : {"symmetric", "latent", "pair"}, default="symmetric"
        Noise model (:data:`nclab.data.noise.NOISE_KINDS`); symmetric redraws from all classes.
    loss : {"ce", "ls", "lr", "mse"}, default="ce"
        Loss from :func:`nclab.losses.make_loss`.
    alpha : float, default=0.0
        Smoothing (``ls``) or relaxation (``lr``) degree.
    epochs : int, default=30
        Epochs to train (a resumed run continues up to this number).
    lr : float, default=0.1
        Initial learning rate of SGD.
    momentum : float, default=0.9
        Momentum (Nesterov when ``nesterov``).
    nesterov : bool, default=True
        Nesterov momentum (seed 001, App. A.1.1).
    weight_decay : float, default=1e-3
        L2 weight decay on every trainable parameter (a fixed ETF head has none).
    batch_size : int, default=128
        Minibatch size; a final batch of one sample is dropped (batch norm needs two).
    lr_step : int, default=40
        Multiply the learning rate by ``lr_gamma`` every ``lr_step`` epochs.
    lr_gamma : float, default=0.1
        Step factor.
    net : NetSpec, default=NetSpec.quick_mlp()
        Network (:class:`nclab.nets.NetSpec`).
    seed : int, default=0
        Seed of the weights, the batch order, the subsample and (unless ``noise_seed``) the noise.
    noise_seed : int or None, default=None
        Separate seed of the label corruption (keep the noisy labels fixed across ``seed``).
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``auto`` picks CUDA when available.
    eval_every : int, default=1
        Track metrics every k epochs (and always after the last epoch).
    eval_batch_size : int, default=2048
        Batch size of the evaluation pass.
    eval_subsample : int or None, default=None
        Track on a fixed random subset of at most this many train (and test) samples; None uses
        the whole sets (reported as ``eval_subsample`` in every history record).
    layer_metrics : bool, default=False
        Also compute per-layer NC1, NCC accuracy, intra/inter cosines and the effective depth
        (keeps every tap's train features of one evaluation in memory).
    margin_bounds : bool, default=False
        Also record, every tracked epoch, the margins and margin-bound terms of seed 002
        (:func:`nclab.theory.margin_bound_terms` on the train features and the bias-free head,
        keys suffixed ``_train``: ``margin_min_nobias_train`` is seed 002's p_min).
    effective_depth_eps : float, default=0.01
        NCC training error threshold of the epsilon-effective depth (seed 003, Def. 3.2.2).
    suboptimal_tol : float, default=0.1
        M = N = 2 only: flag a sub-optimal collapse when the smaller train class-mean norm is
        below ``suboptimal_tol`` times the larger (one centroid at the origin, seed 001 Fig. 4a).
    checkpoint_dir : str or None, default=None
        Write ``checkpoint.pt`` there after every epoch and resume from it if present.
    resume : bool, default=True
        Resume from a checkpoint in ``checkpoint_dir``; False overwrites it.
    """

    dataset: str = "mnist1d"
    data_root: str | None = None
    num_samples: int | None = None
    classes: int | None = None
    per_class: int | None = None
    eta: float = 0.0
    noise_kind: NoiseKind = "symmetric"
    loss: Literal["ce", "ls", "lr", "mse"] = "ce"
    alpha: float = 0.0
    epochs: int = 30
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-3
    batch_size: int = 128
    lr_step: int = 40
    lr_gamma: float = 0.1
    net: NetSpec = field(default_factory=NetSpec.quick_mlp)
    seed: int = 0
    noise_seed: int | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    eval_every: int = 1
    eval_batch_size: int = 2048
    eval_subsample: int | None = None
    layer_metrics: bool = False
    margin_bounds: bool = False
    effective_depth_eps: float = 0.01
    suboptimal_tol: float = 0.1
    checkpoint_dir: str | None = None
    resume: bool = True

    def __post_init__(self) -> None:
        check_noise(self.eta, self.noise_kind)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise SpecError(f"TrainConfig.{name} must be one of {allowed}; got {getattr(self, name)!r}.")
        if isinstance(self.net, dict):
            object.__setattr__(self, "net", NetSpec(**self.net))
        if not isinstance(self.net, NetSpec):
            raise SpecError(f"TrainConfig.net must be a NetSpec or a dict of its fields; got {type(self.net).__name__}.")
        positive = ("epochs", "batch_size", "lr_step", "eval_every", "eval_batch_size")
        for name in positive:
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise SpecError(f"TrainConfig.{name} must be an int >= 1; got {v!r}.")
        for name in ("num_samples", "classes", "per_class", "eval_subsample"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= (2 if name == "classes" else 1)):
                raise SpecError(f"TrainConfig.{name} must be None or a positive int (classes >= 2); got {v!r}.")
        ranges = {
            "alpha": (0.0, 1.0), "momentum": (0.0, 1.0), "lr_gamma": (0.0, 1.0),
            "effective_depth_eps": (0.0, 1.0), "suboptimal_tol": (0.0, 1.0),
        }
        for name, (lo, hi) in ranges.items():
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and lo <= v <= hi):
                raise SpecError(f"TrainConfig.{name} must lie in [{lo}, {hi}]; got {v!r}.")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise SpecError(f"TrainConfig.lr must be a positive number; got {self.lr!r}.")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise SpecError(f"TrainConfig.weight_decay must be >= 0; got {self.weight_decay!r}.")
        if self.nesterov and self.momentum == 0:
            raise SpecError("TrainConfig.nesterov needs momentum > 0; set nesterov=False or momentum=0.9.")
        if self.dataset in ("mnist", "fashion_mnist", "fmnist", "cifar10", "svhn") and not self.data_root:
            raise SpecError(f"dataset {self.dataset!r} is read from files: set data_root to their directory.")

    # ------------------------------------------------------------------ presets
    @classmethod
    def quick(cls, **overrides: Any) -> "TrainConfig":
        """CPU preset: MNIST-1D (4000 samples), 4 x 256 BN MLP, 30 epochs, batch 128, lr 0.05
        stepped x0.1 every 15 epochs, tracked every epoch. Seconds per run on 2 cores."""
        base: dict[str, Any] = dict(
            dataset="mnist1d", num_samples=4000, net=NetSpec.quick_mlp(), epochs=30, lr=0.05,
            lr_step=15, batch_size=128, weight_decay=1e-3, eval_every=1,
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def paper(cls, **overrides: Any) -> "TrainConfig":
        """Seed 001 App. A.1.1: BN MLP with 9 hidden layers (8 x 2048, then the feature layer of
        width M = N, as the authors' code ``MLP(depth=9)`` builds it; docs/experiments.md), SGD
        Nesterov 0.9, lr 0.1 x0.1 every 40 epochs, weight decay 1e-3, batch 512, 200 epochs."""
        base: dict[str, Any] = dict(
            net=NetSpec.paper_mlp(depth=8), epochs=200, lr=0.1, lr_step=40, lr_gamma=0.1, momentum=0.9,
            nesterov=True, weight_decay=1e-3, batch_size=512,
        )
        base.update(overrides)
        return cls(**base)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the net as a nested dict)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`SpecError`."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SpecError(f"unknown TrainConfig field(s) {unknown}; valid fields: {sorted(names)}.")
        return cls(**d)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict[str, Any]:
        """The fields that determine the trained weights (used to match checkpoints)."""
        return {k: v for k, v in self.to_dict().items() if k not in IDENTITY_EXCLUDED}


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`nclab.train.train`.

    Attributes
    ----------
    config : TrainConfig
    history : tuple of dict
        One record per tracked epoch (see :func:`nclab.train.train` for the keys).
    final : dict
        The last record.
    tpt_epoch : int or None
        First tracked epoch with 100 % training accuracy on the observed labels (the start of the
        terminal phase of training); None if never reached.
    suboptimal_collapse : bool or None
        M = N = 2 only: the final train class means have one centroid at the origin (the
        configuration seed 001 filters out); None when M != 2 or N != 2.
    epochs_run : int
        Epochs completed (including those before a resume).
    resumed_from : int or None
        Epoch of the checkpoint the run resumed from.
    device : str
        Device the run used.
    dataset_info : dict
        Provenance of the data (generator, files, noise and its realised rate).
    model : torch.nn.Module
        The trained network (in eval mode).
    """

    config: TrainConfig
    history: tuple[dict[str, Any], ...]
    final: dict[str, Any]
    tpt_epoch: int | None
    suboptimal_collapse: bool | None
    epochs_run: int
    resumed_from: int | None
    device: str
    dataset_info: dict[str, Any]
    model: Any = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the final metrics at top level plus ``tpt_epoch``, ``history`` ..."""
        out = dict(self.final)
        out.update(
            tpt_epoch=self.tpt_epoch,
            suboptimal_collapse=self.suboptimal_collapse,
            epochs_run=self.epochs_run,
            resumed_from=self.resumed_from,
            device=self.device,
            config=self.config.to_dict(),
            dataset=self.dataset_info,
            history=list(self.history),
        )
        return out
