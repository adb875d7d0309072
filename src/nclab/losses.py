r"""Classification losses on logits: cross-entropy, label smoothing, label relaxation, MSE.

Used both by the unconstrained-features models (:mod:`nclab.ufm`) and by network training.
Every loss takes logits ``z`` of shape ``(n, C)`` and integer labels ``y`` of shape ``(n,)``
and returns the **mean** over the ``n`` samples as a 0-d tensor (differentiable).

==========  ==============================================================  =====================
name        per-sample loss                                                 source
==========  ==============================================================  =====================
``"ce"``    :math:`-\log p_y`                                               \
``"ls"``    :math:`-\sum_k y^{(\alpha)}_k \log p_k`,                        Nguyen et al. (ICLR
            :math:`y^{(\alpha)} = (1-\alpha) e_y + \tfrac{\alpha}{C}\mathbf 1`  2023), eq. (1)
``"lr"``    :math:`0` if :math:`p_y \ge 1-\alpha`, else                      Lienen & Hüllermeier
            :math:`\mathrm{KL}(p^r \,\|\, p)`                                (AAAI 2021)
``"mse"``   :math:`\tfrac12 \|z - e_y\|^2`                                  Tirer & Bruna (ICML
                                                                            2022), eq. (3)
==========  ==============================================================  =====================

where :math:`p = \operatorname{softmax}(z)`. Label relaxation projects :math:`p` onto the credal
set :math:`Q_y = \{q : q_y \ge 1-\alpha\}`; the I-projection is
:math:`p^r_y = 1-\alpha`, :math:`p^r_k = \alpha\, p_k / \sum_{j\ne y} p_j` (:math:`k \ne y`), so

.. math:: \mathrm{KL}(p^r\|p) = (1-\alpha)\log\frac{1-\alpha}{p_y} + \alpha\log\frac{\alpha}{1-p_y},

a function of :math:`p_y` alone; it is evaluated in this form from ``log_softmax`` (stable for any
logits). Lienen & Hüllermeier differentiate with :math:`p^r` held constant (their code builds the
target without gradient), which gives :math:`\nabla_z = p - p^r`. Because :math:`p^r` minimises
:math:`\mathrm{KL}(\cdot\|p)` over :math:`Q_y`, differentiating through :math:`p^r` gives exactly the
same gradient (envelope theorem; checked in ``tests/test_losses.py``), so the closed form above *is*
their loss with their gradient. It is :math:`C^1`: value and gradient vanish at :math:`p_y = 1-\alpha`.

The MSE uses the factor 1/2 and sums over classes (not ``torch.nn.MSELoss``, which averages over
``n C`` entries) so that the UFM objective is exactly Tirer & Bruna's
:math:`\tfrac{1}{2Kn}\|WH - Y\|_F^2`.

Cost: O(n C) time and memory for each loss. Inputs are checked on every call: shapes and dtypes
always, the label range only for labels on the CPU, where it is free; on an accelerator it would
synchronise with the device at every training step (:func:`nclab.train.train` checks the dataset's
labels once instead).
"""

from __future__ import annotations

import math

import torch

from nclab.errors import LabelError, ShapeError, SpecError

__all__ = [
    "LOSS_NAMES",
    "make_loss",
    "cross_entropy",
    "label_smoothing_loss",
    "label_relaxation_loss",
    "mse_loss",
    "Loss",
]

LOSS_NAMES = ("ce", "ls", "lr", "mse")


def _check_alpha(alpha: float, name: str) -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise SpecError(f"alpha must be a number in [0, 1); got {alpha!r} for loss {name!r}.") from None
    if not math.isfinite(a) or not 0.0 <= a < 1.0:
        raise SpecError(f"alpha must lie in [0, 1); got alpha={alpha!r} for loss {name!r}.")
    return a


