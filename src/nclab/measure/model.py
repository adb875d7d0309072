"""Measure neural collapse of a model over a data loader: classifiers, vision backbones, language models.

Forward hooks capture the input of the classifier head (the penultimate features) and the outputs
of any other named ``layers``. The head is found automatically: the model's
``get_output_embeddings()`` (Hugging Face models, tied embeddings included), the last module of an
``nn.Sequential``, or a linear ``lm_head``, ``score``, ``classifier``, ``fc``, ``head`` or
``linear`` attribute (or an ``nn.Sequential`` ending in one), also inside a wrapper's ``module``,
``model``, ``net`` or ``network`` attribute; otherwise name it with ``head=``.

Batches
    ``(inputs, labels[, true_labels])`` tuples, or dicts: the input is ``input_ids``,
    ``pixel_values``, ``inputs_embeds``, ``input_values`` (passed by keyword), or ``x`` / ``input``
    (passed positionally); the labels are ``labels`` (or ``y`` / ``label``); every other key except
    ``true_labels`` / ``true_y`` is passed to the model as a keyword argument (``attention_mask``
    included). Labels are never passed to the model (no loss is computed).

Samples
    Head inputs of shape (B, d) with labels (B,): one sample per row. Head inputs (B, T, d) with
    labels (B, T): every position is a sample; positions labelled ``ignore_index`` (default -100)
    or with ``attention_mask == 0`` are left out. For causal language models (``shift_labels=True``,
    detected for ``*ForCausalLM`` / ``*LMHeadModel`` classes) the feature at position t is labelled
    with the token at t+1, as the model's own loss does; position t is kept when both t and t+1 are
    attended. Head inputs (B, T, d) with labels (B,) (sequence classification heads applied at every
    position, e.g. ``GPT2ForSequenceClassification``): the feature of the last attended position.

Classes
    ``classes="present"`` (default): metrics over the classes that have samples, with the matching
    rows of W and b (a language model's head has 50,000+ rows, most never the next token of an
    evaluation set). ``classes="all"``: every row of W is a class and needs a sample.

Memory
    Features are kept (in their dtype, on their device) up to ``max_feature_bytes`` in all taps
    together (default 2 GiB). Within it, every metric comes from the kept features after one
    forward pass. Beyond it, the kept features are folded into float64 class statistics
    (:class:`~nclab.metrics.ClassStats`, O(C d + d^2)) and dropped; the statistics that need the
    final class means per sample (NC4, NCC accuracy, accuracy, margins) come from a second pass
    over the loader, which must then be re-iterable (a list, a ``DataLoader``; not a generator).

Several processes
    When ``torch.distributed`` is initialised with several processes, each rank measures its shard
    and the class statistics are all-reduced exactly (:func:`~nclab.measure.all_reduce_stats`):
    every rank returns the same result, that of one process over the union of the shards.
"""

from __future__ import annotations

import collections.abc as cabc
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from nclab.measure.progress import resolve as resolve_progress
from nclab.errors import LabelError, ShapeError, SpecError

__all__ = ["measure", "find_head", "DEFAULT_MAX_FEATURE_BYTES"]

DEFAULT_MAX_FEATURE_BYTES = 2 * 1024**3
_WRAPPED = ("module", "model", "net", "network")
_HEAD_ATTRS = ("lm_head", "score", "classifier", "fc", "head", "linear")
_KW_INPUTS = ("input_ids", "pixel_values", "inputs_embeds", "input_values", "input_features")
_POS_INPUTS = ("x", "input", "inputs")
_LABEL_KEYS = ("labels", "label", "y")
_TRUE_KEYS = ("true_labels", "true_y")
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_SCATTER_DIM_LIMIT = 4096  # streamed layers wider than this keep no (d, d) scatter (NC1 then needs kept features)


