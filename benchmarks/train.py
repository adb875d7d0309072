"""Benchmark of the tracked training loop (issue 9, "Performance").

In one run, on the quick preset (MNIST-1D, 4000 samples, 10 classes, 4 x 256 BN MLP, M = 10) and
on the *same* model weights and data, it times:

(a) a bare PyTorch training epoch: index-permutation minibatches, ``F.cross_entropy``,
    ``torch.optim.SGD`` (Nesterov), nothing else;
(b) plain evaluation forward passes (eval mode, ``inference_mode`` — the fastest PyTorch offers —
    no metrics) over the whole train and test sets: the floor for measuring collapse on eval-mode
    features;
(c) nclab's tracked epoch: the training epoch of :func:`nclab.train.train`
    (:func:`nclab.train.loop.train_epoch`, with the loss of :mod:`nclab.losses`) plus its tracked
    evaluation (:func:`nclab.train.tracked_evaluation`: loss, accuracy and every collapse metric on
    the whole train set with observed labels and the whole test set with true labels).

It prints (c_eval) / (b) (accepted <= 1.35 on this 10-d MLP; <= 1.05 targeted on the paper network) as a ratio of medians and as the median of the per-round
ratios, (c) / (a), and the nclab training epoch / (a); the cost of the two metric sets alone (warm);
how many aten operations (b), the tracked evaluation and its metric sets dispatch; then samples per second of the paper-preset network (9 x 2048 MLP with BN, M = N = 2, batch 512, two
MNIST-1D classes) for a
training step and for evaluation, plus tracked / plain evaluation on that network, on CPU and on
CUDA when available. Each timing is the median of ``--reps`` repetitions, interleaved so that
machine load drifts hit all variants alike; the ratio of the best (minimum) repetitions is printed
too, and so is the load average, because on a shared machine the load dominates the noise.

The quick preset runs in ``--processes`` fresh processes (default 3): within one process the
ratio is stable to a few per cent, but it moves by up to ~15 % between processes (memory
layout, machine state), so the median over processes and every process's ratio are printed.

Usage: ``python benchmarks/train.py [--reps 21] [--processes 3] [--threads N] [--paper-samples 4096] [--json FILE]``
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F

from nclab.errors import DegenerateWarning


def _median_time(fn: Callable[[], Any], sync: Callable[[], None]) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def _sync_for(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def count_ops(fn: Callable[[], Any]) -> int:
    """Number of aten operations ``fn`` dispatches (views included): the cost unit of small problems."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class _Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            _Count.n += 1
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return _Count.n


def bare_epoch(model, opt, x, y, batch_size: int, gen_seed: int) -> None:
    """(a): plain PyTorch minibatch SGD over one epoch."""
    model.train()
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(gen_seed)).to(x.device)
    for s in range(0, x.shape[0], batch_size):
        idx = perm[s : s + batch_size]
        if idx.numel() < 2:
            continue
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


@torch.inference_mode()  # as fast as plain PyTorch evaluation gets (nclab's tracked evaluation uses it too)
def plain_eval(model, splits, batch_size: int) -> None:
    """(b): eval-mode forward passes over whole splits, logits discarded."""
    model.eval()
    for x in splits:
        for s in range(0, x.shape[0], batch_size):
            model(x[s : s + batch_size])


