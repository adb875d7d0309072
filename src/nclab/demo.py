"""The demo behind ``nclab measure --demo``: a small MLP trained on a Gaussian-mixture task, its
features saved.

The data are made here, with NumPy, so that the demo runs on the core install (``pip install
nclab``, no extras): 10 classes in 40 dimensions (the size of MNIST-1D), each class a mixture of
4 Gaussian blobs whose centres are drawn at random, so the classes are not linearly separable and
the network has to learn features (measured with the defaults: a linear classifier on the inputs
reaches 56% test accuracy, the MLP 100% train and 85% test accuracy, in a few seconds on 2 cores). MNIST-1D itself needs the ``mnist1d`` package, which imports
matplotlib and requests; it is part of the ``lab`` extra (``nclab train --dataset mnist1d``).

The MLP is trained with SGD for a few epochs; the penultimate features, the classifier and the
test features are written to an ``.npz`` file that ``nclab measure`` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["make_demo", "make_mixture"]


def make_mixture(num_samples: int, *, num_classes: int = 10, dim: int = 40, blobs: int = 4,
                 spread: float = 1.5, seed: int = 0):
    r"""A balanced Gaussian-mixture classification task: train and test splits of equal size.

    Class :math:`c` draws its samples from :math:`\tfrac1B\sum_{j=1}^B \mathcal N(m_{cj}, s^2 I_d)`
    with blob centres :math:`m_{cj} \sim \mathcal N(0, I_d)` drawn once per ``seed``.

    Parameters
    ----------
    num_samples : int
        Samples per split (train and test each), split evenly over the classes.
    num_classes : int, default=10
    dim : int, default=40
    blobs : int, default=4
        Gaussian blobs per class (B).
    spread : float, default=1.5
        Standard deviation s of each blob, relative to the unit spread of the centres.
    seed : int, default=0

    Returns
    -------
    tuple of Tensor
        ``x`` (n, dim) float32, ``y`` (n,) int64, ``x_test``, ``y_test``.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_classes, blobs, dim))

    def split(n):
        y = np.arange(n) % num_classes
        j = rng.integers(0, blobs, size=n)
        x = centres[y, j] + spread * rng.standard_normal((n, dim))
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)

    x, y = split(num_samples)
    xt, yt = split(num_samples)
    return x, y, xt, yt


def make_demo(path: str | Path, *, num_samples: int = 4000, epochs: int = 30, width: int = 256, seed: int = 0) -> dict:
    """Train a 3-hidden-layer MLP on :func:`make_mixture` data and save its features.

    Returns
    -------
    dict
        ``path``, ``train_acc``, ``test_acc``, ``n_train``, ``n_test``, ``dim``.
    """
    torch.manual_seed(seed)
    x, y, xt, yt = make_mixture(num_samples, seed=seed)
    mean, std = x.mean(0), x.std(0) + 1e-6
    x, xt = (x - mean) / std, (xt - mean) / std
    body = nn.Sequential(
        nn.Linear(x.shape[1], width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
        nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
    )
    head = nn.Linear(width, 10)
    model = nn.Sequential(body, head)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(x), generator=g).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        h, ht = body(x), body(xt)
        acc = float((head(h).argmax(1) == y).float().mean())
        acc_t = float((head(ht).argmax(1) == yt).float().mean())
    from nclab.measure.files import save_features

    p = save_features(
        path, features=h.numpy(), labels=y.numpy(), weights=head.weight.detach().numpy(),
        bias=head.bias.detach().numpy(), test_features=ht.numpy(), test_labels=yt.numpy(),
    )
    return {"path": str(p), "train_acc": acc, "test_acc": acc_t, "n_train": len(x), "n_test": len(xt), "dim": width}


if __name__ == "__main__":  # pragma: no cover
    print(make_demo(Path("nclab-demo") / "features.npz"))
