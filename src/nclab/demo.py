"""The demo behind ``nclab measure --demo``: a small MLP trained on MNIST-1D, its features saved.

MNIST-1D (Greydanus 2020) is generated offline by the ``mnist1d`` package (``make_dataset``, never
its download). The MLP is trained with plain SGD for a few epochs; the penultimate features, the
classifier, and the test features are written to an ``.npz`` file that ``nclab measure`` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["make_demo"]


def _mnist1d(num_samples: int, seed: int):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    d = make_dataset(args)
    return (
        torch.tensor(d["x"], dtype=torch.float32),
        torch.tensor(d["y"], dtype=torch.long),
        torch.tensor(d["x_test"], dtype=torch.float32),
        torch.tensor(d["y_test"], dtype=torch.long),
    )


def make_demo(path: str | Path, *, num_samples: int = 4000, epochs: int = 30, width: int = 256, seed: int = 0) -> dict:
    """Train a 3-hidden-layer MLP on MNIST-1D and save its features; returns a summary dict."""
    torch.manual_seed(seed)
    x, y, xt, yt = _mnist1d(num_samples, seed)
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
    from nclab.io import save_features

    p = save_features(
        path, features=h.numpy(), labels=y.numpy(), weights=head.weight.detach().numpy(),
        bias=head.bias.detach().numpy(), test_features=ht.numpy(), test_labels=yt.numpy(),
    )
    return {"path": str(p), "train_acc": acc, "test_acc": acc_t, "n_train": len(x), "n_test": len(xt), "dim": width}


if __name__ == "__main__":  # pragma: no cover
    print(make_demo(Path("nclab-demo") / "features.npz"))
