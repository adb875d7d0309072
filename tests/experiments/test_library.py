"""One experiment, one place: each registered experiment is one module holding its spec,
presets, deviations and report section."""

from __future__ import annotations

import importlib
import inspect

import pytest

from nclab.experiments import Deviation, experiment_names, get_experiment, plan_experiment

NAMES = experiment_names()


@pytest.mark.parametrize("name", NAMES)
def test_each_experiment_is_one_module(name):
    exp = get_experiment(name)
    module = importlib.import_module(exp.section.partition(":")[0])
    assert module.EXPERIMENT is exp  # registered in the module that holds its section
    assert callable(exp.section_builder())
    assert module.__name__.rsplit(".", 1)[-1] == name.replace("-", "_")
    assert inspect.getmodule(exp.config) is module or exp.config.__module__.startswith(
        "nclab.experiments.library")
    for st in exp.stages:  # cell functions stay shared (nclab.experiments.cells / synthetic)
        assert callable(st.load())


@pytest.mark.parametrize("name", NAMES)
def test_deviations_are_complete_rows(name):
    exp = get_experiment(name)
    for d in exp.deviations:
        assert isinstance(d, Deviation)
        assert all(s.strip() for s in (d.topic, d.source, d.nclab, d.why))
        assert set(d.presets) <= set(exp.presets)
    if name != "synthetic-smoke":
        assert exp.deviations, f"{name}: every source experiment states its deviations"


def test_deviations_of_the_issue_are_listed():
    def topics(name, preset="paper"):
        return " ".join(f"{d.topic} {d.source} {d.nclab}" for d in
                        get_experiment(name).deviations_for(preset))

    assert "MLP depth" in topics("md-label-noise") and "authors' public code" in " ".join(
        d.why for d in get_experiment("md-label-noise").deviations)
    assert "Nesterov" in topics("md-label-noise")
    assert "weight decay" in topics("md-large-scale")
    assert "layer count" in topics("bn-weight-decay") and "teacher" in topics("depthwise")
    for name in ("tpt-margins", "etf-permutations"):  # seed 002 Sec. 5's networks and data
        cfg = get_experiment(name).resolve("paper")
        assert set(cfg.archs) == {"vgg11", "resnet32", "densenet121"}
        assert set(cfg.datasets) == {"cifar10", "cifar100"}
    for name in NAMES:
        exp = get_experiment(name)
        if name not in ("synthetic-smoke", "ufm-theory", "md-model"):
            assert exp.deviations_for("quick"), f"{name}: the quick scale-down is a deviation"


def test_no_extra_feature_block_on_the_etf_paper_network():
    """Seed 002's ResNet18 has no Linear-BN-ReLU(512) block before the fixed ETF head."""
    from nclab.experiments.cells import train_config

    cell = plan_experiment("etf-permutations", "paper", {"data_root": "/d"})[0]
    assert cell.config["feature_dim"] is None
    assert train_config(cell.config).net.penultimate_width is None


def test_new_axes_and_data_sets():
    # M is an axis of the md experiments; conic hull is the second data set of seed 003
    cells = plan_experiment("md-label-noise", "quick", {"feature_dims": "none,8"})
    assert {c.axes["feature_dim"] for c in cells} == {None, 8}
    for name in ("bn-weight-decay", "depthwise"):
        assert {c.axes["dataset"] for c in plan_experiment(name, "quick")
                if c.stage == "main"} == {
            "teacher", "conic_hull"}
    # depthwise-resnet: loss and bias are axes; per-layer metrics are on
    cells = plan_experiment("depthwise-resnet", "paper", {"data_root": "/d"})
    main = [c for c in cells if c.stage == "main"]
    assert {(c.axes["loss"], c.axes["bias"]) for c in main} >= {("mse", False), ("ce", True)}
    assert all(c.config["layer_metrics"] and c.config["arch"] == "resnet18" for c in main)
    assert {c.axes["dataset"] for c in main} == {"mnist", "cifar10"}
    # tpt-margins records the margin-bound terms every epoch
    from nclab.experiments.cells import train_config

    assert train_config(plan_experiment("tpt-margins", "quick")[0].config).margin_bounds


def test_spec_value_lists_match_the_libraries():
    import typing

    from nclab.data.registry import DATASETS
    from nclab.experiments.library._common import Arch, Dataset
    from nclab.nets.spec import ARCHS

    assert set(typing.get_args(Arch)) == set(ARCHS)
    assert set(typing.get_args(Dataset)) <= set(DATASETS)
