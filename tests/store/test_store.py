"""Tests of the results store: round trips, atomic writes, replacement, export."""

from __future__ import annotations

import csv
import math
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nclab import store as st
from nclab.errors import InputFileError, SpecError


def _record(key="a=1#x", status="done", seed=0, epochs=4, **kw):
    rng = np.random.default_rng(seed)
    history = [{"epoch": e, "loss": float(rng.random()), "acc": float(rng.random())}
               for e in range(1, epochs + 1)]
    base = dict(
        experiment="exp", preset="quick", cell_key=key, config={"a": 1, "lst": [1, 2]},
        axes={"a": 1}, status=status, started_at=100.0, finished_at=103.5,
        versions={"python": "3"}, host="h", final={"loss": float(rng.random()), "n": 3},
        history=history, extras={"curve": [1.0, 2.0]},
    )
    base.update(kw)
    return st.RunRecord(**base)


@pytest.fixture
def conn(tmp_path):
    c = st.connect(tmp_path / "s.sqlite")
    yield c
    c.close()


def test_round_trip(conn):
    rec = _record()
    run_id = st.write_run(conn, rec)
    (run,) = st.fetch_runs(conn, "exp")
    assert run.run_id == run_id and run.cell_key == rec.cell_key
    assert run.config == {"a": 1, "lst": [1, 2]} and run.axes == {"a": 1}
    assert run.extras == {"curve": [1.0, 2.0]} and run.duration_s == pytest.approx(3.5)
    assert st.fetch_final(conn, [run_id])[run_id] == {"loss": rec.final["loss"], "n": 3.0}
    hist = st.fetch_history(conn, [run_id])[run_id]
    assert hist == [dict(h) for h in rec.history]
    assert st.completed_cell_keys(conn, "exp") == {rec.cell_key}


def test_history_without_epoch_key_uses_position(conn):
    rec = _record(history=[{"loss": 3.0}, {"loss": 2.0}])
    rid = st.write_run(conn, rec)
    assert st.fetch_history(conn, [rid])[rid] == [{"epoch": 1, "loss": 3.0},
                                                  {"epoch": 2, "loss": 2.0}]


def test_nonfinite_values_become_null_then_nan(conn):
    rid = st.write_run(conn, _record(final={"x": float("nan"), "y": float("inf")}))
    got = st.fetch_final(conn, [rid])[rid]
    assert math.isnan(got["x"]) and math.isnan(got["y"])
    raw = conn.execute("SELECT value FROM final_metrics WHERE run_id = ?", (rid,)).fetchall()
    assert raw == [(None,), (None,)]


def test_rewrite_replaces_failed_row_without_duplicates(conn):
    st.write_run(conn, _record(status="failed", final={}, history=[], error="boom"))
    assert st.completed_cell_keys(conn, "exp") == set()
    assert len(st.fetch_runs(conn, "exp", status=None)) == 1
    st.write_run(conn, _record())
    runs = st.fetch_runs(conn, "exp", status=None)
    assert len(runs) == 1 and runs[0].status == "done"
    # the old run's metrics went with it
    n_final = conn.execute("SELECT COUNT(*) FROM final_metrics").fetchone()[0]
    assert n_final == 2


def test_invalid_records_raise_and_write_nothing(conn):
    with pytest.raises(SpecError, match="status"):
        st.write_run(conn, _record(status="running"))
    with pytest.raises(SpecError, match="extras"):
        st.write_run(conn, _record(final={"v": [1, 2]}))
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


