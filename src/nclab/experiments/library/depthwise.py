"""``depthwise``: per-layer collapse of a BN MLP beside the extended UFM.

Sources: seed 003 Sec. 3.2, Fig. 3.3, Conjectures 3.2.1-3.2.2 (a 15-layer BN MLP on the
teacher and conic hull data sets; per-layer NCC accuracy and cosines across weight decays) and
seed 004 Sec. 6, Fig. 5 (per-layer NC1 / NC2 / NC3 of the linear and ReLU extended UFM, stage
``ufm``). The real-network half of seed 004 Fig. 5 (ResNet18 on MNIST) is ``depthwise-resnet``.

The per-layer helpers (:func:`layer_series`, :func:`layer_figures`, :func:`ufm_figures`) are
shared with :mod:`.depthwise_resnet`.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Mapping, Optional, Sequence

import numpy as np
from pydantic import Field

from nclab.experiments.library._common import (CELLS, quick_scale, TRAIN_QUICK, TRAIN_TINY,
                                               Dataset, Loss, NonNegFloat, PosInt, Seed,
                                               TrainSettings)
from nclab.experiments.library.bn_weight_decay import SEED003_DEVIATIONS
from nclab.experiments.spec import Deviation, Experiment, ExperimentConfig, Stage, register
from nclab.report import figures as F
from nclab.report.analysis import RunData, spearman
from nclab.report.sections import (Claim, Section, fmt, generic_tables, metric, two_panels,
                                   wide_figure)

__all__ = ["Depthwise", "UFMSettings", "section", "layer_series", "level_gap", "cosine_gaps",
           "ufm_figures", "UFM_STAGE", "UFM_ONLY", "NET_ONLY"]

#: Conjecture 3.2.1's tolerance: the cosine gap may fall by at most this much per layer.
CONJ_321_EPS = 0.05


class UFMSettings(ExperimentConfig):
    """The extended UFM of seed 004 Sec. 6: K classes, n per class, width d, lambda, GD."""

    ufm_models: tuple[Literal["extended-linear", "extended-relu"], ...] = (
        "extended-linear", "extended-relu")
    ufm_classes: Annotated[int, Field(ge=2)] = 4  # not recoverable from the text
    ufm_per_class: PosInt = 10
    ufm_dim: PosInt = 20
    ufm_lambda: Annotated[float, Field(gt=0.0)] = 5e-3
    ufm_steps: PosInt = 100000
    ufm_step_size: Annotated[float, Field(gt=0.0)] = 0.1
    ufm_init_scale: Annotated[float, Field(gt=0.0)] = 0.1


class Depthwise(TrainSettings, UFMSettings):
    """Seed 003 Sec. 3.2 (15 layers: 13 hidden blocks, the feature layer, the head) beside the
    extended UFM of seed 004 Sec. 6."""

    datasets: tuple[Dataset, ...] = ("teacher", "conic_hull")
    num_samples: Optional[PosInt] = 10000
    bn_after_activation: bool = True  # Def. 3.2.1: BN(ReLU(W h + b))
    weight_decays: tuple[NonNegFloat, ...] = (1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 5e-3, 1e-2)
    seeds: tuple[Seed, ...] = (0,)
    num_classes: Optional[Annotated[int, Field(ge=2)]] = None  # 4 classes; not in source
    depth: PosInt = 13  # + feature layer + head = 15 layers
    width: PosInt = 512  # not in source
    feature_dim: Optional[PosInt] = 512  # not in source
    epochs: PosInt = 300
    lr: Annotated[float, Field(gt=0.0)] = 0.0679
    lr_step: PosInt = 100
    nesterov: bool = False
    batch_size: PosInt = 128
    loss: Loss = "ce"
    layer_metrics: bool = True


NET_ONLY = tuple(UFMSettings.model_fields)
UFM_ONLY = tuple(TrainSettings.model_fields)
UFM_STAGE = Stage("ufm", f"{CELLS}:extended_ufm_cell", {"ufm_model": "ufm_models"})


# --------------------------------------------------------------------------- report helpers


def level_gap(curves: Mapping[str, Sequence[float]], floor: float = 1e-6) -> float:
    """Median over the records of |log10 NC1(h1) - log10 NC1(h2)|, where both exceed ``floor``
    (below it the values are at the solver's numerical floor)."""
    a = np.asarray(curves.get("nc1_h1", []), float)
    b = np.asarray(curves.get("nc1_h2", []), float)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ok = (a > floor) & (b > floor)
    if not ok.any():
        return math.nan
    return float(np.median(np.abs(np.log10(a[ok]) - np.log10(b[ok]))))


def layer_series(run: RunData, name: str) -> tuple[list[str], list[float]]:
    """Per-layer values ``layers/<tap>/<name>`` of a run's final metrics, in tap order."""
    names, vals = [], []
    for tap in run.extras.get("layers") or []:
        v = run.final.get(f"layers/{tap}/{name}")
        if v is not None:
            names.append(tap)
            vals.append(float(v))
    return names, vals


def cosine_gaps(run: RunData) -> np.ndarray:
    """Per layer: min intra-class cosine − max inter-class cosine (Conjecture 3.2.1)."""
    _, intra = layer_series(run, "cosine_intra_min")
    _, inter = layer_series(run, "cosine_inter_max")
    n = min(len(intra), len(inter))
    return np.asarray(intra[:n], float) - np.asarray(inter[:n], float)


def ufm_figures(sec: Section, ufm: Sequence[RunData]) -> None:
    """Seed 004 Fig. 5 (extended UFM): NC1, NC2 to the orthogonal frame and NC3 per level
    along gradient descent, and the ReLU-separates-the-levels verdict."""
    for r in ufm:
        curves = r.extras.get("curves") or {}
        steps = curves.get("step") or []
        if not steps:
            sec.notes.append(f"{r.axes.get('ufm_model')}: no gradient-descent record stored.")
            continue
        fid = f"ufm-{r.axes.get('ufm_model')}"
        fig, axes = wide_figure(3, figsize=(12.0, 3.4))
        x = np.asarray(steps, float)
        for ax, prefix, label in zip(axes, ("nc1", "nc2_of", "nc3"),
                                     ("NC1", "NC2 (to orthogonal frame)", "NC3")):
            curves_p = {k: np.clip(np.asarray(v, float), 1e-16, None) for k, v in curves.items()
                        if k.startswith(prefix + "_")}
            if curves_p:
                F.plot_curves(x, curves_p, xlabel="gradient step", ylabel=label, logy=True,
                              title=f"{r.axes.get('ufm_model')}: {label}", ax=ax)
        sec.figures[fid] = fig
        sec.captions[fid] = (f"{r.axes.get('ufm_model')} UFM (seed 004 Fig. 5): NC1, NC2 and NC3 "
                             "of the deeper (h2) and shallower (h1) features (and the pre-ReLU "
                             "ones) along plain gradient descent.")
    lin = {r.axes.get("ufm_model"): r for r in ufm}
    if "extended-linear" in lin and "extended-relu" in lin:
        gl, gr = (level_gap(lin[m].extras.get("curves") or {})
                  for m in ("extended-linear", "extended-relu"))
        testable = math.isfinite(gl) and math.isfinite(gr)
        ok = testable and gr > gl
        sec.claims.append(Claim(
            "Adding a ReLU between the two feature levels of the extended UFM separates their "
            "collapse (rate and degree), as in real networks; in the linear model the two levels "
            "have similar within-class variability.", "seed 004 Sec. 4.1-4.2, 6, Fig. 5",
            (f"Median |log10 NC1(h1) − log10 NC1(h2)| along gradient descent (records with both "
             f"NC1 > 1e-6): linear {fmt(gl)}, ReLU {fmt(gr)}; "
             f"{'supported' if ok else 'not supported'} by the rule: larger with ReLU."
             if testable else "Not testable: no record with both levels above 1e-6."),
            ok if testable else None, "ufm-extended-relu"))
    if ufm:
        sec.tables.extend(generic_tables(ufm, ["nc1_h1", "nc1_h2", "objective"]))


def _tag(r: RunData) -> str:
    return ", ".join(f"{k}={v}" for k, v in r.axes.items() if k != "seed")


def section(name, title, source, runs) -> Section:
    """Fig. 3.3 per network, Conjectures 3.2.1 / 3.2.2 and the extended-UFM figures."""
    sec = Section(name, title, source, len(runs))
    net = [r for r in runs if r.stage == "main"]
    ufm = [r for r in runs if r.stage == "ufm"]
    mono, gaps_ok, eff = [], [], {}
    for r in net:
        taps, ncc = layer_series(r, "ncc_accuracy")
        _, intra = layer_series(r, "cosine_intra_min")
        _, inter = layer_series(r, "cosine_inter_max")
        _, nc1 = layer_series(r, "nc1")
        _, nc2 = layer_series(r, "nc2_etf")
        if not taps:
            sec.notes.append(f"{_tag(r)}: no per-layer metrics stored (layer_metrics off).")
            continue
        x = np.arange(1, len(taps) + 1)
        fid = f"layers-{r.cell_key.split('#')[-1]}"
        fig, axes = two_panels()
        F.plot_curves(x, {"NCC accuracy": ncc, "min intra cos": intra, "max inter cos": inter},
                      xlabel="layer", ylabel="value",
                      styles={k: "o-" for k in ("NCC accuracy", "min intra cos",
                                                "max inter cos")},
                      title=_tag(r), ax=axes[0])
        per_layer = {"NC1": nc1}
        if len(nc2) == len(nc1):
            per_layer["NC2 (dist. to ETF)"] = nc2
        F.plot_curves(x, per_layer, xlabel="layer", ylabel="value", logy=True,
                      title="NC1 and NC2 per layer", ax=axes[1])
        sec.figures[fid] = fig
        sec.captions[fid] = (f"{_tag(r)}: per-layer NCC accuracy and cosines (seed 003 "
                             "Fig. 3.3), NC1 and NC2 (seed 004 Fig. 5), train features. NC3 "
                             "needs a C-row classifier, so it exists only at the last layer.")
        if len(ncc) > 1:
            mono.append((fid, float(np.mean(np.diff(ncc) >= -1e-3)),
                         float(np.mean(np.diff(nc1) <= 0)) if len(nc1) > 1 else math.nan))
        gap = cosine_gaps(r)
        if len(gap) > 1 and metric(r, "train_acc") >= 1.0:
            gaps_ok.append((fid, float(np.min(np.diff(gap)))))
        eff.setdefault(r.axes.get("dataset"), []).append(
            (r.axes.get("weight_decay"), r.get("effective_depth"), metric(r, "train_acc")))
    if mono:
        frac = float(np.mean([m[1] for m in mono]))
        ok = frac >= 0.8
        sec.claims.append(Claim(
            "NCC accuracy increases (almost) monotonically with depth: each layer brings the "
            "features closer to the collapsed configuration.", "seed 003 Sec. 3.2.2, Fig. 3.3",
            f"{100 * frac:.0f}% of consecutive layer pairs do not decrease the NCC accuracy "
            f"(tolerance 0.001) over {len(mono)} networks; "
            f"{'supported' if ok else 'not supported'} by the rule ≥ 80%.", ok, mono[0][0]))
        frac1 = float(np.nanmean([m[2] for m in mono]))
        if math.isfinite(frac1):
            ok1 = frac1 >= 0.8
            sec.claims.append(Claim(
                "In a well-trained network the within-class variability (NC1) decreases "
                "monotonically along the depth.", "seed 004 Sec. 4.1 (Discussion), Fig. 5",
                f"NC1 decreases at {100 * frac1:.0f}% of consecutive layer pairs; "
                f"{'supported' if ok1 else 'not supported'} by the rule ≥ 80%.", ok1,
                mono[0][0]))
    if gaps_ok:
        worst = min(d for _, d in gaps_ok)
        n_ok = sum(1 for _, d in gaps_ok if d > -CONJ_321_EPS)
        ok = n_ok == len(gaps_ok)
        sec.claims.append(Claim(
            "NC sharpens with depth: the cosine gap (min intra − max inter cosine) of layer l+1 "
            "is at least that of layer l, up to a small ε.", "seed 003 Conjecture 3.2.1",
            f"Over {len(gaps_ok)} networks with 100% train accuracy the largest layer-to-layer "
            f"drop of the gap is {fmt(-worst)}; {n_ok}/{len(gaps_ok)} networks never drop by "
            f"more than ε = {CONJ_321_EPS}; {'supported' if ok else 'not supported'} by the "
            "rule: every network.", ok, gaps_ok[0][0]))
    elif net:
        sec.claims.append(Claim(
            "NC sharpens with depth: the cosine gap (min intra − max inter cosine) of layer l+1 "
            "is at least that of layer l, up to a small ε.", "seed 003 Conjecture 3.2.1",
            "Not testable: no network reached 100% train accuracy (the conjecture is about "
            "converged networks).", None, None))
    for dataset, rows in eff.items():
        conv = sorted((w, d) for w, d, acc in rows if acc >= 1.0 and math.isfinite(d))
        if len(conv) < 2:
            continue
        rho = spearman([w for w, _ in conv], [d for _, d in conv])
        ok = (math.isfinite(rho) and rho < 0) or all(
            b <= a for (_, a), (_, b) in zip(conv, conv[1:]))
        sec.claims.append(Claim(
            "The larger the weight decay, the fewer layers NCC needs for near-perfect accuracy "
            "(smaller effective depth).", "seed 003 Sec. 3.2.2, Conjecture 3.2.2",
            f"{dataset}: effective depth by weight decay: "
            + ", ".join(f"{w:g}: {d:g}" for w, d in conv)
            + f" (Spearman ρ {fmt(rho, 2)}); {'supported' if ok else 'not supported'} by the "
            "rule: non-increasing or ρ < 0.", ok, None))
    ufm_figures(sec, ufm)
    if net:
        sec.tables.extend(generic_tables(net, ["train_acc", "test_acc", "effective_depth",
                                               "nc1_train", "nc1_test"]))
    return sec


EXPERIMENT = register(Experiment(
    name="depthwise",
    title="Per-layer collapse of a BN MLP beside the extended UFM",
    source="seed 003 Sec. 3.2, Fig. 3.3, Conj. 3.2.1-3.2.2; seed 004 Sec. 6, Fig. 5",
    config=Depthwise,
    stages=(
        Stage("main", f"{CELLS}:train_cell",
              {"dataset": "datasets", "weight_decay": "weight_decays", "seed": "seeds"},
              drop=NET_ONLY),
        Stage(UFM_STAGE.name, UFM_STAGE.fn, UFM_STAGE.axes,
              drop=UFM_ONLY + ("datasets", "weight_decays", "seeds", "num_classes", "loss")),
    ),
    presets={
        "paper": {},
        "quick": {**TRAIN_QUICK, "num_samples": 2000, "depth": 6, "width": 128,
                  "feature_dim": 32, "epochs": 40, "lr": 0.0679, "lr_step": 15,
                  "nesterov": False, "weight_decays": (5e-4, 5e-3), "ufm_steps": 3000,
                  "ufm_step_size": 0.5},
        "tiny": {**TRAIN_TINY, "num_samples": 300, "num_classes": 3, "feature_dim": 8,
                 "datasets": ("teacher",), "depth": 3, "weight_decays": (1e-3,),
                 "ufm_steps": 200, "ufm_classes": 3, "ufm_per_class": 4, "ufm_dim": 6},
    },
    requires=("nclab.train:train", "nclab.ufm:solve"),
    section=f"{__name__}:section",
    deviations=SEED003_DEVIATIONS + (
        Deviation("extended UFM sizes", "seed 004 Sec. 6: K, n, d and λ (lost in the text "
                  "conversion)", "K = 4, n = 10, d = 20, λ = 5e-3, GD step 0.1 from "
                  "N(0, 0.1²)", "the values are not recoverable", ("paper",)),
        quick_scale("2000 samples, 8-layer BN MLP of width 128 (features 32), 40 epochs, "
                    "weight decays {5e-4, 5e-3}; extended UFM 3000 GD steps of 0.5"),
    ),
))
