"""``md-latent-classes``: dilation against memorization with latent noise classes.

Source: seed 001 App. A.1.3, Fig. 9: a fraction eta of each of the N = 2 classes becomes a new
latent class (2N outputs), with d = N = 2. Cell: :func:`nclab.experiments.cells.train_cell`;
report: the ``md-label-noise`` section (:func:`~.md_label_noise.md_section`).
"""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field

from nclab.experiments.library._common import (CELLS, quick_scale, SEED001_DEPTH, TRAIN_QUICK,
                                               TRAIN_TINY, Dataset, Eta, NoiseKind, PosInt,
                                               Seed)
from nclab.experiments.library.md_label_noise import AXES, MDLabelNoise, md_section
from nclab.experiments.spec import Deviation, Experiment, Stage, register

__all__ = ["MDLatentClasses", "section"]


class MDLatentClasses(MDLabelNoise):
    """Seed 001 App. A.1.3, Fig. 9: a fraction eta of each class becomes a latent class."""

    datasets: tuple[Dataset, ...] = ("mnist", "cifar10")
    classes: tuple[Annotated[int, Field(ge=2)], ...] = (2,)
    etas: tuple[Eta, ...] = (0.025, 0.05, 0.1, 0.15, 0.2)  # range [0.025, 0.2] in source
    seeds: tuple[Seed, ...] = tuple(range(5))
    feature_dims: tuple[Optional[PosInt], ...] = (2,)  # "we keep d = N = 2"
    noise_kind: NoiseKind = "latent"


def section(name, title, source, runs):
    """The report section of ``md-latent-classes``."""
    return md_section(name, title, source, runs, latent=True)


EXPERIMENT = register(Experiment(
    name="md-latent-classes",
    title="Dilation against memorization with latent noise classes",
    source="seed 001 App. A.1.3, Fig. 9",
    config=MDLatentClasses,
    stages=(Stage("main", f"{CELLS}:train_cell", AXES),),
    presets={
        "paper": {},
        "quick": {**TRAIN_QUICK, "datasets": ("mnist1d",), "etas": (0.05, 0.1, 0.2),
                  "losses": ("ce", "ls"), "seeds": (0, 1, 2)},
        "tiny": {**TRAIN_TINY, "datasets": ("mnist1d",), "etas": (0.1,), "losses": ("ce",),
                 "seeds": (0,)},
    },
    requires=("nclab.train:train",),
    section=f"{__name__}:section",
    deviations=(
        SEED001_DEPTH,
        Deviation("noise levels", "η in the range [0.025, 0.2]",
                  "η in {0.025, 0.05, 0.1, 0.15, 0.2}", "the values inside the range are not "
                  "listed", ("paper",)),
        quick_scale("MNIST-1D (4000 samples), 4 x 256 BN MLP, 40 epochs, CE and LS, "
                    "η in {0.05, 0.1, 0.2}, 3 seeds"),
    ),
))
