"""Measure neural collapse of a model over a data loader, in one forward pass.

Forward hooks capture the input of the classifier head (the penultimate features, found
automatically for ``nn.Sequential`` models ending in ``nn.Linear`` and for models with a linear
``.fc``, ``.classifier``, ``.head`` or ``.linear`` attribute, or named with ``head=``) and the
outputs of any other named ``layers``. Each tap feeds a :class:`~nclab.metrics.CollapseTracker`, so
no second pass over the data is ever made. With ``keep_features=True`` (default) each tap keeps its
features for the exact nearest-class-centre metrics (NC4, NCC accuracy, effective depth); with
``keep_features=False`` memory is O(C d + d^2) per tap and those metrics are left out.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch
from torch import nn

from nclab.errors import ShapeError, SpecError
from nclab.metrics import CollapseTracker, effective_depth

__all__ = ["measure", "find_head"]

_HEAD_ATTRS = ("fc", "classifier", "head", "linear")


def find_head(model: nn.Module, head: str | None = None) -> tuple[str, nn.Linear]:
    """Name and module of the final linear classifier of ``model``."""
    if head is not None:
        try:
            mod = model.get_submodule(head)
        except AttributeError:
            raise SpecError(f"model has no submodule named {head!r}; names: {[n for n, _ in model.named_modules()][:20]}") from None
        if not isinstance(mod, nn.Linear):
            raise SpecError(f"head {head!r} is a {type(mod).__name__}, not nn.Linear; name the final linear layer.")
        return head, mod
    candidates: list[tuple[str, nn.Module]] = []
    if isinstance(model, nn.Sequential) and len(model):
        candidates.append((str(len(model) - 1), model[-1]))
    for attr in _HEAD_ATTRS:
        if isinstance(getattr(model, attr, None), nn.Module):
            candidates.append((attr, getattr(model, attr)))
    for name, mod in candidates:
        if isinstance(mod, nn.Linear):
            return name, mod
        if isinstance(mod, nn.Sequential) and len(mod) and isinstance(mod[-1], nn.Linear):
            return f"{name}.{len(mod) - 1}", mod[-1]
    raise SpecError(
        "could not find the classifier head automatically; pass head='<name of the final nn.Linear>' "
        "(see model.named_modules())."
    )


def _split_batch(batch: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    if isinstance(batch, dict):
        x, y = batch.get("x", batch.get("input")), batch.get("y", batch.get("label"))
        return x, y, batch.get("true_y")
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1], batch[2] if len(batch) > 2 else None
    raise ShapeError("each batch must be (inputs, labels[, true_labels]) or a dict with 'x' and 'y'.")


@torch.no_grad()
def measure(
    model: nn.Module,
    loader: Iterable,
    *,
    layers: Sequence[str] = (),
    head: str | None = None,
    device: str | torch.device | None = None,
    keep_features: bool = True,
    eps: float = 0.01,
) -> dict[str, Any]:
    """All collapse metrics of ``model`` on ``loader`` from one forward pass (eval mode).

    Parameters
    ----------
    model : nn.Module
    loader : iterable of (inputs, labels) or (inputs, labels, true_labels)
    layers : sequence of str, default=()
        Names (``model.named_modules()``) of further layers to measure; their outputs are flattened.
    head : str, optional
        Name of the final ``nn.Linear`` when it cannot be found automatically.
    device : optional
        Default: the device of the model's parameters.
    keep_features : bool, default=True
        Keep tapped features for NC4 / NCC accuracy / effective depth (see module docstring).
    eps : float, default=0.01
        Threshold of the effective depth over ``layers`` + the penultimate layer.

    Returns
    -------
    dict
        The penultimate layer's metrics (keys of :func:`~nclab.metrics.collapse_metrics`),
        ``num_samples``, and with ``layers``: ``"layers": {name: metrics}`` and ``effective_depth``.
    """
    head_name, head_mod = find_head(model, head)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    W = head_mod.weight.detach().to(device)
    b = None if head_mod.bias is None else head_mod.bias.detach().to(device)
    C = W.shape[0]
    penult = CollapseTracker(C, weights=W, bias=b, keep_features=keep_features)
    taps = {name: CollapseTracker(C, keep_features=keep_features) for name in layers}
    current: dict[str, torch.Tensor] = {}
    handles = [head_mod.register_forward_pre_hook(lambda m, inp: current.__setitem__("__head__", inp[0]))]
    for name in layers:
        try:
            mod = model.get_submodule(name)
        except AttributeError:
            raise SpecError(f"model has no layer named {name!r}; see model.named_modules().") from None
        handles.append(mod.register_forward_hook(lambda m, i, out, _n=name: current.__setitem__(_n, out)))
    was_training = model.training
    model.eval()
    n = 0
    try:
        for batch in loader:
            x, y, t = _split_batch(batch)
            current.clear()
            x = x.to(device) if isinstance(x, torch.Tensor) else x
            y = torch.as_tensor(y).to(device)
            model(x)
            if "__head__" not in current:
                raise SpecError(f"the head {head_name!r} was not called in the forward pass; pass head=...")
            penult.update(current["__head__"].flatten(1), y, None if t is None else torch.as_tensor(t).to(device))
            for name, tr in taps.items():
                tr.update(current[name].flatten(1), y)
            n += y.shape[0]
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    if n == 0:
        raise ShapeError("the loader yielded no batch; pass a non-empty loader.")
    out: dict[str, Any] = dict(penult.compute())
    out["num_samples"] = n
    if layers:
        out["layers"] = {name: tr.compute() for name, tr in taps.items()}
        if keep_features:
            feats = [taps[nm].features for nm in layers] + [penult.features]
            out["effective_depth"] = effective_depth(feats, penult.labels, eps=eps, num_classes=C)
    return out
