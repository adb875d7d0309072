"""The training loop: SGD (Nesterov) with a step schedule, tracked evaluations, checkpoints.

Reproducibility: the weights are initialised from ``torch.manual_seed(seed)`` inside
``torch.random.fork_rng`` (the caller's global generator is left untouched), and the batch
order of epoch e comes from a generator seeded with ``(seed, e)``; nothing else is random, so a
CPU run is a deterministic function of its config, and a run resumed from the checkpoint of
epoch e continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

import torch

from nclab.data import Dataset, Split, load_dataset
from nclab.errors import InputFileError, NCLabError, NonFiniteError, SpecError
from nclab.losses import make_loss
from nclab.nets import build_net
from nclab.train.config import TrainConfig, TrainResult
from nclab.train.tracking import suboptimal_collapse, tracked_evaluation


def _margin_terms(h, y, weight, bias) -> dict[str, float]:
    """Seed 002's margins and margin-bound terms of the bias-free head (``margin_bounds``)."""
    from nclab.theory.margins import margin_bound_terms

    return {f"{k}_train": v for k, v in margin_bound_terms(h, y, weight).items()}

__all__ = ["train", "train_epoch", "resolve_device", "load_config_dataset", "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.pt"
EpochCallback = Callable[[int, "dict[str, Any] | None"], Any]


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU raises SpecError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("device='cuda' but no CUDA device is available; use device='auto' or 'cpu'.")
    return torch.device(device)


def load_config_dataset(config: TrainConfig) -> Dataset:
    """The dataset of ``config`` (name, classes, subsample, noise), built by :func:`nclab.data.load_dataset`."""
    return load_dataset(
        config.dataset, root=config.data_root, num_samples=config.num_samples, classes=config.classes,
        per_class=config.per_class, eta=config.eta, noise_kind=config.noise_kind, seed=config.seed,
        noise_seed=config.noise_seed,
    )


def _batch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63 - 1))


def _to(split: Split, device: torch.device) -> Split:
    return Split(split.x.to(device), split.labels.to(device), split.true_labels.to(device))


def _subsample(split: Split, k: int | None, seed: int) -> Split:
    if k is None or k >= len(split):
        return split
    g = torch.Generator().manual_seed(int(seed) + 7919)
    idx = torch.randperm(len(split), generator=g)[:k].sort().values
    return split.take(idx.to(split.x.device))


def _plain(obj: Any) -> Any:
    """``obj`` with NumPy scalars and arrays turned into Python numbers and lists.

    A checkpoint holds only tensors and plain types (dict, list, tuple, str, int, float, bool,
    None) so that it loads with ``torch.load(..., weights_only=True)``, which never unpickles
    arbitrary objects (a crafted checkpoint cannot run code).
    """
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, torch.Tensor) or obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if hasattr(obj, "tolist"):  # NumPy scalars and arrays
        return obj.tolist()
    return obj


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(_plain(state), tmp)
        os.replace(tmp, path)  # atomic: an interrupt never leaves a half-written checkpoint
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()  # a failed write or rename leaves no temporary file behind
        why = exc.strerror or type(exc).__name__
        raise InputFileError(
            f"cannot write checkpoint {path} ({why}); pass a writable checkpoint_dir or none."
        ) from None


def _load_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any] | None:
    if not (config.resume and path.is_file()):
        return None
    try:
        # weights_only: tensors and plain containers only; a pickled object (code) is refused
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        first = " ".join(str(exc).split())[:160]
        raise SpecError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {first}); delete it or pass resume=False."
        ) from None
    keys = ("epoch", "model", "optimizer", "scheduler", "history", "tpt_epoch", "identity")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise SpecError(f"{path} is not an nclab checkpoint; delete it or pass resume=False.")
    old = state["identity"] if isinstance(state["identity"], dict) else {}
    new = _plain(config.identity())
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if diff:
        k = diff[0]
        raise SpecError(
            f"checkpoint {path} was written by a different run ({k}: {old.get(k)!r} there, {new.get(k)!r} now); "
            "use another checkpoint_dir or pass resume=False to start over."
        )
    return state


