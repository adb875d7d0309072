"""Experiment specs, presets, overrides and grid expansion."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import ValidationError

from nclab.errors import SpecError
from nclab.experiments import (cell_key, expand_grid, experiment_names, get_experiment,
                               parse_overrides, plan_experiment)

EXPECTED = {"md-label-noise", "md-latent-classes", "md-large-scale", "tpt-margins",
            "etf-permutations", "bn-weight-decay", "depthwise", "ufm-theory", "md-model",
            "synthetic-smoke", "depthwise-resnet"}


def test_registry_holds_every_experiment_of_the_issue():
    assert EXPECTED <= set(experiment_names())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_preset_validates_and_expands(name):
    exp = get_experiment(name)
    assert {"quick", "paper", "tiny"} <= set(exp.presets)
    for preset in exp.presets:
        cfg = exp.resolve(preset)
        with pytest.raises(ValidationError, match="frozen"):
            setattr(cfg, next(iter(type(cfg).model_fields)), None)
        cells = plan_experiment(exp, preset)
        assert len({c.key for c in cells}) == len(cells) > 0


def test_grid_is_the_cartesian_product_of_the_axes():
    exp = get_experiment("md-label-noise")
    cfg = exp.resolve("quick", {"etas": "0.1,0.2,0.3", "seeds": "0,1", "losses": "ce,ls"})
    assert len(expand_grid(exp, exp.resolve("quick"))) == 1 * 1 * 1 * 4 * 4 * 8
    cells = expand_grid(exp, cfg)
    want = list(itertools.product(("mnist1d",), (2,), (0.1, 0.2, 0.3), ("ce", "ls"), (0, 1)))
    got = [(c.axes["dataset"], c.axes["num_classes"], c.axes["eta"], c.axes["loss"],
            c.axes["seed"]) for c in cells]
    assert got == want
    for c in cells:  # axis values replace the lists; scalar settings pass through
        assert "etas" not in c.config and c.config["eta"] == c.axes["eta"]
        assert c.config["epochs"] == cfg.epochs and c.config["alpha"] == cfg.alpha


def test_cell_keys_are_stable_and_sensitive_to_every_setting():
    exp = get_experiment("md-label-noise")
    a = expand_grid(exp, exp.resolve("quick"))
    b = expand_grid(exp, exp.resolve("quick"))
    assert [c.key for c in a] == [c.key for c in b]
    # order of the overrides does not matter
    c1 = expand_grid(exp, exp.resolve("quick", {"epochs": "5", "lr": "0.01"}))
    c2 = expand_grid(exp, exp.resolve("quick", {"lr": "0.01", "epochs": "5"}))
    assert [c.key for c in c1] == [c.key for c in c2]
    # a non-axis setting changes every key; an extra axis value adds cells, keeps the old ones
    c3 = expand_grid(exp, exp.resolve("quick", {"epochs": "41"}))
    assert not {c.key for c in a} & {c.key for c in c3}
    c4 = expand_grid(exp, exp.resolve("quick", {"seeds": "0,1,2,3,4,5,6,7,8"}))
    assert {c.key for c in a} < {c.key for c in c4}
    # the key is a pure function of stage, axes and config (independent re-computation)
    cell = a[9]  # 8 seeds per (eta, loss), the last axis fastest
    assert cell.key == cell_key("main", dict(cell.axes), dict(cell.config))
    assert cell.key.startswith(
        "dataset=mnist1d,num_classes=2,feature_dim=None,eta=0.05,loss=ls,seed=1#")


@pytest.mark.parametrize("overrides, match", [
    ({"etas": "0.1,abc"}, r"etas\.1='abc'.*valid number"),
    ({"etas": "1.5"}, r"eta must lie in \[0, 1\] for symmetric noise; got 1\.5"),
    ({"etas": "0.6", "noise_kind": "latent"}, r"eta must lie in \[0, 0\.5\] for latent noise"),
    ({"losses": "ce,hinge"}, r"losses\.1='hinge'"),
    ({"epochs": "0"}, r"epochs='0'.*greater than or equal to 1"),
    ({"bogus": "1"}, r"unknown setting 'bogus'.*valid settings: .*etas"),
    ({"seeds": ""}, r"non-empty list"),
])
def test_bad_overrides_give_one_line_spec_errors(overrides, match):
    exp = get_experiment("md-label-noise")
    with pytest.raises(SpecError, match=match) as info:
        plan_experiment(exp, "quick", overrides)
    assert "\n" not in str(info.value)


def test_unknown_experiment_and_preset():
    with pytest.raises(SpecError, match="unknown experiment 'nope'; registered: .*md-model"):
        get_experiment("nope")
    with pytest.raises(SpecError, match="no preset 'huge'"):
        get_experiment("md-model").resolve("huge")


def test_parse_overrides():
    assert parse_overrides(["a=1", "b-c = x,y", "d="]) == {"a": "1", "b_c": "x,y", "d": ""}
    with pytest.raises(SpecError, match="key=value"):
        parse_overrides(["novalue"])


def test_override_coercion_lists_none_and_json():
    exp = get_experiment("md-label-noise")
    cfg = exp.resolve("quick", {"feature_dim": "none", "classes": "[2, 3]", "etas": "0.1",
                                "nesterov": "false"})
    assert cfg.feature_dim is None and cfg.classes == (2, 3) and cfg.etas == (0.1,)
    assert cfg.nesterov is False


def test_paper_presets_follow_the_sources():
    a1 = get_experiment("md-label-noise").resolve("paper")
    # seed 001 App. A.1.1: 9 hidden layers = 8 of width 2048 + the M = N feature layer
    assert (a1.depth, a1.width, a1.batch_norm, a1.activation) == (8, 2048, "affine", "relu")
    assert a1.feature_dims == (None,)
    assert (a1.lr, a1.lr_step, a1.lr_gamma, a1.momentum, a1.nesterov) == (0.1, 40, 0.1, 0.9, True)
    assert (a1.weight_decay, a1.batch_size, a1.epochs, a1.alpha) == (1e-3, 512, 200, 0.1)
    assert a1.classes == (2, 3, 5, 10) and a1.losses == ("ce", "ls", "lr", "mse")
    assert min(a1.etas) == 0.025 and max(a1.etas) == 0.4
    a2 = get_experiment("md-large-scale").resolve("paper")  # seed 001 App. A.2.1, Table 1
    assert a2.etas == (0.0, 0.1, 0.2, 0.3) and a2.archs == ("resnet18", "vgg13")
    assert (a2.tune_lr_min, a2.tune_lr_max, a2.tune_lr_gammas) == (1e-5, 0.5, (0.01, 0.1, 0.5))
    assert (a2.tune_alpha_min, a2.tune_alpha_max, a2.val_fraction, a2.tune_samples) == (
        0.01, 0.25, 0.2, 30)
    assert len(a2.seeds) == 3
    bn = get_experiment("bn-weight-decay").resolve("paper")  # seed 003 Sec. 3.1.1
    assert bn.weight_decays == (1e-4, 3e-4, 5e-4, 1e-3, 3e-3, 7e-3, 1e-2)
    assert (bn.depth, bn.lr, bn.momentum, bn.batch_size, bn.epochs, bn.num_samples) == (
        4, 0.0679, 0.9, 128, 300, 10000)  # "6-layer": 4 blocks + feature layer + head
    assert bn.datasets == ("teacher", "conic_hull")
    dw = get_experiment("depthwise").resolve("paper")  # seed 003 Sec. 3.2.1: 15 layers
    assert dw.depth + 2 == 15 and dw.batch_norm == "affine"
    assert dw.datasets == ("teacher", "conic_hull")
    etf = get_experiment("etf-permutations").resolve("paper")  # seed 002 Sec. 5.2
    assert len(etf.transform_seeds) == 10 and set(etf.transforms) == {"permute", "rotate"}


def test_multi_stage_grid_needs_upstream_results():
    exp = get_experiment("md-large-scale")
    cfg = exp.resolve("quick")
    tune = expand_grid(exp, cfg, "tune")
    assert [c.axes for c in tune] == [{"dataset": "mnist1d", "arch": "mlp", "loss": "ce"},
                                      {"dataset": "mnist1d", "arch": "mlp", "loss": "ls"}]
    assert all("etas" not in c.config and "seeds" not in c.config for c in tune)
    with pytest.raises(SpecError, match="needs the result of stage 'tune'"):
        expand_grid(exp, cfg, "main")
    inputs = {("mnist1d", "mlp", "ce"): {"best": {"lr": 0.05}},
              ("mnist1d", "mlp", "ls"): {"best": {"lr": 0.02, "alpha": 0.1}}}
    main = expand_grid(exp, cfg, "main", inputs=inputs)
    assert len(main) == len(cfg.etas) * 2 * len(cfg.seeds) == 16
    for c in main:
        assert c.config["inputs"] == inputs[("mnist1d", "mlp", c.axes["loss"])]
        assert "tune_samples" not in c.config
    other = expand_grid(exp, cfg, "main", inputs={k: {"best": {"lr": 0.5}} for k in inputs})
    assert not {c.key for c in main} & {c.key for c in other}


def test_axes_values_survive_json_round_trip_exactly():
    exp = get_experiment("synthetic-smoke")
    for c in expand_grid(exp, exp.resolve("paper")):
        assert isinstance(c.axes["lr"], float) and not math.isnan(c.axes["lr"])
