"""The report: statistics against independent computations, verdicts computed from the data,
and a self-contained HTML file rendered from a fixture store."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import pytest
from scipy import stats

from nclab import store as st
from nclab.report import build_report, fit_line, format_mean_std, mean_std, slope_z
from nclab.report.analysis import RunData, spearman
from nclab.report.figures import (plot_loss_margin, plot_memorization_dilation,
                                  plot_metric_vs_param, plot_spread)
from nclab.experiments import describe_for_report


def build_section(name, title, source, runs):
    """The registered experiment's own section builder (as the report calls it)."""
    from nclab.report.sections import build_section as build

    return build(name, title, source, runs, describe_for_report(name).builder)


# --------------------------------------------------------------------------- statistics


def test_fit_line_matches_scipy_linregress():
    rng = np.random.default_rng(0)
    x = rng.random(30)
    y = 0.3 + 1.7 * x + 0.05 * rng.standard_normal(30)
    f = fit_line(x, y)
    ref = stats.linregress(x, y)
    assert f.slope == pytest.approx(ref.slope, rel=1e-12)
    assert f.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert f.slope_se == pytest.approx(ref.stderr, rel=1e-10)
    assert f.r2 == pytest.approx(ref.rvalue ** 2, rel=1e-12)
    assert f.n == 30


def test_fit_line_degenerate_inputs():
    assert math.isnan(fit_line([1.0], [2.0]).slope)
    assert math.isnan(fit_line([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]).slope)
    f = fit_line([0.0, 1.0, float("nan"), 2.0], [1.0, 3.0, 99.0, 5.0])  # NaN pairs dropped
    assert (f.slope, f.intercept, f.n) == (pytest.approx(2.0), pytest.approx(1.0), 3)
    assert math.isnan(fit_line([0.0, 1.0], [0.0, 1.0]).slope_se)  # n = 2: no error estimate


def test_slope_z_and_mean_std():
    a, b = fit_line([0, 1, 2, 3], [0, 1.1, 1.9, 3.2]), fit_line([0, 1, 2, 3], [0, 2.1, 3.9, 6])
    assert slope_z(a, b) == pytest.approx(abs(a.slope - b.slope) / math.hypot(a.slope_se,
                                                                             b.slope_se))
    v = [1.0, 2.0, 4.0, float("nan")]
    m, s, n = mean_std(v)
    assert (m, n) == (pytest.approx(7 / 3), 3)
    assert s == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert format_mean_std([0.5]) == "0.5" and format_mean_std([]) == "-"
    assert format_mean_std([0.5, 0.7], scale=100) == "60 ± 14"
    assert spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- figures


def test_plot_functions_return_fig_and_use_given_axes():
    fig, ax = plot_memorization_dilation([1, 2, 3, 1.5], [0.1, 0.2, 0.3, 0.1],
                                         ["ce", "ce", "ce", "ls"], [0.1, 0.2, 0.3, 0.1],
                                         fits={"ce": (0.1, 0.0)})
    assert ax.figure is fig
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "CE (slope 0.1)" in labels and "LS" in labels and "η=0.3" in labels
    line = [l for l in ax.get_lines() if l.get_label().startswith("CE (slope")][0]
    np.testing.assert_allclose(line.get_ydata(), 0.1 * np.asarray(line.get_xdata()))
    fig2, ax2 = plot_metric_vs_param([1, 2], {"ce": ([0.5, 0.6], [0.0, 0.1])}, xlabel="x",
                                     ylabel="y", ax=ax)
    assert ax2 is ax and fig2 is fig
    fig3, ax3 = plot_loss_margin([1, 2, 3], [1.0, 0.1, 0.01], [0.0, 1.0, 2.0], tpt_epoch=2)
    assert ax3.get_yscale() == "log"
    fig4, ax4 = plot_spread({"a": [1, 2, 3], "b": [2, 3]}, ylabel="acc")
    assert [t.get_text() for t in ax4.get_xticklabels()] == ["a", "b"]


# --------------------------------------------------------------------------- fixture store


