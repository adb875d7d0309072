r"""Label-smoothing losses on logits, in the closed forms the MD model needs (seed 000 eq. (1)).

With :math:`y_n^{(\alpha)} = (1-\alpha)e_n + \tfrac{\alpha}{N}\mathbf 1_N` (seed 000 prints
:math:`\alpha/n`; it is :math:`\alpha/N`, see ``docs/md_model.md``),

.. math:: \ell_\alpha(z, y_n) = \operatorname{LSE}(z) - (1-\alpha) z_n - \tfrac{\alpha}{N}\sum_k z_k .

For N = 2 and label 1, with :math:`t = z_2 - z_1`, this is the scalar
:math:`\varphi_\alpha(t) = \log(1 + e^t) - \tfrac{\alpha}{2} t` (seed 001, App. C, problem
:math:`(\mathcal P_{u_1})`); :math:`\alpha = 0` is cross-entropy.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logsumexp

__all__: list[str] = []


def _softplus(t):
    """log(1 + e^t), stable; any shape."""
    return np.logaddexp(0.0, t)


def _phi(t, alpha: float):
    """Binary LS loss as a function of the logit gap t = z_other - z_label; any shape."""
    return _softplus(t) - 0.5 * alpha * np.asarray(t)


def _dphi(t, alpha: float):
    """Derivative of :func:`_phi`: sigmoid(t) - alpha/2."""
    return expit(t) - 0.5 * alpha


def _ls_loss(z: np.ndarray, label: int, alpha: float) -> np.ndarray:
    """LS loss of logits z (..., N) for class ``label``; returns shape (...)."""
    n = z.shape[-1]
    return logsumexp(z, axis=-1) - (1.0 - alpha) * z[..., label] - (alpha / n) * z.sum(axis=-1)


def _ls_grad(z: np.ndarray, label: int, alpha: float) -> np.ndarray:
    """Gradient of :func:`_ls_loss` in z: softmax(z) - y; shape (..., N)."""
    n = z.shape[-1]
    p = np.exp(z - logsumexp(z, axis=-1, keepdims=True))
    y = np.full(n, alpha / n)
    y[label] += 1.0 - alpha
    return p - y
