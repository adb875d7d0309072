"""Cell functions: thin adapters from an experiment cell's configuration to the science
libraries (``nclab.train``, ``nclab.ufm``, ``nclab.md``, ``nclab.theory``), imported lazily.

Each adapter maps the cell configuration (a plain dict: the experiment's settings with one value
per grid axis) to the library's own configuration, calls it, and returns a
:class:`~nclab.experiments.runner.CellResult` of final scalars, per-epoch scalars and JSON
extras. The metric names are the libraries' own, one name per quantity (``test_acc``,
``nc1_test`` = the dilation, ``memorization``, ``margin_min_train`` = the margin with the
bias, ``margin_min_nobias_train`` = seed 002's p_min, ``cosine_intra_min_train`` ...);
per-layer metrics are flattened to ``layers/<tap>/<metric>`` with the tap order in
``extras["layers"]``. The label-noise rate is ``eta`` from the spec to :mod:`nclab.data.noise`.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["train_cell", "tune_cell", "extended_ufm_cell", "md_model_cell", "verify_cell",
           "train_config"]


def _scalars(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric entries of a (nested) record, flattened with ``/``; bools become 0/1."""
    out: dict[str, float] = {}
    for k, v in record.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_scalars(v, f"{name}/"))
        elif isinstance(v, bool):
            out[name] = float(v)
        elif isinstance(v, (int, float)):
            out[name] = float(v)
        elif hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            out[name] = float(v.item())
    return out


def train_config(config: Mapping[str, Any]):
    """The :class:`nclab.train.TrainConfig` of a training cell.

    Recognised cell fields: the :class:`~nclab.experiments.library.TrainSettings` fields, the
    axes ``dataset, num_classes, feature_dim, eta, noise_kind, loss, bias, seed, arch,
    batch_norm, weight_decay, transform, transform_seed``, ``margin_bounds`` and, for a stage after a hyperparameter search, ``inputs["best"]``
    (``lr``, ``lr_gamma``, ``alpha``).
    """
    from nclab.nets import NetSpec
    from nclab.train import TrainConfig

    c = dict(config)
    best = dict((c.get("inputs") or {}).get("best") or {})
    loss = c.get("loss", "ce")
    alpha = float(best.get("alpha", c.get("alpha", 0.1))) if loss in ("ls", "lr") else 0.0
    transform = c.get("transform")
    net = NetSpec(
        arch=c.get("arch", "mlp"), depth=c["depth"], width=c["width"],
        activation=c.get("activation", "relu"), batch_norm=c.get("batch_norm", "affine"),
        bn_after_activation=bool(c.get("bn_after_activation", False)),
        penultimate_width=c.get("feature_dim"),
        head="etf" if transform else "linear", head_bias=bool(c.get("bias", True)) and not transform,
        head_transform=transform or "none", head_seed=int(c.get("transform_seed", 0)),
    )
    return TrainConfig(
        dataset=c["dataset"], data_root=c.get("data_root"), num_samples=c.get("num_samples"),
        classes=c.get("num_classes"), eta=float(c.get("eta", 0.0)),
        noise_kind=c.get("noise_kind", "symmetric"), loss=loss, alpha=alpha,
        epochs=c["epochs"], lr=float(best.get("lr", c["lr"])), momentum=c["momentum"],
        nesterov=c["nesterov"], weight_decay=c["weight_decay"], batch_size=c["batch_size"],
        lr_step=c["lr_step"], lr_gamma=float(best.get("lr_gamma", c["lr_gamma"])), net=net,
        seed=int(c.get("seed", 0)), device=c.get("device", "auto"),
        eval_every=c.get("eval_every", 1), layer_metrics=bool(c.get("layer_metrics", False)),
        margin_bounds=bool(c.get("margin_bounds", False)),
    )


def _worker_threads() -> None:
    """Hold torch (and the MKL / OpenMP pools it drives) to the ``OMP_NUM_THREADS`` the runner
    gives a pool worker. Measured on the 2-core machine under load: a worker whose MKL sgemm
    ran a 2-thread OpenMP region next to another worker spent ~10x the CPU time of a 1-thread
    cell (the idle OpenMP thread spins); setting the count explicitly avoids it."""
    import os

    n = os.environ.get("OMP_NUM_THREADS", "")
    if n.isdigit() and int(n) >= 1:
        import torch

        torch.set_num_threads(int(n))  # also sets MKL's and OpenMP's counts


