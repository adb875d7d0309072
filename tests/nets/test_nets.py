"""Networks: exact fixed ETF heads that never move, MLP layout, taps, CIFAR architectures."""

from __future__ import annotations

import pytest
import torch

from nclab.errors import SpecError
from nclab.nets import FixedETFHead, NetSpec, build_net, random_orthogonal, simplex_etf


def _etf_gram(c: int) -> torch.Tensor:
    return c / (c - 1) * (torch.eye(c, dtype=torch.float64) - 1.0 / c)


@pytest.mark.parametrize("c,d", [(2, 1), (2, 2), (3, 2), (5, 5), (10, 9), (10, 32)])
def test_simplex_etf_gram_exact(c, d):
    m = simplex_etf(c, d)
    assert m.shape == (c, d)
    torch.testing.assert_close(m @ m.T, _etf_gram(c), rtol=0, atol=1e-12)
    # centred: the class vectors sum to zero
    torch.testing.assert_close(m.sum(0), torch.zeros(d, dtype=torch.float64), rtol=0, atol=1e-12)


def test_random_orthogonal():
    r = random_orthogonal(7, seed=3)
    torch.testing.assert_close(r @ r.T, torch.eye(7, dtype=torch.float64), rtol=0, atol=1e-12)
    assert torch.equal(r, random_orthogonal(7, seed=3))
    assert not torch.allclose(r, random_orthogonal(7, seed=4))


@pytest.mark.parametrize("transform", ["none", "permute", "rotate"])
def test_etf_head_variants_are_exact_etfs(transform):
    c, d = 6, 8
    base = simplex_etf(c, d).float()
    head = FixedETFHead(c, d, transform=transform, seed=11)
    w = head.weight.double()
    torch.testing.assert_close(w @ w.T, _etf_gram(c), rtol=0, atol=1e-6)
    if transform == "permute":
        perm = torch.randperm(c, generator=torch.Generator().manual_seed(11))
        torch.testing.assert_close(head.weight, base[perm])
        assert not torch.equal(head.weight, base)
    if transform == "rotate":
        r = random_orthogonal(d, seed=11).float()
        torch.testing.assert_close(head.weight, base @ r.T, rtol=0, atol=1e-6)
    assert list(head.parameters()) == []


def test_fixed_head_never_trained():
    spec = NetSpec(arch="mlp", depth=2, width=16, head="etf", head_transform="rotate", head_seed=2)
    net = build_net(spec, input_shape=(5,), num_classes=4)
    w0 = net.head.weight.clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9, nesterov=True, weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = torch.randn(32, 5, generator=g)
        y = torch.randint(0, 4, (32,), generator=g)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    assert torch.equal(net.head.weight, w0)
    assert all(p is not net.head.weight for p in net.parameters())
    assert "head.weight" in net.state_dict()  # still saved with checkpoints


def test_mlp_layout_and_bn_modes():
    net = build_net(NetSpec.paper_mlp(), input_shape=(40,), num_classes=2)
    lin = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(40, 2048)] + [(2048, 2048)] * 8 + [(2048, 2), (2, 2)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules()) == 10
    assert net.tap_names == tuple(f"block{i}" for i in range(1, 10)) + ("features",)
    na = build_net(NetSpec(depth=2, width=8, batch_norm="non-affine"), input_shape=(3,), num_classes=3)
    bns = [m for m in na.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns and all(b.weight is None and b.bias is None for b in bns)
    nobn = build_net(NetSpec(depth=2, width=8, batch_norm="none", head_bias=False, penultimate_width=5,
                             activation="sigmoid"), input_shape=(3,), num_classes=3)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in nobn.modules())
    assert nobn.head.bias is None and nobn.feature_dim == 5
    assert any(isinstance(m, torch.nn.Sigmoid) for m in nobn.modules())
    after = build_net(NetSpec(depth=1, width=4, bn_after_activation=True), input_shape=(3,), num_classes=2)
    kinds = [type(m).__name__ for m in after.blocks[0]]
    assert kinds.index("ReLU") < kinds.index("BatchNorm1d")


def test_taps_match_a_manual_forward():
    torch.manual_seed(0)
    net = build_net(NetSpec(depth=3, width=12), input_shape=(2, 5), num_classes=3).eval()
    x = torch.randn(7, 2, 5)
    logits, taps = net.forward_taps(x, net.tap_names)
    h = x.flatten(1)
    for name, blk in zip(net.tap_names, net.blocks):
        h = blk(h)
        torch.testing.assert_close(taps[name], h)
    torch.testing.assert_close(logits, h @ net.head.weight.T + net.head.bias)
    torch.testing.assert_close(net(x), logits)
    _, only = net.forward_taps(x, ["features"])
    torch.testing.assert_close(only["features"], net.features(x))
    with pytest.raises(SpecError, match="unknown tap"):
        net.forward_taps(x, ["block9"])


def test_resnet18_and_vgg13_cifar_forms():
    r = build_net(NetSpec(arch="resnet18"), input_shape=(3, 32, 32), num_classes=10)
    # the CIFAR ResNet18 (3x3 stem, no max-pool) has 11,173,962 parameters with 10 classes
    assert sum(p.numel() for p in r.parameters()) == 11_173_962
    assert r.blocks[0][0].kernel_size == (3, 3) and r.blocks[0][0].stride == (1, 1)
    v = build_net(NetSpec(arch="vgg13"), input_shape=(3, 32, 32), num_classes=10)
    cfg = [64, 64, 128, 128, 256, 256, 512, 512, 512, 512]
    want, c_in = 0, 3
    for c in cfg:  # conv weight + conv bias + BN gamma/beta
        want += 9 * c_in * c + c + 2 * c
        c_in = c
    want += 512 * 10 + 10
    assert sum(p.numel() for p in v.parameters()) == want
    x = torch.randn(2, 3, 32, 32)
    for net in (r.eval(), v.eval()):
        logits, taps = net.forward_taps(x, net.tap_names, pool_spatial=True)
        assert logits.shape == (2, 10) and taps[net.tap_names[-1]].shape == (2, 512)
        assert all(t.ndim == 2 for t in taps.values())
    with pytest.raises(SpecError, match="image inputs"):
        build_net(NetSpec(arch="resnet18"), input_shape=(40,), num_classes=2)


def test_netspec_validation():
    with pytest.raises(SpecError, match="batch_norm"):
        NetSpec(batch_norm="group")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="head='etf'"):
        NetSpec(head_transform="permute")
    with pytest.raises(SpecError, match="dim >= 9"):
        build_net(NetSpec(head="etf", penultimate_width=3), input_shape=(4,), num_classes=10)
