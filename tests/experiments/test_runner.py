"""Runner: backends agree, sweeps resume after SIGKILL / SIGINT without duplicated or partial
rows, failures are stored and retried, and the synthetic experiment matches its closed form."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from nclab import store as st
from nclab.errors import SpecError
from nclab.experiments import (Experiment, ExperimentConfig, Stage, get_experiment, register,
                               run_experiment)


def dump(path, experiment="synthetic-smoke"):
    """Every stored row that a result determines (no timestamps, hosts or run ids)."""
    conn = st.connect(path, create=False)
    try:
        runs = st.fetch_runs(conn, experiment, status=None)
        final = st.fetch_final(conn, [r.run_id for r in runs])
        hist = st.fetch_history(conn, [r.run_id for r in runs])
        n_epoch_rows = conn.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0]
        n_final_rows = conn.execute("SELECT COUNT(*) FROM final_metrics").fetchone()[0]
    finally:
        conn.close()
    rows = sorted(
        (r.cell_key, r.preset, r.stage, json.dumps(r.config, sort_keys=True),
         json.dumps(r.axes, sort_keys=True), r.status, json.dumps(final[r.run_id], sort_keys=True),
         json.dumps(hist[r.run_id], sort_keys=True), json.dumps(r.extras, sort_keys=True))
        for r in runs)
    return rows, n_epoch_rows, n_final_rows


SETS = ["lrs=0.05,0.1,0.2,0.4", "seeds=0,1", "epochs=15", "epoch_delay_s=0.025"]
TOTAL = 8


def _sweep_cmd(store):
    args = ["sweep", "synthetic-smoke", "--preset", "tiny", "--store", str(store),
            "--workers", "2", "--no-progress"]
    for s in SETS:
        args += ["--set", s]
    return [sys.executable, "-c", "from nclab.cli import main; main()", *args]


def _done_count(path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_sweep_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    ref_store, cut_store = tmp_path / "ref.sqlite", tmp_path / "cut.sqlite"
    ref = subprocess.run(_sweep_cmd(ref_store), capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr
    total = len(dump(ref_store)[0])
    assert total == TOTAL

    proc = subprocess.Popen(_sweep_cmd(cut_store), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while _done_count(cut_store) < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        # kill the driver and its workers at once, as a crash or `kill -9` of the group would
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    partial = dump(cut_store)[0]
    assert 0 < len(partial) < total, "the kill did not land mid-sweep"
    assert {r[0] for r in partial} < {r[0] for r in dump(ref_store)[0]}
    assert all(r[5] == "done" for r in partial)

    again = subprocess.run(_sweep_cmd(cut_store), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{len(partial)} already done, {total - len(partial)} run" in again.stdout
    assert dump(cut_store) == dump(ref_store)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_the_sweep_and_rerun_completes(tmp_path, sig, code):
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen(_sweep_cmd(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.time() + 90
    while _done_count(store) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    if sig == signal.SIGINT:
        assert "interrupted" in err
    n = _done_count(store)
    assert 0 < n < TOTAL
    again = subprocess.run(_sweep_cmd(store), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    rows, n_epoch, n_final = dump(store)
    assert all(r[5] == "done" for r in rows)
    assert len(rows) == TOTAL and len({r[0] for r in rows}) == TOTAL
    assert n_epoch == TOTAL * 15 * 3  # 15 epochs x 3 metrics, no orphans of stopped cells


def test_serial_and_local_backends_write_identical_rows(tmp_path):
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    s1 = run_experiment("synthetic-smoke", preset="tiny", store=a, backend="serial")
    s2 = run_experiment("synthetic-smoke", preset="tiny", store=b, backend="local", workers=2)
    assert (s1.done, s1.failed, s2.done, s2.failed) == (2, 0, 2, 0)
    assert dump(a) == dump(b)
    again = run_experiment("synthetic-smoke", preset="tiny", store=a, backend="local")
    assert (again.total, again.skipped, again.done) == (2, 2, 0)


def test_synthetic_cell_matches_closed_form(tmp_path):
    """The stored GD trajectory against an independent computation of the iterates."""
    store = tmp_path / "s.sqlite"
    run_experiment("synthetic-smoke", preset="tiny", store=store)
    conn = st.connect(store)
    runs = st.fetch_runs(conn, "synthetic-smoke")
    hist = st.fetch_history(conn, [r.run_id for r in runs])
    final = st.fetch_final(conn, [r.run_id for r in runs])
    for r in runs:
        c = r.config
        rng = np.random.default_rng(c["seed"])
        n, m, d = c["n_train"], c["n_test"], c["dim"]
        w_star = rng.standard_normal(d)
        x = rng.standard_normal((n + m, d))
        y = x @ w_star + c["noise"] * rng.standard_normal(n + m)
        w_hat = np.linalg.lstsq(x[:n], y[:n], rcond=None)[0]
        g = x[:n].T @ x[:n] / n
        w = np.zeros(d)
        for t in range(c["epochs"]):  # w_{t+1} - w_hat = (I - lr G)(w_t - w_hat)
            w = w_hat + (np.eye(d) - c["lr"] * g) @ (w - w_hat)
            np.testing.assert_allclose(hist[r.run_id][t]["dist_to_opt"],
                                       np.linalg.norm(w - w_hat), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(final[r.run_id]["train_loss"],
                                   np.mean((x[:n] @ w - y[:n]) ** 2) / 2, rtol=1e-9)
        eig = np.linalg.eigvalsh(g)
        assert final[r.run_id]["rate_predicted"] == pytest.approx(
            np.max(np.abs(1 - c["lr"] * eig)), rel=1e-12)
    conn.close()


def _failing_cell(config, ctx):
    if config["x"] == 2:
        raise ValueError("x=2 is broken")
    from nclab.experiments import CellResult

    return CellResult(final={"y": float(config["x"]) ** 2})


class _Flaky(ExperimentConfig):
    xs: tuple[int, ...] = (1, 2, 3)


_FLAKY = register(Experiment(
    name="test-flaky", title="t", source="test", config=_Flaky,
    stages=(Stage("main", f"{__name__}:_failing_cell", {"x": "xs"}),),
    presets={"quick": {}, "tiny": {}, "paper": {}}, _hidden=True,
))


def test_failed_cells_are_stored_reported_and_retried(tmp_path, monkeypatch):
    store = tmp_path / "s.sqlite"
    s = run_experiment(_FLAKY, store=store)
    assert (s.done, s.failed) == (2, 1)
    assert "ValueError: x=2 is broken" in s.failures[0][1]
    conn = st.connect(store)
    (bad,) = st.fetch_runs(conn, "test-flaky", status="failed")
    assert bad.axes == {"x": 2} and "x=2 is broken" in bad.error
    # fix the bug, run again: only the failed cell reruns and replaces its row
    monkeypatch.setitem(globals(), "_failing_cell", lambda config, ctx: __import__(
        "nclab.experiments", fromlist=["CellResult"]).CellResult(final={"y": 4.0}))
    s2 = run_experiment(_FLAKY, store=store)
    assert (s2.skipped, s2.done, s2.failed) == (2, 1, 0)
    runs = st.fetch_runs(conn, "test-flaky", status=None)
    assert sorted(r.axes["x"] for r in runs) == [1, 2, 3] and {r.status for r in runs} == {"done"}
    ys = st.fetch_final(conn, [r.run_id for r in runs])
    assert sorted(v["y"] for v in ys.values()) == [1.0, 4.0, 9.0]
    conn.close()


def test_runner_argument_errors(tmp_path):
    with pytest.raises(SpecError, match="backend must be one of"):
        run_experiment("synthetic-smoke", backend="slurm", store=tmp_path / "s.sqlite")
    with pytest.raises(SpecError, match="workers must be >= 1"):
        run_experiment("synthetic-smoke", backend="local", workers=0,
                       store=tmp_path / "s.sqlite")


def test_missing_library_is_a_spec_error(tmp_path):
    exp = Experiment(name="needs-x", title="t", source="s", config=_Flaky,
                     stages=(Stage("main", f"{__name__}:_failing_cell", {"x": "xs"}),),
                     presets={"quick": {}}, requires=("nclab_no_such_module",
                                                      "nclab.errors:no_such_attr"))
    assert exp.missing() == ["nclab_no_such_module", "nclab.errors:no_such_attr"]
    with pytest.raises(SpecError, match="needs nclab_no_such_module"):
        run_experiment(exp, store=tmp_path / "s.sqlite")


def test_epoch_progress_reaches_the_driver(tmp_path):
    """Per-epoch reports travel from spawn workers to the driver, which emits them as events
    (the CLI draws them; the runner prints nothing)."""
    events = []
    s = run_experiment("synthetic-smoke", preset="tiny", store=tmp_path / "s.sqlite",
                       backend="local", workers=1, overrides={"epoch_delay_s": "0.01"},
                       on_event=events.append)
    seen = [(e.key, e.epoch, e.total) for e in events if e.kind == "epoch"]
    assert {t for _, _, t in seen} == {20}
    assert len({k for k, _, _ in seen}) == 2 and max(e for _, e, _ in seen) == 20
    kinds = [e.kind for e in events]
    assert kinds[0] == "stage" and kinds[-1] == "stage_done"
    assert events[0].total == s.total == 2 and events[0].skipped == 0
    assert kinds.count("cell_done") == 2 and all(e.experiment == "synthetic-smoke"
                                                 for e in events)
    # a failing drawer never stops the sweep
    def boom(event):
        raise RuntimeError("drawing failed")

    again = run_experiment("synthetic-smoke", preset="tiny", store=tmp_path / "t.sqlite",
                           on_event=boom)
    assert again.done == 2


def _stage_a(config, ctx):
    from nclab.experiments import CellResult

    v = config["x"] * 10 + config["offset"]
    return CellResult(final={"v": float(v)}, extras={"downstream": {"v": v}, "noise": [1, 2]})


def _stage_b(config, ctx):
    from nclab.experiments import CellResult

    return CellResult(final={"w": float(config["inputs"]["v"] + config["y"])})


class _TwoStage(ExperimentConfig):
    xs: tuple[int, ...] = (1, 2)
    ys: tuple[int, ...] = (0, 5)
    offset: int = 0


_TWO = register(Experiment(
    name="test-two-stage", title="t", source="test", config=_TwoStage,
    stages=(Stage("a", f"{__name__}:_stage_a", {"x": "xs"}, drop=("ys",)),
            Stage("main", f"{__name__}:_stage_b", {"x": "xs", "y": "ys"}, needs="a",
                  match=("x",))),
    presets={"quick": {}, "paper": {"offset": 100}}, _hidden=True,
))


def test_downstream_stage_gets_its_own_presets_upstream_results(tmp_path):
    store = tmp_path / "s.sqlite"
    for preset in ("quick", "paper"):
        s = run_experiment(_TWO, preset=preset, store=store)
        assert (s.total, s.done, s.failed) == (6, 6, 0)
    conn = st.connect(store)
    for preset, offset in (("quick", 0), ("paper", 100)):
        runs = st.fetch_runs(conn, "test-two-stage", preset=preset, stage="main")
        final = st.fetch_final(conn, [r.run_id for r in runs])
        got = sorted((r.axes["x"], r.axes["y"], final[r.run_id]["w"]) for r in runs)
        assert got == [(x, y, float(10 * x + offset + y)) for x in (1, 2) for y in (0, 5)]
        assert all(r.config["inputs"] == {"v": 10 * r.axes["x"] + offset} for r in runs)
    conn.close()
