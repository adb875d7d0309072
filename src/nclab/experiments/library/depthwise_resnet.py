"""``depthwise-resnet``: per-layer NC1 / NC2 / NC3 of a trained network, per loss and bias.

Source: seed 004 Sec. 6, Fig. 5 (real-network half: ResNet18 on MNIST, SGD lr 0.05 divided by
10 every 40 epochs, weight decay 5e-4; MSE without bias and CE with bias) and App. G, Fig. 10
(CIFAR-10). The loss and the classifier's bias are grid axes; stage ``ufm`` solves the extended
UFM beside it (the report sets both figures side by side, as Fig. 5 does).
"""

from __future__ import annotations

from typing import Annotated, Optional

import numpy as np
from pydantic import Field

from nclab.experiments.library._common import (CELLS, quick_scale, TRAIN_QUICK, TRAIN_TINY,
                                               Arch, Dataset, Loss, PosInt, Seed,
                                               TrainSettings)
from nclab.experiments.library.depthwise import (NET_ONLY, UFM_ONLY, UFM_STAGE, UFMSettings,
                                                 layer_series, ufm_figures)
from nclab.experiments.spec import Deviation, Experiment, Stage, register
from nclab.report import figures as F
from nclab.report.sections import Claim, Section, generic_tables, wide_figure

__all__ = ["DepthwiseResNet", "section", "LAYER_METRICS"]

#: Per-layer metrics drawn, with their labels (NC3 needs the C-row classifier: last layer only).
LAYER_METRICS = {"nc1": "NC1", "nc2_etf": "NC2 to the simplex ETF",
                 "nc2_of": "NC2 to the orthogonal frame", "nc3_duality": "NC3"}


class DepthwiseResNet(TrainSettings, UFMSettings):
    """Seed 004 Sec. 6 / App. G: ResNet18 on MNIST and CIFAR-10, MSE and CE, with and without
    the classifier's bias; per-layer metrics of the train features."""

    datasets: tuple[Dataset, ...] = ("mnist", "cifar10")
    arch: Arch = "resnet18"
    losses: tuple[Loss, ...] = ("mse", "ce")
    biases: tuple[bool, ...] = (False, True)
    seeds: tuple[Seed, ...] = (0,)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None
    epochs: PosInt = 120  # not in source (lr divided by 10 every 40 epochs)
    lr: Annotated[float, Field(gt=0.0)] = 0.05
    lr_step: PosInt = 40
    weight_decay: Annotated[float, Field(ge=0.0)] = 5e-4
    nesterov: bool = False  # "SGD"
    batch_size: PosInt = 128  # not in source
    layer_metrics: bool = True


def section(name, title, source, runs) -> Section:
    """Per run: NC1, NC2 (ETF and orthogonal frame) and NC3 along the layers; beside them the
    extended-UFM figures; the verdict on NC2 to the frame of each loss (seed 004 Thm 3.1/3.2)."""
    sec = Section(name, title, source, len(runs))
    net = [r for r in runs if r.stage == "main"]
    ufm = [r for r in runs if r.stage == "ufm"]
    last = []
    for r in net:
        taps, _ = layer_series(r, "nc1")
        if not taps:
            sec.notes.append(f"{r.cell_key}: no per-layer metrics stored (layer_metrics off).")
            continue
        tag = (f"{r.axes.get('dataset')}, {str(r.axes.get('loss')).upper()}, "
               f"{'bias' if r.axes.get('bias') else 'no bias'}")
        fid = f"layers-{r.cell_key.split('#')[-1]}"
        fig, axes = wide_figure(len(LAYER_METRICS), figsize=(13.0, 3.2))
        for ax, (key, label) in zip(axes, LAYER_METRICS.items()):
            names, vals = layer_series(r, key)
            x = [taps.index(n) + 1 for n in names]
            if vals:
                F.plot_curves(np.asarray(x, float), {label: np.clip(vals, 1e-16, None)},
                              xlabel="layer", ylabel=label, logy=True, styles={label: "o-"},
                              title=tag, ax=ax)
        sec.figures[fid] = fig
        sec.captions[fid] = (f"{tag}: per-layer NC1, NC2 to the simplex ETF and to the "
                             "orthogonal frame, and NC3 (last layer) of the train features "
                             "(seed 004 Fig. 5 / Fig. 10).")
        _, of = layer_series(r, "nc2_of")
        _, etf = layer_series(r, "nc2_etf")
        if of and etf:
            last.append((r, of[-1], etf[-1], fid))
    mse_nb = [(r, of, etf, fid) for r, of, etf, fid in last
              if r.axes.get("loss") == "mse" and not r.axes.get("bias")]
    if mse_nb:
        n_ok = sum(1 for _, of, etf, _ in mse_nb if of < etf)
        ok = n_ok == len(mse_nb)
        sec.claims.append(Claim(
            "With MSE and no bias the last-layer class means approach an orthogonal frame "
            "rather than a simplex ETF (as the bias-free MSE UFM predicts, Thm 3.1).",
            "seed 004 Thm 3.1, Sec. 6, Fig. 5",
            f"Last layer NC2 to the orthogonal frame < NC2 to the ETF in {n_ok}/{len(mse_nb)} "
            f"runs; {'supported' if ok else 'not supported'} by the rule: every run.", ok,
            mse_nb[0][3]))
    ufm_figures(sec, ufm)
    if net:
        sec.tables.extend(generic_tables(net, ["train_acc", "test_acc", "nc1_train",
                                               "nc2_etf_train", "nc2_of_train"]))
    return sec


