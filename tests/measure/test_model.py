"""nclab.measure on models: language models, sequence and vision classifiers, batches, heads, errors."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import nclab
from nclab.errors import LabelError, NCLabError, ShapeError, SpecError
from nclab.measure import find_head, measure
from nclab.metrics import collapse_metrics, effective_depth

transformers = pytest.importorskip("transformers")

# present classes re-indexed by hand (np.unique), for an independent reference
def _reference(H, y, W=None, b=None):
    y = np.asarray(y)
    classes, inv = np.unique(y, return_inverse=True)
    idx = torch.as_tensor(classes)
    ref = collapse_metrics(H, torch.as_tensor(inv), weights=None if W is None else W[idx],
                           bias=None if b is None else b[idx], num_classes=len(classes))
    return ref, len(classes)


def _close(got, want, keys=None, rel=1e-5, abs_=1e-6):
    keys = keys or want.keys()
    for k in keys:
        assert k in got, k
        if math.isnan(want[k]):
            assert math.isnan(got[k]), k
        else:
            assert math.isclose(got[k], want[k], rel_tol=rel, abs_tol=abs_), (k, got[k], want[k])


def _gpt2(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=500, n_layer=2, n_embd=32, n_head=2, n_positions=64, **kw)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _lm_batches(seed=0, B=3, T=16, vocab=12, nb=3):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(nb):
        ids = torch.randint(0, vocab, (B, T), generator=g)
        mask = torch.ones(B, T, dtype=torch.long)
        mask[0, T - 3 + i:] = 0  # right padding
        labels = ids.clone()
        labels[1, 5] = -100  # an ignored position
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def _lm_by_hand(model, batches, layer=None):
    hs, ys, ls = [], [], []
    with torch.no_grad():
        for bt in batches:
            o = model(input_ids=bt["input_ids"], attention_mask=bt["attention_mask"], output_hidden_states=True)
            h = o.hidden_states[-1][:, :-1]
            y = bt["labels"][:, 1:]
            m = bt["attention_mask"][:, :-1].bool() & bt["attention_mask"][:, 1:].bool() & (y != -100)
            hs.append(h[m])
            ys.append(y[m])
            if layer is not None:
                ls.append(o.hidden_states[layer][:, :-1][m])
    return torch.cat(hs), torch.cat(ys), (torch.cat(ls) if ls else None)


def test_causal_lm_matches_hidden_states_metric_by_metric():
    model = _gpt2()
    batches = _lm_batches()
    got = measure(model, batches)
    two = measure(model, batches, max_feature_bytes=0)  # the two-pass path gives the same numbers
    H, y, _ = _lm_by_hand(model, batches)
    _close(two, {k: v for k, v in got.items() if k != "passes"}, rel=1e-5)
    want, Cp = _reference(H, y, model.lm_head.weight.detach())
    assert got["num_samples"] == H.shape[0] and got["num_classes"] == 500 and got["num_classes_present"] == Cp
    _close(got, want)
    assert got["passes"] == 1 and "nc4_ncc_mismatch" in got and "accuracy" in got


def test_lm_layer_tap_and_tied_head():
    model = _gpt2()
    name, head = find_head(model)
    assert name == "lm_head" and head.weight is model.transformer.wte.weight  # tied embeddings
    batches = _lm_batches(1)
    got = measure(model, batches, layers=["transformer.h.0"])
    H, y, L = _lm_by_hand(model, batches, layer=1)
    want, _ = _reference(L, y)
    _close(got["layers"]["transformer.h.0"], want)
    classes, inv = np.unique(y.numpy(), return_inverse=True)
    assert got["effective_depth"] == effective_depth([L, H], torch.as_tensor(inv), eps=0.01, num_classes=len(classes))


def test_shift_labels_override():
    model = _gpt2()
    batches = [{k: v for k, v in b.items() if k != "attention_mask"} for b in _lm_batches(2)]
    got = measure(model, batches, shift_labels=False)
    with torch.no_grad():
        H = torch.cat([model(input_ids=b["input_ids"], output_hidden_states=True).hidden_states[-1] for b in batches])
    y = torch.cat([b["labels"] for b in batches])
    keep = y != -100
    want, _ = _reference(H[keep], y[keep], model.lm_head.weight.detach())
    _close(got, want)


def test_sequence_classifier_last_attended_position():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=50, n_layer=1, n_embd=16, n_head=2, n_positions=32, num_labels=3,
                                  pad_token_id=0)
    model = transformers.GPT2ForSequenceClassification(cfg).eval()
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 50, (12, 8), generator=g)
    mask = torch.ones(12, 8, dtype=torch.long)
    mask[::2, 6:] = 0
    ids[mask == 0] = 0
    y = torch.arange(12) % 3
    batches = [{"input_ids": ids[i:i + 4], "attention_mask": mask[i:i + 4], "labels": y[i:i + 4]} for i in (0, 4, 8)]
    got = measure(model, batches)
    with torch.no_grad():
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
    last = mask.sum(1) - 1
    H = hs[torch.arange(12), last]
    want = collapse_metrics(H, y, weights=model.score.weight.detach())
    _close(got, want)


def test_vision_transformer_dict_batches():
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=3)
    model = transformers.ViTForImageClassification(cfg).eval()
    g = torch.Generator().manual_seed(1)
    px = torch.randn(18, 1, 8, 8, generator=g)
    y = torch.arange(18) % 3
    got = measure(model, [{"pixel_values": px[i:i + 6], "labels": y[i:i + 6]} for i in (0, 6, 12)])
    with torch.no_grad():
        H = model.vit(px).last_hidden_state[:, 0]
    _close(got, collapse_metrics(H, y, weights=model.classifier.weight.detach(), bias=model.classifier.bias.detach()))


def _mlp_data(n=60, d=5, C=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(C).repeat(n // C)
    return torch.randn(n, d, generator=g) + 2 * torch.eye(C, d)[y], y


class Counting(nn.Module):
    def __init__(self, body, fc):
        super().__init__()
        self.body, self.fc, self.calls = body, fc, 0

    def forward(self, x):
        self.calls += 1
        return self.fc(self.body(x))


def _loader(x, y, bs=16):
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]


def test_plain_model_one_pass_and_layers():
    torch.manual_seed(0)
    x, y = _mlp_data()
    model = Counting(nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh()), nn.Linear(6, 3))
    loader = _loader(x, y)
    got = measure(model, loader, layers=["body.1"])
    assert model.calls == len(loader)  # one forward pass within the feature budget
    with torch.no_grad():
        feats, hidden = model.body(x), model.body[1](model.body[0](x))
    _close(got, collapse_metrics(feats, y, weights=model.fc.weight, bias=model.fc.bias))
    _close(got["layers"]["body.1"], collapse_metrics(hidden, y))
    assert got["effective_depth"] == effective_depth([hidden, feats], y, eps=0.01)
    # dict batches with x / y, and the callable package
    got2 = nclab.measure(model, [{"x": a, "y": b} for a, b in loader])
    _close(got2, collapse_metrics(feats, y, weights=model.fc.weight, bias=model.fc.bias))


def test_budget_beyond_streams_and_restores_train_mode():
    x, y = _mlp_data()
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3))
    model.train()
    full = measure(model, _loader(x, y))
    assert model.training
    counting = Counting(model[:3], model[3])
    streamed = measure(counting, _loader(x, y), max_feature_bytes=100)  # the second pass equals the kept features
    assert counting.calls == 2 * len(_loader(x, y)) and streamed["passes"] == 2 and full["passes"] == 1
    assert set(streamed) == set(full)
    for k, v in full.items():
        if k != "passes":
            assert math.isclose(streamed[k], v, rel_tol=1e-6, abs_tol=1e-9), k
    assert streamed["num_samples"] == full["num_samples"] == 60
    one = measure(model, _loader(x, y), max_feature_bytes=100, second_pass=False)
    assert "nc4_ncc_mismatch" not in one and "accuracy" not in one and math.isclose(one["nc1"], full["nc1"], rel_tol=1e-6)


def test_one_shot_loader_needs_option():
    x, y = _mlp_data()
    model = nn.Sequential(nn.Linear(5, 3))
    with pytest.raises(SpecError, match="max_feature_bytes"):
        measure(model, iter(_loader(x, y)), max_feature_bytes=10)
    measure(model, iter(_loader(x, y)), max_feature_bytes=10, second_pass=False)  # one pass, streamed
    measure(model, iter(_loader(x, y)))  # within the budget a generator is fine


def test_present_classes_and_strict():
    x, y = _mlp_data(n=60, C=3)
    y = y * 2  # classes 0, 2, 4 of 5: 1 and 3 absent
    model = nn.Sequential(nn.Linear(5, 5))
    got = measure(model, _loader(x, y))
    want, Cp = _reference(x, y, model[0].weight.detach(), model[0].bias.detach())
    assert Cp == 3 and got["num_classes_present"] == 3 and got["num_classes"] == 5
    _close(got, want)
    with pytest.raises(LabelError, match="no sample"):
        measure(model, _loader(x, y), classes="all")
    with pytest.raises(SpecError, match="'present' or 'all'"):
        measure(model, _loader(x, y), classes="some")


def test_single_sample_classes():
    x, y = _mlp_data(n=30)
    y = y.clone()
    y[0] = 3  # class 3 has exactly one sample
    model = nn.Sequential(nn.Linear(5, 6))
    got = measure(model, _loader(x, y))
    want, Cp = _reference(x, y, model[0].weight.detach(), model[0].bias.detach())
    assert Cp == 4
    _close(got, want)


def test_bad_input_one_line_errors():
    x, y = _mlp_data()
    model = nn.Sequential(nn.Linear(5, 3))
    cases = [
        (lambda: measure(nn.Sequential(nn.Linear(5, 3), nn.ReLU()), _loader(x, y)), SpecError, "head="),
        (lambda: measure(model, [{"x": x}]), LabelError, "no labels"),
        (lambda: measure(model, [{"labels": y}]), ShapeError, "no model input"),
        (lambda: measure(model, [(x, y[:10])]), ShapeError, "match no feature"),
        (lambda: measure(model, [(x, y.float())]), LabelError, "integers"),
        (lambda: measure(model, [(x, y + 5)]), LabelError, "outside the head"),
        (lambda: measure(model, [], ), ShapeError, "no sample"),
        (lambda: measure(model, [(x, y)], layers=["nope"]), SpecError, "no layer named"),
        (lambda: measure(model, [(x, y)], shift_labels=True), ShapeError, "shift_labels"),
        (lambda: measure(model, [(x, y)], max_feature_bytes=-1), SpecError, "max_feature_bytes"),
        (lambda: measure(model, [7]), ShapeError, "each batch"),
    ]
    for fn, cls, msg in cases:
        with pytest.raises(cls, match=msg) as info:
            fn()
        assert isinstance(info.value, NCLabError) and "\n" not in str(info.value)


def test_hf_head_named_and_not_found():
    model = _gpt2()
    assert find_head(model, "lm_head")[0] == "lm_head"
    with pytest.raises(SpecError, match="no submodule"):
        find_head(model, "nope")
    with pytest.raises(SpecError, match="not nn.Linear"):
        find_head(model, "transformer.ln_f")


def test_old_imports_and_callable_package():
    import nclab.hooks
    import nclab.io
    import nclab.measure.model

    assert callable(nclab.measure) and nclab.hooks.measure is nclab.measure.measure is nclab.measure.model.measure
    assert nclab.io.load_features is nclab.measure.load_features


def test_progress_reports_both_passes_and_draws_bars_on_a_terminal(monkeypatch, capsys):
    import sys

    from torch import nn

    from nclab.measure import measure
    from nclab.measure.progress import TerminalBars, resolve

    torch.manual_seed(0)
    x = torch.randn(40, 5)
    y = torch.arange(40) % 3
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))
    loader = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 40, 8)]
    seen = []
    measure(model, loader, max_feature_bytes=0, progress=lambda name, done: seen.append((name, done)))
    assert seen == [("pass 1", i) for i in range(1, 6)] + [("pass 2", i) for i in range(1, 6)]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert resolve(True, loader)[0] is None  # not a terminal: nothing drawn
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    cb, close = resolve(True, loader)
    assert isinstance(cb, TerminalBars) and cb.total == 5
    cb("pass 1", 5)
    close()
    assert "pass 1" in capsys.readouterr().err
    with pytest.raises(Exception, match="progress must be"):
        resolve("yes", loader)


def test_frequency_weighting_reaches_both_measure_paths():
    # measure(weighting="frequency") equals collapse_metrics(weighting="frequency") on the same features,
    # kept (one pass) and streamed (two passes)
    from torch import nn

    from nclab.measure import measure

    torch.manual_seed(1)
    x = torch.randn(60, 5, dtype=torch.float64)
    y = torch.cat([torch.zeros(10), torch.ones(20), torch.full((30,), 2)]).long()
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    loader = [(x[i:i + 12], y[i:i + 12]) for i in range(0, 60, 12)]
    with torch.no_grad():
        h = model[1](model[0](x))
    want = collapse_metrics(h, y, weights=model[2].weight, bias=model[2].bias, weighting="frequency")
    for budget in (2**31, 0):
        got = measure(model, loader, weighting="frequency", max_feature_bytes=budget)
        for k in ("nc1", "nc2_etf", "nc3_duality", "accuracy"):
            assert got[k] == pytest.approx(want[k], rel=1e-9), (budget, k)
