r"""``synthetic-smoke``: gradient descent on a least-squares problem, one epoch per step.

A cheap, fully deterministic experiment that exercises the whole pipeline (grid, runner,
store, report) without the science libraries. Each cell draws a regression problem
:math:`y = X w^\star + \sigma \varepsilon` with :math:`X \in \mathbb{R}^{n \times d}` standard
normal, and runs full-batch gradient descent on

.. math:: L(w) = \tfrac{1}{2n} \lVert X w - y \rVert^2, \qquad w_{t+1} = w_t - \eta \nabla L(w_t),

recording the train and test loss and the distance to the least-squares solution
:math:`\hat w = (X^\top X)^{-1} X^\top y` every epoch. Textbook facts checked by the report:
with :math:`G = X^\top X / n = V \operatorname{diag}(\lambda) V^\top`, the error is exactly
:math:`w_T - \hat w = V \operatorname{diag}((1 - \eta\lambda)^T) V^\top (w_0 - \hat w)`, so it
contracts at rate :math:`\rho = \max_i |1 - \eta \lambda_i|` and GD converges iff
:math:`\eta < 2/L` with :math:`L = \lambda_{\max}`. Cost per epoch: O(n d).
"""

from __future__ import annotations

import time

__all__ = ["least_squares_gd"]


def least_squares_gd(config: dict, ctx) -> "CellResult":  # noqa: F821 - see runner
    """Cell function of ``synthetic-smoke`` (see the module docstring)."""
    import numpy as np

    from nclab.experiments.runner import CellResult

    rng = np.random.default_rng(config["seed"])
    n, m, d = config["n_train"], config["n_test"], config["dim"]
    w_star = rng.standard_normal(d)
    x = rng.standard_normal((n + m, d))
    y = x @ w_star + config["noise"] * rng.standard_normal(n + m)
    x_tr, y_tr, x_te, y_te = x[:n], y[:n], x[n:], y[n:]
    gram = x_tr.T @ x_tr / n
    eig, vecs = np.linalg.eigh(gram)
    w_hat = np.linalg.solve(gram, x_tr.T @ y_tr / n)
    lr = config["lr"]

    def loss(w, xs, ys):
        r = xs @ w - ys
        return float(r @ r / (2 * len(ys)))

    w = np.zeros(d)
    dist0 = float(np.linalg.norm(w - w_hat))
    history = []
    epochs = config["epochs"]
    for epoch in range(1, epochs + 1):
        w = w - lr * (x_tr.T @ (x_tr @ w - y_tr) / n)
        dist = float(np.linalg.norm(w - w_hat))
        history.append({
            "epoch": epoch,
            "train_loss": loss(w, x_tr, y_tr),
            "test_loss": loss(w, x_te, y_te),
            "dist_to_opt": dist,
        })
        if config["epoch_delay_s"] > 0:
            time.sleep(config["epoch_delay_s"])
        ctx.epoch(epoch, epochs)
    dist = float(np.linalg.norm(w - w_hat))
    prev = history[-2]["dist_to_opt"] if epochs > 1 else dist0
    final = {
        "train_loss": loss(w, x_tr, y_tr),
        "test_loss": loss(w, x_te, y_te),
        "opt_train_loss": loss(w_hat, x_tr, y_tr),
        "dist_to_opt": dist,
        "dist_initial": dist0,
        "lr_times_L": lr * float(eig[-1]),
        "rate_predicted": float(np.max(np.abs(1.0 - lr * eig))),
        # exact: w_T - w_hat = (I - lr G)^T (w_0 - w_hat), G = V diag(eig) V^T
        "dist_predicted": float(np.linalg.norm(
            (1.0 - lr * eig) ** epochs * (vecs.T @ (np.zeros(d) - w_hat)))),
        # contraction over the last epoch; once the slowest eigen-direction dominates the
        # error, this equals rate_predicted
        "rate_measured": dist / prev if prev > 0 else 0.0,
    }
    return CellResult(final=final, history=history, extras={"eigenvalues": eig.tolist()})