def quick_preset(reps: int, device: torch.device) -> dict[str, Any]:
    from nclab.losses import make_loss
    from nclab.nets import build_net
    from nclab.train import TrainConfig, load_config_dataset, tracked_evaluation
    from nclab.train.loop import _to, train_epoch

    cfg = TrainConfig.quick(device=device.type)
    ds = load_config_dataset(cfg)
    tr, te = _to(ds.train, device), _to(ds.test, device)
    torch.manual_seed(cfg.seed)
    model = build_net(cfg.net, input_shape=ds.input_shape, num_classes=ds.num_classes).to(device)
    bare_model = copy.deepcopy(model)  # same initial weights for (a) and (c)
    loss_fn = make_loss(cfg.loss, alpha=cfg.alpha, num_classes=ds.num_classes)

    def sgd(m):
        return torch.optim.SGD(m.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                               weight_decay=cfg.weight_decay)

    opt_bare, opt_nclab = sgd(bare_model), sgd(model)
    sync = _sync_for(device)
    eb = cfg.eval_batch_size

    def a() -> None:
        bare_epoch(bare_model, opt_bare, tr.x, tr.labels, cfg.batch_size, 0)

    def b() -> None:
        plain_eval(model, (te.x, tr.x), eb)

    def c_train() -> None:  # the very function nclab.train.train runs each epoch
        train_epoch(model, opt_nclab, loss_fn, tr, batch_size=cfg.batch_size, generator=torch.Generator().manual_seed(0))

    def c_eval() -> None:  # the tracked evaluation nclab.train.train runs on tracked epochs
        tracked_evaluation(model, tr, te, loss_fn, num_classes=ds.num_classes,
                           num_true_classes=ds.num_true_classes, batch_size=eb)

    fns = {"a": a, "b": b, "c_train": c_train, "c_eval": c_eval}
    for f in fns.values():  # warm-up
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(reps):
        for k in (order if r % 2 == 0 else order[::-1]):  # alternate the order against drift
            times[k].append(_median_time(fns[k], sync))
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    c_epoch = med["c_train"] + med["c_eval"]
    ops = _op_anatomy(model, tr, te, loss_fn, ds, eb, fns)
    metric_s = _metric_set_time(model, tr, te, ds, eb, reps)
    return {
        "min_ratio_tracked_eval_over_plain_eval": best["c_eval"] / best["b"],
        "min_ratio_tracked_epoch_over_bare_epoch": (best["c_train"] + best["c_eval"]) / best["a"],
        "n_train": len(tr), "n_test": len(te), "classes": ds.num_classes, "net": cfg.net.to_dict(),
        "a_bare_train_epoch_s": med["a"], "b_plain_eval_s": med["b"], "c_tracked_eval_s": med["c_eval"],
        "c_nclab_train_epoch_s": med["c_train"], "c_tracked_epoch_s": c_epoch,
        "ratio_tracked_eval_over_plain_eval": med["c_eval"] / med["b"],
        "ratio_tracked_epoch_over_bare_epoch": c_epoch / med["a"],
        "ratio_nclab_train_epoch_over_bare_epoch": med["c_train"] / med["a"],
        "tracking_overhead_s": med["c_eval"] - med["b"],
        "ops": ops,
        "metric_sets_s": metric_s,
        "median_paired_ratio_tracked_eval_over_plain_eval": statistics.median(
            c / b for b, c in zip(times["b"], times["c_eval"])),
        "all_times_s": times,
    }


def _op_anatomy(model, tr, te, loss_fn, ds, eb, fns) -> dict[str, int]:
    """aten operations of (b), of the tracked evaluation, of its metric sets (train and test features
    in one :func:`~nclab.metrics.collapse_metrics_many` call) and of the tracked evaluation with the
    metric sets taken out."""
    import math

    import nclab.train.tracking as tracking_mod
    from nclab.metrics import collapse_metrics_many
    from nclab.train.tracking import _head_params

    model.eval()
    with torch.no_grad():
        h_tr = model.forward_taps(tr.x, ["features"])[1]["features"]
        h_te = model.forward_taps(te.x, ["features"])[1]["features"]
    w, b = _head_params(model)
    c = ds.num_classes
    out = {
        "plain_eval": count_ops(fns["b"]),
        "tracked_eval": count_ops(fns["c_eval"]),
        "metric_sets": count_ops(lambda: collapse_metrics_many(
            [(h_tr, tr.labels), (h_te, te.true_labels)], weights=w, bias=b, num_classes=c)),
    }
    real = tracking_mod.collapse_metrics_many
    zero_means = torch.zeros(ds.num_classes, h_tr.shape[1], dtype=torch.float64)  # made outside the count

    def no_metric_sets(sets, return_means=False, **k):  # the metric sets taken out
        out = [{"nc1": math.nan} for _ in sets]
        return (out, [zero_means for _ in sets]) if return_means else out

    tracking_mod.collapse_metrics_many = no_metric_sets
    try:
        out["tracked_eval_without_metric_sets"] = count_ops(fns["c_eval"])
    finally:
        tracking_mod.collapse_metrics_many = real
    return out