def _md_runs(slopes: dict[str, float], *, seeds=(0, 1, 2), etas=(0.1, 0.2, 0.3), noise=0.01,
             ls_acc_drop=0.5):
    """Fixture runs of md-label-noise with sqrt(NC1 test) = 0.05 + slope * memorization + noise,
    memorization growing with eta (LS memorizing 30% less than CE)."""
    rng = np.random.default_rng(1)
    runs = []
    for loss, slope in slopes.items():
        for eta in etas:
            for seed in seeds:
                mem = eta * (0.7 if loss == "ls" else 1.0) * (1 + 0.05 * rng.standard_normal())
                dil = (0.05 + slope * mem + noise * rng.standard_normal()) ** 2
                acc = 0.95 - eta * (ls_acc_drop if loss == "ls" else 0.6)
                axes = {"dataset": "mnist1d", "num_classes": 2, "eta": eta, "loss": loss,
                        "seed": seed}
                runs.append(dict(axes=axes, final={"memorization": mem, "nc1_test": dil,
                                                   "test_acc": acc, "train_acc": 1.0,
                                                   "suboptimal_collapse": 0.0},
                                 history=[{"epoch": 1, "train_loss": 1.0},
                                          {"epoch": 2, "train_loss": 0.5}]))
    return runs


def _write(conn, experiment, runs, preset="quick"):
    for i, r in enumerate(runs):
        key = ",".join(f"{k}={v}" for k, v in r["axes"].items()) + f"#{i:012d}"
        st.write_run(conn, st.RunRecord(
            experiment=experiment, preset=preset, stage=r.get("stage", "main"), cell_key=key,
            config=dict(r["axes"]), axes=r["axes"], status="done", started_at=0.0,
            finished_at=1.0, final=r["final"], history=r.get("history", ()),
            extras=r.get("extras", {}), versions={"nclab": "test"}))


def _as_rundata(runs):
    return [RunData(str(i), "main", r["axes"], r["axes"], r["final"], r["history"])
            for i, r in enumerate(runs)]


def test_md_verdicts_follow_the_data():
    shared = build_section("md-label-noise", "t", "s", _as_rundata(
        _md_runs({"ce": 0.5, "ls": 0.5, "mse": 2.0})))
    same = [c for c in shared.claims if "share the same" in c.text][0]
    assert same.supported is True
    less = [c for c in shared.claims if "memorizes less" in c.text][0]
    assert less.supported is True and "3/3 noise levels" in less.verdict
    acc = [c for c in shared.claims if "higher test accuracy" in c.text][0]
    assert acc.supported is True and "3/3 noise levels" in acc.verdict
    other = [c for c in shared.claims if "MSE and LR" in c.text][0]
    assert other.supported is True
    # different slopes for CE and LS: the same claim is now rejected
    apart = build_section("md-label-noise", "t", "s", _as_rundata(
        _md_runs({"ce": 0.5, "ls": 1.5}, ls_acc_drop=0.7)))
    same2 = [c for c in apart.claims if "share the same" in c.text][0]
    assert same2.supported is False
    acc2 = [c for c in apart.claims if "higher test accuracy" in c.text][0]
    assert acc2.supported is False and "0/3 noise levels" in acc2.verdict
    # the slope table reports the least-squares slope of all runs of a loss
    runs = _md_runs({"ce": 0.5, "ls": 1.5})
    ce = [r for r in runs if r["axes"]["loss"] == "ce"]
    ref = stats.linregress([r["final"]["memorization"] for r in ce],
                           [math.sqrt(r["final"]["nc1_test"]) for r in ce])
    table = [t for t in apart.tables if t.title.startswith("Fitted lines")][0]
    row = [r for r in table.rows if r[1] == "CE"][0]
    assert row[2].startswith(f"{ref.slope:.3g} ± ")


def test_suboptimal_collapses_are_excluded():
    runs = _md_runs({"ce": 0.5, "ls": 0.5})
    runs[0]["final"]["suboptimal_collapse"] = 1.0
    sec = build_section("md-label-noise", "t", "s", _as_rundata(runs))
    assert any("1 of 18 runs collapsed" in n for n in sec.notes)
    table = [t for t in sec.tables if t.title.startswith("Mean")][0]
    assert table.rows[0][3] == "2"  # 2 seeds left for (ce, eta=0.1)


