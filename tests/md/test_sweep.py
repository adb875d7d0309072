"""md_sweep and its figures."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nclab.errors import SpecError  # noqa: E402
from nclab.md import assumption_4_2, md_sweep, plot_md_sweep, plot_theorem_check, solve_md  # noqa: E402


def test_sweep_points_match_single_solves():
    etas = [1e-3, 0.05]
    sw = md_sweep(etas, alphas=(0.1, 0.3), c_mds=(1.0,), lambda_w=1e-3, lambda_h=1e-3, n_grid=33)
    assert len(sw.points) == 4
    assert sw.settings() == [(0.1, 1.0), (0.3, 1.0)]
    for p in sw.points:
        ce = solve_md(alpha=0.0, lambda_w=1e-3, lambda_h=1e-3, eta=p.eta, c_md=1.0, n_grid=33)
        ls = solve_md(alpha=p.alpha, lambda_w=1e-3, lambda_h=1e-3, eta=p.eta, c_md=1.0, n_grid=33)
        assert p.dilation_ce == ce.dilation and p.dilation_ls == ls.dilation
        assert p.memorization_ls == ls.memorization
        a = assumption_4_2(alpha=p.alpha, lambda_w=1e-3, lambda_h=1e-3, eta=p.eta, c_md=1.0)
        assert p.assumptions_hold == a.holds
        assert p.theorem_holds == (ce.dilation > ls.dilation)


def test_plots_return_fig_and_ax():
    sw = md_sweep(np.geomspace(1e-3, 0.1, 3), lambda_w=1e-3, lambda_h=1e-3, n_grid=17)
    fig, ax = plot_md_sweep(sw)
    assert ax.get_xlabel().startswith("memorization") and len(ax.collections) >= 6
    plt.close(fig)
    fig, (a1, a2) = plt.subplots(1, 2)
    f1, ax1 = plot_md_sweep(sw, ax=a1)
    f2, ax2 = plot_theorem_check(sw, ax=a2)
    assert f1 is fig and f2 is fig and ax1 is a1 and ax2 is a2
    ratio = ax2.get_lines()[0].get_ydata()
    np.testing.assert_allclose(ratio, [p.dilation_ce / p.dilation_ls for p in sw.points])
    plt.close(fig)


@pytest.mark.parametrize("etas,kw", [([], {}), ([0.0], {}), ([0.1], {"alphas": (0.0,)})])
def test_sweep_invalid(etas, kw):
    with pytest.raises(SpecError):
        md_sweep(etas, lambda_w=1e-3, lambda_h=1e-3, **kw)