def _as_linear(name: str, mod: nn.Module | None) -> tuple[str, nn.Linear] | None:
    if isinstance(mod, nn.Linear):
        return name, mod
    if isinstance(mod, nn.Sequential) and len(mod) and isinstance(mod[-1], nn.Linear):
        return f"{name}.{len(mod) - 1}", mod[-1]
    return None


def find_head(model: nn.Module, head: str | None = None) -> tuple[str, nn.Linear]:
    """Name and module of the final linear classifier of ``model`` (see the module docstring)."""
    if head is not None:
        try:
            mod = model.get_submodule(head)
        except AttributeError:
            names = [n for n, _ in model.named_modules() if n][:20]
            raise SpecError(f"model has no submodule named {head!r}; names: {names}") from None
        if not isinstance(mod, nn.Linear):
            raise SpecError(f"head {head!r} is a {type(mod).__name__}, not nn.Linear; name the final linear layer.")
        return head, mod
    candidates: list[tuple[str, nn.Module | None]] = []
    get_out = getattr(model, "get_output_embeddings", None)
    if callable(get_out):
        try:
            out_emb = get_out()
        except Exception:  # a model whose accessor is not implemented
            out_emb = None
        if isinstance(out_emb, nn.Linear):
            for name, mod in model.named_modules():
                if mod is out_emb:
                    return name, mod
    if isinstance(model, nn.Sequential) and len(model):
        candidates.append((str(len(model) - 1), model[-1]))
    for attr in _HEAD_ATTRS:
        if isinstance(getattr(model, attr, None), nn.Module):
            candidates.append((attr, getattr(model, attr)))
    for name, mod in candidates:
        found = _as_linear(name, mod)
        if found is not None:
            return found
    for attr in _WRAPPED:  # DDP's .module, a LightningModule's .model / .net
        inner = getattr(model, attr, None)
        if isinstance(inner, nn.Module) and inner is not model:
            try:
                name, mod = find_head(inner)
            except SpecError:
                continue
            return f"{attr}.{name}", mod
    raise SpecError(
        f"could not find the classifier head of {type(model).__name__} automatically (looked for "
        f"get_output_embeddings(), a final nn.Linear and the attributes {', '.join(_HEAD_ATTRS)}); "
        "pass head='<name of the final nn.Linear>' (see model.named_modules())."
    )


def _is_causal_lm(model: nn.Module) -> bool:
    return type(model).__name__.endswith(_CAUSAL_SUFFIXES)


# ------------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------------
@dataclass
class _Batch:
    args: tuple
    kwargs: dict
    labels: torch.Tensor
    mask: torch.Tensor | None = None


def _to(x: Any, device: torch.device) -> Any:
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, torch.Tensor) for v in x):
        return type(x)(_to(v, device) for v in x)
    return x


def _labels_tensor(y: Any, device: torch.device) -> torch.Tensor:
    try:
        t = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError):
        raise ShapeError(f"labels must be an integer tensor or array; got {type(y).__name__}.") from None
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise LabelError(f"labels must be integers; got dtype {t.dtype}.")
    return t.to(device)


def _parse(batch: Any, device: torch.device) -> _Batch:
    if isinstance(batch, cabc.Mapping):
        keys = list(batch.keys())
        lab_key = next((k for k in _LABEL_KEYS if k in batch), None)
        if lab_key is None or batch[lab_key] is None:
            raise LabelError(
                f"the batch has no labels: a dict batch needs a 'labels' (or 'y') entry; got keys {keys}. "
                "For a causal language model pass labels=input_ids."
            )
        rest = {k: v for k, v in batch.items() if k not in _LABEL_KEYS and k not in _TRUE_KEYS}
        pos = next((k for k in _POS_INPUTS if k in rest), None)
        if pos is None and not any(k in rest for k in _KW_INPUTS):
            raise ShapeError(
                f"the batch has no model input: a dict batch needs one of {list(_KW_INPUTS + _POS_INPUTS)}; "
                f"got keys {keys}."
            )
        args = (_to(rest.pop(pos), device),) if pos is not None else ()
        kwargs = {k: _to(v, device) for k, v in rest.items()}
        mask = kwargs.get("attention_mask")
        return _Batch(args, kwargs, _labels_tensor(batch[lab_key], device),
                      None if mask is None else torch.as_tensor(mask).to(device).bool())
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        x = batch[0]
        if isinstance(x, cabc.Mapping):
            return _Batch((), _to(dict(x), device), _labels_tensor(batch[1], device),
                          None if x.get("attention_mask") is None else torch.as_tensor(x["attention_mask"]).to(device).bool())
        return _Batch((_to(x, device),), {}, _labels_tensor(batch[1], device))
    raise ShapeError(
        f"each batch must be (inputs, labels[, true_labels]) or a dict with an input ('input_ids', "
        f"'pixel_values', 'x') and 'labels'; got {type(batch).__name__}."
    )


