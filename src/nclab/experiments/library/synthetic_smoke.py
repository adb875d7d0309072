"""``synthetic-smoke``: gradient descent on least squares (not from a source; a pipeline test).

Cell: :func:`nclab.experiments.synthetic.least_squares_gd`. Report: the distance to the
least-squares solution over epochs, and the closed form of the GD error checked on every run.
"""

from __future__ import annotations

import math
from typing import Annotated

from pydantic import Field

from nclab.experiments.library._common import NonNegFloat, PosInt, Seed
from nclab.experiments.spec import Experiment, ExperimentConfig, Stage, register
from nclab.report import figures as F
from nclab.report.sections import Claim, generic_section, series


class SyntheticSmoke(ExperimentConfig):
    """Least squares by gradient descent (see :mod:`nclab.experiments.synthetic`)."""

    n_train: PosInt = 200
    n_test: PosInt = 200
    dim: PosInt = 10
    noise: NonNegFloat = 0.1  # regression noise sigma (not a label-noise rate)
    lrs: tuple[Annotated[float, Field(gt=0.0)], ...] = (0.05, 0.2, 0.5, 1.5)
    seeds: tuple[Seed, ...] = (0, 1, 2)
    epochs: PosInt = 60
    epoch_delay_s: NonNegFloat = 0.0


def section(name, title, source, runs):
    """Convergence curves, and the closed-form error ``(I - ηG)^T (w_0 - ŵ)`` on every run."""
    sec = generic_section(name, title, source, runs)
    if not runs:
        return sec
    fig, ax = F.new_axes()
    curves, epochs = {}, []
    seed0 = runs[0].axes.get("seed")
    for r in sorted(runs, key=lambda r: (r.axes.get("lr"), r.axes.get("seed"))):
        if r.axes.get("seed") != seed0:
            continue
        epochs, d = series(r, "dist_to_opt")
        curves[f"lr={r.axes.get('lr')}"] = d
    F.plot_curves(epochs, curves, xlabel="epoch", ylabel=r"$\|w_t - \hat w\|$", logy=True,
                  title=f"seed {seed0}", ax=ax)
    sec.figures["convergence"] = fig
    sec.captions["convergence"] = "Distance to the least-squares solution over epochs."
    # relative error, floored at 1e-9 of the initial distance (float64 round-off)
    errs = [abs(r.get("dist_to_opt") - r.get("dist_predicted"))
            / max(r.get("dist_predicted"), 1e-9 * r.get("dist_initial")) for r in runs]
    conv = [(r.get("lr_times_L") < 2.0, r.get("dist_to_opt") < r.history[0]["dist_to_opt"]
             if r.history else False) for r in runs]
    agree = sum(1 for a, b in conv if a == b)
    worst = max(errs) if errs else math.nan
    ok = bool(errs) and worst < 1e-6 and agree == len(runs)
    sec.claims.append(Claim(
        "Gradient descent on a quadratic follows w_T − ŵ = (I − ηG)^T (w_0 − ŵ): it contracts "
        "by max_i |1 − ηλ_i| per step and converges iff η < 2/L.",
        "textbook (convex optimisation)",
        f"Across {len(runs)} runs the final distance to the least-squares solution matches the "
        f"closed form to a relative error of at most {worst:.1e}, and {agree}/{len(runs)} runs "
        f"converge exactly when ηL < 2; the claim is {'supported' if ok else 'not supported'} "
        "(rule: relative error < 1e-6 and every run agrees).",
        ok, "convergence"))
    return sec


EXPERIMENT = register(Experiment(
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
    section=f"{__name__}:section",
))
