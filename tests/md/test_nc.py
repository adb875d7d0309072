"""The NC configuration of Assumption 4.2.1 (closed form) against direct minimisation."""

import math

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp

from nclab.errors import SpecError
from nclab.md._nc import _nc_configuration


def _reference_objective(theta, n, m, alpha, lw, lh, *, mean_form=False):
    """sum_n l_alpha(W h_n, y_n) + lw ||W||^2 + lh ||H||^2 written from seed 000 eq. (1)."""
    W = theta[: n * m].reshape(n, m)
    H = theta[n * m :].reshape(n, m)
    Z = H @ W.T  # row n: logits of h_n
    Y = (1 - alpha) * np.eye(n) + alpha / n
    losses = -np.sum(Y * (Z - logsumexp(Z, axis=1, keepdims=True)), axis=1)
    scale = 1.0 / n if mean_form else 1.0
    value = scale * losses.sum() + lw * np.sum(W**2) + lh * np.sum(H**2)
    D = scale * (np.exp(Z - logsumexp(Z, axis=1, keepdims=True)) - Y)  # d value / d Z
    grad = np.concatenate([(D.T @ H + 2 * lw * W).ravel(), (D @ W + 2 * lh * H).ravel()])
    return value, grad


def _direct_min(n, m, alpha, lw, lh, *, mean_form=False, starts=3):
    rng = np.random.default_rng(0)
    best = None
    for _ in range(starts):
        x0 = np.concatenate([rng.normal(size=n * m), np.abs(rng.normal(size=n * m))])
        res = minimize(lambda t: _reference_objective(t, n, m, alpha, lw, lh, mean_form=mean_form), x0,
                       jac=True, method="L-BFGS-B", bounds=[(None, None)] * (n * m) + [(0, None)] * (n * m),
                       options={"maxiter": 20000, "ftol": 1e-14, "gtol": 1e-10})
        # ftol 1e-15 ended some starts in ABNORMAL line searches (success=False); 1e-14 converges
        assert res.success, f"reference L-BFGS-B did not converge: {res.message}"
        if best is None or res.fun < best.fun:
            best = res
    return best


@pytest.mark.parametrize("n,m,alpha,lw,lh", [(2, 2, 0.0, 1e-3, 1e-3), (2, 3, 0.1, 5e-3, 2e-3),
                                             (2, 2, 0.4, 1e-2, 1e-2), (3, 3, 0.2, 1e-2, 1e-2)])
def test_closed_form_matches_direct_minimisation(n, m, alpha, lw, lh):
    cfg = _nc_configuration(alpha, lambda_w=lw, lambda_h=lh, num_classes=n, dim=m)
    closed, grad = _reference_objective(np.concatenate([cfg.W.ravel(), cfg.H.ravel()]), n, m, alpha, lw, lh)
    # stationarity of the closed form (H-gradient may be > 0 only where h = 0: KKT of H >= 0)
    gh = grad[n * m :].reshape(n, m)
    np.testing.assert_allclose(grad[: n * m], 0, atol=1e-10)
    np.testing.assert_allclose(gh[cfg.H > 0], 0, atol=1e-10)
    assert np.all(gh[cfg.H == 0] >= -1e-12)
    res = _direct_min(n, m, alpha, lw, lh)
    assert closed <= res.fun + 1e-12
    assert res.fun == pytest.approx(closed, rel=1e-8, abs=1e-10)
    W = res.x[: n * m].reshape(n, m)
    H = res.x[n * m :].reshape(n, m)
    assert np.linalg.norm(H) == pytest.approx(cfg.h_norm, rel=1e-3)
    assert np.linalg.norm(W) == pytest.approx(cfg.w_norm, rel=1e-3)
    # structure of the numerical minimiser: orthogonal equinorm h_n, w_n = c (h_n - hbar)
    G = H @ H.T
    np.testing.assert_allclose(G, np.eye(n) * cfg.rho**2, atol=2e-3 * cfg.rho**2)
    np.testing.assert_allclose(W, cfg.c * (H - H.mean(0)), atol=2e-3 * np.abs(W).max())


