"""``tpt-margins``: train CE loss and the margin p_min over epochs (terminal phase of training).

Source: seed 002 Sec. 5.1, Thm 4.1, Fig. 3; the margin bounds of Thm 4.4 / Cor. 4.5 and the
permutation bounds of Thm 4.8 / 4.10 (:mod:`nclab.theory.margins`), recorded every epoch.

Names of the margins (both of the train features, observed labels):

* ``margin_min_nobias_train`` is seed 002's p_min, the margin of the **bias-free** linear
  classifier, min over i and y' != y of <M_y - M_y', z_{y,i}> (Thm 4.1);
* ``margin_min_train`` is the margin of the network's own classifier, **with** its bias.
"""

from __future__ import annotations

import math
from typing import Annotated, Optional

from pydantic import Field

from nclab.experiments.library._common import (CELLS, quick_scale, TRAIN_QUICK, TRAIN_TINY,
                                               Arch, Dataset, Loss, NonNegFloat, Seed,
                                               TrainSettings)
from nclab.experiments.spec import Deviation, Experiment, Stage, register
from nclab.report import figures as F
from nclab.report.analysis import spearman
from nclab.report.sections import Claim, Table, fmt, generic_section, series

__all__ = ["TPTMargins", "section", "BOUND_TERMS", "SEED002_NETWORKS"]

#: The per-epoch margin-bound terms, with what each one is (shown in the report).
BOUND_TERMS = {
    "margin_min_nobias_train": "p_min of Thm 4.1 (bias-free classifier) = min over pairs of γ_{y,y'}",
    "margin_min_train": "margin of the classifier with its bias",
    "margin_pair_mean_train": "mean over class pairs of γ_{y,y'} (App. A.2)",
    "margin_pair_std_train": "std over class pairs of γ_{y,y'} (App. A.2: the spread)",
    "bound44_a_train": "Cor. 4.5 term (A) / Rademacher complexity R_{N/C}(F) (R left symbolic)",
    "bound44_b_train": "Cor. 4.5 term (B) with K = its empirical lower bound (so a lower bound on (B))",
    "bound44_k_emp_train": "largest |(M_y − M_y')ᵀ f(x)| on the train set (≤ K)",
    "bound48_gamma_hat_min_train": "L · min γ̂_{y,y'} = min γ_{y,y'} / ‖M_y − M_y'‖ (Thm 4.8; L and the covering numbers left symbolic)",
    "bound410_acc_train": "Thm 4.10 accuracy lower bound as printed, ρ_y = largest train feature norm of class y",
}

#: Seed 002 Sec. 5: the networks and data sets of Fig. 3 and 4.
SEED002_NETWORKS = ("vgg11", "resnet32", "densenet121")
SEED002_DATASETS = ("cifar10", "cifar100")


class TPTMargins(TrainSettings):
    """Seed 002 Sec. 5.1, Fig. 3: CE loss and margin p_min on the train set over epochs.

    The networks and data sets of Sec. 5 (VGG11, ResNet32, DenseNet121 on CIFAR-10 and
    CIFAR-100). Seed 002's App. A.1 (training details) is not in the source text; the optimiser
    follows seed 001 A.2 (SGD, Nesterov 0.9, lr 0.1 x0.1 every 40 epochs, batch 512, 200
    epochs).
    """

    datasets: tuple[Dataset, ...] = SEED002_DATASETS
    archs: tuple[Arch, ...] = SEED002_NETWORKS
    seeds: tuple[Seed, ...] = (0,)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None
    weight_decay: NonNegFloat = 5e-4  # not in source
    losses: tuple[Loss, ...] = ("ce",)
    margin_bounds: bool = True  # record the margin-bound terms every epoch


def _bound_figure(sec, r, fid) -> None:
    e, pmin = series(r, "margin_min_nobias_train")
    _, pb = series(r, "margin_min_train")
    _, a = series(r, "bound44_a_train")
    _, g = series(r, "bound48_gamma_hat_min_train")
    if not len(e):
        return
    fig, ax = F.new_axes(figsize=(5.5, 3.6))
    curves = {"p_min, no bias (Thm 4.1)": pmin, "margin with bias": pb,
              "L·min γ̂ (Thm 4.8)": g}
    F.plot_curves(e, curves, xlabel="epoch", ylabel="margin", title="margins", ax=ax)
    if len(a):
        ax2 = ax.twinx()
        ok = [(x, v) for x, v in zip(*series(r, "bound44_a_train")) if v > 0]
        if ok:
            ax2.plot(*zip(*ok), "k:", lw=1, label="(A)/R, Cor. 4.5")
            ax2.set_yscale("log")
            ax2.set_ylabel("(A) / R_{N/C}(F)")
            ax2.legend(fontsize=7, loc="lower right")
    sec.figures[fid] = fig
    sec.captions[fid] = ("Margins over epochs: seed 002's p_min of the bias-free classifier, the "
                         "classifier's margin with its bias, the normalised margin of Thm 4.8, "
                         "and term (A) of Cor. 4.5 divided by the Rademacher complexity "
                         "(defined once every pair margin is positive).")