def _metric_set_time(model, tr, te, ds, eb, reps: int) -> dict[str, float]:
    """Median seconds of the tracked evaluation's metric call alone (train + test sets), warm."""
    from nclab.metrics import collapse_metrics_many
    from nclab.train.tracking import _head_params

    model.eval()
    with torch.inference_mode():
        h_tr = model.forward_taps(tr.x, ["features"])[1]["features"]
        h_te = model.forward_taps(te.x, ["features"])[1]["features"]
    w, b = _head_params(model)
    sets = [(h_tr, tr.labels), (h_te, te.true_labels)]
    times = [_median_time(lambda: collapse_metrics_many(sets, weights=w, bias=b, num_classes=ds.num_classes),
                          lambda: None) for _ in range(5 * reps)]
    return {"pytorch": statistics.median(times)}


def paper_preset(device: torch.device, samples: int, reps: int) -> dict[str, Any]:
    """Samples/s of the 9 x 2048 BN MLP (M = N = 2) on two MNIST-1D classes."""
    from nclab.data import load_dataset
    from nclab.losses import make_loss
    from nclab.nets import NetSpec, build_net
    from nclab.train import tracked_evaluation
    from nclab.train.loop import _to

    ds = load_dataset("mnist1d", num_samples=int(samples / 0.8) + 1, classes=2)
    tr, te = _to(ds.train, device), _to(ds.test, device)
    torch.manual_seed(0)
    model = build_net(NetSpec.paper_mlp(), input_shape=ds.input_shape, num_classes=2).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    sync = _sync_for(device)
    loss_fn = make_loss("ce", num_classes=2)
    bare_epoch(model, opt, tr.x, tr.labels, 512, 0)  # warm-up, and features that are not degenerate
    plain_eval(model, (te.x, tr.x), 2048)  # warm-up of both evaluations too
    tracked_evaluation(model, tr, te, loss_fn, num_classes=2, num_true_classes=2, batch_size=2048)
    ttrain, tplain, ttrack = [], [], []
    for r in range(reps):
        ttrain.append(_median_time(lambda: bare_epoch(model, opt, tr.x, tr.labels, 512, r), sync))
        tplain.append(_median_time(lambda: plain_eval(model, (te.x, tr.x), 2048), sync))
        ttrack.append(_median_time(lambda: tracked_evaluation(model, tr, te, loss_fn, num_classes=2,
                                                              num_true_classes=2, batch_size=2048), sync))
    n_eval = len(tr) + len(te)
    return {
        "device": str(device), "n_train": len(tr), "n_test": len(te),
        "train_samples_per_s": len(tr) / statistics.median(ttrain),
        "eval_samples_per_s": n_eval / statistics.median(tplain),
        "tracked_eval_samples_per_s": n_eval / statistics.median(ttrack),
        "ratio_tracked_eval_over_plain_eval": statistics.median(ttrack) / statistics.median(tplain),
        "min_ratio_tracked_eval_over_plain_eval": min(ttrack) / min(tplain),
    }