def test_mean_form_p_alpha_is_summed_form_with_scaled_decay():
    """(P_alpha) with K = 1 and decays (lw, lh) equals the summed problem with (N lw, N lh), / N."""
    n, m, alpha, lw, lh = 2, 2, 0.1, 2e-3, 1e-3
    cfg = _nc_configuration(alpha, lambda_w=n * lw, lambda_h=n * lh, num_classes=n)
    res = _direct_min(n, m, alpha, lw, lh, mean_form=True)
    theta = np.concatenate([cfg.W.ravel(), cfg.H.ravel()])
    assert res.fun == pytest.approx(_reference_objective(theta, n, m, alpha, lw, lh, mean_form=True)[0], rel=1e-8)


def test_binary_closed_form_constants():
    lw, lh, alpha = 3e-3, 1e-3, 0.2
    cfg = _nc_configuration(alpha, lambda_w=lw, lambda_h=lh)
    kappa = alpha / 2 + math.sqrt(2 * lw * lh)
    s = math.log((1 - kappa) / kappa)
    assert cfg.margin == pytest.approx(s)
    assert cfg.c == pytest.approx(math.sqrt(2 * lh / lw))
    assert cfg.h_dist == pytest.approx(cfg.h_norm)  # ||h1 - h2|| = ||H|| for N = 2
    assert float((cfg.W[0] - cfg.W[1]) @ cfg.H[0]) == pytest.approx(s)


def test_remark_1_noisy_minimiser_is_h():
    """Without the MD constraint, min_{u >= 0} l(W u, y_1) + lambda_H ||u||^2 is h_1 (Remark 1)."""
    cfg = _nc_configuration(0.15, lambda_w=2e-3, lambda_h=4e-3, dim=4)
    lam = cfg.lambda_h

    def g(u):
        z = cfg.W @ u
        y = np.array([1 - 0.15 / 2, 0.15 / 2])
        return float(logsumexp(z) - y @ z + lam * u @ u)

    res = minimize(g, np.ones(4), method="L-BFGS-B", bounds=[(0, None)] * 4,
                   options={"ftol": 1e-14, "gtol": 1e-12})
    assert res.success, f"reference L-BFGS-B did not converge: {res.message}"
    np.testing.assert_allclose(res.x, cfg.H[0], atol=1e-4)


@pytest.mark.parametrize("kw,match", [
    (dict(alpha=0.999, lambda_w=1e-3, lambda_h=1e-3), "must be <"),
    (dict(alpha=0.0, lambda_w=0.4, lambda_h=0.4), "must be <"),
    (dict(alpha=1.0, lambda_w=1e-3, lambda_h=1e-3), "alpha"),
    (dict(alpha=0.0, lambda_w=-1.0, lambda_h=1e-3), "lambda_w"),
    (dict(alpha=0.0, lambda_w=1e-3, lambda_h=1e-3, num_classes=1), "num_classes"),
    (dict(alpha=0.0, lambda_w=1e-3, lambda_h=1e-3, dim=1), "dim"),
])
def test_invalid_configuration(kw, match):
    alpha = kw.pop("alpha")
    with pytest.raises(SpecError, match=match):
        _nc_configuration(alpha, **kw)


@pytest.mark.parametrize("n,alpha,lw,lh", [(2, 0.0, 1e-3, 1e-3), (2, 0.3, 4e-3, 1e-3), (4, 0.1, 1e-3, 2e-3)])
def test_agrees_with_shared_theory_function(n, alpha, lw, lh):
    """Cross-check with nclab.theory's (P_alpha) closed form: summed(lw, lh) = averaged(lw/N, lh/N)."""
    theory = pytest.importorskip("nclab.theory.positive")
    sol = theory.positive_nc_norms(n, lw / n, lh / n, alpha)
    cfg = _nc_configuration(alpha, lambda_w=lw, lambda_h=lh, num_classes=n)
    assert sol.nonzero
    assert sol.margin == pytest.approx(cfg.margin, rel=1e-12)
    assert sol.h_norm == pytest.approx(cfg.rho, rel=1e-12)
    assert sol.weight_scale == pytest.approx(cfg.c, rel=1e-12)