def section(name, title, source, runs):
    """Fig. 3 per run, the margin-bound terms at the last epoch, and the Thm 4.1 verdict."""
    sec = generic_section(name, title, source, runs)
    rows = []
    for r in runs:
        e, loss = series(r, "train_loss")
        e2, pmin = series(r, "margin_min_nobias_train")
        tag = f"{r.axes.get('dataset')} {r.axes.get('arch')} seed {r.axes.get('seed')}"
        fid = f"tpt-{r.cell_key.split('#')[-1]}"
        rows.append([tag] + [fmt(r.get(k), 4) for k in BOUND_TERMS])
        if not len(e) or not len(e2):
            sec.notes.append(f"{tag}: no per-epoch train loss or bias-free margin stored; "
                             "Fig. 3 could not be drawn for this run.")
            continue
        tpt = r.get("tpt_epoch")
        fig, _ = F.plot_loss_margin(e, loss, pmin, tpt_epoch=tpt, title=tag)
        sec.figures[fid] = fig
        sec.captions[fid] = (f"{tag}: train CE loss and seed 002's margin p_min (bias-free "
                             "classifier, Thm 4.1) over epochs (Fig. 3).")
        _bound_figure(sec, r, fid + "-bounds")
        claim = ("During the terminal phase the margin p_min (bias-free classifier) keeps "
                 "increasing while the CE loss goes to zero.")
        if not math.isfinite(tpt):
            sec.claims.append(Claim(claim, "seed 002 Thm 4.1, Fig. 3",
                                    "Not testable: training never reached 100% training "
                                    "accuracy.", None, fid))
            continue
        in_tpt = e2 >= tpt
        p = pmin[in_tpt]
        l_in = loss[e >= tpt]
        rho = spearman(e2[in_tpt], p)
        testable = len(p) >= 3
        ok = testable and p[-1] > p[0] and l_in[-1] < l_in[0] and rho > 0.5
        sec.claims.append(Claim(
            claim, "seed 002 Thm 4.1, Fig. 3",
            (f"From the TPT start (epoch {tpt:g}) to the end, p_min goes {fmt(p[0])} → "
             f"{fmt(p[-1])} (Spearman ρ with epoch {fmt(rho, 2)}) and the train loss "
             f"{fmt(l_in[0])} → {fmt(l_in[-1])}; {'supported' if ok else 'not supported'} by "
             "the rule: p_min rises, loss falls, ρ > 0.5." if testable else
             "Not testable: fewer than 3 tracked epochs in the terminal phase."),
            ok if testable else None, fid))
    if rows:
        sec.tables.append(Table("Margins and margin-bound terms at the last epoch (train set)",
                                ["run"] + list(BOUND_TERMS), rows))
        sec.tables.append(Table("What each margin-bound column is", ["column", "quantity"],
                                [[k, v] for k, v in BOUND_TERMS.items()]))
    return sec


EXPERIMENT = register(Experiment(
    name="tpt-margins",
    title="Train CE loss and margin p_min over epochs (terminal phase)",
    source="seed 002 Sec. 5.1, Thm 4.1, 4.4, 4.8, 4.10, Fig. 3",
    config=TPTMargins,
    stages=(Stage("main", f"{CELLS}:train_cell",
                  {"dataset": "datasets", "arch": "archs", "loss": "losses",
                   "seed": "seeds"}),),
    presets={
        "paper": {},
        "quick": {**TRAIN_QUICK, "datasets": ("mnist1d",), "archs": ("mlp",),
                  "num_classes": 10, "feature_dim": 64, "epochs": 60, "lr_step": 25,
                  "seeds": (0,)},
        "tiny": {**TRAIN_TINY, "datasets": ("mnist1d",), "archs": ("mlp",),
                 "num_classes": 3, "seeds": (0,)},
    },
    requires=("nclab.train:train",),
    section=f"{__name__}:section",
    deviations=(
        Deviation("training details", "App. A.1 (not in the source text)",
                  "seed 001 A.2's optimiser: SGD, Nesterov 0.9, lr 0.1 x0.1 every 40 epochs, "
                  "batch 512, 200 epochs; weight decay 5e-4", "the source's settings are lost",
                  ("paper",)),
        Deviation("bound constants", "Thm 4.4: Rademacher complexity R(F) and the bound K; "
                  "Thm 4.8: Lipschitz constant L and covering numbers",
                  "R, L and the covering numbers left symbolic (terms recorded divided by / "
                  "multiplied with them); K replaced by its empirical lower bound on the train "
                  "set; ρ_y by the largest train feature norm", "not computable from a trained "
                  "network", ("paper", "quick", "tiny")),
        quick_scale("MLP 4 x 256 (features 64) on MNIST-1D, 10 classes, 60 epochs"),
    ),
))