def train_cell(config: dict, ctx) -> "CellResult":  # noqa: F821
    """Train one network (``nclab.train.train``) and return its tracked metrics."""
    from nclab.experiments.runner import CellResult
    from nclab.train import load_config_dataset, train

    _worker_threads()

    tc = train_config(config)
    ds = load_config_dataset(tc)
    result = train(tc, dataset=ds, callback=lambda epoch, record: ctx.epoch(epoch, tc.epochs))
    history = []
    for rec in result.history:
        rec = {k: v for k, v in rec.items() if k != "layers"}  # per-layer: final only
        history.append(_scalars(rec))
    final = _scalars(result.final)
    final["tpt_epoch"] = math.nan if result.tpt_epoch is None else float(result.tpt_epoch)
    final["suboptimal_collapse"] = (math.nan if result.suboptimal_collapse is None
                                    else float(result.suboptimal_collapse))
    info = result.dataset_info
    for key in ("num_train", "num_test"):
        if isinstance(info.get(key), (int, float)):
            final[key] = float(info[key])
    noise = info.get("noise") or {}  # kind, eta, seed, realised flip rate (nclab.data.noise)
    final["noise_flip_rate"] = float(noise.get("realised_flip_rate", 0.0))
    layers = list((result.final.get("layers") or {}).keys())
    extras = {"layers": layers, "device": result.device,
              "dataset": {k: v for k, v in info.items() if isinstance(v, (int, float, str))},
              "noise": {k: v for k, v in noise.items() if isinstance(v, (int, float, str))}}
    if result.suboptimal_collapse is not None:  # M = N = 2: features for seed 001 Fig. 4
        extras["features_2d"] = _features_2d(result.model, ds, tc.seed)
    return CellResult(final=final, history=history, extras=extras)


def _features_2d(model, ds, seed: int, k: int = 300) -> dict:
    """Penultimate features of up to ``k`` test samples and ``k`` relabelled training samples
    (with their labels), rounded to 4 digits: what seed 001 Fig. 4 plots."""
    import torch

    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device

    def feats(x):
        with torch.inference_mode():
            return model.forward_taps(x.to(device), ["features"])[1]["features"].double().cpu()

    t_idx = torch.randperm(len(ds.test), generator=g)[:k]
    noisy = torch.nonzero(ds.train.labels != ds.train.true_labels).flatten()[:k]
    out = {"test": feats(ds.test.x[t_idx]), "test_labels": ds.test.true_labels[t_idx],
           "noisy": feats(ds.train.x[noisy]) if len(noisy) else torch.zeros(0, 2),
           "noisy_true_labels": ds.train.true_labels[noisy]}
    return {k: (v.round(decimals=4) if v.is_floating_point() else v).tolist()
            for k, v in out.items()}


# --------------------------------------------------------------------------- Ray Tune search


def _validation_dataset(tc, fraction: float, seed: int):
    """The training split cut into (1 - fraction) train and ``fraction`` validation (as test),
    class-stratified, seeded (seed 001 App. A.2.1: a 20% validation split)."""
    import torch

    from nclab.data import Dataset, Split
    from nclab.train import load_config_dataset

    ds = load_config_dataset(tc)
    g = torch.Generator().manual_seed(seed)
    y = ds.train.true_labels
    val_idx = []
    for c in range(int(y.max()) + 1):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        val_idx.append(idx[: int(round(fraction * len(idx)))])
    val = torch.cat(val_idx)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[val] = False

    def part(m):
        return Split(ds.train.x[m], ds.train.labels[m], ds.train.true_labels[m])

    return Dataset(name=ds.name, train=part(mask), test=part(~mask), num_classes=ds.num_classes,
                   num_true_classes=ds.num_true_classes, info={**ds.info, "validation": fraction})


