r"""Label noise: memorization and dilation (Nguyen et al., ICLR 2023, seed 000, Sec. 4.1, eq. 3).

:math:`\mathrm{mem} = \sum_{i:\ \tilde y_i \ne y_i} \|h_i - \mu^{test}_{y_i}\|` over the training samples
whose observed label differs from the true one, with the test-set class means; dilation is NC1 of the
test features (:func:`nclab.metrics.dilation`).
"""

from __future__ import annotations

import torch

__all__ = ["memorization", "noisy_distance_sum", "memorization_metrics"]


def noisy_distance_sum(H: torch.Tensor, y_obs: torch.Tensor, y_true: torch.Tensor, ref_means: torch.Tensor,
                       inv_scale: float = 1.0) -> tuple[torch.Tensor, int]:
    """``(sum over rows with y_obs != y_true of ||H_i * inv_scale - ref_means[y_true_i]||, their number)``;
    the sum is a float64 0-d tensor. The one implementation of seed 000 eq. (3)."""
    noisy = (y_true != y_obs).nonzero().flatten()
    total = torch.zeros((), dtype=torch.float64, device=H.device)
    ref = ref_means.to(device=H.device, dtype=torch.float64)
    for s in range(0, noisy.numel(), 8192):
        idx = noisy[s : s + 8192]
        h = H[idx].to(torch.float64)
        if inv_scale != 1.0:
            h = h * inv_scale
        total += torch.linalg.vector_norm(h - ref[y_true[idx]], dim=1).sum()
    return total, int(noisy.numel())


def memorization_metrics(total: float, noisy: int, n: int, scale: float = 1.0) -> dict[str, float]:
    """``memorization`` (0 without noisy samples), ``memorization_mean`` (with some), ``noisy_fraction``."""
    out = {"memorization": total * scale, "noisy_fraction": noisy / n}
    if noisy:
        out["memorization_mean"] = total * scale / noisy
    return out


@torch.inference_mode()
def memorization(train_features, observed_labels, true_labels, test_features, test_labels, *,
                 num_classes: int | None = None) -> dict[str, float]:
    r"""Memorization of Nguyen et al. (ICLR 2023) eq. (3):

    .. math:: \mathrm{mem} = \sum_{i:\ \tilde y_i \ne y_i} \|h_i - \mu^{test}_{y_i}\|

    Returns ``{"memorization", "memorization_mean", "noisy_fraction"}`` (no mean without noisy samples).
    O((n + n_test) d).
    """
    from nclab.metrics import _pipeline as P
    from nclab.metrics._validate import check_labels

    H, yo, C = P.prepare(train_features, observed_labels, num_classes, "train_features", "observed_labels")
    yt, _ = check_labels(true_labels, H.shape[0], C, "true_labels", device=H.device, require_all=False)
    Ht, ytest, _ = P.prepare(test_features, test_labels, C, "test_features", "test_labels")
    if Ht.shape[1] != H.shape[1]:
        from nclab.errors import ShapeError

        raise ShapeError(f"test_features has dimension {Ht.shape[1]} but train_features has {H.shape[1]}.")
    P.check_labels(ytest, Ht.shape[0], C, "test_labels", device=Ht.device, require_all=True)
    mom = P.moments_of(Ht, ytest, C, name="test_features")
    total, noisy = noisy_distance_sum(H, yo, yt, mom.mean.to(H.device) * mom.scale)
    return memorization_metrics(float(total), noisy, H.shape[0])
