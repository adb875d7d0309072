"""Networks: exact fixed ETF heads that never move, MLP layout, taps, CIFAR architectures.

Parameter counts are computed here from each architecture's definition (a formula per layer),
not copied from the code's output; the totals agree with the published sizes (ResNet32 0.46 M,
He et al. 2016, Table 6; VGG11-BN for CIFAR-10 ~9.2 M; DenseNet-BC-121 for CIFAR-10 ~7.0 M).
"""

from __future__ import annotations

import math

import pytest
import torch

from nclab.errors import SpecError
from nclab.metrics import simplex_etf
from nclab.nets import ARCHS, FixedETFHead, NetSpec, build_net, classifier_frame, random_orthogonal


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
    with pytest.raises(SpecError, match="arch"):
        NetSpec(arch="resnet50")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="image inputs"):
        build_net(NetSpec(arch="densenet121"), input_shape=(40,), num_classes=2)


# ----------------------------------------------------------------------------- seed 002 networks
def _n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _conv(c_in, c_out, k, bias=False):
    return k * k * c_in * c_out + (c_out if bias else 0)


def _bn(c):
    return 2 * c


def test_vgg11_parameter_count():
    """Configuration A with BN: conv (bias) + BN per layer, one linear classifier (CIFAR form)."""
    cfg, want, c_in = [64, 128, 256, 256, 512, 512, 512, 512], 0, 3
    for c in cfg:
        want += _conv(c_in, c, 3, bias=True) + _bn(c)
        c_in = c
    want += 512 * 10 + 10
    net = build_net(NetSpec(arch="vgg11"), input_shape=(3, 32, 32), num_classes=10)
    assert _n_params(net) == want
    assert round(want / 1e6, 1) == 9.2
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == 8
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 5


def test_resnet32_parameter_count_and_layers():
    """He et al. (2016) Sec. 4.2: 6n + 2 = 32 weighted layers (n = 5), parameter-free shortcuts."""
    want = _conv(3, 16, 3) + _bn(16)
    c_in = 16
    for c in (16, 32, 64):
        for j in range(5):
            want += _conv(c_in, c, 3) + _bn(c) + _conv(c, c, 3) + _bn(c)
            c_in = c
    want += 64 * 10 + 10
    net = build_net(NetSpec(arch="resnet32"), input_shape=(3, 32, 32), num_classes=10)
    assert _n_params(net) == want
    assert round(want / 1e6, 2) == 0.46  # Table 6 of He et al.
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert n_conv + 1 == 32  # 31 convolutions + the linear head
    assert net.feature_dim == 64
    assert net.tap_names == ("stem",) + tuple(f"layer{s}.{j}" for s in (1, 2, 3) for j in range(5)) + ("pool",)


def test_resnet32_option_a_shortcut_is_subsample_and_zero_pad():
    net = build_net(NetSpec(arch="resnet32"), input_shape=(3, 32, 32), num_classes=10)
    block = net.blocks[net.tap_names.index("layer2.0")]
    assert list(block.shortcut.parameters()) == []
    x = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    out = block.shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    torch.testing.assert_close(out[:, 8:24], x[:, :, ::2, ::2])  # 8 zero channels on each side
    assert torch.count_nonzero(out[:, :8]) == 0 and torch.count_nonzero(out[:, 24:]) == 0


def test_densenet121_parameter_count_and_layers():
    """DenseNet-BC (Huang et al. 2017), k = 32, blocks 6-12-24-16, compression 0.5, 3x3 CIFAR stem."""
    k, c = 32, 64
    want = _conv(3, c, 3)
    for i, n in enumerate((6, 12, 24, 16)):
        for _ in range(n):  # BN(c) 1x1 conv c->4k, BN(4k) 3x3 conv 4k->k
            want += _bn(c) + _conv(c, 4 * k, 1) + _bn(4 * k) + _conv(4 * k, k, 3)
            c += k
        if i < 3:
            want += _bn(c) + _conv(c, c // 2, 1)
            c //= 2
    assert c == 1024
    want += _bn(c) + 1024 * 10 + 10
    net = build_net(NetSpec(arch="densenet121"), input_shape=(3, 32, 32), num_classes=10)
    assert _n_params(net) == want
    assert round(want / 1e6, 1) == 7.0
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in net.modules())
    assert n_conv + 1 == 121  # 1 stem + 2 x 58 dense + 3 transition convolutions + the head
    assert net.feature_dim == 1024


@pytest.mark.parametrize("arch,dim", [("vgg11", 512), ("resnet32", 64), ("densenet121", 1024)])
def test_seed002_networks_forward_and_taps(arch, dim):
    torch.manual_seed(0)
    net = build_net(NetSpec(arch=arch), input_shape=(3, 32, 32), num_classes=100).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, taps = net.forward_taps(x, net.tap_names, pool_spatial=True)
        assert logits.shape == (2, 100) and taps["pool"].shape == (2, dim)
        assert all(t.ndim == 2 for t in taps.values())
        torch.testing.assert_close(logits, net.head(taps["pool"]))
        torch.testing.assert_close(net(x), logits)
    # a narrower feature layer on top (penultimate_width) and a single-channel input
    small = build_net(NetSpec(arch=arch, penultimate_width=16), input_shape=(1, 32, 32), num_classes=10)
    assert small.feature_dim == 16 and small.tap_names[-1] == "features"


def test_arch_names_are_registered():
    assert {"vgg11", "resnet32", "densenet121", "resnet18", "vgg13", "mlp", "cnn1d"} == set(ARCHS)


