"""Tests of nclab.losses against direct per-sample formulas, plus gradient checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nclab.errors import LabelError, ShapeError, SpecError
from nclab.losses import (
    cross_entropy,
    label_relaxation_loss,
    label_smoothing_loss,
    make_loss,
    mse_loss,
)

FUNCS = {"ce": cross_entropy, "ls": label_smoothing_loss, "lr": label_relaxation_loss, "mse": mse_loss}


def _softmax_np(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _reference(name, logits, labels, alpha):
    """Loop over samples with numpy, written from the definitions (no log-softmax tricks)."""
    z_all = logits.detach().numpy().astype(np.float64)
    c = z_all.shape[1]
    total = 0.0
    for z, y in zip(z_all, labels.numpy()):
        p = _softmax_np(z)
        if name == "ce":
            total += -math.log(p[y])
        elif name == "ls":
            target = np.full(c, alpha / c)
            target[y] += 1 - alpha
            total += -(target * np.log(p)).sum()
        elif name == "lr":
            if p[y] >= 1 - alpha:
                continue
            # projection onto the credal set {q: q_y >= 1 - alpha}, written as in Lienen & Hüllermeier
            pr = alpha * p / (1 - p[y])
            pr[y] = 1 - alpha
            mask = pr > 0
            total += (pr[mask] * np.log(pr[mask] / p[mask])).sum()
        elif name == "mse":
            onehot = np.eye(c)[y]
            total += 0.5 * ((z - onehot) ** 2).sum()
    return total / len(z_all)


def _data(n=7, c=4, scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels


@pytest.mark.parametrize("name", ["ce", "ls", "lr", "mse"])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.4])
def test_loss_matches_reference(name, alpha):
    logits, labels = _data()
    want = _reference(name, logits, labels, alpha)
    got_f = FUNCS[name](logits, labels, alpha=alpha, num_classes=4)
    got_m = make_loss(name, alpha=alpha, num_classes=4)(logits, labels)
    assert float(got_f) == pytest.approx(want, rel=1e-12, abs=1e-14)
    assert float(got_m) == pytest.approx(want, rel=1e-12, abs=1e-14)


def test_lr_zero_inside_credal_set_and_mixed_batch():
    # sample 0 confidently right (p_y > 0.9): zero loss; sample 1 uniform: positive loss
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    alpha = 0.1
    lr = label_relaxation_loss(logits, labels, alpha=alpha)
    p = 1 / 3
    per_sample_1 = (1 - alpha) * math.log((1 - alpha) / p) + alpha * math.log(alpha / (1 - p))
    assert float(lr) == pytest.approx(per_sample_1 / 2, rel=1e-12)
    assert float(label_relaxation_loss(logits[:1], labels[:1], alpha=alpha)) == 0.0


def test_lr_stable_for_extreme_logits():
    logits = torch.tensor([[-800.0, 800.0, 0.0]], dtype=torch.float64)
    out = label_relaxation_loss(logits, torch.tensor([0]), alpha=0.1)
    # p_y = e^{-1600}: the loss is (1-a)(log(1-a) + 1600) + a log a (1 - p_y = 1)
    want = 0.9 * (math.log(0.9) + 1600.0) + 0.1 * math.log(0.1)
    assert float(out) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("name", ["ce", "ls", "lr", "mse"])
def test_gradcheck(name):
    logits, labels = _data(n=5, c=3, scale=1.5, seed=1)
    logits.requires_grad_(True)
    alpha = 0.3
    assert torch.autograd.gradcheck(lambda z: FUNCS[name](z, labels, alpha=alpha), (logits,))


def test_lr_gradient_equals_p_minus_projection():
    """The autograd gradient equals p - p^r, i.e. the gradient with p^r held constant (the paper's)."""
    logits, labels = _data(n=6, c=5, scale=1.0, seed=3)
    alpha = 0.2
    z = logits.clone().requires_grad_(True)
    label_relaxation_loss(z, labels, alpha=alpha).backward()
    p = torch.softmax(logits, dim=1)
    py = p.gather(1, labels[:, None])
    pr = alpha * p / (1 - py)
    pr.scatter_(1, labels[:, None], 1 - alpha)
    active = (py < 1 - alpha).double()
    want = active * (p - pr) / len(labels)
    torch.testing.assert_close(z.grad, want, rtol=1e-10, atol=1e-12)
    # and the stop-gradient formulation gives the same gradient
    z2 = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(z2, dim=1)
    kl = (pr * (torch.log(pr) - logp)).sum(dim=1)
    (active[:, 0] * kl).mean().backward()
    torch.testing.assert_close(z2.grad, want, rtol=1e-10, atol=1e-12)


def test_ls_and_lr_reduce_to_ce_at_alpha_zero():
    logits, labels = _data(seed=5)
    ce = cross_entropy(logits, labels)
    assert float(label_smoothing_loss(logits, labels, alpha=0.0)) == pytest.approx(float(ce), rel=1e-14)
    assert float(label_relaxation_loss(logits, labels, alpha=0.0)) == pytest.approx(float(ce), rel=1e-14)


def test_shift_invariance_of_softmax_losses():
    logits, labels = _data(seed=6)
    for name in ("ce", "ls", "lr"):
        a = FUNCS[name](logits, labels, alpha=0.2)
        b = FUNCS[name](logits + 3.7, labels, alpha=0.2)
        assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_float32_input_works():
    logits, labels = _data(seed=7)
    for name in FUNCS:
        out = make_loss(name, alpha=0.1, num_classes=4)(logits.float(), labels)
        assert out.dtype == torch.float32
        assert math.isfinite(float(out))


def test_validation_errors():
    logits, labels = _data()
    with pytest.raises(SpecError, match="loss must be one of"):
        make_loss("hinge", num_classes=4)
    with pytest.raises(SpecError, match="alpha"):
        make_loss("ls", alpha=1.0, num_classes=4)
    with pytest.raises(SpecError, match="alpha"):
        make_loss("lr", alpha=-0.1, num_classes=4)
    with pytest.raises(SpecError, match="alpha"):
        label_smoothing_loss(logits, labels, alpha=float("nan"))
    with pytest.raises(SpecError, match="num_classes"):
        make_loss("ce", num_classes=1)
    with pytest.raises(ShapeError, match="num_classes"):
        make_loss("ce", num_classes=5)(logits, labels)
    with pytest.raises(ShapeError, match="logits"):
        cross_entropy(logits[0], labels)
    with pytest.raises(ShapeError, match="labels"):
        cross_entropy(logits, labels[:-1])
    with pytest.raises(LabelError, match="integer"):
        cross_entropy(logits, labels.double())
    with pytest.raises(LabelError, match="lie in"):
        cross_entropy(logits, labels + 4)


@pytest.mark.parametrize("name", ["ce", "ls", "lr", "mse"])
def test_no_host_sync_off_the_cpu(name):
    # on an accelerator the label-range check would synchronise every training step; the "meta" device
    # stands in for one here: any int()/item() on its tensors raises, so these calls prove there is none
    logits = torch.empty(6, 4, device="meta")
    labels = torch.empty(6, dtype=torch.long, device="meta")
    out = make_loss(name, alpha=0.1, num_classes=4)(logits, labels)
    assert out.shape == () and out.device.type == "meta"
    with pytest.raises(ShapeError, match="num_classes"):  # shape checks still run
        make_loss(name, alpha=0.1, num_classes=5)(logits, labels)
