"""``md-label-noise``: dilation against memorization under label noise, per loss.

Source: seed 000 Sec. 4.1, Fig. 1 and 2; seed 001 App. A.1.1-A.1.2, Fig. 4-8. The cell is
:func:`nclab.experiments.cells.train_cell`; the report (:func:`section`) draws, per data set,
number of classes N and feature dimension M, sqrt(NC1 test) against memorization (Fig. 1 top),
test accuracy against memorization (Fig. 1 bottom) and against eta, and the 2-D features of one
sub-optimal and one optimal run at M = N = 2 (seed 001 Fig. 4).

Metric names: ``nc1_test`` is the dilation (NC1 of the test features, true labels),
``memorization`` seed 000 eq. (3), ``test_acc``, ``suboptimal_collapse`` (M = N = 2 only).
"""

from __future__ import annotations

import math
from typing import Annotated, Optional, Sequence

import numpy as np
from pydantic import Field, model_validator

from nclab.experiments.library._common import (CELLS, quick_scale, SEED001_DEPTH, TRAIN_QUICK,
                                               TRAIN_TINY, Dataset, Eta, Loss, NoiseKind,
                                               PosInt, Prob, Seed, TrainSettings, check_etas)
from nclab.experiments.spec import Deviation, Experiment, Stage, register
from nclab.report import figures as F
from nclab.report.analysis import RunData, fit_line, format_mean_std, group_runs, mean_std, slope_z
from nclab.report.sections import Claim, Section, Table, fmt, metric, wide_figure

__all__ = ["MDLabelNoise", "section", "md_section", "AXES"]


class MDLabelNoise(TrainSettings):
    """Seed 000 Sec. 4.1 (Fig. 1, 2) and seed 001 App. A.1.1-A.1.2 (Fig. 5-8)."""

    datasets: tuple[Dataset, ...] = ("mnist", "fashion_mnist", "cifar10", "svhn")
    classes: tuple[Annotated[int, Field(ge=2)], ...] = (2, 3, 5, 10)
    feature_dims: tuple[Optional[PosInt], ...] = (None,)  # M; None = N (seed 000 Fig. 2: M > N)
    etas: tuple[Eta, ...] = (0.025, 0.05, 0.1, 0.2, 0.3, 0.4)  # range [0.025, 0.4] in source
    losses: tuple[Loss, ...] = ("ce", "ls", "lr", "mse")
    alpha: Prob = 0.1  # LS smoothing / LR relaxation degree
    seeds: tuple[Seed, ...] = tuple(range(10))  # main text: ten seeds (A.1.1 says 5)
    noise_kind: NoiseKind = "symmetric"

    @model_validator(mode="after")
    def _etas(self):
        check_etas(self.etas, self.noise_kind)
        return self


AXES = {"dataset": "datasets", "num_classes": "classes", "feature_dim": "feature_dims",
        "eta": "etas", "loss": "losses", "seed": "seeds"}

# --------------------------------------------------------------------------- report


def _sqrt(v: float) -> float:
    return math.sqrt(v) if v >= 0 else math.nan


def _points(runs: Sequence[RunData]):
    """Per (loss, eta): mean/std of memorization, sqrt(NC1 test), test accuracy."""
    out = []
    for (loss, eta), grp in group_runs(runs, ["loss", "eta"]).items():
        mem = [metric(r, "memorization") for r in grp]
        dil = [_sqrt(metric(r, "nc1_test")) for r in grp]
        acc = [metric(r, "test_acc") for r in grp]
        out.append((loss, eta, mean_std(mem), mean_std(dil), mean_std(acc), grp))
    return out


def _m_label(run: RunData) -> str:
    m = run.axes.get("feature_dim", run.config.get("feature_dim"))
    return "M=N" if m is None else f"M={m}"


