r"""Unconstrained-features models (UFMs): problem specifications and their objectives.

C classes (``num_classes``; K in Tirer & Bruna, N in Nguyen et al.), n samples per class
(``per_class``; K in Nguyen et al.), feature dimension d (``dim``; M in Nguyen et al.), N = C n samples
ordered class by class (sample j has label ``j // n``). Features are columns of H (d, N) as in the
papers; ``collapse_metrics`` receives ``H.T``.

=====================  ========================================================================  ==============
model                  objective                                                                  source
=====================  ========================================================================  ==============
``plain``              :math:`\bar\ell(WH + b1^\top) + \tfrac{\lambda_W}2\|W\|^2 + \tfrac{\lambda_H}2\|H\|^2`   seed 004 eq. 3-5, 14
                       :math:`(+\tfrac{\lambda_b}2\|b\|^2)`; bias ``none`` / ``regularized`` / ``free``
``positive``           :math:`\bar\ell(WH) + \lambda_W\|W\|^2 + \tfrac{\lambda_H}{n}\|H\|^2`, :math:`H \ge 0`        seed 000 (P_alpha)
``extended-linear``    :math:`\bar\ell(W_2W_1H_1) + \tfrac{\lambda_W}2(\|W_2\|^2 + \|W_1\|^2) + \tfrac{\lambda_H}2\|H_1\|^2`  seed 004 eq. 23
``extended-relu``      as above with :math:`W_2\,\mathrm{ReLU}(W_1H_1)`                                         seed 004 eq. 24
``fixed-etf``          :math:`\bar\ell(WH) + \tfrac{\lambda_H}2\|H\|^2`, W a fixed (permuted/rotated) simplex ETF  seed 002 Sec. 5.2
``norm-constrained``   :math:`\bar\ell(WH)` s.t. :math:`\|H\|_F \le \sqrt N\alpha`, :math:`\|W\|_F \le \sqrt C\beta`        seed 003 Sec. 2.3
=====================  ========================================================================  ==============

:math:`\bar\ell` is the mean over the N samples of a loss of :mod:`nclab.losses` (``ce``, ``ls``, ``lr``,
``mse``; MSE is :math:`\tfrac12\|z - e_y\|^2`, so :math:`\bar\ell = \tfrac1{2N}\|WH - Y\|_F^2`).
Note the different scaling of the positive model's regulariser (no 1/2, :math:`\lambda_H/n`), as
in the source; its optional regularised bias costs :math:`\lambda_b\|b\|^2` in the same scaling.
The norm-constrained model is solved on the boundary of the constraints, which contains its minimiser (CE decreases along rays of positive margin), by writing
:math:`W = \sqrt C\beta\, V/\|V\|_F`, :math:`H = \sqrt N\alpha\, U/\|U\|_F`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from nclab._resources import check_memory
from nclab.errors import SpecError

__all__ = ["MODELS", "BIASES", "UFMProblem"]

MODELS = ("plain", "positive", "extended-linear", "extended-relu", "fixed-etf", "norm-constrained")
BIASES = ("none", "regularized", "free")
_LOSSES = ("ce", "ls", "lr", "mse")


def _int(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise SpecError(f"{name} must be an integer >= {minimum}; got {v!r}.")
    return int(v)


def _nonneg(name, v):
    if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v >= 0):
        raise SpecError(f"{name} must be a finite number >= 0; got {v!r}.")
    return float(v)


@dataclass(frozen=True)
class UFMProblem:
    """Specification of one unconstrained-features model (validated at construction).

    Parameters
    ----------
    model : {"plain", "positive", "extended-linear", "extended-relu", "fixed-etf", "norm-constrained"}
    loss : {"ce", "ls", "lr", "mse"}, default="mse"
    num_classes : int, default=4
        C >= 2.
    per_class : int, default=5
        n >= 1 samples per class.
    dim : int, default=8
        d, the feature dimension (and the hidden width of the extended models).
    lambda_w, lambda_h : float, default=5e-3
        Weight decays (the positive model uses them without the factor 1/2, as seed 000).
    lambda_b : float, default=0.0
        Bias decay, used only with ``bias="regularized"`` (must then be > 0).
    lambda_w1 : float, optional
        Decay of the first-layer weight of the extended models (default ``lambda_w``).
    bias : {"none", "regularized", "free"}, default="none"
        Only ``plain`` and ``positive`` accept a bias.
    alpha : float, default=0.0
        Smoothing / relaxation parameter of ``ls`` / ``lr``.
    etf_permutation : tuple of int, optional
        ``fixed-etf``: row i of W is ETF vertex ``etf_permutation[i]``.
    etf_rotation_seed : int, optional
        ``fixed-etf``: rotate W by a Haar-random orthogonal matrix drawn with this seed.
    feature_norm, weight_norm : float, default=1.0
        ``norm-constrained``: the bounds alpha, beta of seed 003.
    """

    model: str
    loss: str = "mse"
    num_classes: int = 4
    per_class: int = 5
    dim: int = 8
    lambda_w: float = 5e-3
    lambda_h: float = 5e-3
    lambda_b: float = 0.0
    lambda_w1: float | None = None
    bias: str = "none"
    alpha: float = 0.0
    etf_permutation: tuple | None = None
    etf_rotation_seed: int | None = None
    feature_norm: float = 1.0
    weight_norm: float = 1.0
    _fixed_w: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise SpecError(f"model must be one of {', '.join(MODELS)}; got {self.model!r}.")
        if self.loss not in _LOSSES:
            raise SpecError(f"loss must be one of {', '.join(_LOSSES)}; got {self.loss!r}.")
        _int("num_classes", self.num_classes, 2)
        _int("per_class", self.per_class, 1)
        _int("dim", self.dim, 1)
        check_memory(
            self.memory_bytes(),
            f"a {self.model} UFM with num_classes={self.num_classes}, per_class={self.per_class}, dim={self.dim}",
            "Reduce the number of classes, the samples per class or the dimension.",
        )
        _nonneg("lambda_w", self.lambda_w)
        _nonneg("lambda_h", self.lambda_h)
        _nonneg("lambda_b", self.lambda_b)
        if self.lambda_w1 is not None:
            _nonneg("lambda_w1", self.lambda_w1)
        if not (isinstance(self.alpha, (int, float)) and 0.0 <= self.alpha < 1.0):
            raise SpecError(f"alpha must lie in [0, 1); got {self.alpha!r}.")
        if self.bias not in BIASES:
            raise SpecError(f"bias must be one of {', '.join(BIASES)}; got {self.bias!r}.")
        if self.bias != "none" and self.model not in ("plain", "positive"):
            raise SpecError(f"model {self.model!r} has no bias; pass bias='none'.")
        if self.bias == "regularized" and self.lambda_b <= 0:
            raise SpecError("bias='regularized' needs lambda_b > 0; pass lambda_b or use bias='free'.")
        if self.model == "norm-constrained":
            for name in ("feature_norm", "weight_norm"):
                v = getattr(self, name)
                if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                    raise SpecError(f"{name} must be a finite number > 0; got {v!r}.")
        if self.model == "fixed-etf":
            if self.dim < self.num_classes - 1:
                raise SpecError(
                    f"a fixed simplex ETF of {self.num_classes} classes needs dim >= {self.num_classes - 1}; "
                    f"got dim={self.dim}."
                )
            from nclab.metrics import simplex_etf

            rot = None
            if self.etf_rotation_seed is not None:
                rng = np.random.default_rng(self.etf_rotation_seed)
                q, r = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
                rot = q * np.sign(np.diag(r))
            w = simplex_etf(self.num_classes, self.dim, permutation=self.etf_permutation, rotation=rot).numpy()
            w.setflags(write=False)
            object.__setattr__(self, "_fixed_w", w)

    # ------------------------------------------------------------------ structure
    @property
    def num_samples(self) -> int:
        """N = C n."""
        return self.num_classes * self.per_class

    @property
    def lambda_w1_eff(self) -> float:
        return self.lambda_w if self.lambda_w1 is None else float(self.lambda_w1)

    @property
    def fixed_weights(self) -> np.ndarray | None:
        """The fixed classifier (C, d) of ``fixed-etf``, else None."""
        return self._fixed_w

    def labels(self) -> np.ndarray:
        """Labels (N,) of the samples, class by class."""
        return np.repeat(np.arange(self.num_classes), self.per_class)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the optimisation variables, in the order of the flat vector."""
        c, d, n = self.num_classes, self.dim, self.num_samples
        if self.model in ("plain", "positive"):
            shapes = {"W": (c, d), "H": (d, n)}
            if self.bias != "none":
                shapes["b"] = (c,)
            return shapes
        if self.model.startswith("extended"):
            return {"W2": (c, d), "W1": (d, d), "H1": (d, n)}
        if self.model == "fixed-etf":
            return {"H": (d, n)}
        return {"V": (c, d), "U": (d, n)}  # norm-constrained

    def memory_bytes(self, solver: str | None = None) -> int:
        """Lower bound of the float64 working set in bytes, computed from the sizes alone.

        Always held at once: the parameters x and their gradient (2 P values), the logits (N, C)
        and their gradient (2 N C), and for ``fixed-etf`` the ETF (C, d) plus the rotation
        (d, d) when one is asked for. ``solver="fast"`` adds SciPy L-BFGS-B's workspace, 2 m P +
        5 P values for its m (s, y) pairs (m = 10 up to 10^4 parameters, else 5) and its work
        vectors; ``"gd"`` adds the trial point.
        """
        c, d, n = int(self.num_classes), int(self.dim), int(self.num_classes) * int(self.per_class)
        params = sum(math.prod(s) for s in self.param_shapes().values())
        values = 2 * params + 2 * n * c
        if self.model == "fixed-etf":
            values += c * d + (d * d if self.etf_rotation_seed is not None else 0)
        if solver == "fast":
            values += (2 * (10 if params <= 10_000 else 5) + 5) * params
        elif solver == "gd":
            values += params
        return 8 * values

    def num_params(self) -> int:
        return sum(int(np.prod(s)) for s in self.param_shapes().values())

    def lower_bounds(self) -> np.ndarray | None:
        """Per-coordinate lower bounds of the flat vector (0 on H for ``positive``), else None."""
        if self.model != "positive":
            return None
        lb = np.full(self.num_params(), -np.inf)
        c, d = self.num_classes, self.dim
        lb[c * d : c * d + d * self.num_samples] = 0.0
        return lb

    def unflatten(self, x):
        """Split a flat vector (numpy or torch) into the named variables."""
        out, i = {}, 0
        for name, shape in self.param_shapes().items():
            size = int(np.prod(shape))
            out[name] = x[i : i + size].reshape(shape)
            i += size
        return out

    def init(self, rng: np.random.Generator, *, scale: float | None = None) -> np.ndarray:
        """Random flat start: standard normal times ``scale`` (default 1; 0.1 for the extended models,
        as Tirer & Bruna), absolute values on H of ``positive``."""
        if scale is None:
            scale = 0.1 if self.model.startswith("extended") else 1.0
        x = scale * rng.standard_normal(self.num_params())
        lb = self.lower_bounds()
        if lb is not None:
            mask = np.isfinite(lb)
            x[mask] = np.abs(x[mask])
        return x

    # ------------------------------------------------------------------ objective
    def _loss_fn(self):
        from nclab import losses as L

        kern = {"ce": lambda z, y: L._ce(z, y), "ls": lambda z, y: L._ls(z, y, self.alpha),
                "lr": lambda z, y: L._lr(z, y, self.alpha), "mse": lambda z, y: L._mse(z, y)}
        return kern[self.loss]

    def realize(self, x) -> dict:
        """The model's matrices from a flat vector (torch or numpy): classifier ``W`` (C, d), last-layer
        features ``H`` (d, N) and, where they exist, ``b``, ``W1``, ``H1``, ``pre`` (W1 H1)."""
        is_torch = isinstance(x, torch.Tensor)
        p = self.unflatten(x if is_torch else np.asarray(x, dtype=np.float64))
        if self.model in ("plain", "positive"):
            out = {"W": p["W"], "H": p["H"]}
            if "b" in p:
                out["b"] = p["b"]
            return out
        if self.model.startswith("extended"):
            pre = p["W1"] @ p["H1"]
            if self.model == "extended-relu":
                h2 = torch.relu(pre) if is_torch else np.maximum(pre, 0.0)
            else:
                h2 = pre
            return {"W": p["W2"], "H": h2, "W1": p["W1"], "H1": p["H1"], "pre": pre}
        if self.model == "fixed-etf":
            w = self._fixed_w
            w = torch.tensor(w, dtype=x.dtype) if is_torch else w
            return {"W": w, "H": p["H"]}
        norm = torch.linalg.norm if is_torch else np.linalg.norm
        w = math.sqrt(self.num_classes) * self.weight_norm * p["V"] / norm(p["V"])
        h = math.sqrt(self.num_samples) * self.feature_norm * p["U"] / norm(p["U"])
        return {"W": w, "H": h}

    def objective_torch(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The objective at the flat float64 tensor ``x`` (differentiable)."""
        if labels is None:
            labels = torch.as_tensor(self.labels())
        m = self.realize(x)
        logits = (m["W"] @ m["H"]).T
        if "b" in m:
            logits = logits + m["b"]
        f = self._loss_fn()(logits, labels)
        p = self.unflatten(x)
        sq = lambda t: (t * t).sum()  # noqa: E731
        if self.model == "plain":
            f = f + 0.5 * self.lambda_w * sq(p["W"]) + 0.5 * self.lambda_h * sq(p["H"])
            if self.bias == "regularized":
                f = f + 0.5 * self.lambda_b * sq(p["b"])
        elif self.model == "positive":
            f = f + self.lambda_w * sq(p["W"]) + self.lambda_h / self.per_class * sq(p["H"])
            if self.bias == "regularized":
                f = f + self.lambda_b * sq(p["b"])
        elif self.model.startswith("extended"):
            f = f + 0.5 * self.lambda_w * sq(p["W2"]) + 0.5 * self.lambda_w1_eff * sq(p["W1"])
            f = f + 0.5 * self.lambda_h * sq(p["H1"])
        elif self.model == "fixed-etf":
            f = f + 0.5 * self.lambda_h * sq(p["H"])
        return f

    def objective_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and gradient at the flat float64 vector ``x``, by hand-written chain rule in numpy.

        The fast path of both solvers (no autograd overhead); ``objective_torch`` is the reference it
        is tested against. Cost O(N C d) (O(N d^2) for the extended models).
        """
        x = np.asarray(x, dtype=np.float64)
        p = self.unflatten(x)
        m = self.realize(x)
        w, h = m["W"], m["H"]
        z = (w @ h).T
        if "b" in m:
            z = z + m["b"]
        val, dz = _loss_and_grad(z, self.labels(), self.loss, self.alpha)
        grads: dict[str, np.ndarray] = {}
        dh = w.T @ dz.T  # (d, N), gradient w.r.t. the last-layer features
        if self.model in ("plain", "positive"):
            c_reg = 0.5 if self.model == "plain" else 1.0
            lam_h = self.lambda_h if self.model == "plain" else self.lambda_h / self.per_class
            val += c_reg * (self.lambda_w * (p["W"] ** 2).sum() + lam_h * (p["H"] ** 2).sum())
            grads["W"] = dz.T @ h.T + 2 * c_reg * self.lambda_w * p["W"]
            grads["H"] = dh + 2 * c_reg * lam_h * p["H"]
            if "b" in p:
                grads["b"] = dz.sum(axis=0)
                if self.bias == "regularized":
                    val += c_reg * self.lambda_b * (p["b"] ** 2).sum()
                    grads["b"] = grads["b"] + 2 * c_reg * self.lambda_b * p["b"]
        elif self.model.startswith("extended"):
            da = dh * (m["pre"] > 0) if self.model == "extended-relu" else dh
            l1 = self.lambda_w1_eff
            val += 0.5 * (self.lambda_w * (p["W2"] ** 2).sum() + l1 * (p["W1"] ** 2).sum()
                          + self.lambda_h * (p["H1"] ** 2).sum())
            grads["W2"] = dz.T @ h.T + self.lambda_w * p["W2"]
            grads["W1"] = da @ p["H1"].T + l1 * p["W1"]
            grads["H1"] = p["W1"].T @ da + self.lambda_h * p["H1"]
        elif self.model == "fixed-etf":
            val += 0.5 * self.lambda_h * (p["H"] ** 2).sum()
            grads["H"] = dh + self.lambda_h * p["H"]
        else:  # norm-constrained: chain rule through V -> r V / ||V||
            for name, mat, dmat, radius in (
                ("V", p["V"], dz.T @ h.T, math.sqrt(self.num_classes) * self.weight_norm),
                ("U", p["U"], dh, math.sqrt(self.num_samples) * self.feature_norm),
            ):
                nrm = np.linalg.norm(mat)
                unit = mat / nrm
                grads[name] = radius / nrm * (dmat - (dmat * unit).sum() * unit)
        flat = np.concatenate([grads[k].ravel() for k in self.param_shapes()])
        return float(val), flat


def _loss_and_grad(z: np.ndarray, y: np.ndarray, loss: str, alpha: float) -> tuple[float, np.ndarray]:
    """Mean loss over the rows of ``z (N, C)`` and its gradient with respect to ``z``."""
    n, c = z.shape
    rows = np.arange(n)
    if loss == "mse":
        r = z.copy()
        r[rows, y] -= 1.0
        return 0.5 * float((r * r).sum()) / n, r / n
    zmax = z.max(axis=1, keepdims=True)
    lse = zmax[:, 0] + np.log(np.exp(z - zmax).sum(axis=1))
    logp = z - lse[:, None]
    prob = np.exp(logp)
    if loss == "ce" or (loss in ("ls", "lr") and alpha == 0.0):
        g = prob.copy()
        g[rows, y] -= 1.0
        return float(-logp[rows, y].mean()), g / n
    if loss == "ls":
        g = prob - alpha / c
        g[rows, y] -= 1.0 - alpha
        val = (1 - alpha) * (-logp[rows, y]) + alpha * (-logp.mean(axis=1))
        return float(val.mean()), g / n
    # label relaxation
    log_py = logp[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    omax = others.max(axis=1)
    log_rest = omax + np.log(np.exp(others - omax[:, None]).sum(axis=1)) - lse  # log(1 - p_y)
    active = log_py < math.log1p(-alpha)
    kl = (1 - alpha) * (math.log(1 - alpha) - log_py) + alpha * (math.log(alpha) - log_rest)
    pr = alpha * np.exp(logp - log_rest[:, None])
    pr[rows, y] = 1 - alpha
    g = (prob - pr) * active[:, None]
    return float(np.where(active, kl, 0.0).mean()), g / n