@pytest.fixture
def fixture_store(tmp_path):
    path = tmp_path / "fixture.sqlite"
    conn = st.connect(path)
    _write(conn, "md-label-noise", _md_runs({"ce": 0.5, "ls": 0.5, "lr": 1.5, "mse": 2.0}))
    epochs = list(range(1, 21))
    hist = [{"epoch": e, "train_loss": 2.0 / e, "margin_min_nobias_train": 0.1 * e,
             "train_acc": min(1.0, e / 5)}
            for e in epochs]
    _write(conn, "tpt-margins", [dict(axes={"dataset": "mnist1d", "arch": "mlp", "loss": "ce",
                                            "seed": 0},
                                      final={"tpt_epoch": 5.0, "train_acc": 1.0, "test_acc": .8},
                                      history=hist)])
    etf = []
    for t in ("permute", "rotate"):
        for s in range(4):
            etf.append(dict(axes={"transform": t, "transform_seed": s},
                            final={"test_acc": 0.80 + 0.03 * s, "test_loss": 0.5 + 0.1 * s,
                                   "train_acc": 1.0, "num_test": 1000.0}))
    _write(conn, "etf-permutations", etf)
    bn = []
    for mode, base in (("affine", 0.6), ("non-affine", 0.2), ("none", 0.1)):
        for wd in (1e-4, 1e-3, 1e-2):
            gap = base + (0.3 * math.log10(wd / 1e-4) / 2 if mode == "affine" else 0.0)
            bn.append(dict(axes={"batch_norm": mode, "weight_decay": wd, "seed": 0},
                           final={"train_acc": 1.0, "cosine_intra_min_train": 0.5 + gap / 2,
                                  "cosine_inter_max_train": 0.5 - gap / 2}))
    _write(conn, "bn-weight-decay", bn)
    _write(conn, "synthetic-smoke", [dict(axes={"lr": 0.1, "seed": 0},
                                          final={"dist_to_opt": 0.5}, history=[])],
           preset="paper")
    conn.close()
    return path