def tune_cell(config: dict, ctx) -> "CellResult":  # noqa: F821
    """Hyperparameter search of seed 001 App. A.2.1 with Ray Tune: learning rate (log-uniform),
    learning-rate multiplier (choice) and, for LS/LR, alpha (uniform), on a 20% validation
    split at eta = 0, with a Hyperband scheduler; returns the best setting in ``extras``."""
    import os
    import tempfile

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no per-trial tables on the console
    import ray
    from ray import tune

    from nclab.experiments.runner import CellResult
    from nclab.experiments.search import hyperband, make_searcher, tune_space
    from nclab.train import train

    c = dict(config)
    c["eta"] = 0.0
    epochs = int(c.get("tune_epochs") or c["epochs"])
    c["epochs"] = epochs
    loss = c["loss"]
    spec: dict[str, tuple] = {
        "lr": ("loguniform", c["tune_lr_min"], c["tune_lr_max"]),
        "lr_gamma": ("choice", list(c["tune_lr_gammas"])),
    }
    if loss in ("ls", "lr"):
        spec["alpha"] = ("uniform", c["tune_alpha_min"], c["tune_alpha_max"])
    fraction, seed = float(c["val_fraction"]), int(c.get("tune_seed", 0))

    def trainable(params):
        tc = train_config({**c, "inputs": {"best": params}, "seed": seed})
        ds = _validation_dataset(tc, fraction, seed)

        def report(epoch, record):
            if record is not None:
                tune.report({"val_acc": float(record["test_acc"]), "epoch": epoch})

        train(tc, dataset=ds, callback=report)

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))),
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        started = True
    try:
        n_cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        kind = c.get("tune_search", "bayes")
        searcher = make_searcher(kind, spec, metric="val_acc", mode="max", seed=seed)
        search_name = {"bayes": "optuna-gp", "tpe": "optuna-tpe"}.get(kind, kind)
        param_space = tune_space(spec) if searcher is None else {}
        scheduler = hyperband(max_t=epochs, metric="val_acc", mode="max")
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space=param_space,
                tune_config=tune.TuneConfig(num_samples=int(c["tune_samples"]),
                                            search_alg=searcher, scheduler=scheduler,
                                            max_concurrent_trials=n_cpus),
                run_config=tune.RunConfig(storage_path=tmp, name="search", verbose=0),
            )
            grid = tuner.fit()
            best = grid.get_best_result(metric="val_acc", mode="max", scope="all")
            trials = [{"config": r.config, "val_acc": r.metrics.get("val_acc"),
                       "epochs": r.metrics.get("epoch")} for r in grid]
    finally:
        if started:
            ray.shutdown()
    best_cfg = {k: float(v) for k, v in best.config.items() if k in spec}
    best_acc = max((t["val_acc"] for t in trials if t["val_acc"] is not None), default=math.nan)
    ctx.epoch(1, 1)
    return CellResult(
        final={"best_val_acc": float(best_acc), "trials": float(len(trials))},
        extras={"best": best_cfg, "search": search_name, "scheduler": "hyperband",
                "trials": trials, "downstream": {"best": best_cfg}},
    )


# --------------------------------------------------------------------------- extended UFM