def _child(args: argparse.Namespace) -> dict[str, Any]:
    """The quick preset in a fresh interpreter (same --reps and --threads)."""
    cmd = [sys.executable, __file__, "--child", "--reps", str(args.reps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"benchmark child process failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--paper-samples", type=int, default=4096)
    ap.add_argument("--paper-reps", type=int, default=3)
    ap.add_argument("--processes", type=int, default=3, help="fresh processes for the quick preset (default 3)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=str, default=None, help="also write the numbers to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                           "load_average_start": os.getloadavg()}
    cpu = torch.device("cpu")
    if args.child:  # one fresh process of the quick preset: its numbers as JSON on stdout
        print(json.dumps(quick_preset(args.reps, cpu)))
        return
    runs = [_child(args) for _ in range(args.processes)] if args.processes > 1 else [quick_preset(args.reps, cpu)]
    q = runs[0]
    out["quick_cpu"] = q
    out["quick_cpu_processes"] = runs
    print(f"torch {out['torch']}, {out['threads']} CPU thread(s), load average {out['load_average_start'][0]:.2f}")
    print(f"quick preset on CPU: MNIST-1D {q['n_train']} train / {q['n_test']} test, {q['classes']} classes, "
          f"MLP {q['net']['depth']}x{q['net']['width']} BN; {len(runs)} process(es), {args.reps} interleaved reps each")
    ratios = [r["ratio_tracked_eval_over_plain_eval"] for r in runs]
    print(f"  tracked evaluation / (b) per process (ratio of medians): {', '.join(f'{v:.2f}' for v in ratios)}"
          f"  -> median {statistics.median(ratios):.2f}  [accepted <= 1.35 on this 10-d MLP]")
    epochs = [r["ratio_tracked_epoch_over_bare_epoch"] for r in runs]
    print(f"  tracked epoch (c) / (a) per process: {', '.join(f'{v:.2f}' for v in epochs)}")
    print("  first process in detail:")
    print(f"  (a) bare PyTorch training epoch      {q['a_bare_train_epoch_s'] * 1e3:8.1f} ms")
    print(f"  (b) plain eval forward, train+test   {q['b_plain_eval_s'] * 1e3:8.1f} ms")
    print(f"      nclab tracked evaluation         {q['c_tracked_eval_s'] * 1e3:8.1f} ms"
          f"   = {q['ratio_tracked_eval_over_plain_eval']:.2f} x (b)  [accepted <= 1.35]"
          f"  (+{q['tracking_overhead_s'] * 1e3:.1f} ms; best-of-reps ratio {q['min_ratio_tracked_eval_over_plain_eval']:.2f})")
    print(f"      nclab training epoch (train_epoch){q['c_nclab_train_epoch_s'] * 1e3:8.1f} ms"
          f"   = {q['ratio_nclab_train_epoch_over_bare_epoch']:.2f} x (a)")
    print(f"  (c) nclab tracked epoch (train+eval) {q['c_tracked_epoch_s'] * 1e3:8.1f} ms"
          f"   = {q['ratio_tracked_epoch_over_bare_epoch']:.2f} x (a)"
          f"  (best-of-reps {q['min_ratio_tracked_epoch_over_bare_epoch']:.2f})")
    o = q["ops"]
    print(f"      median of the per-round ratios (c_eval / b, interleaved): "
          f"{q['median_paired_ratio_tracked_eval_over_plain_eval']:.2f}")
    ms = q["metric_sets_s"]
    print("  the two metric sets alone (train + test features, one collapse_metrics_many call, warm): "
          + "; ".join(f"{k} {v * 1e3:.2f} ms = {v / q['b_plain_eval_s']:.3f} of (b)" for k, v in ms.items()))
    print(f"  aten operations: (b) {o['plain_eval']:,}; tracked evaluation {o['tracked_eval']:,} = "
          f"{o['tracked_eval_without_metric_sets']:,} without its metric sets + {o['metric_sets']:,} "
          f"(both metric sets)")
    devices = [cpu] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateWarning)  # an untrained 2-d feature layer may be degenerate
            p = paper_preset(dev, args.paper_samples if dev.type == "cpu" else 8 * args.paper_samples, args.paper_reps)
        out[f"paper_{dev.type}"] = p
        print(f"paper preset 9x2048 BN MLP (M=N=2, batch 512) on {dev.type}: "
              f"train {p['train_samples_per_s']:,.0f} samples/s, eval {p['eval_samples_per_s']:,.0f} samples/s, "
              f"tracked eval {p['tracked_eval_samples_per_s']:,.0f} samples/s "
              f"({p['ratio_tracked_eval_over_plain_eval']:.3f} x plain, best-of-reps "
              f"{p['min_ratio_tracked_eval_over_plain_eval']:.3f} x)  [target <= 1.05]")
    if not torch.cuda.is_available():
        print("no CUDA device here: GPU numbers not measured")
    out["load_average_end"] = os.getloadavg()
    print(f"load average at the end {out['load_average_end'][0]:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