EXPERIMENT = register(Experiment(
    name="depthwise-resnet",
    title="Per-layer NC1 / NC2 / NC3 of a trained network, per loss and bias",
    source="seed 004 Sec. 6, Fig. 5; App. G, Fig. 10",
    config=DepthwiseResNet,
    stages=(
        Stage("main", f"{CELLS}:train_cell",
              {"dataset": "datasets", "loss": "losses", "bias": "biases", "seed": "seeds"},
              drop=NET_ONLY),
        Stage(UFM_STAGE.name, UFM_STAGE.fn, UFM_STAGE.axes,
              drop=UFM_ONLY + ("datasets", "losses", "biases", "seeds", "num_classes")),
    ),
    presets={
        "paper": {},
        "quick": {**TRAIN_QUICK, "datasets": ("mnist1d",), "arch": "cnn1d", "depth": 4,
                  "width": 64, "feature_dim": 32, "num_classes": 10, "epochs": 30,
                  "lr": 0.05, "lr_step": 12, "weight_decay": 5e-4, "ufm_steps": 3000,
                  "ufm_step_size": 0.5},
        "tiny": {**TRAIN_TINY, "datasets": ("mnist1d",), "arch": "mlp", "num_classes": 3,
                 "feature_dim": 8, "losses": ("mse",), "biases": (False,), "ufm_steps": 200,
                 "ufm_classes": 3, "ufm_per_class": 4, "ufm_dim": 6,
                 "ufm_models": ("extended-relu",)},
    },
    requires=("nclab.train:train", "nclab.ufm:solve"),
    section=f"{__name__}:section",
    deviations=(
        Deviation("loss x bias grid", "two cases: MSE without bias, CE with bias",
                  "the 2 x 2 grid of MSE / CE with / without bias (it contains both cases)",
                  "the loss and the bias are separate axes, so each effect can be read alone",
                  ("paper", "quick")),
        Deviation("epochs, batch size", "not given (lr divided by 10 every 40 epochs)",
                  "120 epochs, batch 128, plain momentum 0.9", "not in the text", ("paper",)),
        Deviation("quick network", "ResNet18 on MNIST / CIFAR-10",
                  "quick: a small 1-d CNN (nclab.nets cnn1d: 4 conv-BN-ReLU layers of 64 channels, "
                  "global pooling, a 32-d BN feature layer) on MNIST-1D with 10 classes, 30 epochs; "
                  "tiny: a BN MLP", "a ResNet18 epoch on images does not fit the quick budget; "
                  "MNIST-1D signals are 1-d, so the convolutions are 1-d", ("quick", "tiny")),
        quick_scale("see 'quick network'; extended UFM 3000 GD steps of 0.5"),
    ),
))
