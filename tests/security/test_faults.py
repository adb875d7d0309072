"""Faults: cell claims shared by concurrent drivers, workers that die with their driver, a full
disk, corrupted store pages, unusable paths, a failed checkpoint rename."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nclab import store as st
from nclab.cli import app
from nclab.errors import InputFileError

runner = CliRunner()
SETS = ["lrs=0.05,0.1,0.2,0.4", "seeds=0,1", "epochs=15", "epoch_delay_s=0.02"]
TOTAL = 8


def _record(key, status="done", finished=1.0):
    return st.RunRecord(experiment="e", preset="q", cell_key=key, config={}, axes={}, status=status,
                        started_at=0.0, finished_at=finished, final={"v": 1.0})


def _one_line(res, *needles):
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for n in needles:
        assert n in lines[0], lines[0]


# ------------------------------------------------------------------ claims


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_claims_lease_life_cycle(tmp_path):
    conn = st.connect(tmp_path / "s.sqlite")
    a, b = st.new_claimant(), st.new_claimant()
    assert a.owner != b.owner
    assert st.claim_cell(conn, "e", "k", a) == "claimed"
    assert st.claim_cell(conn, "e", "k", b) == "busy"  # a is alive (this process) and beating
    assert st.claim_cell(conn, "e", "k", a) == "claimed"  # re-claim by the owner refreshes
    st.write_run(conn, _record("k"))  # the result drops the claim in its transaction
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    assert st.claim_cell(conn, "e", "k", b) == "done"
    # a claim by a dead process of this host expires at once
    conn.execute("INSERT INTO claims VALUES ('e', 'k2', 'ghost', ?, ?, ?, ?)",
                 (_dead_pid(), socket.gethostname(), time.time(), time.time()))
    assert st.claim_cell(conn, "e", "k2", b) == "claimed"
    # another host: trusted while its heartbeat is fresh, expired after the lease
    conn.execute("INSERT INTO claims VALUES ('e', 'k3', 'far', 1, 'elsewhere', ?, ?)", (time.time(), time.time()))
    assert st.claim_cell(conn, "e", "k3", b, lease_s=60) == "busy"
    conn.execute("UPDATE claims SET heartbeat = ? WHERE owner = 'far'", (time.time() - 61,))
    assert st.claim_cell(conn, "e", "k3", b, lease_s=60) == "claimed"
    # heartbeat refreshes, release drops
    conn.execute("UPDATE claims SET heartbeat = 0 WHERE owner = ?", (b.owner,))
    assert st.heartbeat(conn, b) == 2
    assert conn.execute("SELECT MIN(heartbeat) FROM claims").fetchone()[0] > time.time() - 5
    assert st.release_claims(conn, b) == 2
    # a failed row: retried unless it failed during this run (since=)
    st.write_run(conn, _record("f", status="failed", finished=100.0))
    assert st.claim_cell(conn, "e", "f", a, since=200.0) == "claimed"
    assert st.claim_cell(conn, "e", "f", b, since=50.0) == "done"
    conn.close()


def _run_cmd(store, *extra):
    args = ["run", "synthetic-smoke", "--preset", "tiny", "--store", str(store), "--no-progress", "--json"]
    for s in SETS:
        args += ["--set", s]
    return [sys.executable, "-c", "from nclab.cli import main; main()", *args, *extra]


def test_two_concurrent_runs_compute_each_cell_once(tmp_path):
    store = tmp_path / "s.sqlite"
    st.connect(store).close()
    procs = [subprocess.Popen(_run_cmd(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    a, b = (json.loads(out) for out, _ in outs)
    assert a["done"] + b["done"] == TOTAL, (a, b)  # without claims both compute all 8
    for s in (a, b):
        assert s["skipped"] + s["done"] + s["elsewhere"] + s["failed"] == TOTAL
    conn = st.connect(store, create=False)
    # every cell inserted exactly once (AUTOINCREMENT counts every insert, also replaced rows)
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'runs'").fetchone()[0] == TOTAL
    assert conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0] == TOTAL
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    conn.close()


# ------------------------------------------------------------------ orphans


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited (its new parent may not reap it)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_sweep_workers_exit_when_the_driver_is_killed(tmp_path):
    store = tmp_path / "s.sqlite"
    args = ["sweep", "synthetic-smoke", "--preset", "tiny", "--store", str(store), "--workers", "2",
            "--no-progress", "--set", "lrs=0.05,0.1,0.2,0.4", "--set", "seeds=0,1", "--set", "epochs=40",
            "--set", "epoch_delay_s=0.05"]
    proc = subprocess.Popen([sys.executable, "-c", "from nclab.cli import main; main()", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        workers: list[int] = []
        while time.time() < deadline and proc.poll() is None:
            workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text(
                errors="replace")] if Path(f"/proc/{proc.pid}").exists() else []
            if len(workers) >= 2:
                break
            time.sleep(0.1)
        assert len(workers) >= 2, "the pool workers did not start"
        everyone = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, not its process group
        proc.wait(timeout=10)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in everyone):
            time.sleep(0.1)
        assert not [p for p in everyone if _alive(p)], "processes outlived their driver"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------------ disk full, corruption


def test_full_disk_during_a_run_is_one_line_and_leaves_the_store_consistent(tmp_path, monkeypatch):
    """SQLite's own SQLITE_FULL (PRAGMA max_page_count caps the file as a full disk would)."""
    store = tmp_path / "s.sqlite"
    real = st.connect

    def capped(path=None, *, create=True):
        conn = real(path, create=create)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 1}")
        return conn

    monkeypatch.setattr(st, "connect", capped)
    args = ["run", "synthetic-smoke", "--preset", "tiny", "--store", str(store), "--no-progress",
            "--set", "epochs=400"]  # a history larger than the one page left
    _one_line(runner.invoke(app, args), "disk full / I/O error writing", str(store))
    monkeypatch.setattr(st, "connect", real)
    conn = real(store, create=False)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    n = conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    assert n == conn.execute("SELECT COUNT(DISTINCT run_id) FROM final_metrics").fetchone()[0]
    conn.close()
    # with space again the run completes
    assert runner.invoke(app, args).exit_code == 0


