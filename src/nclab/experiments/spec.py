"""Declarative experiment specifications: validated configs, presets, overrides, a registry.

An :class:`Experiment` names one figure or table of the sources. Its configuration is a frozen
pydantic model (a subclass of :class:`ExperimentConfig`); its *presets* (``quick``, ``paper``,
``tiny``) are partial dictionaries applied on top of the model's defaults; ``--set key=value``
overrides are applied last and validated by the same model, so a bad value gives a one-line
:class:`~nclab.errors.SpecError` that names the setting, the rule and the value.

The grid of an experiment is declared by its :class:`Stage` objects: ``axes`` maps a cell
field to the config field holding the list of its values (``{"eta": "etas", "seed":
"seeds"}``); the grid is the Cartesian product of those lists, in declaration order.
A stage may need an earlier stage (``needs="tune"``): its cells then receive, as
``config["inputs"]``, the ``extras["downstream"]`` (or, without that entry, all ``extras``) of
the upstream cell whose axis values (``match``) agree.

Cell functions are referenced by dotted path (``"nclab.experiments.cells:md_label_noise"``)
so that a spec never imports torch or the science libraries; they are imported in the worker
that runs the cell.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from nclab.errors import SpecError

__all__ = [
    "ExperimentConfig",
    "Stage",
    "Deviation",
    "Experiment",
    "register",
    "get_experiment",
    "experiment_names",
    "parse_overrides",
    "describe_for_report",
    "PRESETS",
]

PRESETS = ("quick", "paper", "tiny")


class ExperimentConfig(BaseModel):
    """Base class of every experiment configuration: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


@dataclass(frozen=True)
class Stage:
    """One grid of cells of an experiment.

    Parameters
    ----------
    name : str
        Stage name (``"main"`` for single-stage experiments), stored with each run.
    fn : str
        Dotted path ``"module:function"`` of the cell function
        ``fn(config: dict, ctx: CellContext) -> CellResult``.
    axes : mapping of str to str
        Cell field -> config field holding the list of values of that axis.
    needs : str or None
        Name of an earlier stage whose results this stage's cells receive in ``ctx.inputs``.
    match : tuple of str
        The axes on which a cell and its upstream cell must agree.
    drop : tuple of str
        Config fields not passed to this stage's cells (other stages' settings).
    cpus : float, default=1.0
        CPUs a cell of this stage reserves on the Ray backend (a cell that only coordinates
        other Ray work, such as a Ray Tune search, reserves a sliver so its trials can run).
    """

    name: str
    fn: str
    axes: Mapping[str, str]
    needs: str | None = None
    match: tuple[str, ...] = ()
    drop: tuple[str, ...] = ()
    cpus: float = 1.0

    def load(self) -> Callable:
        """Import and return the cell function."""
        module, _, attr = self.fn.partition(":")
        return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Deviation:
    """One place where a preset differs from its source, with the reason.

    The report's table "the source says / nclab does / why" is generated from these, so a
    deviation is written once, next to the setting it concerns.

    Parameters
    ----------
    topic : str
        What it concerns (``"network depth"``, ``"weight decay"``).
    source : str
        What the source says (quote or paraphrase, with the place).
    nclab : str
        What nclab does instead.
    why : str
        The reason.
    presets : tuple of str, default=("paper", "quick", "tiny")
        The presets it applies to.
    """

    topic: str
    source: str
    nclab: str
    why: str
    presets: tuple[str, ...] = ("paper", "quick", "tiny")