def _first_tensor(out: Any) -> torch.Tensor | None:
    """The main tensor of a module output: a tensor, the first of a tuple, or a ModelOutput's first field."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, cabc.Mapping):  # ModelOutput is an OrderedDict
        if isinstance(out.get("last_hidden_state"), torch.Tensor):
            return out["last_hidden_state"]
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        for v in out:
            if isinstance(v, torch.Tensor):
                return v
    return None


@dataclass
class _Selector:
    """Which rows of a tapped tensor are samples: ``token`` positions (B, T) or ``sample`` rows (B,)."""

    kind: str
    keep: torch.Tensor  # flat bool over positions / rows
    steps: int = 0  # T used, token kind (after the shift)
    pos: torch.Tensor | None = None  # (B,) position per row, pooled kind

    def __call__(self, t: torch.Tensor, name: str) -> torch.Tensor:
        B = self.keep.shape[0] if self.kind != "token" else None
        if self.kind == "token":
            if t.dim() < 3:
                raise ShapeError(f"layer {name!r} output {tuple(t.shape)} has no sequence axis; token-level "
                                 "labels need (B, T, ...) outputs.")
            return t[:, : self.steps].reshape(-1, *t.shape[2:]).flatten(1)[self.keep]
        if self.kind == "pooled" and t.dim() >= 3:
            t = t[torch.arange(t.shape[0], device=t.device), self.pos.to(t.device)]
        if t.shape[0] != B:
            raise ShapeError(f"layer {name!r} output {tuple(t.shape)} does not have the batch's {B} rows.")
        return t.flatten(1)[self.keep]


def _select(h: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, shift: bool, ignore_index: int):
    """(selector, labels (n,)) from the head input (..., d), the labels and the attention mask."""
    if h.dim() == 3 and y.dim() == 2 and y.shape == h.shape[:2]:
        if shift:
            y = y[:, 1:]
            if mask is not None:
                mask = mask[:, :-1] & mask[:, 1:]
        keep = y != ignore_index
        if mask is not None:
            if mask.shape != y.shape:
                raise ShapeError(f"attention_mask of shape {tuple(mask.shape)} does not match the labels.")
            keep &= mask
        keep = keep.reshape(-1)
        return _Selector("token", keep, steps=y.shape[1]), y.reshape(-1)[keep]
    if shift:
        raise ShapeError(
            f"shift_labels=True needs token features (B, T, d) with labels (B, T); got features "
            f"{tuple(h.shape)} and labels {tuple(y.shape)}. Pass shift_labels=False."
        )
    if h.dim() == 2 and y.dim() == 1 and y.shape[0] == h.shape[0]:
        keep = y != ignore_index
        return _Selector("sample", keep), y[keep]
    if h.dim() == 3 and y.dim() == 1 and y.shape[0] == h.shape[0]:
        T = h.shape[1]
        if mask is not None and mask.shape == h.shape[:2]:
            ar = torch.arange(T, device=mask.device).expand_as(mask)
            pos = torch.where(mask, ar, torch.zeros_like(ar)).amax(1)
        else:
            pos = torch.full((h.shape[0],), T - 1, dtype=torch.long, device=h.device)
        keep = y != ignore_index
        return _Selector("pooled", keep, pos=pos), y[keep]
    raise ShapeError(
        f"labels of shape {tuple(y.shape)} match no feature of shape {tuple(h.shape)}: pass labels (B,) for "
        "features (B, d) or (B, T, d), or labels (B, T) for token features (B, T, d)."
    )


# ------------------------------------------------------------------------------------------------
# the measurement
# ------------------------------------------------------------------------------------------------
@dataclass
class _Tap:
    name: str
    chunks: list = field(default_factory=list)
    stats: Any = None  # ClassStats, created when the kept features are first folded in


def _is_one_shot(loader: Iterable) -> bool:
    return isinstance(loader, cabc.Iterator)


def _fold(taps: list[_Tap], labels: list[torch.Tensor], C: int, chunk_bytes: int = 64 * 1024**2) -> None:
    """Fold the kept chunks into each tap's ClassStats, ``chunk_bytes`` at a time, and drop them."""
    from nclab.metrics import ClassStats

    for tap in taps:
        if tap.stats is None:
            d = tap.chunks[0].shape[1] if tap.chunks else 0
            tap.stats = ClassStats(C, track_scatter=d <= _SCATTER_DIM_LIMIT)
        group, gy, size = [], [], 0
        for h, y in zip(tap.chunks, labels):
            group.append(h)
            gy.append(y)
            size += h.numel() * h.element_size()
            if size >= chunk_bytes:
                tap.stats.update(torch.cat(group), torch.cat(gy))
                group, gy, size = [], [], 0
        if group:
            tap.stats.update(torch.cat(group), torch.cat(gy))
        tap.chunks.clear()
    labels.clear()