def md_section(name, title, source, runs, *, latent: bool = False) -> Section:
    """The section of ``md-label-noise`` and ``md-latent-classes`` (see the module docstring)."""
    sec = Section(name, title, source, len(runs))
    if not runs:
        return sec
    bad = [r for r in runs if r.get("suboptimal_collapse") == 1.0]
    if bad:
        sec.notes.append(
            f"{len(bad)} of {len(runs)} runs collapsed to the sub-optimal M = N = 2 configuration "
            "(one class centroid at the origin) and are left out, as seed 001 App. A.1.1 does.")
    _scatter(sec, runs)
    kept = [r for r in runs if r.get("suboptimal_collapse") != 1.0]
    few = [(k, len(g)) for k, g in group_runs(
        kept, ["dataset", "num_classes", "feature_dim", "loss", "eta"]).items() if len(g) < 3]
    if few:
        sec.notes.append(f"{len(few)} grid cells keep fewer than 3 seeds after the filter "
                         f"(smallest: {min(n for _, n in few)}); add seeds (--set seeds=...).")
    slope_rows = []
    panels = group_runs(kept, ["dataset", "num_classes"])
    for (dataset, n_cls), prun in panels.items():
        for m_tag, mrun in _by_m(prun).items():
            tag = f"{dataset}, N={n_cls}, {m_tag}"
            fid = f"md-{dataset}-N{n_cls}-{m_tag.replace('=', '')}"
            _panel(sec, tag, fid, mrun, source, latent, slope_rows)
    sec.tables.append(Table("Fitted lines sqrt(NC1 test) = a + b · memorization (all runs)",
                            ["setting", "loss", "slope b ± se", "intercept a", "R²", "runs"],
                            slope_rows))
    rows = []
    for (dataset, n_cls, m, loss, eta), grp in group_runs(
            kept, ["dataset", "num_classes", "feature_dim", "loss", "eta"]).items():
        rows.append([f"{dataset}, N={n_cls}, {'M=N' if m is None else f'M={m}'}",
                     str(loss).upper(), f"{eta:g}", str(len(grp)),
                     format_mean_std([metric(r, "test_acc") for r in grp], scale=100),
                     format_mean_std([metric(r, "train_acc") for r in grp], scale=100),
                     format_mean_std([metric(r, "memorization") for r in grp]),
                     format_mean_std([_sqrt(metric(r, "nc1_test")) for r in grp]),
                     format_mean_std([metric(r, "noise_flip_rate") for r in grp])])
    sec.tables.append(Table("Mean ± std over seeds",
                            ["setting", "loss", "η", "seeds", "test acc %", "train acc %",
                             "memorization", "sqrt NC1 test", "realised flip rate"], rows))
    return sec


def _by_m(runs):
    out: dict[str, list] = {}
    for r in runs:
        out.setdefault(_m_label(r), []).append(r)
    return out


def _panel(sec, tag, fid, runs, source, latent, slope_rows) -> None:
    pts = _points(runs)
    fits = {}
    for loss in dict.fromkeys(r.axes.get("loss") for r in runs):
        lr_runs = [r for r in runs if r.axes.get("loss") == loss]
        f = fit_line([metric(r, "memorization") for r in lr_runs],
                     [_sqrt(metric(r, "nc1_test")) for r in lr_runs])
        fits[loss] = f
        slope_rows.append([tag, str(loss).upper(), f"{fmt(f.slope)} ± {fmt(f.slope_se, 2)}",
                           fmt(f.intercept), fmt(f.r2), str(f.n)])
    fig, axes = wide_figure(3, figsize=(13.5, 3.6))
    mem_m = [p[2][0] for p in pts]
    F.plot_memorization_dilation(
        mem_m, [p[3][0] for p in pts], [p[0] for p in pts], [p[1] for p in pts],
        xerr=[p[2][1] for p in pts], yerr=[p[3][1] for p in pts],
        fits={k: (v.slope, v.intercept) for k, v in fits.items()}, ax=axes[0])
    axes[0].set_title(f"{tag}: dilation vs memorization", fontsize=9)
    F.plot_memorization_dilation(
        mem_m, [p[4][0] for p in pts], [p[0] for p in pts], [p[1] for p in pts],
        xerr=[p[2][1] for p in pts], yerr=[p[4][1] for p in pts], ylabel="test accuracy",
        ax=axes[1])
    axes[1].set_title(f"{tag}: test accuracy vs memorization", fontsize=9)
    etas = sorted({p[1] for p in pts})
    acc_series = {}
    for loss in fits:
        by_eta = {p[1]: p[4] for p in pts if p[0] == loss}
        acc_series[loss] = ([by_eta.get(e, (math.nan,))[0] for e in etas],
                            [by_eta.get(e, (0, math.nan))[1] for e in etas])
    F.plot_metric_vs_param(etas, acc_series, xlabel="noise η", ylabel="test accuracy",
                           title=f"{tag}: test accuracy vs η", ax=axes[2])
    sec.figures[fid] = fig
    sec.captions[fid] = (f"{tag}. Left: sqrt(NC1 test) against memorization, means ± std over "
                         "seeds, one colour per loss and one marker per η, lines fitted to all "
                         "runs of a loss (seed 000 Fig. 1 top). Middle: test accuracy against "
                         "memorization (Fig. 1 bottom). Right: test accuracy against η.")
    sec.claims.extend(_claims(pts, fits, fid, latent))


