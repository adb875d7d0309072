"""Training loop: terminal phase and collapse on MNIST-1D, exact resume, determinism, tracked
metrics recomputed independently from the returned model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nclab.data import load_dataset
from nclab.errors import SpecError
from nclab.nets import FixedETFHead, NetSpec
from nclab.train import TrainConfig, suboptimal_collapse, train

TIMING_KEYS = {"epoch_time_s", "eval_time_s"}


def _tiny(**kw) -> TrainConfig:
    base = dict(num_samples=400, classes=2, epochs=4, device="cpu", net=NetSpec(depth=2, width=32))
    base.update(kw)
    return TrainConfig.quick(**base)


def _reference_nc1(h: np.ndarray, y: np.ndarray) -> float:
    """Seed 000 eq. (2): tr(Sigma_W Sigma_B^+) / N, global mean = mean of class means."""
    classes = np.unique(y)
    mus = np.stack([h[y == c].mean(0) for c in classes])
    g = mus.mean(0)
    sw = sum(((h[y == c] - mus[i]).T @ (h[y == c] - mus[i])) for i, c in enumerate(classes)) / len(y)
    sb = sum(np.outer(m - g, m - g) for m in mus) / len(classes)
    return float(np.trace(sw @ np.linalg.pinv(sb)) / len(classes))


def _features(model, x):
    model.eval()
    with torch.no_grad():
        return model.features(x).double().numpy()


def test_mnist1d_reaches_terminal_phase_and_nc1_falls():
    cfg = TrainConfig.quick(num_samples=1000, classes=2, epochs=15, device="cpu")
    res = train(cfg)
    assert res.final["train_acc"] == 1.0
    assert res.tpt_epoch is not None and res.tpt_epoch < cfg.epochs
    nc1 = {r["epoch"]: r["nc1_train"] for r in res.history}
    assert nc1[cfg.epochs] < nc1[res.tpt_epoch]
    # the tracked value is the NC1 of the returned model's features, by a direct formula
    ds = load_dataset("mnist1d", num_samples=1000, classes=2)
    h = _features(res.model, ds.train.x)
    assert res.final["nc1_train"] == pytest.approx(_reference_nc1(h, ds.train.labels.numpy()), rel=1e-4)
    ht = _features(res.model, ds.test.x)
    assert res.final["nc1_test"] == pytest.approx(_reference_nc1(ht, ds.test.labels.numpy()), rel=1e-4)
    with torch.no_grad():
        acc = (res.model(ds.test.x).argmax(1) == ds.test.labels).double().mean().item()
    assert res.final["test_acc"] == pytest.approx(acc)
    # M = N = 2: the sub-optimal-collapse flag is min/max centroid norm < tol, recomputed here
    # from the returned model's train features (seed 001, App. A.1.1)
    assert h.shape[1] == 2
    y = ds.train.labels.numpy()
    norms = np.linalg.norm(np.stack([h[y == c].mean(0) for c in (0, 1)]), axis=1)
    ratio = norms.min() / norms.max()
    assert res.final["centroid_norm_ratio"] == pytest.approx(ratio, rel=1e-4)
    assert res.suboptimal_collapse is bool(ratio < cfg.suboptimal_tol)


def test_resume_after_interrupt_matches_uninterrupted(tmp_path):
    cfg = _tiny(epochs=6, eta=0.2, checkpoint_dir=str(tmp_path / "a"))
    full = train(cfg.replace(checkpoint_dir=None))

    class Interrupt(Exception):
        pass

    def stop_at_3(epoch, rec):
        if epoch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(cfg, callback=stop_at_3)
    resumed = train(cfg)
    assert resumed.resumed_from == 3
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    strip = lambda hist: [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in hist]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)
    # a finished run resumes to the same result without training
    again = train(cfg)
    assert again.resumed_from == 6 and torch.equal(again.model.head.weight, full.model.head.weight)
    with pytest.raises(SpecError, match="different run"):
        train(cfg.replace(lr=0.01))


def test_deterministic_on_cpu_and_seed_matters():
    a = train(_tiny(epochs=2))
    b = train(_tiny(epochs=2))
    c = train(_tiny(epochs=2, seed=1))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k])
    assert not torch.equal(a.model.head.weight, c.model.head.weight)
    # training does not consume the caller's global generator
    torch.manual_seed(5)
    x = torch.rand(1)
    torch.manual_seed(5)
    train(_tiny(epochs=1))
    assert torch.equal(torch.rand(1), x)


def test_memorization_matches_direct_formula():
    cfg = _tiny(epochs=3, eta=0.3, classes=3, num_samples=600)
    res = train(cfg)
    ds = load_dataset("mnist1d", num_samples=600, classes=3, eta=0.3, seed=0)
    assert res.dataset_info["noise"]["realised_flip_rate"] == pytest.approx(res.final["noisy_fraction"])
    h, ht = _features(res.model, ds.train.x), _features(res.model, ds.test.x)
    true, obs = ds.train.true_labels.numpy(), ds.train.labels.numpy()
    mu = np.stack([ht[ds.test.labels.numpy() == c].mean(0) for c in range(3)])
    noisy = obs != true
    want = np.linalg.norm(h[noisy] - mu[true[noisy]], axis=1).sum()
    assert res.final["memorization"] == pytest.approx(want, rel=1e-4)
    assert res.final["train_acc_true"] != res.final["train_acc"]


def test_latent_noise_classes_run():
    res = train(_tiny(epochs=2, eta=0.2, noise_kind="latent"))
    assert res.dataset_info["num_classes"] == 4 and res.dataset_info["num_true_classes"] == 2
    assert res.model.head.weight.shape[0] == 4
    assert res.final["memorization"] > 0
    assert 0.0 <= res.final["test_acc"] <= 1.0


def test_fixed_etf_head_stays_fixed_during_training():
    spec = NetSpec(depth=2, width=32, head="etf", head_transform="permute", head_seed=3, penultimate_width=4)
    res = train(_tiny(epochs=3, net=spec, classes=3, num_samples=600))
    want = FixedETFHead(3, 4, transform="permute", seed=3).weight
    assert torch.equal(res.model.head.weight, want)
    g = res.model.head.weight.double() @ res.model.head.weight.double().T
    torch.testing.assert_close(g, 1.5 * (torch.eye(3, dtype=torch.float64) - 1 / 3), rtol=0, atol=1e-6)


def test_layer_metrics_and_effective_depth():
    res = train(_tiny(epochs=3, layer_metrics=True, net=NetSpec(depth=3, width=16)))
    layers = res.final["layers"]
    assert list(layers) == list(res.model.tap_names)
    ds = load_dataset("mnist1d", num_samples=400, classes=2)
    res.model.eval()
    with torch.no_grad():
        _, taps = res.model.forward_taps(ds.train.x, res.model.tap_names)
    y = ds.train.labels
    errs = []
    for name in res.model.tap_names:
        h = taps[name].double()
        mu = torch.stack([h[y == c].mean(0) for c in range(2)])
        acc = (torch.cdist(h, mu).argmin(1) == y).double().mean().item()
        assert layers[name]["ncc_accuracy"] == pytest.approx(acc)
        errs.append(1 - acc)
    first = next((i + 1 for i, e in enumerate(errs) if e <= 0.01), len(errs))
    assert res.final["effective_depth"] == first


def test_eval_subsample_is_reported():
    res = train(_tiny(epochs=1, eval_subsample=50))
    assert res.final["eval_subsample"] == {"train": 50, "test": 50}
    assert train(_tiny(epochs=1)).final["eval_subsample"] is None


def test_suboptimal_collapse_flag():
    assert suboptimal_collapse(torch.tensor([[0.0, 0.01], [2.0, 2.0]]))[0] is True
    flag, ratio = suboptimal_collapse(torch.tensor([[3.0, 0.0], [0.0, 2.0]]))
    assert flag is False and ratio == pytest.approx(2 / 3)
    assert suboptimal_collapse(torch.zeros(3, 2))[0] is None


def test_config_validation_and_round_trip():
    cfg = TrainConfig.paper(classes=2)
    # 9 hidden layers as the authors' code builds them: 8 x 2048, then the feature layer of width M = N
    assert cfg.net.depth == 8 and cfg.net.width == 2048 and cfg.batch_size == 512 and cfg.lr_step == 40
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(SpecError, match="loss"):
        TrainConfig(loss="hinge")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="eta"):
        TrainConfig(eta=1.5)
    with pytest.raises(SpecError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(SpecError, match="data_root"):
        TrainConfig(dataset="cifar10")
    with pytest.raises(SpecError, match="unknown TrainConfig"):
        TrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize("batch_norm", ["affine", "non-affine", "none"])
def test_synthetic_sets_train_with_every_bn_mode(batch_norm):
    """Seed 003's setting in miniature: conic-hull data, BN affine / non-affine / none, per-layer cosines."""
    cfg = TrainConfig(dataset="conic_hull", num_samples=500, epochs=3, device="cpu", lr=0.05,
                      net=NetSpec(depth=3, width=32, batch_norm=batch_norm, penultimate_width=8),
                      layer_metrics=True)
    res = train(cfg)
    assert res.dataset_info["num_classes"] == 4 and res.model.feature_dim == 8
    assert np.isfinite(res.final["train_loss"])
    assert list(res.final["layers"]) == ["block1", "block2", "block3", "features"]
    for name, m in res.final["layers"].items():
        assert -1.0 - 1e-9 <= m["cosine_inter_max"] <= 1.0 + 1e-9, name
        assert 0.0 <= m["ncc_accuracy"] <= 1.0, name
    assert 1 <= res.final["effective_depth"] <= 4
    teacher = train(TrainConfig(dataset="teacher", num_samples=400, epochs=1, device="cpu",
                                net=NetSpec(depth=1, width=16, batch_norm=batch_norm)))
    assert teacher.dataset_info["name"] == "teacher" and "teacher_weights" not in teacher.dataset_info