def _check_inputs(logits: torch.Tensor, labels: torch.Tensor, num_classes: int | None) -> int:
    """Validate ``logits (n, C)`` and ``labels (n,)``; return C."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        shape = tuple(logits.shape) if hasattr(logits, "shape") else type(logits).__name__
        raise ShapeError(f"logits must be a 2-d tensor of shape (n, C); got {shape}.")
    if not isinstance(labels, torch.Tensor) or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        shape = tuple(labels.shape) if hasattr(labels, "shape") else type(labels).__name__
        raise ShapeError(
            f"labels must be a 1-d tensor with one entry per row of logits ({logits.shape[0]}); got {shape}."
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise LabelError(f"labels must be integer class indices; got dtype {labels.dtype}. Pass labels.long().")
    c = logits.shape[1]
    if num_classes is not None and int(num_classes) != c:
        raise ShapeError(f"logits have {c} columns but num_classes={num_classes}; they must agree.")
    # range on the CPU only: on an accelerator int(...) is a device synchronisation per call
    if labels.numel() and labels.device.type == "cpu":
        lo, hi = torch.stack(torch.aminmax(labels)).tolist()
        if lo < 0 or hi >= c:
            raise LabelError(
                f"labels must lie in [0, {c}); got range [{lo}, {hi}]. Remap the labels or widen the classifier."
            )
    return c


def cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.0, num_classes: int | None = None
) -> torch.Tensor:
    r"""Cross-entropy :math:`\tfrac1n\sum_i -\log \operatorname{softmax}(z_i)_{y_i}`.

    Parameters
    ----------
    logits : Tensor of shape (n, C)
    labels : Tensor of shape (n,), integer in [0, C)
    alpha : float, default=0.0
        Accepted (and validated to lie in [0, 1)) for a uniform signature; CE does not use it.
    num_classes : int, optional
        If given, must equal C.

    Returns
    -------
    Tensor, 0-d: the mean loss. Cost O(n C).
    """
    return _evaluate("ce", logits, labels, alpha, num_classes)


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, labels)  # one fused log-softmax + NLL


def label_smoothing_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.0, num_classes: int | None = None
) -> torch.Tensor:
    r"""Label-smoothing loss, CE against :math:`y^{(\alpha)} = (1-\alpha)e_y + \tfrac{\alpha}{C}\mathbf 1`.

    .. math:: \ell_\alpha(z, y) = -(1-\alpha)\log p_y - \tfrac{\alpha}{C}\sum_{k=1}^C \log p_k

    Source: Szegedy et al. (2016); Nguyen et al. (ICLR 2023), eq. (1). ``alpha=0`` is CE.

    Parameters
    ----------
    logits : Tensor of shape (n, C)
    labels : Tensor of shape (n,)
    alpha : float in [0, 1), default=0.0
        Smoothing degree: the target puts :math:`1-\alpha+\alpha/C` on the label, :math:`\alpha/C` elsewhere.
    num_classes : int, optional
        If given, must equal C.

    Returns
    -------
    Tensor, 0-d: the mean loss. Cost O(n C).
    """
    return _evaluate("ls", logits, labels, alpha, num_classes)


def _ls(logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    # PyTorch's label_smoothing is this loss: CE against (1 - alpha) e_y + alpha/C 1 (Szegedy et al.),
    # i.e. (1 - alpha) nll - alpha/C sum_k log p_k; one fused operation (tests: against the formula)
    return torch.nn.functional.cross_entropy(logits, labels, label_smoothing=alpha)


def label_relaxation_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.0, num_classes: int | None = None
) -> torch.Tensor:
    r"""Label-relaxation loss (Lienen & Hüllermeier, AAAI 2021).

    .. math::
        \ell^{LR}_\alpha(z, y) = \begin{cases} 0 & p_y \ge 1-\alpha \\
        (1-\alpha)\log\frac{1-\alpha}{p_y} + \alpha\log\frac{\alpha}{1-p_y} = \mathrm{KL}(p^r\|p)
        & \text{otherwise} \end{cases}

    with :math:`p^r` the projection of :math:`p` onto :math:`\{q: q_y \ge 1-\alpha\}` (module
    docstring). The gradient equals :math:`p - p^r` (as with :math:`p^r` held constant).
    ``alpha=0`` is CE.

    Parameters
    ----------
    logits : Tensor of shape (n, C)
    labels : Tensor of shape (n,)
    alpha : float in [0, 1), default=0.0
        Relaxation degree: the loss (and its gradient) vanishes once :math:`p_y \ge 1-\alpha`.
    num_classes : int, optional
        If given, must equal C.

    Returns
    -------
    Tensor, 0-d: the mean loss. Cost O(n C).
    """
    return _evaluate("lr", logits, labels, alpha, num_classes)


def _lr(logits: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
    if alpha == 0.0:
        return _ce(logits, labels)
    lse = torch.logsumexp(logits, dim=1)
    zy = logits.gather(1, labels[:, None])[:, 0]
    log_py = zy - lse
    others = logits.scatter(1, labels[:, None], float("-inf"))
    log_rest = torch.logsumexp(others, dim=1) - lse  # log(1 - p_y), stable
    kl = (1.0 - alpha) * (math.log(1.0 - alpha) - log_py) + alpha * (math.log(alpha) - log_rest)
    active = log_py < math.log1p(-alpha)
    return torch.where(active, kl, torch.zeros_like(kl)).mean()


def mse_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.0, num_classes: int | None = None
) -> torch.Tensor:
    r"""Squared error to one-hot targets, :math:`\tfrac1n\sum_i \tfrac12\|z_i - e_{y_i}\|^2`.

    Source: Tirer & Bruna (ICML 2022), eq. (3): the mean of this loss over the samples is
    :math:`\tfrac{1}{2Kn}\|WH - Y\|_F^2`.

    Parameters
    ----------
    logits : Tensor of shape (n, C)
    labels : Tensor of shape (n,)
    alpha : float, default=0.0
        Accepted (validated in [0, 1)) for a uniform signature; MSE does not use it.
    num_classes : int, optional
        If given, must equal C.

    Returns
    -------
    Tensor, 0-d: the mean loss. Cost O(n C).
    """
    return _evaluate("mse", logits, labels, alpha, num_classes)


def _mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    target = torch.zeros_like(logits).scatter_(1, labels[:, None], 1.0)
    diff = logits - target
    return 0.5 * (diff * diff).sum(dim=1).mean()


_KERNELS = {
    "ce": lambda z, y, a: _ce(z, y),
    "ls": _ls,
    "lr": _lr,
    "mse": lambda z, y, a: _mse(z, y),
}


def _evaluate(
    name: str, logits: torch.Tensor, labels: torch.Tensor, alpha: float, num_classes: int | None
) -> torch.Tensor:
    """Body of the four loss functions: check alpha, then the inputs, then apply the kernel ``name``."""
    a = _check_alpha(alpha, name)
    _check_inputs(logits, labels, num_classes)
    return _KERNELS[name](logits, labels, a)


class Loss(torch.nn.Module):
    """A loss of :data:`LOSS_NAMES` as a module: ``loss(logits (n, C), labels (n,)) -> mean``.

    Build it with :func:`make_loss`. Attributes ``name``, ``alpha`` and ``num_classes``.
    """

    def __init__(self, name: str, *, alpha: float = 0.0, num_classes: int) -> None:
        super().__init__()
        if name not in _KERNELS:
            raise SpecError(f"loss must be one of {', '.join(LOSS_NAMES)}; got {name!r}.")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise SpecError(f"num_classes must be an integer >= 2; got {num_classes!r}.")
        self.name = name
        self.alpha = _check_alpha(alpha, name)
        self.num_classes = num_classes
        self._kernel = _KERNELS[name]

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_inputs(logits, labels, self.num_classes)
        return self._kernel(logits, labels, self.alpha)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, alpha={self.alpha}, num_classes={self.num_classes}"


def make_loss(name: str, *, alpha: float = 0.0, num_classes: int) -> torch.nn.Module:
    """Build the loss module ``name`` (one of ``"ce", "ls", "lr", "mse"``).

    Parameters
    ----------
    name : str
        ``"ce"`` cross-entropy, ``"ls"`` label smoothing, ``"lr"`` label relaxation, ``"mse"``.
    alpha : float in [0, 1), default=0.0
        Smoothing (``ls``) or relaxation (``lr``) degree; validated but unused for ``ce``/``mse``.
    num_classes : int
        C, the number of logits per sample (checked on every call).

    Returns
    -------
    torch.nn.Module
        Called as ``loss(logits (n, C), labels (n,) long) -> 0-d mean loss``.

    Raises
    ------
    SpecError
        Unknown name, alpha outside [0, 1), or num_classes < 2.

    Examples
    --------
    >>> loss = make_loss("ls", alpha=0.1, num_classes=3)
    >>> round(float(loss(torch.zeros(2, 3), torch.tensor([0, 2]))), 4)  # log 3 for uniform logits
    1.0986
    """
    return Loss(name, alpha=alpha, num_classes=num_classes)
