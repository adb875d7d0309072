"""Results store: one SQLite file holding every run of every experiment.

All SQL of nclab lives in this module, as plain functions over a :class:`sqlite3.Connection`.
The layers above (``experiments``, ``report``, ``cli``) never write SQL.

Schema
------
``runs``
    one row per finished cell of an experiment grid: ``experiment``, ``preset``, ``stage``,
    ``cell_key`` (stable, unique per experiment), ``config`` (JSON of the full cell
    configuration), ``axes`` (JSON of the grid-axis values of the cell), ``status``
    (``"done"`` or ``"failed"``), ``error``, ``started_at`` / ``finished_at`` (Unix seconds),
    ``duration_s`` (wall), ``cpu_s`` (CPU seconds of the process that ran the cell, NULL when
    unknown), ``versions`` (JSON: nclab, python, numpy, torch, platform), ``host`` and
    ``extras`` (JSON of non-scalar results).
``epoch_metrics``
    ``(run_id, epoch, name, value)``: the per-epoch history of a run, long format.
``final_metrics``
    ``(run_id, name, value)``: the final scalar metrics of a run, long format.

Atomicity
---------
A cell's results are written by :func:`write_run` in one transaction (``BEGIN IMMEDIATE`` ...
``COMMIT``): the run row, its history and its final metrics appear together or not at all,
even when the writing process is killed with SIGKILL (SQLite's rollback journal undoes a
transaction that did not commit). Only ``"done"`` runs count as completed; writing a cell
again replaces its previous row (for example a ``"failed"`` one) in the same transaction, so a
cell never has two rows.

Claims
------
``claims`` holds one lease per cell being computed: ``(experiment, cell_key, owner, pid, host,
claimed_at, heartbeat)``. A driver claims a cell (:func:`claim_cell`) before computing it and
refreshes the heartbeat of its claims (:func:`heartbeat`) while it runs; :func:`write_run`
drops the claim in the transaction that writes the result. A claim expires when its heartbeat
is older than the lease (another host, or a hung process), or at once when it belongs to a
process of this host that no longer exists (killed). So several ``nclab run`` / ``nclab sweep``
processes on one store share the grid: each cell is computed once.

Costs: :func:`write_run` is O(E m) inserts for E epochs of m metrics; reads are indexed by
``(experiment, cell_key)`` and ``run_id``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nclab.errors import InputFileError, SpecError

__all__ = [
    "DEFAULT_STORE",
    "METRIC_ALIASES",
    "StoreError",
    "RunRecord",
    "StoredRun",
    "default_store_path",
    "connect",
    "write_run",
    "LEASE_S",
    "Claimant",
    "new_claimant",
    "claim_cell",
    "heartbeat",
    "release_claims",
    "completed_cell_keys",
    "fetch_runs",
    "fetch_history",
    "fetch_final",
    "list_experiments",
    "require_experiments",
    "delete_experiment",
    "table_rows",
    "export_csv",
    "export_parquet",
]

SCHEMA_VERSION = 1

DEFAULT_STORE = "nclab-results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment  TEXT NOT NULL,
    preset      TEXT NOT NULL,
    stage       TEXT NOT NULL DEFAULT 'main',
    cell_key    TEXT NOT NULL,
    config      TEXT NOT NULL,
    axes        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    error       TEXT,
    started_at  REAL NOT NULL,
    finished_at REAL NOT NULL,
    duration_s  REAL NOT NULL,
    cpu_s       REAL,
    versions    TEXT NOT NULL,
    host        TEXT NOT NULL,
    extras      TEXT NOT NULL DEFAULT '{}',
    UNIQUE (experiment, cell_key)
);
CREATE INDEX IF NOT EXISTS runs_experiment ON runs (experiment, preset, stage);
CREATE TABLE IF NOT EXISTS epoch_metrics (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    epoch  INTEGER NOT NULL,
    name   TEXT NOT NULL,
    value  REAL,
    PRIMARY KEY (run_id, epoch, name)
);
CREATE TABLE IF NOT EXISTS claims (
    experiment TEXT NOT NULL,
    cell_key   TEXT NOT NULL,
    owner      TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    host       TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    heartbeat  REAL NOT NULL,
    PRIMARY KEY (experiment, cell_key)
);
CREATE TABLE IF NOT EXISTS final_metrics (
    run_id INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    value  REAL,
    PRIMARY KEY (run_id, name)
);
"""


