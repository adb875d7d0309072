"""Statistics behind the report's verdicts: line fits, slope comparisons, grouped means.

Everything here is a pure function of arrays or of plain run data; nothing reads the store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "RunData",
    "LineFit",
    "fit_line",
    "slope_z",
    "group_runs",
    "mean_std",
    "format_mean_std",
    "spearman",
]


@dataclass(frozen=True)
class RunData:
    """One finished run as the report sees it (decoded from the store by the builder)."""

    cell_key: str
    stage: str
    axes: Mapping[str, Any]
    config: Mapping[str, Any]
    final: Mapping[str, float]
    history: Sequence[Mapping[str, float]] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: float = math.nan) -> float:
        """A final metric, NaN when absent."""
        v = self.final.get(name, default)
        return default if v is None else float(v)


@dataclass(frozen=True)
class LineFit:
    r"""Ordinary least-squares line :math:`y = a + b x`.

    Attributes
    ----------
    slope, intercept : float
    slope_se : float
        Standard error of the slope, :math:`\sqrt{\hat\sigma^2 / S_{xx}}` with
        :math:`\hat\sigma^2 = \mathrm{RSS}/(n-2)` (NaN when n < 3).
    r2 : float
        Coefficient of determination (NaN when y is constant).
    n : int
    """

    slope: float
    intercept: float
    slope_se: float
    r2: float
    n: int


def fit_line(x: Sequence[float], y: Sequence[float]) -> LineFit:
    r"""Least-squares line through the finite points :math:`(x_i, y_i)`.

    .. math:: b = \frac{\sum (x_i - \bar x)(y_i - \bar y)}{\sum (x_i - \bar x)^2},
              \qquad a = \bar y - b \bar x.

    Parameters
    ----------
    x, y : array-like of shape (n,)

    Returns
    -------
    LineFit
        All NaN when fewer than two finite points or when x is constant.

    Examples
    --------
    >>> fit_line([0, 1, 2], [1, 3, 5]).slope
    2.0
    """
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    n = int(xa.size)
    if n < 2:
        return LineFit(math.nan, math.nan, math.nan, math.nan, n)
    xm, ym = xa.mean(), ya.mean()
    sxx = float(((xa - xm) ** 2).sum())
    if sxx == 0.0:
        return LineFit(math.nan, math.nan, math.nan, math.nan, n)
    b = float(((xa - xm) * (ya - ym)).sum() / sxx)
    a = float(ym - b * xm)
    rss = float(((ya - a - b * xa) ** 2).sum())
    tss = float(((ya - ym) ** 2).sum())
    se = math.sqrt(rss / (n - 2) / sxx) if n > 2 else math.nan
    r2 = 1.0 - rss / tss if tss > 0 else math.nan
    return LineFit(b, a, se, r2, n)


def slope_z(f1: LineFit, f2: LineFit) -> float:
    r"""Difference of two fitted slopes in units of its standard error,
    :math:`|b_1 - b_2| / \sqrt{se_1^2 + se_2^2}` (NaN when an error is unknown)."""
    den = math.hypot(f1.slope_se, f2.slope_se)
    if not math.isfinite(den) or den == 0.0:
        return math.nan
    return abs(f1.slope - f2.slope) / den


def group_runs(
    runs: Iterable[RunData], keys: Sequence[str]
) -> dict[tuple, list[RunData]]:
    """Runs grouped by the values of ``keys`` (axes first, then config), insertion-ordered."""
    out: dict[tuple, list[RunData]] = {}
    for run in runs:
        k = tuple(run.axes.get(key, run.config.get(key)) for key in keys)
        out.setdefault(k, []).append(run)
    return out


def mean_std(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; 0 for one value) and count of the finite values."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def format_mean_std(values: Iterable[float], *, scale: float = 1.0, digits: int = 3) -> str:
    """``"m ± s"`` over seeds (``"m"`` for one value, ``"-"`` for none)."""
    m, s, n = mean_std(values)
    if n == 0:
        return "-"
    if n == 1:
        return f"{m * scale:.{digits}g}"
    return f"{m * scale:.{digits}g} ± {s * scale:.2g}"


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation of the finite pairs (NaN when undefined)."""
    from scipy.stats import spearmanr

    xa = np.asarray(x, dtype=float)
    ya = np.asarray(y, dtype=float)
    ok = np.isfinite(xa) & np.isfinite(ya)
    if ok.sum() < 3 or np.ptp(xa[ok]) == 0 or np.ptp(ya[ok]) == 0:
        return math.nan
    return float(spearmanr(xa[ok], ya[ok]).statistic)


def fraction(pred: Callable[[Any], bool], items: Iterable[Any]) -> tuple[int, int]:
    """``(number of items satisfying pred, number of items)``."""
    items = list(items)
    return sum(1 for i in items if pred(i)), len(items)
