"""Issue 17, "the same names from the command line to the store": one name and one validation
for the label-noise rate, one list of noise kinds, one name per stored metric (old stores
migrate on read)."""

from __future__ import annotations

import typing

import pytest

from nclab import store as st
from nclab.data.noise import ETA_MAX, NOISE_KINDS, check_noise
from nclab.errors import SpecError
from nclab.experiments import get_experiment, plan_experiment
from nclab.experiments.library._common import NoiseKind


def test_one_list_of_noise_kinds():
    from nclab.train import TrainConfig

    assert typing.get_args(NoiseKind) == NOISE_KINDS
    hints = typing.get_type_hints(TrainConfig)
    assert typing.get_args(hints["noise_kind"]) == NOISE_KINDS
    assert set(ETA_MAX) == set(NOISE_KINDS)


@pytest.mark.parametrize("eta, kind, match", [
    (-0.1, "symmetric", r"eta must lie in \[0, 1\] for symmetric noise; got -0\.1"),
    (1.5, "pair", r"eta must lie in \[0, 1\] for pair noise; got 1\.5"),
    (0.6, "latent", r"eta must lie in \[0, 0\.5\] for latent noise; got 0\.6"),
    (float("nan"), "symmetric", r"eta must lie in \[0, 1\]"),
    ("abc", "symmetric", r"eta must be a number; got 'abc'"),
    (0.1, "flip", r"noise kind must be one of symmetric, latent, pair; got 'flip'"),
])
def test_one_validation_with_one_message_at_every_boundary(eta, kind, match):
    """check_noise is the rule; the spec, TrainConfig and add_label_noise all raise its message."""
    from nclab.data import add_label_noise, load_dataset
    from nclab.train import TrainConfig

    with pytest.raises(SpecError, match=match):
        check_noise(eta, kind)
    with pytest.raises(SpecError, match=match):
        TrainConfig(eta=eta, noise_kind=kind)
    with pytest.raises(SpecError, match=match):
        add_label_noise(load_dataset("teacher", num_samples=40), eta, kind=kind)
    if kind in NOISE_KINDS and isinstance(eta, float) and eta == eta:
        with pytest.raises(SpecError, match=match):
            plan_experiment("md-label-noise", "tiny", {"etas": str(eta), "noise_kind": kind})


def test_boundary_values_are_accepted_everywhere():
    from nclab.train import TrainConfig

    for kind, hi in ETA_MAX.items():
        assert check_noise(hi, kind) == (hi, kind)
        assert TrainConfig(eta=hi, noise_kind=kind).eta == hi
        assert check_noise(0, kind) == (0.0, kind)


def test_eta_is_one_name_from_the_spec_to_the_training_config():
    pytest.importorskip("nclab.train")
    from nclab.experiments.cells import train_config

    exp = get_experiment("md-latent-classes")
    for cell in plan_experiment(exp, "quick"):
        tc = train_config(cell.config)
        assert "eta" in cell.axes and tc.eta == cell.axes["eta"]
        assert tc.noise_kind == cell.config["noise_kind"] == "latent"


def _write(conn, key, final, history):
    st.write_run(conn, st.RunRecord(
        experiment="md-label-noise", preset="quick", stage="main", cell_key=key, config={},
        axes={}, status="done", started_at=0.0, finished_at=1.0, final=final, history=history,
        extras={}, versions={}))


def test_old_metric_aliases_migrate_on_read(tmp_path):
    conn = st.connect(tmp_path / "s.sqlite")
    # a store of the previous version: both names written, with the same values
    _write(conn, "old#1", {"nc1_test": 0.5, "dilation": 0.5, "margin_min_train": 1.5,
                           "p_min": 1.5}, [{"epoch": 1, "dilation": 0.7, "p_min": 0.2}])
    # an older one with only the alias
    _write(conn, "older#2", {"dilation": 0.25, "p_min": -1.0}, [])
    runs = {r.cell_key: r.run_id for r in st.fetch_runs(conn, "md-label-noise")}
    final = st.fetch_final(conn, list(runs.values()))
    hist = st.fetch_history(conn, list(runs.values()))
    conn.close()
    assert final[runs["old#1"]] == {"nc1_test": 0.5, "margin_min_train": 1.5}
    assert final[runs["older#2"]] == {"nc1_test": 0.25, "margin_min_train": -1.0}
    assert hist[runs["old#1"]] == [{"epoch": 1, "nc1_test": 0.7, "margin_min_train": 0.2}]
    assert st.METRIC_ALIASES == {"dilation": "nc1_test", "p_min": "margin_min_train"}