def default_store_path() -> Path:
    """The store path used when none is given: ``$NCLAB_STORE`` or ``./nclab-results.sqlite``."""
    return Path(os.environ.get("NCLAB_STORE", DEFAULT_STORE))


@dataclass(frozen=True)
class RunRecord:
    """Everything one finished cell writes to the store (the input of :func:`write_run`).

    Parameters
    ----------
    experiment, preset, stage, cell_key : str
        Identity of the cell; ``(experiment, cell_key)`` is unique in the store.
    config : dict
        The full, JSON-serialisable configuration of the cell.
    axes : dict
        The values of the grid axes of the cell (a subset of ``config``).
    status : {"done", "failed"}
    started_at, finished_at : float
        Unix timestamps.
    versions : dict
        Library versions the cell ran with.
    host : str
    final : dict of str to float
        Final scalar metrics.
    history : sequence of dict of str to float
        Per-epoch metrics; the epoch number is the dict's ``"epoch"`` entry when present,
        otherwise its position (starting at 1).
    extras : dict
        JSON-serialisable non-scalar results (per-layer curves, tuned hyperparameters).
    error : str or None
        The error message of a failed cell.
    """

    experiment: str
    preset: str
    cell_key: str
    config: Mapping[str, Any]
    axes: Mapping[str, Any]
    status: str
    started_at: float
    finished_at: float
    stage: str = "main"
    versions: Mapping[str, Any] = field(default_factory=dict)
    host: str = ""
    final: Mapping[str, float] = field(default_factory=dict)
    history: Sequence[Mapping[str, Any]] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    cpu_s: float | None = None


@dataclass(frozen=True)
class StoredRun:
    """One row of ``runs``, decoded (JSON columns become dicts)."""

    run_id: int
    experiment: str
    preset: str
    stage: str
    cell_key: str
    config: dict
    axes: dict
    status: str
    error: str | None
    started_at: float
    finished_at: float
    duration_s: float
    versions: dict
    host: str
    extras: dict
    cpu_s: float | None = None


class StoreError(InputFileError):
    """The results store cannot be read or written: full disk, I/O error, corruption, lock."""


def _store_error(path: str, exc: BaseException) -> StoreError:
    """One-line :class:`StoreError` for a SQLite error on the store at ``path``."""
    msg = " ".join(str(exc).split())
    low = msg.lower()
    if "disk i/o error" in low or "disk is full" in low or "database or disk is full" in low:
        return StoreError(f"disk full / I/O error writing {path} (sqlite: {msg}); free some space or "
                          "pass another --store PATH")
    if "malformed" in low or "not a database" in low or "corrupt" in low:
        return StoreError(f"results store {path} is corrupted (sqlite: {msg}); recover its rows with "
                          f"`sqlite3 {path} \".recover\" | sqlite3 {path}.recovered` or pass another --store PATH")
    if "readonly" in low or "read-only" in low:
        return StoreError(f"results store {path} is read-only (sqlite: {msg}); make it writable or pass "
                          "another --store PATH")
    if "locked" in low or "busy" in low:
        return StoreError(f"results store {path} is locked by another process (sqlite: {msg}); retry when it "
                          "has finished")
    if "unable to open" in low:
        return StoreError(f"cannot open results store {path} (sqlite: {msg}); pass a writable --store PATH")
    return StoreError(f"results store {path}: sqlite error: {msg}")


