r"""What the CE / LS closed forms of :mod:`nclab.theory.positive` and :mod:`nclab.theory.softmax_ufm` share.

Both derivations (``docs/theory.md`` §1 and §2b) reduce the problem, by Jensen, Cauchy–Schwarz and
AM–GM, to one scalar problem in the logit gap :math:`u = \langle w_n - w_m, h_n\rangle \ge 0`,

.. math:: \min_{u \ge 0}\; \log\bigl(1 + (N-1)e^{-u}\bigr) + \gamma u ,

with N classes and a constant :math:`\gamma > 0` that differs between the two models. It is convex,
with minimiser :math:`u = \log((N-1)(1-\gamma)/\gamma)` when :math:`\gamma < \tfrac{N-1}{N}`, else
:math:`u = 0` (value :math:`\log N`, the minimiser W = H = 0). Both models also take the same
arguments (N, K per class, two weight decays, label smoothing alpha) and check them alike.
"""

from __future__ import annotations

import math

from nclab.errors import SpecError

__all__: list[str] = []


def _check_ce_ufm_args(
    num_classes, num_per_class, lambda_w, lambda_h, alpha, *, names: tuple[str, str] = ("num_classes", "num_per_class")
) -> None:
    """Raise SpecError unless N >= 2 and K >= 1 are ints, the decays finite > 0, alpha in [0, 1).

    ``names`` are how the messages call N and K (e.g. ``"num_classes (N)"``). O(1).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise SpecError(f"{names[0]} must be an integer >= 2; got {num_classes!r}.")
    if isinstance(num_per_class, bool) or not isinstance(num_per_class, int) or num_per_class < 1:
        raise SpecError(f"{names[1]} must be an integer >= 1; got {num_per_class!r}.")
    for name, v in (("lambda_w", lambda_w), ("lambda_h", lambda_h)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise SpecError(f"{name} must be a finite number > 0; got {v!r}.")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha < 1.0):
        raise SpecError(f"alpha must lie in [0, 1); got {alpha!r}.")


def _logit_gap(num_classes: int, gamma: float) -> tuple[bool, float, float]:
    r"""Solve :math:`\min_{u \ge 0} \log(1 + (N-1)e^{-u}) + \gamma u`: ``(nonzero, u, value)``.

    ``nonzero`` is :math:`\gamma < \tfrac{N-1}{N}`; then :math:`u = \log((N-1)(1-\gamma)/\gamma)`,
    else ``(False, 0.0, log N)``. O(1).
    """
    n = num_classes
    if gamma >= (n - 1) / n:
        return False, 0.0, math.log(n)
    u = math.log((n - 1) * (1.0 - gamma) / gamma)
    return True, u, math.log1p((n - 1) * math.exp(-u)) + gamma * u