def _claims(pts, fits, fid, latent) -> list[Claim]:
    claims = []
    ce, ls = fits.get("ce"), fits.get("ls")
    if ce is not None and ls is not None:
        r2 = [f.r2 for f in (ce, ls)]
        testable = all(math.isfinite(v) for v in r2)
        ok = testable and min(r2) >= 0.7
        claims.append(Claim(
            "sqrt(NC1 test) depends approximately linearly on memorization for CE and LS "
            "(when memorization is not large).",
            "seed 000 Sec. 4.1, Fig. 1" + ("; seed 001 A.1.3, Fig. 9" if latent else ""),
            (f"Linear fits give R² = {fmt(ce.r2)} (CE) and {fmt(ls.r2)} (LS); "
             f"{'supported' if ok else 'not supported'} by the rule R² ≥ 0.7 for both."
             if testable else "Not testable: too few distinct points for a line fit."),
            ok if testable else None, fid))
        z = slope_z(ce, ls)
        testable = math.isfinite(z)
        claims.append(Claim(
            "CE and LS share the same memorization-dilation slope: dilation is a function of "
            "memorization, not of the loss.",
            "seed 000 Sec. 4.1" + ("; seed 001 A.1.3" if latent else ""),
            (f"Slopes CE {fmt(ce.slope)} ± {fmt(ce.slope_se, 2)} and LS {fmt(ls.slope)} ± "
             f"{fmt(ls.slope_se, 2)} differ by {fmt(z, 2)} standard errors; "
             f"{'supported' if z < 2 else 'not supported'} by the rule |Δ| < 2 se."
             if testable else "Not testable: slope standard errors need at least 3 runs per "
             "loss."),
            (z < 2) if testable else None, fid))
        mem = {(p[0], p[1]): p[2][0] for p in pts}
        acc = {(p[0], p[1]): p[4][0] for p in pts}
        etas = sorted({e for (_, e) in mem if ("ce", e) in mem and ("ls", e) in mem})
        less = sum(1 for e in etas if mem[("ls", e)] < mem[("ce", e)])
        better = sum(1 for e in etas if acc[("ls", e)] > acc[("ce", e)])
        if etas:
            need = math.ceil(0.75 * len(etas))
            ok = less >= need
            claims.append(Claim(
                "At the same noise level LS memorizes less than CE.",
                "seed 000 Sec. 4.1, Thm 4.3",
                f"Mean memorization is lower for LS than for CE at {less}/{len(etas)} noise "
                f"levels; {'supported' if ok else 'not supported'} by the rule: LS lower at "
                f"≥ 75% of the levels ({need}).", ok, fid))
            ok = better >= need
            claims.append(Claim(
                "LS generalizes better than CE under label noise (higher test accuracy).",
                "seed 000 Fig. 1 caption, Sec. 4.2",
                f"LS has the higher mean test accuracy at {better}/{len(etas)} noise levels; "
                f"{'supported' if ok else 'not supported'} by the rule: LS higher at ≥ 75% of "
                f"the levels ({need}).", ok, fid))
    others = [k for k in ("mse", "lr") if k in fits]
    if ce is not None and others:
        zs = {k: slope_z(ce, fits[k]) for k in others}
        testable = all(math.isfinite(z) for z in zs.values())
        ok = testable and all(z >= 2 for z in zs.values())
        claims.append(Claim(
            "MSE and LR follow a different memorization-dilation correspondence than CE/LS.",
            "seed 000 Sec. 4.1",
            ("Slopes " + ", ".join(f"{k.upper()} {fmt(fits[k].slope)} ({fmt(zs[k], 2)} se "
                                   "from CE)" for k in others)
             + f" against CE {fmt(ce.slope)}; {'supported' if ok else 'not supported'} by the "
             "rule: every one differs from CE by ≥ 2 se." if testable
             else "Not testable: slope standard errors need at least 3 runs per loss."),
            ok if testable else None, fid))
    return claims