def train_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
    split: Split,
    *,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One epoch of minibatch training on the observed labels; returns the mean running loss.

    The batch order is ``torch.randperm(n, generator=generator)``; a final batch of a single
    sample is skipped (batch norm cannot normalise it).
    """
    model.train()
    n = len(split)
    perm = torch.randperm(n, generator=generator).to(split.x.device)
    losses: list[torch.Tensor] = []
    sizes: list[int] = []
    for s in range(0, n, batch_size):
        idx = perm[s : s + batch_size]
        if idx.numel() < 2 and n > 1:
            continue
        loss = loss_fn(model(split.x[idx]), split.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
        sizes.append(idx.numel())
    if not losses:
        return math.nan
    w = torch.tensor(sizes, dtype=torch.float64, device=split.x.device)
    return float((torch.stack(losses).to(torch.float64) * w).sum() / w.sum())


def train(
    config: TrainConfig,
    *,
    dataset: Dataset | None = None,
    callback: EpochCallback | None = None,
) -> TrainResult:
    r"""Train a network and track neural-collapse metrics during training.

    Per epoch: one pass of minibatch SGD (momentum, Nesterov by default, weight decay) on the
    observed labels with the loss ``make_loss(config.loss, alpha=config.alpha)``; the learning
    rate is multiplied by ``lr_gamma`` every ``lr_step`` epochs. Every ``eval_every`` epochs
    (and after the last) a tracked evaluation (:func:`nclab.train.tracking.tracked_evaluation`)
    runs in eval mode over the whole test and train sets (or ``eval_subsample`` of them) and
    appends a record to the history. Then ``checkpoint.pt`` is written when ``checkpoint_dir``
    is set, and ``callback(epoch, record_or_None)`` is called.

    Parameters
    ----------
    config : TrainConfig
        The run (see :class:`~nclab.train.TrainConfig` for every field).
    dataset : Dataset, optional
        Use this dataset instead of building the one named in ``config`` (the config's data
        fields are then only recorded).
    callback : callable, optional
        Called after every epoch (after the checkpoint) with the 1-based epoch and the history
        record of that epoch (None when not tracked). An exception raised there stops the run
        and propagates; the checkpoint of that epoch is already on disk.

    Returns
    -------
    TrainResult
        History records hold ``epoch, lr, train_loss_running, epoch_time_s, eval_time_s``, the
        keys of the tracked evaluation (``train_acc, test_acc, train_loss, test_loss,
        nc1_train, ..., nc1_test (the dilation), memorization, margin_min_train, cosine_intra_min_train,
        cosine_inter_max_train`` ...) and ``eval_subsample`` (None for whole sets).

    Raises
    ------
    SpecError
        Invalid config, unavailable device or a checkpoint written by another config.
    NonFiniteError
        The training loss became NaN/inf (lower lr).

    Notes
    -----
    Cost per epoch: one training pass plus, on tracked epochs, one eval-mode forward pass over
    train and test, plus O(n d C) for the metrics of the d-dimensional penultimate features.
    """
    device = resolve_device(config.device)
    ds = dataset if dataset is not None else load_config_dataset(config)
    c, ct = ds.num_classes, ds.num_true_classes
    ds.check_label_ranges()  # once, on the host: the loss checks no range on accelerators (no per-step sync)
    train_split = _to(ds.train, device)
    test_split = _to(ds.test, device)
    ev_train = _subsample(train_split, config.eval_subsample, config.seed)
    ev_test = _subsample(test_split, config.eval_subsample, config.seed + 1)
    sub = None if config.eval_subsample is None else {"train": len(ev_train), "test": len(ev_test)}
    loss_fn = make_loss(config.loss, alpha=config.alpha, num_classes=c)
    ckpt = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir else None
    if ckpt is not None:  # an unusable checkpoint_dir fails now, not after the first epoch
        try:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputFileError(f"cannot create checkpoint_dir {str(ckpt.parent)!r} ({exc.strerror or exc}); "
                                 "pass a writable checkpoint_dir or none.") from None
        if not os.access(ckpt.parent, os.W_OK):
            raise InputFileError(f"checkpoint_dir {str(ckpt.parent)!r} is not writable; pass a writable "
                                 "checkpoint_dir or none.")

    cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids):
        torch.manual_seed(config.seed)
        model = build_net(config.net, input_shape=ds.input_shape, num_classes=c).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.lr_step, gamma=config.lr_gamma)

    history: list[dict[str, Any]] = []
    tpt_epoch: int | None = None
    start = 0
    resumed_from = None
    state = _load_checkpoint(ckpt, config) if ckpt else None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            history = list(state["history"])
            tpt_epoch = None if state["tpt_epoch"] is None else int(state["tpt_epoch"])
            start = resumed_from = int(state["epoch"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            first = " ".join(str(exc).split())[:160]
            raise SpecError(f"checkpoint {ckpt} does not fit this run ({type(exc).__name__}: {first}); "
                            "delete it or pass resume=False.") from None

    last_extra: dict[str, Any] | None = None
    for epoch in range(start + 1, config.epochs + 1):
        t0 = time.perf_counter()
        lr_now = opt.param_groups[0]["lr"]
        running = train_epoch(model, opt, loss_fn, train_split, batch_size=config.batch_size,
                              generator=_batch_generator(config.seed, epoch))
        sched.step()
        if not math.isfinite(running):
            raise NonFiniteError(
                f"training loss is {running} at epoch {epoch}; lower lr (now {lr_now}) or check the data."
            )
        t_train = time.perf_counter() - t0
        record: dict[str, Any] | None = None
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            t1 = time.perf_counter()
            try:
                rec, last_extra = tracked_evaluation(
                    model, ev_train, ev_test, loss_fn, num_classes=c, num_true_classes=ct,
                    batch_size=config.eval_batch_size, layer_metrics=config.layer_metrics,
                    effective_depth_eps=config.effective_depth_eps,
                    extra_metrics=_margin_terms if config.margin_bounds else None,
                )
            except NCLabError as exc:
                raise type(exc)(f"epoch {epoch}: {exc}") from None
            record = {"epoch": epoch, "lr": lr_now, "train_loss_running": running, **rec,
                      "epoch_time_s": t_train, "eval_time_s": time.perf_counter() - t1, "eval_subsample": sub}
            history.append(record)
            if tpt_epoch is None and rec["train_acc"] >= 1.0:
                tpt_epoch = epoch
        if ckpt is not None:
            _save_checkpoint(ckpt, {
                "epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "history": history, "tpt_epoch": tpt_epoch,
                "identity": config.identity(), "config": config.to_dict(),
            })
        if callback is not None:
            callback(epoch, record)

    if last_extra is None:  # resumed at or past the last epoch: evaluate the loaded model once
        rec, last_extra = tracked_evaluation(
            model, ev_train, ev_test, loss_fn, num_classes=c, num_true_classes=ct,
            batch_size=config.eval_batch_size, layer_metrics=config.layer_metrics,
            effective_depth_eps=config.effective_depth_eps,
            extra_metrics=_margin_terms if config.margin_bounds else None,
        )
        if not history:
            history.append({"epoch": start, **rec, "eval_subsample": sub})
    means = last_extra.get("train_class_means")
    flag, ratio = (None, math.nan)
    if means is not None:
        flag, ratio = suboptimal_collapse(means, tol=config.suboptimal_tol)
    final = dict(history[-1])
    final["centroid_norm_ratio"] = ratio
    info = {k: v for k, v in ds.info.items() if k != "teacher_weights"}
    info.update(name=ds.name, num_train=len(ds.train), num_test=len(ds.test), num_classes=c, num_true_classes=ct)
    model.eval()
    return TrainResult(
        config=config, history=tuple(history), final=final, tpt_epoch=tpt_epoch, suboptimal_collapse=flag,
        epochs_run=max(start, config.epochs), resumed_from=resumed_from, device=str(device),
        dataset_info=info, model=model,
    )
