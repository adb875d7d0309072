"""nclab.experiments.search: the Ray Tune + Optuna search of seed 001 App. A.2.1 (space conversion,
samplers, Hyperband), and a toy search driven through the searcher's own interface."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("ray.tune")
optuna = pytest.importorskip("optuna")

from nclab.errors import SpecError  # noqa: E402
from nclab.experiments.search import SEARCHERS, hyperband, make_searcher, tune_space  # noqa: E402

SPACE = {"lr": ("loguniform", 1e-5, 0.5), "lr_gamma": ("choice", [0.01, 0.1, 0.5]),
         "alpha": ("uniform", 0.01, 0.25)}


def test_tune_space_domains_sample_the_declared_distributions():
    from ray.tune.search.sample import Categorical, Float

    d = tune_space(SPACE)
    assert isinstance(d["lr"], Float) and isinstance(d["alpha"], Float)
    assert isinstance(d["lr_gamma"], Categorical) and list(d["lr_gamma"].categories) == [0.01, 0.1, 0.5]
    rng = np.random.default_rng(0)
    lr = np.array(d["lr"].sample(size=4000, random_state=rng))
    alpha = np.array(d["alpha"].sample(size=4000, random_state=rng))
    assert lr.min() >= 1e-5 and lr.max() <= 0.5 and alpha.min() >= 0.01 and alpha.max() <= 0.25
    # log-uniform: log(lr) uniform on [log 1e-5, log 0.5] (mean and quartiles), alpha uniform
    lo, hi = math.log(1e-5), math.log(0.5)
    assert np.log(lr).mean() == pytest.approx((lo + hi) / 2, abs=0.15)
    assert np.quantile(np.log(lr), 0.25) == pytest.approx(lo + (hi - lo) / 4, abs=0.2)
    assert alpha.mean() == pytest.approx(0.13, abs=0.005)


@pytest.mark.parametrize("space, match", [
    ({"lr": ("loguniform", 0.0, 1.0)}, "0 < lo < hi"),
    ({"lr": ("uniform", 1.0, 1.0)}, "lo < hi"),
    ({"g": ("choice", [])}, "at least one value"),
    ({"g": ("normal", 0, 1)}, "loguniform, uniform or choice"),
])
def test_tune_space_rejects_bad_parameters(space, match):
    with pytest.raises(SpecError, match=match):
        tune_space(space)


def test_make_searcher_kinds():
    from ray.tune.search.optuna import OptunaSearch

    assert SEARCHERS == ("bayes", "tpe", "random")
    bayes = make_searcher("bayes", SPACE, metric="val_acc", seed=3)
    tpe = make_searcher("tpe", SPACE, metric="val_acc", mode="min")
    assert isinstance(bayes, OptunaSearch) and isinstance(tpe, OptunaSearch)
    assert isinstance(bayes._sampler, optuna.samplers.GPSampler)
    assert isinstance(tpe._sampler, optuna.samplers.TPESampler)
    assert bayes.metric == "val_acc" and bayes.mode == "max" and tpe.mode == "min"
    assert make_searcher("random", SPACE, metric="val_acc") is None
    with pytest.raises(SpecError, match="search must be one of"):
        make_searcher("gp", SPACE, metric="val_acc")
    with pytest.raises(SpecError, match="mode"):
        make_searcher("bayes", SPACE, metric="val_acc", mode="up")


def test_hyperband_scheduler():
    from ray.tune.schedulers import HyperBandScheduler

    s = hyperband(max_t=8, metric="val_acc")
    assert isinstance(s, HyperBandScheduler)
    assert s._time_attr == "epoch" and s._max_t_attr == 8 and s.metric == "val_acc"


@pytest.mark.parametrize("kind", ["bayes", "tpe"])
def test_searcher_finds_the_optimum_of_a_toy_objective(kind):
    """20 trials through suggest / on_trial_complete, as Ray Tune drives the searcher."""

    def objective(p):  # best at lr = 1e-2, lr_gamma = 0.1
        return -(math.log10(p["lr"]) + 2.0) ** 2 - (0.0 if p["lr_gamma"] == 0.1 else 0.5)

    space = {k: SPACE[k] for k in ("lr", "lr_gamma")}
    s = make_searcher(kind, space, metric="score", seed=0, n_startup_trials=5)
    results = []
    for i in range(20):
        p = s.suggest(f"t{i}")
        assert 1e-5 <= p["lr"] <= 0.5 and p["lr_gamma"] in (0.01, 0.1, 0.5)
        v = objective(p)
        results.append((v, p))
        s.on_trial_complete(f"t{i}", {"score": v})
    best_v, best_p = max(results, key=lambda t: t[0])
    assert best_p["lr_gamma"] == 0.1 and abs(math.log10(best_p["lr"]) + 2) < 0.5
    # the model-based phase concentrates: its points score better than the random start
    assert np.mean([v for v, _ in results[10:]]) > np.mean([v for v, _ in results[:5]])