@dataclass(frozen=True)
class Experiment:
    """A named, declarative experiment: one figure or table of the sources.

    Parameters
    ----------
    name : str
        Registry name, e.g. ``"md-label-noise"``.
    title : str
        One-line description.
    source : str
        What it reproduces, e.g. ``"seed 000 Fig. 1/2; seed 001 Fig. 5-8"``.
    config : type of ExperimentConfig
        The pydantic model of its settings (defaults = the paper's settings).
    stages : tuple of Stage
        Its grids, run in order.
    presets : mapping of str to mapping
        Partial settings per preset (``quick``, ``paper``, ``tiny``).
    requires : tuple of str
        Modules the cell functions import (``"nclab.train"``); :meth:`missing` lists the
        ones not installed.
    notes : str
        A short note shown under the section title.
    section : str or None
        Dotted path ``"module:function"`` of the report section builder
        ``fn(name, title, source, runs) -> Section``; None: the generic tables.
    deviations : tuple of Deviation
        Every place a preset differs from the source (the report's deviations table).
    """

    name: str
    title: str
    source: str
    config: type[ExperimentConfig]
    stages: tuple[Stage, ...]
    presets: Mapping[str, Mapping[str, Any]]
    requires: tuple[str, ...] = ()
    notes: str = ""
    section: str | None = None
    deviations: tuple[Deviation, ...] = ()
    _hidden: bool = field(default=False, repr=False)

    def section_builder(self) -> Callable | None:
        """Import and return the report section builder (None without one)."""
        if self.section is None:
            return None
        module, _, attr = self.section.partition(":")
        return getattr(importlib.import_module(module), attr)

    def deviations_for(self, preset: str) -> list[Deviation]:
        """The deviations that apply to ``preset``."""
        return [d for d in self.deviations if preset in d.presets]

    def resolve(
        self, preset: str = "quick", overrides: Mapping[str, Any] | None = None
    ) -> ExperimentConfig:
        """The validated configuration of ``preset`` with ``overrides`` applied.

        Raises
        ------
        SpecError
            Unknown preset, unknown setting, or a value that breaks a constraint.
        """
        if preset not in self.presets:
            raise SpecError(
                f"experiment {self.name!r} has no preset {preset!r}; choose one of "
                f"{', '.join(sorted(self.presets))}"
            )
        values = dict(self.presets[preset])
        fields = self.config.model_fields
        for key, value in (overrides or {}).items():
            if key not in fields:
                raise SpecError(
                    f"unknown setting {key!r} for experiment {self.name!r}; valid settings: "
                    f"{', '.join(fields)}"
                )
            values[key] = _coerce_override(value, fields[key].annotation)
        try:
            return self.config(**values)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            given = err.get("input")
            raise SpecError(
                f"invalid setting {loc}={given!r} for experiment {self.name!r}: {err['msg']}"
            ) from None

    def missing(self) -> list[str]:
        """The required modules (``"pkg.mod"`` or ``"pkg.mod:attr"``) that cannot be imported
        here, or that lack the attribute (empty when runnable)."""
        out = []
        for req in self.requires:
            mod, _, attr = req.partition(":")
            try:
                found = importlib.util.find_spec(mod) is not None
                if found and attr:
                    found = hasattr(importlib.import_module(mod), attr)
            except Exception:  # a half-written module counts as missing
                found = False
            if not found:
                out.append(req)
        return out

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        for st in self.stages:
            if st.name == name:
                return st
        raise SpecError(f"experiment {self.name!r} has no stage {name!r}")


_REGISTRY: dict[str, Experiment] = {}


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (checking that every preset validates)."""
    if experiment.name in _REGISTRY:
        raise SpecError(f"experiment {experiment.name!r} is already registered")
    for preset in experiment.presets:
        experiment.resolve(preset)
    for dev in experiment.deviations:
        unknown = set(dev.presets) - set(experiment.presets)
        if unknown:
            raise SpecError(f"deviation {dev.topic!r} of {experiment.name!r} names unknown "
                            f"presets {sorted(unknown)}")
    names = {s.name for s in experiment.stages}
    for st in experiment.stages:
        if st.needs is not None and st.needs not in names:
            raise SpecError(f"stage {st.name!r} of {experiment.name!r} needs unknown stage")
    _REGISTRY[experiment.name] = experiment
    return experiment


def _ensure_loaded() -> None:
    importlib.import_module("nclab.experiments.library")


def get_experiment(name: str) -> Experiment:
    """The registered experiment called ``name``.

    Raises
    ------
    SpecError
        No such experiment; the message lists the registered names.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"unknown experiment {name!r}; registered: {', '.join(experiment_names())}"
        ) from None


def experiment_names(*, include_hidden: bool = True) -> list[str]:
    """Names of the registered experiments, in registration order."""
    _ensure_loaded()
    return [n for n, e in _REGISTRY.items() if include_hidden or not e._hidden]


def parse_overrides(items: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """Parse ``["key=value", ...]`` (the ``--set`` options) into a dict of raw strings.

    Raises
    ------
    SpecError
        An item without ``=`` or with an empty key.
    """
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise SpecError(f"--set expects key=value; got {item!r}")
        out[key] = value.strip()
    return out


def _coerce_override(value: Any, annotation: Any) -> Any:
    """Turn a ``--set`` string into what the field expects (lists split on commas)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.lower() in ("none", "null"):
        return None
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    if _is_sequence(annotation):
        inner = text.strip("()[]")
        items = [v.strip() for v in inner.split(",") if v.strip()] if inner else []
        return [None if v.lower() in ("none", "null") else v for v in items]
    return text


def _is_sequence(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (tuple, list):
        return True
    return any(_is_sequence(a) for a in get_args(annotation) if a is not type(None))


def describe_for_report(name: str, preset: str = "quick"):
    """The :class:`nclab.report.SectionInfo` of experiment ``name`` under ``preset``: title,
    source, its section builder and its deviations (what ``build_report(describe=...)`` takes).
    An unregistered name (a store written by another version) gets the generic section."""
    from nclab.report import SectionInfo

    try:
        exp = get_experiment(name)
    except SpecError:
        return SectionInfo(name)
    return SectionInfo(exp.title, exp.source, exp.section_builder(),
                       [(d.topic, d.source, d.nclab, d.why) for d in exp.deviations_for(preset)])
