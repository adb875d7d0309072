"""Grid expansion: from a validated configuration to the cells of a stage, with stable keys.

A *cell* is one unit of work (one training run, one solver sweep). Its configuration is the
experiment configuration with every axis list replaced by one of its values; its key is

``"<axis>=<value>,...#<hash>"``

where the hash is the first 12 hex digits of the SHA-256 of the canonical JSON (sorted keys,
no spaces) of the stage name and the cell configuration. The key is therefore stable across
processes, Python versions and orderings of the overrides, and changes whenever anything that
affects the result changes (a different ``--set epochs=...`` gives new cells instead of
silently reusing old ones). Cost: O(product of the axis lengths) cells.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from nclab.errors import SpecError
from nclab.experiments.spec import Experiment, ExperimentConfig, Stage

__all__ = ["Cell", "expand_grid", "cell_key", "canonical_json"]


@dataclass(frozen=True)
class Cell:
    """One cell of a stage grid.

    Attributes
    ----------
    experiment, stage, key : str
    axes : dict
        The axis values of this cell, in axis order.
    config : dict
        The full configuration passed to the cell function (axes included, plus
        ``"inputs"`` for a stage that needs an upstream stage).
    """

    experiment: str
    stage: str
    key: str
    axes: Mapping[str, Any]
    config: Mapping[str, Any] = field(repr=False)


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace; floats in Python's shortest repr."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def cell_key(stage: str, axes: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """The stable key of a cell (see the module docstring)."""
    digest = hashlib.sha256(canonical_json({"stage": stage, "config": config}).encode())
    readable = ",".join(f"{k}={_short(v)}" for k, v in axes.items())
    prefix = f"{stage}:" if stage != "main" else ""
    return f"{prefix}{readable}#{digest.hexdigest()[:12]}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple, dict)):
        return canonical_json(value)
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def expand_grid(
    experiment: Experiment,
    config: ExperimentConfig,
    stage: Stage | str | None = None,
    *,
    inputs: Mapping[tuple, Mapping[str, Any]] | None = None,
) -> list[Cell]:
    """The cells of one stage of ``experiment`` under ``config``.

    Parameters
    ----------
    experiment : Experiment
    config : ExperimentConfig
        From :meth:`Experiment.resolve`.
    stage : Stage or str, optional
        Default: the first stage.
    inputs : mapping, optional
        For a stage with ``needs``: upstream results keyed by the tuple of the ``match``
        axis values; each cell gets its upstream's entry as ``config["inputs"]``.

    Returns
    -------
    list of Cell
        In the order of the Cartesian product of the axes (last axis fastest).

    Raises
    ------
    SpecError
        An axis list is empty, two cells would share a key, or an upstream result is missing.
    """
    if stage is None:
        stage = experiment.stages[0]
    elif isinstance(stage, str):
        stage = experiment.stage(stage)
    data = _jsonable(config.model_dump(mode="json"))
    axis_values = []
    for axis, source in stage.axes.items():
        values = data.get(source)
        if not isinstance(values, list) or not values:
            raise SpecError(
                f"experiment {experiment.name!r}: setting {source!r} (the {axis!r} axis) must "
                f"be a non-empty list; got {values!r}"
            )
        axis_values.append(values)
    base = {
        k: v for k, v in data.items() if k not in stage.axes.values() and k not in stage.drop
    }
    cells: list[Cell] = []
    seen: set[str] = set()
    for combo in itertools.product(*axis_values):
        axes = dict(zip(stage.axes, combo))
        cfg = {**base, **axes}
        if stage.needs is not None:
            match = tuple(axes[a] for a in stage.match)
            if inputs is None or match not in inputs:
                raise SpecError(
                    f"experiment {experiment.name!r}: stage {stage.name!r} needs the result of "
                    f"stage {stage.needs!r} for {dict(zip(stage.match, match))}; run it first"
                )
            cfg["inputs"] = _jsonable(dict(inputs[match]))
        key = cell_key(stage.name, axes, cfg)
        if key in seen:
            raise SpecError(
                f"experiment {experiment.name!r}: duplicate cell {key!r}; remove repeated "
                "values from the axis lists"
            )
        seen.add(key)
        cells.append(Cell(experiment.name, stage.name, key, axes, cfg))
    return cells
