"""The registered experiments: one module per figure or table of the sources.

Each module holds one experiment whole: its configuration model (defaults = the source's own
settings, the ``paper`` preset), its ``quick`` and ``tiny`` presets, its deviations from the
source (:class:`~nclab.experiments.spec.Deviation`, listed in the report's table), its report
section (figures and claims with verdicts) and its registration. The shared parts are in
:mod:`._common` (value types, training settings) and :mod:`nclab.experiments.cells` (the cell
functions). Adding an experiment is adding a module here and one import below.

Sources (``/work/shared/seeds``): seed 000/001 Nguyen et al., Memorization-Dilation (ICLR
2023) with appendices; seed 002 "Towards demystifying the generalization behaviors when
neural collapse emerges"; seed 003 Pan, MS thesis (2023), Ch. 2-3; seed 004 Tirer & Bruna,
Extended UFM (ICML 2022).
"""

from nclab.experiments.library import (  # noqa: F401 - registration order = report order
    synthetic_smoke,
    md_label_noise,
    md_latent_classes,
    md_large_scale,
    tpt_margins,
    etf_permutations,
    bn_weight_decay,
    depthwise,
    depthwise_resnet,
    ufm_theory,
    md_model,
)
from nclab.experiments.library._common import TrainSettings

__all__ = ["TrainSettings"]
