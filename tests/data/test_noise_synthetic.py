"""Label noise, class operations, synthetic generators and MNIST-1D."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nclab.data import (
    add_label_noise,
    balanced_subsample,
    latent_noise_classes,
    load_dataset,
    make_conic_hull,
    make_dataset_from_arrays,
    make_mnist1d,
    make_teacher,
    pair_flip_noise,
    subset_classes,
    symmetric_noise,
)
from nclab.errors import SpecError


def _clean(n=4000, c=5, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, size=n)
    return make_dataset_from_arrays("toy", rng.normal(size=(n, 3)), y, rng.normal(size=(50, 3)),
                                    rng.integers(0, c, size=50), num_classes=c)


@pytest.mark.parametrize("eta", [0.1, 0.4])
def test_symmetric_rate_and_uniform_redraw(eta):
    """P(obs != true) = eta (C-1)/C: the redraw includes the true class (seed 000, Sec. 4.1)."""
    c, n = 5, 200_000
    y = np.random.default_rng(1).integers(0, c, size=n)
    obs = symmetric_noise(y, eta, num_classes=c, seed=7)
    p = eta * (c - 1) / c
    rate = np.mean(obs != y)
    assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / n)
    # among flipped samples of class 0 the new label is uniform over the 4 others
    flipped = obs[(y == 0) & (obs != 0)]
    freq = np.bincount(flipped, minlength=c)[1:] / flipped.size
    assert np.all(np.abs(freq - 0.25) < 4 * np.sqrt(0.25 * 0.75 / flipped.size))
    np.testing.assert_array_equal(obs, symmetric_noise(y, eta, num_classes=c, seed=7))
    assert not np.array_equal(obs, symmetric_noise(y, eta, num_classes=c, seed=8))


def test_pair_flip():
    c, n, eta = 4, 100_000, 0.3
    y = np.random.default_rng(2).integers(0, c, size=n)
    obs = pair_flip_noise(y, eta, num_classes=c, seed=0)
    moved = obs != y
    assert np.all(obs[moved] == (y[moved] + 1) % c)
    assert abs(moved.mean() - eta) < 4 * np.sqrt(eta * (1 - eta) / n)


def test_latent_classes_counted_right():
    y = np.repeat(np.arange(3), [100, 41, 7])
    obs = latent_noise_classes(y, 0.1, num_classes=3, seed=0)
    for c, n_c in enumerate([100, 41, 7]):
        k = int(round(0.1 * n_c))
        assert np.sum(obs == 3 + c) == k
        assert np.all(y[obs == 3 + c] == c)
        assert np.sum(obs == c) == n_c - k
    assert set(np.unique(obs)) <= set(range(6))


def test_add_label_noise_keeps_true_labels():
    ds = _clean()
    noisy = add_label_noise(ds, 0.3, kind="symmetric", seed=3)
    assert torch.equal(noisy.train.true_labels, ds.train.labels)
    assert torch.equal(noisy.test.labels, ds.test.labels)
    assert noisy.info["noise"]["realised_flip_rate"] == pytest.approx(noisy.train.corrupted.float().mean().item())
    again = add_label_noise(ds, 0.3, kind="symmetric", seed=3)
    assert torch.equal(again.train.labels, noisy.train.labels)
    lat = add_label_noise(ds, 0.2, kind="latent", seed=0)
    assert lat.num_classes == 10 and lat.num_true_classes == 5
    with pytest.raises(SpecError, match="already corrupted"):
        add_label_noise(noisy, 0.1)
    with pytest.raises(SpecError, match="noise kind"):
        add_label_noise(ds, 0.1, kind="asym")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="eta"):
        add_label_noise(ds, 1.5)


def test_subset_and_balanced_subsample():
    ds = _clean(n=600, c=5)
    sub = subset_classes(ds, [4, 2])
    x4 = ds.train.x[ds.train.labels == 4]
    torch.testing.assert_close(sub.train.x[sub.train.labels == 0], x4)
    assert sub.num_classes == 2
    first = subset_classes(ds, 3)
    assert set(first.train.labels.tolist()) == {0, 1, 2}
    bal = balanced_subsample(first, per_class=50, seed=1)
    assert np.bincount(bal.train.labels.numpy()).tolist() == [50, 50, 50]
    # kept rows are rows of the original (no duplicates)
    assert len({tuple(r) for r in bal.train.x.tolist()}) == 150
    with pytest.raises(SpecError, match="per_class"):
        balanced_subsample(first, per_class=10_000)
    with pytest.raises(SpecError, match="classes"):
        subset_classes(ds, 1)


def test_teacher_labels_match_an_independent_forward():
    ds = make_teacher(num_samples=500, input_dim=6, width=16, num_classes=3, seed=4)
    w1, w2, w3 = (torch.as_tensor(w) for w in ds.info["teacher_weights"])
    net = torch.nn.Sequential(torch.nn.Linear(6, 16, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(16, 16, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(16, 3, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(w1), net[2].weight.copy_(w2), net[4].weight.copy_(w3)
        pred = net(ds.train.x.double()).argmax(1)
    agree = (pred == ds.train.labels).float().mean().item()
    assert agree > 0.995  # float32 storage of x may flip near-ties only
    assert make_teacher(num_samples=500, input_dim=6, width=16, num_classes=3, seed=4).train.labels.equal(ds.train.labels)


def test_conic_hull_cones():
    ds = make_conic_hull(num_samples=2000, input_dim=2, num_classes=4, margin=0.05, seed=0)
    v = np.asarray(ds.info["directions"])
    x = ds.train.x.double().numpy()
    y = ds.train.labels.numpy()
    # membership in H_c = {x : x . (v_c - v_c') > 0 for all c' != c}
    for c in range(4):
        b = v[c] - np.delete(v, c, axis=0)
        assert np.all(x[y == c] @ b.T > 0)
    # cones: positive rescaling keeps the class; the equally spaced 2-D classes are balanced
    x2 = 3.7 * x
    assert np.array_equal(np.argmax(x2 @ v.T, 1), y)
    counts = np.bincount(y, minlength=4) / y.size
    assert np.all(np.abs(counts - 0.25) < 0.05)
    # margin: best - second best >= margin * |x|
    s = np.sort(x @ v.T, axis=1)
    assert np.all(s[:, -1] - s[:, -2] >= 0.05 * np.linalg.norm(x, axis=1) - 1e-6)


def test_mnist1d_offline_and_rng_safe(tmp_path):
    np.random.seed(123)
    random.seed(5)
    before_np, before_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(5)
    ds = make_mnist1d(num_samples=300, classes=3, cache_dir=tmp_path)
    assert np.random.random() == before_np and random.random() == before_py
    assert ds.train.x.shape == (240, 40) and ds.test.x.shape == (60, 40)
    assert set(ds.train.labels.tolist()) == {0, 1, 2}
    assert len(list(tmp_path.glob("mnist1d_*.npz"))) == 1
    again = make_mnist1d(num_samples=300, classes=3, cache_dir=False)
    assert torch.equal(again.train.x, ds.train.x)
    noisy = load_dataset("mnist1d", num_samples=300, classes=3, eta=0.5, noise_kind="pair", seed=1)
    assert torch.equal(noisy.train.true_labels, ds.train.labels)
    assert noisy.train.corrupted.any()
