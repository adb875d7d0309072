"""``etf-permutations``: test-accuracy spread of permuted / rotated fixed simplex-ETF heads.

Source: seed 002 Sec. 4.2 (Def. 4.7), 5.2, Fig. 4. Every cell trains the same network with the
same seed under a fixed ETF head transformed by a different permutation or rotation; the
report compares the spread of test accuracy with the spread test-sampling noise alone gives.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional

import numpy as np
from pydantic import Field

from nclab.experiments.library._common import (CELLS, quick_scale, TRAIN_QUICK, TRAIN_TINY,
                                               Arch, Dataset, Loss, NonNegFloat, PosInt, Seed,
                                               TrainSettings)
from nclab.experiments.library.tpt_margins import SEED002_DATASETS, SEED002_NETWORKS
from nclab.experiments.spec import Deviation, Experiment, Stage, register
from nclab.report import figures as F
from nclab.report.analysis import group_runs
from nclab.report.sections import Claim, Table, fmt, generic_section, metric, two_panels

__all__ = ["ETFPermutations", "section", "expected_range"]


class ETFPermutations(TrainSettings):
    """Seed 002 Sec. 5.2, Fig. 4: fixed simplex-ETF heads differing by a permutation or a
    rotation, trained with the same seed; spread of test accuracy and loss."""

    datasets: tuple[Dataset, ...] = SEED002_DATASETS
    archs: tuple[Arch, ...] = SEED002_NETWORKS
    transforms: tuple[Literal["permute", "rotate"], ...] = ("permute", "rotate")
    transform_seeds: tuple[Seed, ...] = tuple(range(10))
    seed: Seed = 0  # the same training seed for every head
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None
    feature_dim: Optional[PosInt] = None  # the network's own feature layer (no extra block)
    weight_decay: NonNegFloat = 5e-4  # not in source
    loss: Loss = "ce"
    margin_bounds: bool = True  # Remark 4.9: the permutation changes the normalised margins


def expected_range(k: int) -> float:
    r"""Expected range of ``k`` independent standard normal draws,
    :math:`\int (1 - \Phi^k - (1 - \Phi)^k)\,dx` (1.128 for k = 2, 2.326 for k = 5)."""
    from scipy import integrate
    from scipy.stats import norm

    if k < 2:
        return 0.0
    val, _ = integrate.quad(lambda x: 1 - norm.cdf(x) ** k - norm.sf(x) ** k, -np.inf, np.inf)
    return float(val)


def section(name, title, source, runs):
    """Fig. 4: box plots of test accuracy and loss per transform, and the spread verdict."""
    sec = generic_section(name, title, source, runs)
    if not runs:
        return sec
    groups = group_runs(runs, ["transform"])
    fig, axes = two_panels()
    F.plot_spread({str(k[0]): [metric(r, "test_acc") for r in v] for k, v in groups.items()},
                  ylabel="test accuracy", title="test accuracy per fixed-ETF head", ax=axes[0])
    F.plot_spread({str(k[0]): [metric(r, "test_loss") for r in v] for k, v in groups.items()},
                  ylabel="test loss", title="test loss per fixed-ETF head", ax=axes[1])
    sec.figures["spread"] = fig
    sec.captions["spread"] = ("Each point is a network trained with the same seed and a fixed "
                              "simplex-ETF head transformed by a different permutation/rotation.")
    rows = [[str(r.axes.get("transform")), str(r.axes.get("transform_seed")),
             fmt(metric(r, "test_acc"), 4), fmt(metric(r, "margin_min_nobias_train"), 4),
             fmt(metric(r, "margin_pair_std_train"), 3),
             fmt(metric(r, "bound48_gamma_hat_min_train"), 4),
             fmt(metric(r, "bound44_a_train"), 4)] for r in runs]
    sec.tables.append(Table(
        "Per head: test accuracy beside the margins that Remark 4.9 says a permutation changes "
        "(train set, bias-free head; see the tpt-margins section for each column)",
        ["transform", "seed", "test acc", "p_min", "pair-margin std", "L·min γ̂ (Thm 4.8)",
         "(A)/R (Cor. 4.5)"], rows))
    for (transform,), grp in groups.items():
        acc = np.array([metric(r, "test_acc") for r in grp])
        tr = np.array([metric(r, "train_acc") for r in grp])
        n_test = np.nanmean([metric(r, "num_test") for r in grp])
        spread = float(np.nanmax(acc) - np.nanmin(acc))
        p = float(np.nanmean(acc))
        se = math.sqrt(p * (1 - p) / n_test) if math.isfinite(n_test) and n_test > 0 else math.nan
        all_fit = bool(np.all(tr >= 1.0))
        testable = len(acc) >= 2 and math.isfinite(se) and all_fit
        null = expected_range(len(acc)) * se if testable else math.nan
        ok = testable and spread > null
        head = (f"{len(acc)} heads: test accuracy {100 * np.nanmin(acc):.2f}–"
                f"{100 * np.nanmax(acc):.2f}% (range {100 * spread:.2f} points; binomial se of "
                f"one accuracy {100 * se:.2f}); {int((tr >= 1.0).sum())}/{len(tr)} reach 100% "
                "train accuracy")
        if testable:
            verdict = (f"{head}; {'supported' if ok else 'not supported'} by the rule: the range "
                       f"exceeds {100 * null:.2f} points, the expected range of {len(acc)} "
                       "accuracies that differ only by test-sampling noise.")
        elif len(acc) >= 2 and not all_fit:
            verdict = (f"{head}. Not testable: the claim is about heads that fit the training "
                       "set; train longer (--set epochs=...).")
        else:
            verdict = "Not testable: fewer than 2 heads or unknown test-set size."
        sec.claims.append(Claim(
            f"Equivalent fixed simplex-ETF heads ({transform}) trained with the same seed reach "
            "100% train accuracy yet differ in test accuracy (non-conservative generalization).",
            "seed 002 Sec. 4.2, 5.2, Fig. 4", verdict, ok if testable else None, "spread"))
    return sec


EXPERIMENT = register(Experiment(
    name="etf-permutations",
    title="Test accuracy spread of permuted / rotated fixed ETF classifiers",
    source="seed 002 Sec. 5.2, Fig. 4",
    config=ETFPermutations,
    stages=(Stage("main", f"{CELLS}:train_cell",
                  {"dataset": "datasets", "arch": "archs", "transform": "transforms",
                   "transform_seed": "transform_seeds"}),),
    presets={
        "paper": {},
        "quick": {**TRAIN_QUICK, "datasets": ("mnist1d",), "archs": ("mlp",),
                  "num_classes": 10, "feature_dim": 32, "epochs": 30,
                  "transform_seeds": tuple(range(5))},
        "tiny": {**TRAIN_TINY, "datasets": ("mnist1d",), "archs": ("mlp",),
                 "num_classes": 3, "feature_dim": 4, "transform_seeds": (0, 1)},
    },
    requires=("nclab.train:train",),
    section=f"{__name__}:section",
    deviations=(
        Deviation("training details", "App. A.1 (not in the source text)",
                  "seed 001 A.2's optimiser, weight decay 5e-4, ten permuted and ten rotated "
                  "heads", "the source's settings are lost", ("paper",)),
        Deviation("fixed head when C − 1 > d", "Sec. 5.2: a fixed simplex ETF classifier",
                  "where C − 1 exceeds the feature dimension (CIFAR-100 on ResNet32, d = 64) "
                  "the head is the CE-UFM classifier frame of nclab.nets (classifier_frame)",
                  "a simplex ETF of C vectors needs d ≥ C − 1", ("paper",)),
        quick_scale("MLP 4 x 256 with a 32-wide feature layer on MNIST-1D, 10 classes, "
                    "30 epochs, 5 + 5 heads"),
    ),
))
