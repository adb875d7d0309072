"""Unconstrained-features models, their solvers and the closed-form predictions beside them.

>>> from nclab.ufm import UFMProblem, solve, predict
>>> p = UFMProblem("plain", loss="mse", num_classes=4, per_class=5, dim=8, lambda_w=5e-3, lambda_h=5e-3)
>>> r = solve(p)                         # fast float64 solver, relative gradient norm <= 1e-10
>>> abs(r.objective - predict(p)["objective"]) < 1e-10
True
"""

from nclab.ufm.predict import predict
from nclab.ufm.problems import BIASES, MODELS, UFMProblem
from nclab.ufm.solvers import HistoryRecord, SolveResult, objective_and_gradient, solution_metrics, solve

__all__ = [
    "MODELS",
    "BIASES",
    "UFMProblem",
    "SolveResult",
    "HistoryRecord",
    "solve",
    "objective_and_gradient",
    "solution_metrics",
    "predict",
]