def test_out_of_range_labels_rejected_once_before_training():
    # the loss checks no label range on accelerators (it would sync every step): train() checks once
    from nclab.errors import LabelError

    ds = load_dataset("mnist1d", num_samples=200, classes=2)
    bad = ds.replace(train=ds.train.take(torch.arange(len(ds.train))))
    bad.train.labels[3] = 2  # == num_classes
    with pytest.raises(LabelError, match=r"train labels of dataset 'mnist1d' must lie in \[0, 2\)"):
        train(_tiny(), dataset=bad)


def test_tracked_record_equals_metrics_recomputed_from_the_model():
    # the tracked evaluation computes both metric sets in one collapse_metrics_many call and the loss
    # and accuracy per batch: check every one against separate calls on recomputed features
    from nclab.losses import make_loss
    from nclab.metrics import collapse_metrics
    from nclab.train import tracked_evaluation

    cfg = _tiny(epochs=2, eta=0.2, classes=3, num_samples=600)
    res = train(cfg)
    ds = load_dataset("mnist1d", num_samples=600, classes=3, eta=0.2, seed=0)
    loss_fn = make_loss(cfg.loss, alpha=cfg.alpha, num_classes=3)
    rec, _ = tracked_evaluation(res.model, ds.train, ds.test, loss_fn, num_classes=3, num_true_classes=3,
                                batch_size=128)  # several batches per split
    model = res.model.eval()
    W, b = model.head.weight.detach(), model.head.bias.detach()
    for split, labels, suffix in ((ds.train, ds.train.labels, "_train"), (ds.test, ds.test.true_labels, "_test")):
        h = torch.from_numpy(_features(model, split.x)).float()
        want = collapse_metrics(h, labels, weights=W, bias=b, num_classes=3)
        for k, v in want.items():
            assert rec[k + suffix] == pytest.approx(v, rel=1e-9, abs=1e-12), k + suffix
        with torch.no_grad():
            logits = model(split.x)
        name = "train" if suffix == "_train" else "test"
        assert rec[f"{name}_loss"] == pytest.approx(float(loss_fn(logits, labels)), rel=1e-5)
        assert rec[f"{name}_acc"] == pytest.approx(float((logits.argmax(1) == labels).double().mean()))