class _FailingProxy:
    """Forwards to a connection but fails when the final metrics are inserted."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, *args):
        return self.conn.execute(*args)

    def executemany(self, sql, rows):
        if "final_metrics" in sql:
            raise RuntimeError("disk full")
        return self.conn.executemany(sql, rows)


def test_failed_insert_rolls_back_everything(conn):
    st.write_run(conn, _record(key="keep"))
    with pytest.raises(RuntimeError, match="disk full"):
        st.write_run(_FailingProxy(conn), _record(key="new"))
    assert [r.cell_key for r in st.fetch_runs(conn, status=None)] == ["keep"]
    assert conn.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0] == 8
    assert not conn.in_transaction


def test_sigkill_inside_transaction_leaves_no_partial_run(tmp_path):
    """A process killed between inserting the run row and its metrics leaves nothing."""
    path = tmp_path / "k.sqlite"
    script = textwrap.dedent(f"""
        import os, signal
        from nclab import store as st

        class Proxy:
            def __init__(self, conn):
                self.conn = conn
            def execute(self, *a):
                return self.conn.execute(*a)
            def executemany(self, sql, rows):
                if "final_metrics" in sql:
                    os.kill(os.getpid(), signal.SIGKILL)
                return self.conn.executemany(sql, rows)

        conn = st.connect({str(path)!r})
        st.write_run(conn, st.RunRecord(experiment="exp", preset="q", cell_key="k",
            config={{}}, axes={{}}, status="done", started_at=0.0, finished_at=1.0,
            final={{"x": 1.0}}, history=[{{"epoch": 1, "x": 2.0}}]))
        st.write_run(Proxy(conn), st.RunRecord(experiment="exp", preset="q", cell_key="k2",
            config={{}}, axes={{}}, status="done", started_at=0.0, finished_at=1.0,
            final={{"x": 1.0}}, history=[{{"epoch": 1, "x": 2.0}}]))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert proc.returncode == -9, proc.stderr.decode()
    conn = st.connect(path)
    assert [r.cell_key for r in st.fetch_runs(conn, status=None)] == ["k"]
    assert conn.execute("SELECT COUNT(*) FROM epoch_metrics").fetchone()[0] == 1
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_connect_errors(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        st.connect(tmp_path / "missing.sqlite", create=False)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputFileError, match="not a nclab results store"):
        st.connect(junk)


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    st.connect(path).close()
    raw = sqlite3.connect(path)
    raw.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(InputFileError, match="schema version 99"):
        st.connect(path)


def test_store_path_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NCLAB_STORE", str(tmp_path / "env.sqlite"))
    assert st.default_store_path() == tmp_path / "env.sqlite"
    st.connect().close()
    assert (tmp_path / "env.sqlite").exists()


def test_list_and_delete(conn):
    st.write_run(conn, _record(key="a"))
    st.write_run(conn, _record(key="b", experiment="other"))
    assert st.list_experiments(conn) == [("exp", "quick", 1), ("other", "quick", 1)]
    assert st.delete_experiment(conn, "exp") == 1
    assert conn.execute("SELECT COUNT(*) FROM final_metrics").fetchone()[0] == 2  # other's


def test_export_csv_matches_fetch(conn, tmp_path):
    ids = [st.write_run(conn, _record(key=f"k{i}", seed=i)) for i in range(3)]
    paths = st.export_csv(conn, tmp_path / "csv")
    assert [p.name for p in paths] == ["runs.csv", "epoch_metrics.csv", "final_metrics.csv"]
    with open(tmp_path / "csv" / "final_metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    final = st.fetch_final(conn, ids)
    assert len(rows) == sum(len(v) for v in final.values())
    for r in rows:
        assert float(r["value"]) == final[int(r["run_id"])][r["name"]]
    with open(tmp_path / "csv" / "epoch_metrics.csv") as fh:
        erows = list(csv.DictReader(fh))
    hist = st.fetch_history(conn, ids)
    for r in erows:
        assert float(r["value"]) == hist[int(r["run_id"])][int(r["epoch"]) - 1][r["name"]]
    with open(tmp_path / "csv" / "runs.csv") as fh:
        assert [r["cell_key"] for r in csv.DictReader(fh)] == ["k0", "k1", "k2"]


def test_export_parquet_matches_fetch(conn, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    ids = [st.write_run(conn, _record(key=f"k{i}", seed=i)) for i in range(2)]
    st.write_run(conn, _record(key="z", experiment="other"))
    st.export_parquet(conn, tmp_path / "pq", experiment="exp")
    table = pq.read_table(tmp_path / "pq" / "epoch_metrics.parquet").to_pylist()
    hist = st.fetch_history(conn, ids)
    assert len(table) == sum(len(h) * 2 for h in hist.values())
    for r in table:
        assert r["experiment"] == "exp"
        assert r["value"] == hist[r["run_id"]][r["epoch"] - 1][r["name"]]
    runs = pq.read_table(tmp_path / "pq" / "runs.parquet").to_pylist()
    assert sorted(r["cell_key"] for r in runs) == ["k0", "k1"]


def test_table_rows_rejects_unknown_table(conn):
    with pytest.raises(SpecError, match="table must be one of"):
        st.table_rows(conn, "sqlite_master")


def test_cpu_seconds_round_trip_and_old_stores_gain_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = st.connect(path)
    st.write_run(conn, _record(key="a", cpu_s=1.25))
    assert st.fetch_runs(conn)[0].cpu_s == 1.25
    conn.execute("ALTER TABLE runs DROP COLUMN cpu_s")  # a store from before the column
    conn.close()
    conn = st.connect(path)
    assert st.fetch_runs(conn)[0].cpu_s is None
    st.write_run(conn, _record(key="b", cpu_s=2.0))
    assert [r.cpu_s for r in st.fetch_runs(conn)] == [None, 2.0]
    conn.close()