def _translated(path_of: Any):
    """Decorator: sqlite3 operational/corruption errors become a :class:`StoreError` naming the file."""

    def wrap(fn):
        def inner(self, *args, **kwargs):
            try:
                return fn(self, *args, **kwargs)
            except (sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
                if type(exc) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
                    raise  # IntegrityError & co.: a bug, not a property of the file
                raise _store_error(path_of(self), exc) from None

        inner.__name__ = fn.__name__
        inner.__doc__ = fn.__doc__
        return inner

    return wrap


class _StoreCursor(sqlite3.Cursor):
    """A cursor whose SQLite errors (also those raised lazily while fetching) name the store."""

    def _path(self) -> str:
        return getattr(self.connection, "path", "?")

    execute = _translated(_path)(sqlite3.Cursor.execute)
    executemany = _translated(_path)(sqlite3.Cursor.executemany)
    fetchone = _translated(_path)(sqlite3.Cursor.fetchone)
    fetchmany = _translated(_path)(sqlite3.Cursor.fetchmany)
    fetchall = _translated(_path)(sqlite3.Cursor.fetchall)
    __next__ = _translated(_path)(sqlite3.Cursor.__next__)


class _StoreConnection(sqlite3.Connection):
    """A store connection: knows its file (``path``) and hands out :class:`_StoreCursor` s."""

    path: str = "?"

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:  # type: ignore[override]
        cur = self.cursor(_StoreCursor)
        cur.execute(sql, parameters)
        return cur

    def executemany(self, sql: str, seq: Any) -> sqlite3.Cursor:  # type: ignore[override]
        cur = self.cursor(_StoreCursor)
        cur.executemany(sql, seq)
        return cur

    @_translated(lambda self: self.path)
    def executescript(self, script: str) -> sqlite3.Cursor:  # type: ignore[override]
        return super().executescript(script)


def _rollback(conn: Any) -> None:
    """Roll back the open transaction; where SQLite already rolled back (after a disk I/O error)
    the ROLLBACK itself fails, and that error must not hide the original one."""
    try:
        conn.execute("ROLLBACK")
    except (sqlite3.Error, StoreError):
        pass


def connect(path: str | os.PathLike | None = None, *, create: bool = True) -> sqlite3.Connection:
    """Open (and if needed create) the store at ``path``.

    Parameters
    ----------
    path : path-like, optional
        The SQLite file; default :func:`default_store_path`. ``":memory:"`` opens a
        throw-away in-memory store.
    create : bool, default=True
        Create the file and its tables when missing; with ``False`` a missing file raises.

    Returns
    -------
    sqlite3.Connection
        In autocommit mode (transactions are explicit), with foreign keys on.

    Raises
    ------
    InputFileError
        The file is missing (``create=False``), not a SQLite database, or of a newer schema.
    """
    path = default_store_path() if path is None else path
    memory = str(path) == ":memory:"
    if not memory:
        p = Path(path)
        if p.is_dir():
            raise InputFileError(f"results store {str(p)!r} is a directory; pass a file, e.g. "
                                 f"--store {p / DEFAULT_STORE}")
        if p.exists() and not p.is_file():
            raise InputFileError(f"results store {str(p)!r} is not a regular file; pass another --store PATH")
        if not p.exists() and not create:
            raise InputFileError(
                f"results store {str(p)!r} does not exist; run an experiment first "
                "(nclab run NAME) or pass --store PATH"
            )
        try:
            if p.parent and not p.parent.exists():
                p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputFileError(f"cannot create the folder of results store {str(p)!r} "
                                 f"({exc.strerror or exc}); pass a writable --store PATH") from None
    try:
        conn = sqlite3.connect(str(path), timeout=60.0, isolation_level=None, factory=_StoreConnection)
    except sqlite3.Error as exc:
        raise _store_error(str(path), exc) from None
    conn.path = str(path)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.executescript(_SCHEMA)
        columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        if "cpu_s" not in columns:  # stores written before the column existed
            conn.execute("ALTER TABLE runs ADD COLUMN cpu_s REAL")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise InputFileError(
                f"results store {str(path)!r} has schema version {row[0]}, newer than this "
                f"nclab's {SCHEMA_VERSION}; upgrade nclab or use another --store"
            )
    except StoreError as exc:
        conn.close()
        if "file is not a database" in str(exc):
            raise InputFileError(
                f"{str(path)!r} is not a nclab results store (file is not a database); pass another --store PATH"
            ) from None
        raise
    except InputFileError:
        conn.close()
        raise
    return conn


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON")


def _float(value: Any) -> float | None:
    """A metric value as a float; NaN and infinities are stored as NULL."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def write_run(conn: sqlite3.Connection, record: RunRecord) -> int:
    """Write one finished cell (run row, per-epoch and final metrics) in one transaction.

    Any earlier row of the same ``(experiment, cell_key)`` is deleted in the same
    transaction, so a cell has at most one row and readers never see a half-written one.

    Parameters
    ----------
    conn : sqlite3.Connection
        From :func:`connect`.
    record : RunRecord

    Returns
    -------
    int
        The new ``run_id``.

    Raises
    ------
    SpecError
        A metric value that is not a number, or a status other than done/failed.
    """
    if record.status not in ("done", "failed"):
        raise SpecError(f"run status must be 'done' or 'failed'; got {record.status!r}")
    epoch_rows: list[tuple[int, str, float | None]] = []
    for i, entry in enumerate(record.history, start=1):
        epoch = int(entry.get("epoch", i))
        for name, value in entry.items():
            if name == "epoch" or not _is_number(value):
                continue
            epoch_rows.append((epoch, str(name), _float(value)))
    final_rows: list[tuple[str, float | None]] = []
    for name, value in record.final.items():
        if not _is_number(value):
            raise SpecError(
                f"final metric {name!r} of cell {record.cell_key!r} must be a number; got "
                f"{type(value).__name__}; put non-scalar results in extras"
            )
        final_rows.append((str(name), _float(value)))
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "DELETE FROM runs WHERE experiment = ? AND cell_key = ?",
            (record.experiment, record.cell_key),
        )
        conn.execute(
            "DELETE FROM claims WHERE experiment = ? AND cell_key = ?",
            (record.experiment, record.cell_key),
        )
        cur = conn.execute(
            "INSERT INTO runs (experiment, preset, stage, cell_key, config, axes, status, error,"
            " started_at, finished_at, duration_s, cpu_s, versions, host, extras)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.experiment,
                record.preset,
                record.stage,
                record.cell_key,
                _json(dict(record.config)),
                _json(dict(record.axes)),
                record.status,
                record.error,
                float(record.started_at),
                float(record.finished_at),
                float(record.finished_at) - float(record.started_at),
                None if record.cpu_s is None else float(record.cpu_s),
                _json(dict(record.versions)),
                record.host,
                _json(dict(record.extras)),
            ),
        )
        run_id = int(cur.lastrowid)
        conn.executemany(
            "INSERT OR REPLACE INTO epoch_metrics (run_id, epoch, name, value) VALUES (?, ?, ?, ?)",
            [(run_id, e, n, v) for e, n, v in epoch_rows],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO final_metrics (run_id, name, value) VALUES (?, ?, ?)",
            [(run_id, n, v) for n, v in final_rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return run_id


#: Seconds after its last heartbeat at which a claim expires (drivers beat every LEASE_S / 4).
LEASE_S = 60.0


@dataclass(frozen=True)
class Claimant:
    """Who claims cells: a unique owner token, the process id and the host name."""

    owner: str
    pid: int
    host: str


def new_claimant() -> Claimant:
    """A claimant for this process (a fresh token, so two drivers in one process never collide)."""
    import socket
    import uuid

    host = socket.gethostname()
    return Claimant(owner=f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}", pid=os.getpid(), host=host)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists (another user's) or cannot tell: trust the heartbeat
    return True


def _claim_expired(pid: int, host: str, beat: float, now_s: float, lease_s: float) -> bool:
    if now_s - beat > lease_s:
        return True
    import socket

    return host == socket.gethostname() and not _pid_alive(pid)


def claim_cell(
    conn: sqlite3.Connection,
    experiment: str,
    cell_key: str,
    claimant: Claimant,
    *,
    lease_s: float = LEASE_S,
    since: float | None = None,
) -> str:
    """Try to claim one cell for ``claimant``, in one transaction.

    Returns
    -------
    {"claimed", "done", "busy"}
        ``"done"``: the cell has a ``done`` row, or (with ``since``) a row finished at or after
        ``since`` (another process computed it during this run, possibly as ``failed``);
        ``"busy"``: a live claim of another owner holds it; ``"claimed"``: it is now ours (a
        claim of a dead or silent process is taken over).
    """
    now_s = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT status, finished_at FROM runs WHERE experiment = ? AND cell_key = ?",
                           (experiment, cell_key)).fetchone()
        if row is not None and (row[0] == "done" or (since is not None and row[1] >= since)):
            conn.execute("COMMIT")
            return "done"
        c = conn.execute("SELECT owner, pid, host, heartbeat FROM claims WHERE experiment = ? AND cell_key = ?",
                         (experiment, cell_key)).fetchone()
        if c is not None and c[0] != claimant.owner and not _claim_expired(c[1], c[2], c[3], now_s, lease_s):
            conn.execute("COMMIT")
            return "busy"
        conn.execute(
            "INSERT OR REPLACE INTO claims (experiment, cell_key, owner, pid, host, claimed_at, heartbeat)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (experiment, cell_key, claimant.owner, claimant.pid, claimant.host, now_s, now_s),
        )
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return "claimed"


def heartbeat(conn: sqlite3.Connection, claimant: Claimant) -> int:
    """Refresh the heartbeat of every claim of ``claimant``; returns how many it holds."""
    return int(conn.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                            (time.time(), claimant.owner)).rowcount)


def release_claims(conn: sqlite3.Connection, claimant: Claimant) -> int:
    """Drop every claim of ``claimant`` (a driver that stops); returns how many there were."""
    return int(conn.execute("DELETE FROM claims WHERE owner = ?", (claimant.owner,)).rowcount)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return True
    return hasattr(value, "item") and getattr(value, "ndim", 0) == 0


def completed_cell_keys(conn: sqlite3.Connection, experiment: str) -> set[str]:
    """Cell keys of ``experiment`` whose run finished with status ``"done"``."""
    rows = conn.execute(
        "SELECT cell_key FROM runs WHERE experiment = ? AND status = 'done'", (experiment,)
    ).fetchall()
    return {r[0] for r in rows}


_RUN_COLUMNS = (
    "run_id, experiment, preset, stage, cell_key, config, axes, status, error,"
    " started_at, finished_at, duration_s, versions, host, extras, cpu_s"
)


def _decode_run(row: tuple) -> StoredRun:
    (run_id, experiment, preset, stage, cell_key, config, axes, status, error, started,
     finished, duration, versions, host, extras, cpu_s) = row
    return StoredRun(
        run_id=run_id, experiment=experiment, preset=preset, stage=stage, cell_key=cell_key,
        config=json.loads(config), axes=json.loads(axes), status=status, error=error,
        started_at=started, finished_at=finished, duration_s=duration,
        versions=json.loads(versions), host=host, extras=json.loads(extras), cpu_s=cpu_s,
    )


def fetch_runs(
    conn: sqlite3.Connection,
    experiment: str | None = None,
    *,
    preset: str | None = None,
    stage: str | None = None,
    status: str | None = "done",
) -> list[StoredRun]:
    """Runs of the store, optionally filtered, ordered by ``run_id``.

    Parameters
    ----------
    conn : sqlite3.Connection
    experiment, preset, stage : str, optional
        Filters; ``None`` keeps all.
    status : str or None, default="done"
        Keep runs of this status only; ``None`` keeps failed runs too.
    """
    clauses, params = [], []
    for col, val in (("experiment", experiment), ("preset", preset), ("stage", stage),
                     ("status", status)):
        if val is not None:
            clauses.append(f"{col} = ?")
            params.append(val)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM runs{where} ORDER BY run_id", params
    ).fetchall()
    return [_decode_run(r) for r in rows]


#: Metric names of older stores and the one name each now has (migrated on read): ``dilation``
#: was a copy of ``nc1_test`` and ``p_min`` a copy of ``margin_min_train`` (the margin with
#: the bias; seed 002's bias-free p_min is ``margin_min_nobias_train``).
METRIC_ALIASES = {"dilation": "nc1_test", "p_min": "margin_min_train"}


def _migrate(record: dict[str, float]) -> dict[str, float]:
    """Rename the old aliases of ``record`` in place (the current name wins when both exist)."""
    for old, new in METRIC_ALIASES.items():
        if old in record:
            value = record.pop(old)
            record.setdefault(new, value)
    return record


def fetch_final(conn: sqlite3.Connection, run_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    """Final metrics of the given runs: ``{run_id: {name: value}}`` (NULL becomes NaN; the old
    aliases of :data:`METRIC_ALIASES` are read under their current names)."""
    ids = list(run_ids)
    out: dict[int, dict[str, float]] = {i: {} for i in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for run_id, name, value in conn.execute(
            f"SELECT run_id, name, value FROM final_metrics WHERE run_id IN ({marks})", chunk
        ):
            out[run_id][name] = math.nan if value is None else value
    return {i: _migrate(rec) for i, rec in out.items()}


def fetch_history(
    conn: sqlite3.Connection, run_ids: Iterable[int]
) -> dict[int, list[dict[str, float]]]:
    """Per-epoch metrics of the given runs: ``{run_id: [{"epoch": e, name: value, ...}, ...]}``,
    epochs in increasing order (NULL becomes NaN; old aliases migrated as in :func:`fetch_final`)."""
    ids = list(run_ids)
    out: dict[int, dict[int, dict[str, float]]] = {i: {} for i in ids}
    for chunk in _chunks(ids, 500):
        marks = ",".join("?" * len(chunk))
        for run_id, epoch, name, value in conn.execute(
            f"SELECT run_id, epoch, name, value FROM epoch_metrics WHERE run_id IN ({marks})"
            " ORDER BY run_id, epoch",
            chunk,
        ):
            out[run_id].setdefault(epoch, {"epoch": epoch})[name] = (
                math.nan if value is None else value
            )
    return {i: [_migrate(out[i][e]) for e in sorted(out[i])] for i in ids}


def _chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def list_experiments(conn: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """``(experiment, preset, number of done runs)`` for every experiment in the store."""
    return [
        (e, p, int(n))
        for e, p, n in conn.execute(
            "SELECT experiment, preset, COUNT(*) FROM runs WHERE status = 'done'"
            " GROUP BY experiment, preset ORDER BY experiment, preset"
        )
    ]


def require_experiments(conn: sqlite3.Connection, names: Iterable[str], *,
                        registered: Iterable[str] = ()) -> None:
    """Raise :class:`SpecError` naming the known experiments when one of ``names`` has no done run.

    ``registered`` (the experiment registry's names) only improves the message: a registered
    name without runs is told to run first, an unknown one gets both lists.
    """
    stored = sorted({e for e, _, _ in list_experiments(conn)})
    registered = sorted(set(registered))
    held = ", ".join(stored) if stored else "no runs yet"
    where = getattr(conn, "path", "the store")
    for name in names:
        if name in stored:
            continue
        if name in registered:
            raise SpecError(f"experiment {name!r} has no finished runs in {where}; run `nclab run {name}` "
                            f"first (the store holds: {held})")
        known = f"; registered experiments: {', '.join(registered)}" if registered else ""
        raise SpecError(f"unknown experiment {name!r}: the store {where} holds: {held}{known}")


def delete_experiment(conn: sqlite3.Connection, experiment: str) -> int:
    """Delete every run of ``experiment`` (and its metrics) in one transaction; returns the count."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        n = conn.execute("DELETE FROM runs WHERE experiment = ?", (experiment,)).rowcount
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return int(n)


_TABLES = ("runs", "epoch_metrics", "final_metrics")


def table_rows(
    conn: sqlite3.Connection, table: str, *, experiment: str | None = None
) -> tuple[list[str], list[tuple]]:
    """Column names and rows of one table (``runs``, ``epoch_metrics`` or ``final_metrics``),
    optionally restricted to one experiment; metric tables gain ``experiment`` and
    ``cell_key`` columns so that they can be joined after export."""
    if table not in _TABLES:
        raise SpecError(f"table must be one of {', '.join(_TABLES)}; got {table!r}")
    params: list = []
    if table == "runs":
        sql = "SELECT * FROM runs"
        if experiment is not None:
            sql += " WHERE experiment = ?"
            params.append(experiment)
        sql += " ORDER BY run_id"
    else:
        cols = "m.run_id, m.epoch, m.name, m.value" if table == "epoch_metrics" else (
            "m.run_id, m.name, m.value"
        )
        key = "m.epoch, m.name" if table == "epoch_metrics" else "m.name"
        sql = f"SELECT r.experiment, r.cell_key, {cols} FROM {table} m JOIN runs r USING (run_id)"
        if experiment is not None:
            sql += " WHERE r.experiment = ?"
            params.append(experiment)
        sql += f" ORDER BY m.run_id, {key}"
    cur = conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    return names, rows


def export_csv(
    conn: sqlite3.Connection, out_dir: str | os.PathLike, *, experiment: str | None = None
) -> list[Path]:
    """Write ``runs.csv``, ``epoch_metrics.csv`` and ``final_metrics.csv`` into ``out_dir``.

    Returns the written paths. Missing metric values (NaN) are written as empty cells.
    """
    out = _out_dir(out_dir)
    paths = []
    for table in _TABLES:
        names, rows = table_rows(conn, table, experiment=experiment)
        path = out / f"{table}.csv"
        try:
            with open(path, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(names)
                writer.writerows(rows)
        except OSError as exc:
            raise InputFileError(f"cannot write {path} ({exc.strerror or exc}); pass a writable --out folder") from None
        paths.append(path)
    return paths


def _out_dir(out_dir: str | os.PathLike) -> Path:
    """``out_dir`` created if needed; one-line :class:`InputFileError` when it cannot be a folder."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(f"output folder {str(out)!r} exists and is not a folder; pass another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputFileError(f"cannot create output folder {str(out)!r} ({exc.strerror or exc}); "
                             "pass a writable --out") from None
    return out


def export_parquet(
    conn: sqlite3.Connection, out_dir: str | os.PathLike, *, experiment: str | None = None
) -> list[Path]:
    """Write the three tables as Parquet files into ``out_dir`` (needs ``pyarrow``).

    Raises
    ------
    SpecError
        pyarrow is not installed.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise SpecError(
            "Parquet export needs pyarrow; install it with `pip install nclab[parquet]` "
            "or export CSV instead"
        ) from None
    out = _out_dir(out_dir)
    paths = []
    for table in _TABLES:
        names, rows = table_rows(conn, table, experiment=experiment)
        columns = list(zip(*rows)) if rows else [[] for _ in names]
        arrays = {}
        for name, col in zip(names, columns):
            arrays[name] = pa.array(list(col), type=_arrow_type(name))
        path = out / f"{table}.parquet"
        try:
            pq.write_table(pa.table(arrays), path)
        except OSError as exc:
            raise InputFileError(f"cannot write {path} ({exc}); pass a writable --out folder") from None
        paths.append(path)
    return paths


def _arrow_type(name: str):
    import pyarrow as pa

    if name in ("run_id", "epoch"):
        return pa.int64()
    if name in ("value", "started_at", "finished_at", "duration_s", "cpu_s"):
        return pa.float64()
    return pa.string()


def now() -> float:
    """Wall-clock time in Unix seconds (the timestamps of :class:`RunRecord`)."""
    return time.time()