@torch.no_grad()
def measure(
    model: nn.Module,
    loader: Iterable,
    *,
    layers: Sequence[str] = (),
    head: str | None = None,
    device: str | torch.device | None = None,
    classes: str = "present",
    shift_labels: bool | None = None,
    ignore_index: int = -100,
    max_feature_bytes: int = DEFAULT_MAX_FEATURE_BYTES,
    second_pass: bool = True,
    keep_features: bool | None = None,
    eps: float = 0.01,
    progress: bool | Callable[[str, int], None] | None = None,
    weighting: str = "classes",
) -> dict[str, Any]:
    """All collapse metrics of ``model`` on ``loader`` (eval mode, no gradients).

    Parameters
    ----------
    model : nn.Module
    loader : iterable of batches
        ``(inputs, labels[, true_labels])`` or dicts (see the module docstring). True labels are
        accepted and not used (memorization needs a test set: use ``collapse_metrics``).
    layers : sequence of str, default=()
        Names (``model.named_modules()``) of further layers to measure; their outputs (the first
        tensor of a tuple / ``ModelOutput``) are flattened per sample.
    head : str, optional
        Name of the final ``nn.Linear`` when it cannot be found automatically.
    device : optional
        Default: the device of the model's parameters.
    classes : {"present", "all"}, default="present"
        ``"present"``: metrics over the classes that have samples, with the matching rows of W and
        b; the result has ``num_classes`` and ``num_classes_present``. ``"all"``: strict.
    shift_labels : bool, optional
        Label the feature at position t with the label at t+1 (causal LMs). Default: True for
        ``*ForCausalLM`` / ``*LMHeadModel`` classes, else False.
    ignore_index : int, default=-100
        Label value of positions (or samples) to leave out.
    max_feature_bytes : int, default=2 GiB
        Most bytes of features kept in memory (all taps together); beyond it, a second pass.
    second_pass : bool, default=True
        With ``False``, features beyond ``max_feature_bytes`` are streamed in one pass and the
        per-sample statistics that need the final means are left out.
    keep_features : bool, optional
        Deprecated shorthand: ``False`` is ``max_feature_bytes=0, second_pass=False``.
    eps : float, default=0.01
        Threshold of the effective depth over ``layers`` + the penultimate layer.
    weighting : {"classes", "frequency"}, default="classes"
        The global mean that centres the class means (:func:`~nclab.metrics.collapse_metrics`):
        ``"frequency"`` weights classes by their token counts, as Wu & Papyan (2024) do for language models.
    progress : bool or callable(pass_name, batches_done), optional
        ``True``: a progress bar per pass on stderr when it is a terminal (nothing otherwise); a
        callable is called after every batch (``pass_name`` is ``"pass 1"`` or ``"pass 2"``).

    Returns
    -------
    dict
        The penultimate layer's metrics (keys of :func:`~nclab.metrics.collapse_metrics`),
        ``num_samples``, ``passes``; with ``classes="present"``: ``num_classes`` and
        ``num_classes_present``; with ``layers``: ``"layers": {name: metrics}`` and, when the features
        were kept, ``effective_depth``.

    Raises
    ------
    SpecError
        Head not found, unknown layer, a one-shot loader when a second pass is needed, bad options.
    LabelError, ShapeError
        A batch without labels, labels that match no feature shape, fewer than two classes.
    """
    progress, _close_progress = resolve_progress(progress, loader)
    try:
        from nclab.measure._compute import check_classes, decision_pass, metrics_of_features, metrics_of_stats, moments_of
        from nclab.measure.distributed import all_reduce_decisions, all_reduce_stats, is_distributed

        check_classes(classes)
        if keep_features is False:
            max_feature_bytes, second_pass = 0, False
        if not (isinstance(max_feature_bytes, int) and max_feature_bytes >= 0):
            raise SpecError(f"max_feature_bytes must be an integer >= 0; got {max_feature_bytes!r}.")
        head_name, head_mod = find_head(model, head)
        if device is None:
            p = next(model.parameters(), None)
            device = p.device if p is not None else torch.device("cpu")
        device = torch.device(device)
        shift = _is_causal_lm(model) if shift_labels is None else bool(shift_labels)
        W = head_mod.weight.detach()
        b = None if head_mod.bias is None else head_mod.bias.detach()
        C = W.shape[0]
        if C < 2:
            raise SpecError(f"the head {head_name!r} has {C} output; collapse metrics need a classifier with >= 2 classes.")
        distributed = is_distributed()

        current: dict[str, Any] = {}
        handles = [head_mod.register_forward_pre_hook(lambda m, inp: current.__setitem__("__head__", inp[0]))]
        for name in layers:
            try:
                mod = model.get_submodule(name)
            except AttributeError:
                raise SpecError(f"model has no layer named {name!r}; see model.named_modules().") from None
            handles.append(mod.register_forward_hook(lambda m, i, out, _n=name: current.__setitem__(_n, out)))
        taps = [_Tap("__head__")] + [_Tap(n) for n in layers]
        labels: list[torch.Tensor] = []
        kept_bytes = 0
        folded = False
        n = 0

        def run(batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            bt = _parse(batch, device)
            current.clear()
            model(*bt.args, **bt.kwargs)
            if "__head__" not in current:
                raise SpecError(f"the head {head_name!r} was not called in the forward pass; pass head=...")
            h = current["__head__"]
            sel, y = _select(h, bt.labels, bt.mask, shift, ignore_index)
            feats = {"__head__": sel(h, head_name).detach()}
            for name in layers:
                t = _first_tensor(current.get(name))
                if t is None:
                    raise SpecError(f"layer {name!r} returned no tensor in the forward pass.")
                feats[name] = sel(t, name).detach()
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= C):
                bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
                raise LabelError(f"label {bad} is outside the head's {C} classes [0, {C}); pass labels in range "
                                 f"(or ignore_index={ignore_index} for positions to leave out).")
            return feats, y

        was_training = model.training
        model.eval()
        try:
            for i, batch in enumerate(loader):
                feats, y = run(batch)
                n += y.shape[0]
                if y.numel():
                    for tap in taps:
                        tap.chunks.append(feats[tap.name])
                        kept_bytes += feats[tap.name].numel() * feats[tap.name].element_size()
                    labels.append(y)
                if kept_bytes > max_feature_bytes:
                    if second_pass and _is_one_shot(loader):
                        raise SpecError(
                            f"the features exceed max_feature_bytes={max_feature_bytes} and the exact metrics then "
                            "need a second pass, but the loader is a one-shot iterator; pass a re-iterable loader "
                            "(a list or DataLoader), raise max_feature_bytes, or pass second_pass=False."
                        )
                    _fold(taps, labels, C)
                    kept_bytes, folded = 0, True
                if progress is not None:
                    progress("pass 1", i + 1)
            if n == 0 and not distributed:
                raise ShapeError("the loader yielded no sample; pass a non-empty loader (and labels not all ignore_index).")
            penult = taps[0]
            if not folded and not distributed:
                out = metrics_of_features(penult.chunks, labels, weights=W, bias=b, num_classes=C, classes=classes,
                                          weighting=weighting)
                out["passes"] = 1
                if layers:
                    out["layers"] = {t.name: metrics_of_features(t.chunks, labels, num_classes=C, classes=classes,
                                                                   weighting=weighting)
                                     for t in taps[1:]}
                    out["effective_depth"] = _effective_depth(taps, labels, C, classes, eps)
                return out
            kept = not folded  # distributed, features still in memory: the decision pass reads them
            kept_chunks = [list(t.chunks) for t in taps]
            kept_labels = list(labels)
            _fold(taps, labels, C)
            for tap in taps:
                if distributed:
                    all_reduce_stats(tap.stats)
            moments = [moments_of(t.stats, classes, weighting) for t in taps]
            passes = [decision_pass(moments[0], W, b)] + [decision_pass(m) for m in moments[1:]]
            if second_pass or kept:
                if kept:
                    for dp, chunks in zip(passes, kept_chunks):
                        for h, y in zip(chunks, kept_labels):
                            dp.update(h, y)
                else:
                    for i, batch in enumerate(loader):
                        feats, y = run(batch)
                        if y.numel():
                            for dp, tap in zip(passes, taps):
                                dp.update(feats[tap.name], y)
                        if progress is not None:
                            progress("pass 2", i + 1)
                for dp in passes:
                    if distributed:
                        all_reduce_decisions(dp)
                decisions = [dp.compute() for dp in passes]
            else:
                decisions = [None] * len(taps)
            out = metrics_of_stats(penult.stats, weights=W, bias=b, classes=classes, moments=moments[0],
                                   decisions=decisions[0])
            out["passes"] = 2 if (second_pass and not kept) else 1
            if layers:
                out["layers"] = {t.name: metrics_of_stats(t.stats, classes=classes, moments=m, decisions=dd)
                                 for t, m, dd in zip(taps[1:], moments[1:], decisions[1:])}
                if decisions[0] is not None:
                    out["effective_depth"] = _depth_from(decisions, eps)
            return out
        finally:
            for h in handles:
                h.remove()
            model.train(was_training)
    finally:
        _close_progress()


def _effective_depth(taps: list[_Tap], labels: list[torch.Tensor], C: int, classes: str, eps: float) -> int:
    from nclab.metrics import effective_depth

    y = torch.cat(labels)
    feats = [torch.cat(t.chunks) for t in taps[1:]] + [torch.cat(taps[0].chunks)]
    return effective_depth(feats, y, eps=eps, num_classes=C)


def _depth_from(decisions: list, eps: float) -> int:
    """:func:`~nclab.metrics.effective_depth` from decision passes: the first 1-based index, over
    [layer 1, ..., layer k, penultimate], whose NCC error is at most ``eps``, else k + 1.
    ``decisions`` is [penultimate, layer 1, ..., layer k]."""
    order = decisions[1:] + decisions[:1]
    for i, d in enumerate(order):
        if 1.0 - d.ncc_correct / d.n <= eps:
            return i + 1
    return len(order)