def test_disk_io_error_message_and_rollback_keeps_the_real_error(tmp_path):
    """An injected sqlite3.OperationalError('disk I/O error') after which SQLite has already
    rolled back: the ROLLBACK that fails must not hide it."""
    conn = st.connect(tmp_path / "s.sqlite")

    class Broken:
        def __init__(self, c):
            self.c = c

        def execute(self, sql, *a):
            if sql.startswith("INSERT INTO runs"):
                self.c.execute("ROLLBACK")  # what SQLite does on an I/O error
                raise st._store_error(self.c.path, sqlite3.OperationalError("disk I/O error"))
            return self.c.execute(sql, *a)

        def executemany(self, *a):
            return self.c.executemany(*a)

    with pytest.raises(st.StoreError, match=r"disk full / I/O error writing .*s\.sqlite .*disk I/O error"):
        st.write_run(Broken(conn), _record("k"))
    assert not conn.in_transaction
    conn.close()


def _corrupt_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page = 4096
    for pg in range(2, len(data) // page):  # page 1 (header and schema) intact
        data[pg * page + 8 : pg * page + 200] = bytes((pg * 37 + i * 101) % 256 for i in range(192))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("command", [["export"], ["report"], ["run", "synthetic-smoke", "--preset", "tiny"]])
def test_corrupted_store_pages_one_line_with_recover_hint(tmp_path, command):
    store = tmp_path / "c.sqlite"
    conn = st.connect(store)
    for i in range(40):
        st.write_run(conn, st.RunRecord(experiment="synthetic-smoke", preset="tiny", cell_key=f"k{i}",
                                        config={"pad": "x" * 400}, axes={}, status="done", started_at=0.0,
                                        finished_at=1.0, final={"v": 1.0},
                                        history=[{"epoch": e, "l": 1.0} for e in range(1, 20)]))
    conn.close()
    _corrupt_pages(store)
    res = runner.invoke(app, [*command, "--store", str(store), "--out" if command[0] != "run" else "--no-progress",
                              *([str(tmp_path / "out")] if command[0] != "run" else [])])
    _one_line(res, str(store), ".recover", "corrupted")


# ------------------------------------------------------------------ unusable paths


def test_unusable_paths_are_one_line_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = tmp_path / "s.sqlite"
    assert runner.invoke(app, ["run", "synthetic-smoke", "--preset", "tiny", "--store", str(store),
                               "--no-progress"]).exit_code == 0
    _one_line(runner.invoke(app, ["run", "synthetic-smoke", "--store", str(tmp_path)]), "is a directory")
    _one_line(runner.invoke(app, ["run", "synthetic-smoke", "--store", str(blocker / "s.sqlite")]),
              "cannot open results store")
    _one_line(runner.invoke(app, ["export", "--store", str(store), "--out", str(blocker)]), "not a folder")
    _one_line(runner.invoke(app, ["export", "--store", str(store), "--out", str(blocker / "sub")]),
              "cannot create")
    _one_line(runner.invoke(app, ["report", "--store", str(store), "--out", str(blocker)]), "not a folder")
    _one_line(runner.invoke(app, ["verify", "--plots", str(blocker / "plots")]), "--plots")
    _one_line(runner.invoke(app, ["md", "sweep", "--num", "2", "--out", str(blocker / "x.png")]), "--out")
    _one_line(runner.invoke(app, ["train", "--classes", "2", "--num-samples", "100", "--epochs", "1", "-q",
                                  "--checkpoint-dir", str(blocker / "ck")]), "checkpoint_dir")


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    store = str(tmp_path / "s.sqlite")
    assert runner.invoke(app, ["run", "synthetic-smoke", "--preset", "tiny", "--store", store,
                               "--no-progress"]).exit_code == 0
    _one_line(runner.invoke(app, ["report", "nosuch", "--store", store, "--out", str(tmp_path / "r")]),
              "unknown experiment 'nosuch'", "synthetic-smoke", "md-model")
    _one_line(runner.invoke(app, ["export", "--experiment", "nosuch", "--store", store]),
              "unknown experiment 'nosuch'", "synthetic-smoke")
    _one_line(runner.invoke(app, ["export", "--experiment", "md-model", "--store", store]),
              "no finished runs", "nclab run md-model")


def test_failed_checkpoint_rename_leaves_no_tmp(tmp_path, monkeypatch):
    from nclab.train import loop

    target = tmp_path / "ck" / loop.CHECKPOINT_NAME

    def refuse(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(loop.os, "replace", refuse)
    with pytest.raises(InputFileError, match="cannot write checkpoint"):
        loop._save_checkpoint(target, {"epoch": 1})
    assert list((tmp_path / "ck").iterdir()) == []
