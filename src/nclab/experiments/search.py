r"""Bayesian optimisation with Hyperband for seed 001 App. A.2.1, from Ray Tune and Optuna.

Seed 001 tuned the learning rate, its multiplier and the LS/LR parameter :math:`\alpha` "in a
Bayesian optimization using Hyperband" with scikit-optimize, 30 iterations on a 20% validation
split (Table 1). nclab runs the same search with well-kept libraries instead of its own code:

* the searcher is :class:`ray.tune.search.optuna.OptunaSearch` with Optuna's Gaussian-process
  sampler :class:`optuna.samplers.GPSampler` (``"bayes"``: a GP surrogate with expected
  improvement, like scikit-optimize's ``gp_minimize``) or the tree-structured Parzen estimator
  :class:`optuna.samplers.TPESampler` (``"tpe"``), or Ray Tune's random search (``"random"``);
  both Optuna samplers draw their first ``n_startup_trials`` = 10 points at random (the default of
  ``gp_minimize``'s ``n_initial_points``);
* the scheduler is Ray Tune's :class:`ray.tune.schedulers.HyperBandScheduler`, which stops poor
  trials early on the ``epoch`` axis (:func:`hyperband`).

:func:`nclab.experiments.cells.tune_cell` puts them together; the search space and the budget
(``tune_samples``) come from the experiment's settings. Everything here needs the ``lab`` extra
(``pip install "nclab[lab]"``).

The space is given as ``name -> ("loguniform", lo, hi) | ("uniform", lo, hi) | ("choice",
values)``; :func:`tune_space` turns it into Ray Tune domains, which ``OptunaSearch`` converts to
Optuna distributions.
"""

from __future__ import annotations

from typing import Any, Mapping

from nclab.errors import SpecError

__all__ = ["SEARCHERS", "tune_space", "make_searcher", "hyperband"]

#: searcher kinds of :func:`make_searcher`
SEARCHERS = ("bayes", "tpe", "random")


def tune_space(space: Mapping[str, tuple]) -> dict[str, Any]:
    """Ray Tune search-space domains for a ``name -> (kind, *args)`` space.

    Parameters
    ----------
    space : dict of str to tuple
        ``("loguniform", lo, hi)``, ``("uniform", lo, hi)`` or ``("choice", values)`` per
        parameter.

    Returns
    -------
    dict of str to ray.tune.search.sample.Domain

    Raises
    ------
    SpecError
        An unknown kind, bounds that are not ``0 < lo < hi`` (log) or ``lo < hi``, or no choices.
    """
    from nclab._extras import require

    tune = require("ray.tune", what="the hyper-parameter search")
    out: dict[str, Any] = {}
    for name, (kind, *args) in space.items():
        if kind in ("loguniform", "uniform"):
            lo, hi = (float(a) for a in args)
            if not (lo < hi and (kind == "uniform" or lo > 0)):
                raise SpecError(f"search parameter {name!r}: {kind} needs {'0 < ' if kind == 'loguniform' else ''}"
                                f"lo < hi; got lo={lo:g}, hi={hi:g}.")
            out[name] = (tune.loguniform if kind == "loguniform" else tune.uniform)(lo, hi)
        elif kind == "choice":
            values = list(args[0]) if args else []
            if not values:
                raise SpecError(f"search parameter {name!r}: choice needs at least one value.")
            out[name] = tune.choice(values)
        else:
            raise SpecError(f"search parameter {name!r}: kind must be loguniform, uniform or choice; "
                            f"got {kind!r}.")
    return out


def make_searcher(kind: str, space: Mapping[str, tuple], *, metric: str, mode: str = "max",
                  seed: int = 0, n_startup_trials: int = 10):
    """The Ray Tune searcher of a hyper-parameter search.

    Parameters
    ----------
    kind : {"bayes", "tpe", "random"}
        ``OptunaSearch`` with Optuna's ``GPSampler``, with its ``TPESampler``, or None (Ray Tune's
        random search over ``param_space``; pass :func:`tune_space` there).
    space : dict of str to tuple
        The search space, as for :func:`tune_space`.
    metric : str
        The reported result key to optimise.
    mode : {"max", "min"}, default="max"
    seed : int, default=0
        Seed of the Optuna sampler.
    n_startup_trials : int, default=10
        Random trials before the sampler's model is used.

    Returns
    -------
    ray.tune.search.optuna.OptunaSearch or None

    Raises
    ------
    SpecError
        Unknown ``kind`` or ``mode``.

    Notes
    -----
    Optuna's own log (one INFO line per finished trial) is set to WARNING: library code prints
    nothing.
    """
    if kind not in SEARCHERS:
        raise SpecError(f"search must be one of {', '.join(SEARCHERS)}; got {kind!r}.")
    if mode not in ("max", "min"):
        raise SpecError(f"mode must be 'max' or 'min'; got {mode!r}.")
    domains = tune_space(space)
    if kind == "random":
        return None
    from nclab._extras import require

    optuna = require("optuna", what="the Bayesian hyper-parameter search")
    optuna_search = require("ray.tune.search.optuna", what="the Bayesian hyper-parameter search")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if kind == "bayes":
        sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials)
    return optuna_search.OptunaSearch(space=domains, metric=metric, mode=mode, sampler=sampler)


def hyperband(*, max_t: int, metric: str, mode: str = "max", time_attr: str = "epoch"):
    """Ray Tune's Hyperband scheduler (Li et al., JMLR 2018) on the ``time_attr`` axis.

    Parameters
    ----------
    max_t : int
        Largest budget of one trial (epochs).
    metric : str
    mode : {"max", "min"}, default="max"
    time_attr : str, default="epoch"

    Returns
    -------
    ray.tune.schedulers.HyperBandScheduler
    """
    from nclab._extras import require

    schedulers = require("ray.tune.schedulers", what="the hyper-parameter search")
    return schedulers.HyperBandScheduler(time_attr=time_attr, max_t=int(max_t), metric=metric,
                                         mode=mode)
