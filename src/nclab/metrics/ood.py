r"""NC5: out-of-distribution orthogonality (Ammar et al. 2024): mean over classes of
:math:`|\cos(\mu_c, \mu_G^{ood})|` with uncentred class means and the mean of the OOD features."""

from __future__ import annotations

import math

import torch

__all__ = ["nc5_ood", "nc5_from_means"]


def nc5_from_means(mean: torch.Tensor, ood_mean: torch.Tensor) -> float:
    """NC5 of class means (C, d) and the OOD mean (d,), any common or separate positive scales."""
    nm = torch.linalg.vector_norm(mean, dim=1)
    no = float(torch.linalg.vector_norm(ood_mean))
    if no == 0 or bool((nm == 0).any()):
        return math.nan
    return float(((mean @ ood_mean) / (nm * no)).abs().mean())


def ood_mean(Ho: torch.Tensor) -> torch.Tensor:
    """float64 mean of OOD features (m, d), divided by a power of two near their magnitude (exact)."""
    from nclab.metrics.stats import power_of_two_scale

    s = power_of_two_scale(Ho)
    return (Ho.to(torch.float64) / s).mean(0)


@torch.inference_mode()
def nc5_ood(features, labels, ood_features, *, num_classes: int | None = None, classes: str | None = None) -> float:
    r"""NC5 (Ammar et al. 2024): mean over classes of :math:`|\cos(\mu_c, \mu_G^{ood})|`. O((n + m) d)."""
    from nclab.metrics import _pipeline as P
    from nclab.metrics._validate import check_features

    H, _, _, mom, _, _ = P.measured(features, labels, num_classes, classes)
    Ho = check_features(ood_features, "ood_features", dim=H.shape[1])
    return nc5_from_means(mom.mean, ood_mean(Ho).to(mom.mean.device))