def extended_ufm_cell(config: dict, ctx) -> "CellResult":  # noqa: F821
    """Seed 004 Sec. 6, Fig. 5: plain gradient descent on the linear / ReLU extended UFM
    (MSE, no bias, N(0, 0.1^2) start, step ``ufm_step_size``); NC1/NC2/NC3 of both feature
    levels along the iterations."""
    from nclab.experiments.runner import CellResult
    from nclab.ufm import UFMProblem, solve

    c = config
    lam = float(c["ufm_lambda"])
    problem = UFMProblem(c["ufm_model"], loss="mse", num_classes=c["ufm_classes"],
                         per_class=c["ufm_per_class"], dim=c["ufm_dim"], lambda_w=lam,
                         lambda_h=lam)
    steps = int(c["ufm_steps"])
    every = max(1, steps // 100)
    result = solve(problem, solver="gd", lr=float(c["ufm_step_size"]), max_iter=steps,
                   init_scale=float(c["ufm_init_scale"]), record_every=every, warn=False,
                   tol=0.0)
    curves: dict[str, list] = {"step": [], "objective": []}
    history = []
    for rec in result.history:
        curves["step"].append(rec.iteration)
        curves["objective"].append(rec.objective)
        row = {"epoch": rec.iteration, "objective": rec.objective}
        for level, metrics in (rec.level_metrics or {}).items():
            for key in ("nc1", "nc2_etf", "nc2_of", "nc3_duality", "nc3_etf"):
                if key in metrics:
                    name = f"{key}_{level.lower()}"
                    curves.setdefault(name, []).append(metrics[key])
                    row[name] = metrics[key]
        history.append(row)
    n = len(curves["step"])
    curves = {k: v for k, v in curves.items() if len(v) == n}  # levels present every record
    final = {"objective": float(result.objective), "iterations": float(result.n_iter),
             "grad_norm_rel": float(result.grad_norm_rel)}
    for level, metrics in _final_levels(problem, result).items():
        for key, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                final[f"{key}_{level.lower()}"] = float(v)
    ctx.epoch(1, 1)
    return CellResult(final=final, history=history, extras={"curves": curves})


def _final_levels(problem, result) -> dict:
    from nclab.ufm import solution_metrics

    return solution_metrics(problem, result.x)[1]


# --------------------------------------------------------------------------- MD model


def md_model_cell(config: dict, ctx) -> "CellResult":  # noqa: F821
    """One noise level of the MD model study (seed 000 Def. 4.1): CE and LS optima side by side
    and whether Assumption 4.2 / the inequality of Thm 4.3 hold."""
    from nclab.experiments.runner import CellResult
    from nclab.md import assumption_4_2, compare_ce_ls

    kw = dict(alpha=float(config["alpha"]), lambda_w=float(config["lambda_w"]),
              lambda_h=float(config["lambda_h"]), eta=float(config["eta"]),
              c_md=float(config["c_md"]), dist=config["dist"])
    n_cls = int(config.get("num_classes", 2))
    cmp = compare_ce_ls(**kw, num_classes=n_cls)
    asm = assumption_4_2(**kw) if n_cls == 2 else None  # Assumption 4.2 is binary
    final: dict[str, float] = {}
    extras: dict[str, Any] = {}
    for name, res in (("ce", cmp.ce), ("ls", cmp.ls)):
        d = res.as_dict()
        for key in ("r_star", "dilation", "r_max", "memorization", "h_dist", "objective"):
            final[f"{name}_{key}"] = float(d[key])
        extras[name] = {"u1": d["u1"], "u2": d["u2"]}
    final.update(gamma=float(cmp.gamma), theorem_4_3_holds=float(cmp.theorem_4_3_holds))
    if asm is not None:
        final.update(assumptions_hold=float(asm.holds), alpha_condition=float(asm.alpha_condition),
                     noise_condition=float(asm.noise_condition),
                     rigorous_condition=float(asm.rigorous_condition))
    ctx.epoch(1, 1)
    return CellResult(final=final, extras=extras)


# --------------------------------------------------------------------------- theorem checks


def verify_cell(config: dict, ctx) -> "CellResult":  # noqa: F821
    """The ``nclab verify`` study (issue 3): every theorem check on the ``quick`` or
    ``default`` grid; the rows (theorem, params, predicted, measured, rel_error, holds) go to
    ``extras["checks"]``."""
    from nclab.experiments.runner import CellResult
    from nclab.theory.checks import theory_checks
    from nclab.ufm.checks import convergence_traces, run_checks

    quick = config["grid"] == "quick"
    rows = [dict(r) if isinstance(r, Mapping) else _row_dict(r)
            for r in [*run_checks(quick=quick), *theory_checks(quick=quick)]]
    traces = convergence_traces(quick=quick)
    traces = {k: v for k, v in traces.items() if k.startswith("fig2")}
    errs = [float(r["rel_error"]) for r in rows
            if isinstance(r.get("rel_error"), (int, float)) and math.isfinite(r["rel_error"])]
    final = {"checks": float(len(rows)), "holds": float(sum(bool(r.get("holds")) for r in rows)),
             "max_rel_error": max(errs) if errs else math.nan}
    ctx.epoch(1, 1)
    return CellResult(final=final, extras={"checks": _jsonable(rows), "traces": _jsonable(traces)})


def _row_dict(row) -> dict:
    if hasattr(row, "as_dict"):
        return row.as_dict()
    if hasattr(row, "_asdict"):
        return row._asdict()
    import dataclasses

    return dataclasses.asdict(row)


def _jsonable(obj):
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    return str(obj)