def _scatter(sec: Section, runs: Sequence[RunData]) -> None:
    """Seed 001 Fig. 4: the 2-D features of one sub-optimal and one optimal run (M = N = 2)."""
    cases = {}
    for r in runs:
        flag = r.get("suboptimal_collapse")
        feats = r.extras.get("features_2d")
        if feats and math.isfinite(flag):
            cases.setdefault("sub-optimal" if flag == 1.0 else "optimal", (r, feats))
    if not cases:
        return
    fig, axes = wide_figure(len(cases), figsize=(4.2 * len(cases), 3.8))
    for ax, (case, (r, feats)) in zip(axes, sorted(cases.items(), reverse=True)):
        test = np.asarray(feats["test"], float)
        ty = np.asarray(feats["test_labels"])
        noisy = np.asarray(feats["noisy"], float).reshape(-1, 2)
        ny = np.asarray(feats["noisy_true_labels"])
        for c, color in ((0, "tab:green"), (1, "tab:blue")):
            ax.scatter(*test[ty == c].T, s=6, color=color, alpha=0.6, label=f"test, class {c + 1}")
        for c, mk in ((0, "$1$"), (1, "$2$")):
            if (ny == c).any():
                ax.scatter(*noisy[ny == c].T, s=25, color="tab:red", marker=mk,
                           label=f"train, true {c + 1}, relabelled")
        ax.set_title(f"{case}: {r.axes.get('loss', '').upper()} η={r.axes.get('eta')} "
                     f"seed {r.axes.get('seed')}", fontsize=9)
        ax.set_xlabel("feature 1")
        ax.set_ylabel("feature 2")
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    sec.figures["features-2d"] = fig
    sec.captions["features-2d"] = (
        "Seed 001 Fig. 4: penultimate features at M = N = 2 of clean test samples (green, blue) "
        "and of relabelled training samples (red, digit = true class); a sub-optimal collapse "
        "(one centroid at the origin) beside an optimal one, one run of each found in the store.")
    if len(cases) == 1:
        only = next(iter(cases))
        sec.notes.append(f"Fig. 4 shows only the {only} case: no run of the other case is in "
                         "the store.")


def section(name, title, source, runs) -> Section:
    """The report section of ``md-label-noise``."""
    return md_section(name, title, source, runs)


DEVIATIONS = (
    SEED001_DEPTH,
    Deviation("optimiser", "App. A.1.1: SGD with Nesterov momentum 0.9, weight decay 1e-3, "
              "batch 512", "the same (nesterov=True, weight_decay=1e-3, batch_size=512)",
              "the authors' public code trains with plain momentum, weight decay 5e-4 and batch "
              "128 by default; nclab follows the text", ("paper",)),
    Deviation("noise levels", "η in the range [0.025, 0.4]",
              "η in {0.025, 0.05, 0.1, 0.2, 0.3, 0.4}", "the values inside the range are not "
              "listed", ("paper",)),
    Deviation("seeds", "ten seeds (Sec. 4.1, Fig. 1, 5-7 captions); \"5 times\" (A.1.1)",
              "ten seeds", "the main text and most captions say ten", ("paper",)),
    Deviation("feature dimension M", "Fig. 2 / Fig. 8: \"as the feature dimension M varies\", "
              "M > N for N in {5, 10}", "feature_dims = (None,) i.e. M = N; the M axis takes "
              "other values with --set feature_dims=none,16,64", "the values of M are not in "
              "the text", ("paper",)),
    quick_scale("MNIST-1D (4000 samples), N = 2, 4 x 256 BN MLP, 40 epochs, lr 0.05 "
                "x0.1 every 15, weight decay 5e-4, batch 128, η in {0.05, 0.1, 0.2, 0.3}, "
                "8 seeds (the sub-optimal M = N = 2 collapses are filtered; in the quick run of "
                "this version 68 of 128 runs collapsed, decided by the training seed rather than "
                "by η, leaving 3-4 seeds per cell), metrics tracked every 10 epochs (the "
                "figures use the last epoch)"),
)

EXPERIMENT = register(Experiment(
    name="md-label-noise",
    title="Dilation (sqrt NC1 test) against memorization under label noise, per loss",
    source="seed 000 Fig. 1/2; seed 001 App. A.1.1-A.1.2, Fig. 4-8",
    config=MDLabelNoise,
    stages=(Stage("main", f"{CELLS}:train_cell", AXES),),
    presets={
        "paper": {},
        "quick": {**TRAIN_QUICK, "datasets": ("mnist1d",), "classes": (2,),
                  "etas": (0.05, 0.1, 0.2, 0.3), "seeds": tuple(range(8)), "eval_every": 10},
        "tiny": {**TRAIN_TINY, "datasets": ("mnist1d",), "classes": (2,), "etas": (0.1,),
                 "losses": ("ce", "ls"), "seeds": (0,)},
    },
    requires=("nclab.train:train",),
    notes="Paper datasets need the files on disk (--set data_root=...).",
    section=f"{__name__}:section",
    deviations=DEVIATIONS,
))