# ----------------------------------------------------------------------------- fixed heads, C - 1 > d
@pytest.mark.parametrize("c,d", [(2, 1), (3, 2), (10, 9), (10, 32)])
def test_classifier_frame_is_the_simplex_etf_when_it_exists(c, d):
    m, kind = classifier_frame(c, d)
    assert kind == "simplex-etf"
    torch.testing.assert_close(m, simplex_etf(c, d))


def _cosines(m):
    n = torch.linalg.vector_norm(m, dim=1)
    return (m @ m.T) / torch.outer(n, n)


@pytest.mark.parametrize("c", [5, 7])
def test_ufm_frame_in_the_plane_is_the_regular_polygon(c):
    """d = 2 < C - 1: the CE-UFM classifier has equal norms and the angles of a regular C-gon."""
    m, kind = classifier_frame(c, 2)
    assert kind == "ufm-ce" and m.shape == (c, 2)
    torch.testing.assert_close(torch.linalg.vector_norm(m, dim=1), torch.ones(c, dtype=torch.float64), atol=1e-6, rtol=0)
    # sort the vectors by angle: consecutive ones are 2 pi / C apart
    ang = torch.sort(torch.atan2(m[:, 1], m[:, 0])).values
    gaps = torch.diff(torch.cat([ang, ang[:1] + 2 * math.pi]))
    torch.testing.assert_close(gaps, torch.full((c,), 2 * math.pi / c, dtype=torch.float64), atol=1e-5, rtol=0)


def test_ufm_frame_six_classes_in_three_dimensions_is_the_cross_polytope():
    """C = 2d: the vertices +-e_i (the optimal spherical code of 2d points, Rankin 1955), up to rotation."""
    m, _ = classifier_frame(6, 3)
    want = torch.cat([torch.eye(3), -torch.eye(3)]).double()
    got = torch.sort(_cosines(m), dim=1).values
    torch.testing.assert_close(got, torch.sort(_cosines(want), dim=1).values, atol=1e-5, rtol=0)


def test_ufm_frame_matches_the_etf_where_both_exist_and_is_stationary():
    from nclab.nets.heads import _ufm_frame

    # where a simplex ETF exists, the same CE UFM gives it (Zhu et al. 2021): the branches agree
    m = _ufm_frame(5, 4)
    torch.testing.assert_close(_cosines(m), _cosines(simplex_etf(5, 4)), atol=1e-6, rtol=0)
    # CIFAR-100 on ResNet32's 64-d features: ||W||_F^2 = C and rows summing to zero (stationarity)
    w, kind = classifier_frame(100, 64)
    assert kind == "ufm-ce" and w.shape == (100, 64)
    assert float((w**2).sum()) == pytest.approx(100.0, rel=1e-12)
    torch.testing.assert_close(w.sum(0), torch.zeros(64, dtype=torch.float64), atol=1e-6, rtol=0)


def test_etf_head_when_classes_exceed_dimension():
    """ResNet32 on CIFAR-100 with a fixed head: the UFM frame, permuted like the ETF (seed 002 Sec. 5.2)."""
    base, _ = classifier_frame(12, 4)
    head = FixedETFHead(12, 4, transform="permute", seed=3)
    assert head.frame == "ufm-ce" and "frame=ufm-ce" in repr(head)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(head.weight, base[perm].float())
    assert list(head.parameters()) == []
    net = build_net(NetSpec(arch="mlp", depth=1, width=8, penultimate_width=4, head="etf"), input_shape=(6,), num_classes=12)
    assert net.head.frame == "ufm-ce" and net.head.weight.shape == (12, 4)


@pytest.mark.parametrize("arch", ["vgg11", "vgg13", "resnet18", "resnet32", "densenet121"])
def test_cnns_take_28x28_inputs(arch):
    """MNIST / Fashion-MNIST in the CNNs (seed 001, Table 2): five VGG pools on 28 x 28 reach 1 x 1."""
    net = build_net(NetSpec(arch=arch), input_shape=(1, 28, 28), num_classes=10).eval()
    with torch.no_grad():
        logits, taps = net.forward_taps(torch.randn(2, 1, 28, 28), ["features"])
    assert logits.shape == (2, 10) and taps["features"].shape == (2, net.feature_dim)
    if arch.startswith("vgg"):  # the pools round up: 7 -> 4 (flooring: 3, then 1, then 0 x 0)
        pool = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)][-1]
        assert pool(torch.randn(1, 512, 7, 7)).shape[-2:] == (4, 4)
        assert pool(torch.randn(1, 512, 1, 1)).shape[-2:] == (1, 1)


def test_cnn1d_on_signals_parameter_count_and_pooled_taps():
    # cnn1d: conv(1->w, k5) + (depth-1) conv(w->w, k3), each with BN (2w), no conv bias; then the
    # optional Linear-BN-ReLU feature layer and the head
    w, depth, m, C, L = 16, 3, 8, 5, 40
    net = build_net(NetSpec(arch="cnn1d", depth=depth, width=w, penultimate_width=m), input_shape=(L,), num_classes=C)
    want = (1 * w * 5 + 2 * w) + (depth - 1) * (w * w * 3 + 2 * w) + (w * m + m + 2 * m) + (m * C + C)
    assert sum(p.numel() for p in net.parameters()) == want
    x = torch.randn(6, L)
    logits, taps = net.forward_taps(x, list(net.tap_names), pool_spatial=True)
    assert logits.shape == (6, C) and net.tap_names == ("conv1", "conv2", "conv3", "pool", "features")
    assert taps["conv2"].shape == (6, w) and taps["features"].shape == (6, m)
    _, flat = net.forward_taps(x, ["conv2"])
    assert flat["conv2"].shape == (6, w * (L // 2))  # stride 2, length-preserving padding
    with pytest.raises(Exception, match="signal inputs"):
        build_net(NetSpec(arch="cnn1d"), input_shape=(3, 32, 32), num_classes=C)
