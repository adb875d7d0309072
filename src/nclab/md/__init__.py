"""The memorization-dilation (MD) model of Nguyen et al. (ICLR 2023), seed 000 Sec. 4.2.

See ``docs/md_model.md`` for the model, the derivations and the corrections of the sources.
"""

from nclab.md.model import MDComparison, MDResult, compare_ce_ls, md_objective, solve_md
from nclab.md.sweep import MDSweep, MDSweepPoint, md_sweep, plot_md_sweep, plot_theorem_check
from nclab.md.theorem import Assumption42, assumption_4_2, dilation_lower_bounds
from nclab.md._dist import DISTRIBUTIONS

__all__ = [
    "DISTRIBUTIONS",
    "MDResult",
    "MDComparison",
    "solve_md",
    "compare_ce_ls",
    "md_objective",
    "Assumption42",
    "assumption_4_2",
    "dilation_lower_bounds",
    "MDSweep",
    "MDSweepPoint",
    "md_sweep",
    "plot_md_sweep",
    "plot_theorem_check",
]