def test_report_renders_from_fixture_store(fixture_store, tmp_path):
    out = tmp_path / "rep"
    path = build_report(fixture_store, out, describe=describe_for_report)
    text = path.read_text()
    # self-contained: every image is inline base64, nothing is fetched
    srcs = re.findall(r'src="([^"]+)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in text and "<script" not in text
    # every figure was written as PNG and SVG and is linked
    pngs = sorted(p.stem for p in (out / "figures").glob("*.png"))
    svgs = sorted(p.stem for p in (out / "figures").glob("*.svg"))
    assert pngs == svgs and len(pngs) == len(srcs) >= 4
    for stem in svgs:
        assert f'href="figures/{stem}.svg"' in text
    # each experiment has a section; each claim sits next to its figure with a verdict
    for name in ("md-label-noise", "tpt-margins", "etf-permutations", "bn-weight-decay",
                 "synthetic-smoke"):
        assert f'<section id="{name}">' in text
    assert text.count('class="claim ok"') >= 5
    tpt = text[text.index('<section id="tpt-margins">'):]
    assert "p_min goes 0.5 → 2" in tpt  # from epoch 5 to 20 in the fixture
    # the table holds mean ± std over seeds, computed from the fixture values
    accs = [0.95 - 0.1 * 0.6] * 3
    assert format_mean_std(accs, scale=100) in text
    assert "± " in text


def test_report_filters_by_preset_and_name(fixture_store, tmp_path):
    path = build_report(fixture_store, tmp_path / "r", names=["synthetic-smoke"], preset="quick",
                        describe=describe_for_report)
    text = path.read_text()
    assert "No finished runs" in text and '<section id="md-label-noise">' not in text
    path = build_report(fixture_store, tmp_path / "r2", names=["synthetic-smoke"],
                        describe=describe_for_report)
    assert "1 runs, preset paper" in path.read_text()


def test_a_broken_section_fails_the_report(fixture_store, tmp_path):
    """A bug in a section builder is not turned into a note: the report (and the test) fails."""
    from nclab.report import SectionInfo

    def boom(*a, **k):
        raise RuntimeError("bad data")

    def describe(name, preset):
        info = describe_for_report(name, preset)
        return SectionInfo(info.title, info.source, boom if name == "tpt-margins" else
                           info.builder, info.deviations)

    with pytest.raises(RuntimeError, match="bad data"):
        build_report(fixture_store, tmp_path / "r", describe=describe)


def test_deviations_table_is_generated_from_the_specs(fixture_store, tmp_path):
    from nclab.experiments import get_experiment

    text = build_report(fixture_store, tmp_path / "r", describe=describe_for_report).read_text()
    table = text[text.index('<table id="deviations">'):]
    table = table[:table.index("</table>")]
    import html as _html

    for name in ("md-label-noise", "tpt-margins", "bn-weight-decay"):
        devs = get_experiment(name).deviations_for("quick")
        assert devs, name
        for d in devs:  # every deviation of the preset shown, each in one row of the table
            row = "".join(f"<td>{_html.escape(v, quote=True)}</td>"
                          for v in (name, "quick", d.topic, d.source, d.nclab, d.why))
            assert row in table
    # the paper-only deviations are not listed for the quick runs
    paper_only = [d for d in get_experiment("md-label-noise").deviations
                  if d.presets == ("paper",)]
    assert paper_only and all(_html.escape(d.source, quote=True) not in table for d in paper_only)
    # without the experiment layer the report still renders, with generic sections
    plain = build_report(fixture_store, tmp_path / "g").read_text()
    assert 'id="deviations"' not in plain and '<section id="tpt-margins">' in plain


def test_missing_store_is_an_input_error(tmp_path):
    from nclab.errors import InputFileError

    with pytest.raises(InputFileError, match="does not exist"):
        build_report(tmp_path / "none.sqlite", tmp_path / "out")


def test_expected_range_of_normal_draws():
    from nclab.experiments.library.etf_permutations import expected_range

    # Shewhart's d2 constants (tabulated to 3 decimals) and a Monte Carlo estimate
    for k, d2 in ((2, 1.128), (3, 1.693), (5, 2.326), (10, 3.078)):
        assert expected_range(k) == pytest.approx(d2, abs=6e-4)
    draws = np.random.default_rng(0).standard_normal((200_000, 4))
    assert expected_range(4) == pytest.approx(np.ptp(draws, axis=1).mean(), rel=5e-3)
    assert expected_range(1) == 0.0


def test_level_gap_ignores_the_numerical_floor():
    from nclab.experiments.library.depthwise import level_gap

    curves = {"nc1_h1": [1.0, 0.1, 1e-3, 1e-9], "nc1_h2": [10.0, 0.1, 1e-5, 1e-12]}
    # records 0-2 count: |log10 ratio| = 1, 0, 2 -> median 1; record 3 is below 1e-6
    assert level_gap(curves) == pytest.approx(1.0)
    assert math.isnan(level_gap({"nc1_h1": [1e-8], "nc1_h2": [1.0]}))


# --------------------------------------------------------------------------- new sections


def _layer_run(key, gaps, wd=1e-3, acc=1.0, dataset="teacher"):
    taps = [f"block{i}" for i in range(1, len(gaps))] + ["features"]
    final = {"train_acc": acc, "effective_depth": 2.0}
    for t, g, k in zip(taps, gaps, range(len(gaps))):
        final.update({f"layers/{t}/cosine_intra_min": 0.5 + g / 2,
                      f"layers/{t}/cosine_inter_max": 0.5 - g / 2,
                      f"layers/{t}/ncc_accuracy": 0.5 + 0.1 * k, f"layers/{t}/nc1": 1.0 / (k + 1),
                      f"layers/{t}/nc2_etf": 0.5})
    return RunData(key, "main", {"dataset": dataset, "weight_decay": wd, "seed": 0}, {}, final,
                   (), {"layers": taps})


def test_conjecture_3_2_1_cosine_gap_verdict():
    """The cosine gap (min intra − max inter) may drop by at most ε = 0.05 between layers."""
    from nclab.experiments.library.depthwise import CONJ_321_EPS

    rising = [_layer_run("a#1", [0.1, 0.2, 0.2 - CONJ_321_EPS / 2, 0.6]),
              _layer_run("b#2", [0.0, 0.3, 0.5, 0.9], wd=1e-2)]
    claim = [c for c in build_section("depthwise", "t", "s", rising).claims
             if "Conjecture 3.2.1" in c.source][0]
    assert claim.supported is True and f"{CONJ_321_EPS / 2:.3g}" in claim.verdict
    drop = rising + [_layer_run("c#3", [0.4, 0.2, 0.5, 0.6], wd=3e-3)]
    claim = [c for c in build_section("depthwise", "t", "s", drop).claims
             if "Conjecture 3.2.1" in c.source][0]
    assert claim.supported is False and "0.2" in claim.verdict and "2/3" in claim.verdict
    # unconverged networks do not test the conjecture
    claim = [c for c in build_section("depthwise", "t", "s", [
        _layer_run("d#4", [0.4, 0.1, 0.0, 0.0], acc=0.9)]).claims
             if "Conjecture 3.2.1" in c.source][0]
    assert claim.supported is None


def test_md_section_panels_per_feature_dimension_and_fig4_scatter():
    runs = _md_runs({"ce": 0.5, "ls": 0.5})
    wide = _md_runs({"ce": 0.5, "ls": 0.5})
    for r in wide:
        r["axes"] = dict(r["axes"], feature_dim=16)
    data = _as_rundata(runs) + [RunData(f"w{i}", "main", r["axes"], r["axes"], r["final"],
                                        r["history"]) for i, r in enumerate(wide)]
    feats = {"test": [[1.0, 0.0], [0.0, 1.0]], "test_labels": [0, 1],
             "noisy": [[0.9, 0.1]], "noisy_true_labels": [1]}
    bad = RunData("x#9", "main", {"dataset": "mnist1d", "num_classes": 2, "eta": 0.1,
                                  "loss": "ce", "seed": 9}, {},
                  {"suboptimal_collapse": 1.0, "memorization": 1.0, "nc1_test": 1.0,
                   "test_acc": 0.5}, (), {"features_2d": feats})
    good = RunData("y#9", "main", dict(bad.axes, seed=10), {},
                   dict(bad.final, suboptimal_collapse=0.0), (), {"features_2d": feats})
    sec = build_section("md-label-noise", "t", "s", data + [bad, good])
    assert {"md-mnist1d-N2-MN", "md-mnist1d-N2-M16", "features-2d"} <= set(sec.figures)
    fig = sec.figures["md-mnist1d-N2-MN"]
    assert [ax.get_xlabel() for ax in fig.axes[:3]] == ["memorization", "memorization", "noise η"]
    assert fig.axes[1].get_ylabel() == "test accuracy"  # seed 000 Fig. 1 bottom row's axis
    scatter = sec.figures["features-2d"]
    assert [a.get_title().split(":")[0] for a in scatter.axes] == ["sub-optimal", "optimal"]
    # the filtered run is left out of the fits, the kept one counted
    slopes = [t for t in sec.tables if t.title.startswith("Fitted lines")][0]
    assert {r[0] for r in slopes.rows} == {"mnist1d, N=2, M=N", "mnist1d, N=2, M=16"}


def test_tpt_section_shows_both_margins_and_the_bound_terms():
    from nclab.experiments.library.tpt_margins import BOUND_TERMS

    hist = [{"epoch": e, "train_loss": 1.0 / e, "margin_min_nobias_train": 0.1 * e,
             "margin_min_train": 0.2 * e, "bound44_a_train": 10.0 / e,
             "bound48_gamma_hat_min_train": 0.01 * e} for e in range(1, 11)]
    final = {**{k: 0.5 for k in BOUND_TERMS}, "tpt_epoch": 3.0, "margin_min_nobias_train": 1.0}
    run = RunData("r#abc", "main", {"dataset": "mnist1d", "arch": "mlp", "loss": "ce",
                                    "seed": 0}, {}, final, hist)
    sec = build_section("tpt-margins", "t", "s", [run])
    assert {"tpt-abc", "tpt-abc-bounds"} <= set(sec.figures)
    table = [t for t in sec.tables if t.title.startswith("Margins and margin-bound")][0]
    assert list(table.header) == ["run"] + list(BOUND_TERMS)
    assert table.rows[0][1 + list(BOUND_TERMS).index("margin_min_nobias_train")] == "1"
    claim = sec.claims[0]
    assert claim.supported is True and "p_min goes 0.3 → 1" in claim.verdict


def test_fig2_verdicts_need_a_collapsed_run():
    """Seed 004 Fig. 2 in the ufm-theory section: not testable before NC1 collapses; then the
    bias-free model must pick the orthogonal frame and the free-bias model the simplex ETF."""
    def traces(nc1_end, of_end, etf_end):
        tr = {"iterations": [0, 100], "objective": [1.0, 0.1], "H.nc1": [1.0, nc1_end],
              "H.nc2_of": [0.5, of_end], "H.nc2_etf": [0.5, etf_end]}
        return {"fig2_bias_free": tr, "fig2_free_bias": dict(tr, **{"H.nc2_of": [0.5, etf_end],
                                                                   "H.nc2_etf": [0.5, of_end]})}

    def claims(tr):
        run = RunData("u#1", "main", {"grid": "quick"}, {}, {}, (), {"checks": [], "traces": tr})
        sec = build_section("ufm-theory", "t", "s", [run])
        assert "fig2" in sec.figures
        return [c for c in sec.claims if c.figure == "fig2"]

    assert [c.supported for c in claims(traces(0.5, 0.3, 0.2))] == [None, None]
    assert [c.supported for c in claims(traces(1e-4, 1e-5, 0.3))] == [True, True]
    assert [c.supported for c in claims(traces(1e-4, 0.3, 1e-5))] == [False, False]
