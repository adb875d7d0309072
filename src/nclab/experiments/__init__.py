"""Declarative experiments, grid expansion and resumable runners (local pool or Ray).

Each figure or table of the sources is a registered :class:`Experiment` with a validated
configuration (``quick``, ``paper`` and ``tiny`` presets, ``--set key=value`` overrides).
:func:`run_experiment` expands its grid into cells with stable keys, runs the cells that the
results store does not hold yet, and writes each result in one transaction.

>>> from nclab.experiments import get_experiment, expand_grid
>>> exp = get_experiment("synthetic-smoke")
>>> len(expand_grid(exp, exp.resolve("tiny")))
2
"""

from nclab.experiments.grid import Cell, cell_key, expand_grid
from nclab.experiments.runner import (BACKENDS, CellContext, CellResult, SweepSummary,
                                      execute_cell, plan_experiment, run_experiment)
from nclab.experiments.spec import (PRESETS, Deviation, Experiment, ExperimentConfig, Stage,
                                    describe_for_report, experiment_names, get_experiment,
                                    parse_overrides, register)

__all__ = [
    "BACKENDS",
    "PRESETS",
    "Cell",
    "CellContext",
    "Deviation",
    "CellResult",
    "Experiment",
    "ExperimentConfig",
    "Stage",
    "SweepSummary",
    "cell_key",
    "describe_for_report",
    "execute_cell",
    "expand_grid",
    "experiment_names",
    "get_experiment",
    "parse_overrides",
    "plan_experiment",
    "register",
    "run_experiment",
]
