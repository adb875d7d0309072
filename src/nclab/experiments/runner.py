"""Run the cells of an experiment: serially, on a local process pool, or on Ray; resumably.

Protocol
--------
A cell function has the signature ``fn(config: dict, ctx: CellContext) -> CellResult``. It
computes in memory and returns its final scalar metrics, its per-epoch history and any
non-scalar extras; it calls ``ctx.epoch(e, total)`` after each epoch, which the driver turns
into a :class:`ProgressEvent` for its ``on_event`` callback (the CLI draws the bars).
Cell functions never touch the store: the driver process (the one that runs
:func:`run_experiment`) writes each returned result with :func:`nclab.store.write_run`, one
transaction per cell, as soon as it arrives.

Resumability
------------
Before running, the driver reads the keys of the cells already ``done`` in the store and runs
only the others. A sweep killed at any point (SIGINT, SIGTERM or SIGKILL) leaves in the store
exactly the cells whose transaction committed, each complete; running the same command again
computes the rest. Failed cells are stored with status ``failed`` (and their error) and retried
on the next run. With deterministic cell functions, an interrupted-and-resumed sweep therefore
produces the same rows as an uninterrupted one.

Claims
------
Several drivers may share one store (two ``nclab run`` of one experiment, a sweep on each of
two machines): a driver claims each cell in the store (:func:`nclab.store.claim_cell`, a lease
with its pid, host and a heartbeat refreshed by a background thread) just before handing it to
a worker, so each cell is computed once. Cells claimed by another live driver are waited for
(their rows then count as ``elsewhere``); a claim of a killed driver expires at once on the same
host and after :data:`nclab.store.LEASE_S` seconds without heartbeat elsewhere, and is taken over.

Worker lifetime
---------------
Local pool workers run a watchdog thread that polls the parent pid: when the driver dies, even
by SIGKILL, its workers exit within a second instead of living on re-parented.

Backends
--------
``serial``  in this process (``nclab run``); epoch bars through a direct callback.
``local``   a :class:`concurrent.futures.ProcessPoolExecutor` with ``spawn`` workers (default of
            ``nclab sweep``); each worker gets ``cpu_count // workers`` threads; epoch progress
            travels over a :class:`multiprocessing.Queue`; workers ignore SIGINT so that
            Ctrl-C reaches the driver only, which stops them.
``ray``     one Ray task per cell (``ray.init()`` locally, or ``address=`` of a cluster);
            epoch progress over a :class:`ray.util.queue.Queue`.
"""

from __future__ import annotations

import os
import platform
import queue as queue_mod
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from nclab.errors import SpecError
from nclab.experiments.grid import Cell, expand_grid
from nclab.experiments.spec import Experiment, get_experiment

__all__ = [
    "ProgressEvent",
    "CellContext",
    "CellResult",
    "SweepSummary",
    "run_experiment",
    "plan_experiment",
    "execute_cell",
    "BACKENDS",
]

BACKENDS = ("serial", "local", "ray")


@dataclass(frozen=True)
class CellResult:
    """What a cell function returns.

    Attributes
    ----------
    final : dict of str to float
        Final scalar metrics.
    history : tuple of dict
        Per-epoch scalar metrics (each may carry its ``"epoch"``).
    extras : dict
        JSON-serialisable non-scalar results.
    """

    final: Mapping[str, float]
    history: Sequence[Mapping[str, Any]] = ()
    extras: Mapping[str, Any] = field(default_factory=dict)


class CellContext:
    """Handed to a cell function: its key, upstream inputs and a progress callback."""

    def __init__(self, key: str, report: Callable[[str, int, int], None] | None = None):
        self.key = key
        self._report = report

    def epoch(self, epoch: int, total: int) -> None:
        """Report that ``epoch`` of ``total`` epochs finished (drives the epoch bars)."""
        if self._report is not None:
            try:
                self._report(self.key, int(epoch), int(total))
            except Exception:  # progress must never break a computation
                pass


@dataclass(frozen=True)
class SweepSummary:
    """Outcome of :func:`run_experiment`.

    Attributes
    ----------
    experiment, preset : str
    store : str
    total : int
        Cells in the grid (all stages).
    skipped : int
        Cells already done in the store before this call.
    done, failed : int
        Cells computed by this call, by status.
    wall_s : float
    failures : tuple of (str, str)
        ``(cell_key, error)`` of the cells that failed.
    elsewhere : int
        Cells that another driver on the same store computed while this one ran.
    """

    experiment: str
    preset: str
    store: str
    total: int
    skipped: int
    done: int
    failed: int
    wall_s: float
    failures: tuple[tuple[str, str], ...] = ()
    elsewhere: int = 0


def _cpus() -> int:
    """CPUs this process may run on (respects taskset / cgroup affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _git_commit() -> str | None:
    """The commit of the nclab checkout this code runs from (None when not a git checkout)."""
    global _GIT_COMMIT
    if _GIT_COMMIT is None:
        import subprocess

        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                 capture_output=True, text=True, timeout=10)
            _GIT_COMMIT = out.stdout.strip() if out.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            _GIT_COMMIT = ""
    return _GIT_COMMIT or None


_GIT_COMMIT: str | None = None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    commit = _git_commit()
    if commit:
        out["git_commit"] = commit
    try:
        from importlib.metadata import version

        out["nclab"] = version("nclab")
    except Exception:
        out["nclab"] = "unknown"
    for mod in ("numpy", "torch", "scipy", "ray"):
        m = sys.modules.get(mod)
        if m is not None and hasattr(m, "__version__"):
            out[mod] = str(m.__version__)
    return out


def execute_cell(
    payload: Mapping[str, Any], report: Callable[[str, int, int], None] | None = None
) -> dict[str, Any]:
    """Run one cell and return its store record as a plain dict (picklable).

    Never raises for an error inside the cell function: the record then has status
    ``"failed"`` and the error (type, message and the last traceback frames).
    """
    from nclab.experiments.spec import Stage

    started = time.time()
    cpu0 = _cpu_seconds()
    stage = Stage(name=payload["stage"], fn=payload["fn"], axes={})
    ctx = CellContext(payload["key"], report)
    record: dict[str, Any] = {
        "experiment": payload["experiment"],
        "preset": payload["preset"],
        "stage": payload["stage"],
        "cell_key": payload["key"],
        "config": payload["config"],
        "axes": payload["axes"],
        "started_at": started,
        "host": socket.gethostname(),
    }
    try:
        fn = stage.load()
        result = fn(dict(payload["config"]), ctx)
        if not isinstance(result, CellResult):
            raise TypeError(f"cell function {payload['fn']} returned {type(result).__name__}, "
                            "not CellResult")
        record.update(status="done", final=dict(result.final), history=list(result.history),
                      extras=dict(result.extras), error=None)
    except Exception as exc:
        tb = traceback.format_exc(limit=-4)
        record.update(status="failed", final={}, history=[], extras={},
                      error=f"{type(exc).__name__}: {exc}\n{tb}")
    record["finished_at"] = time.time()
    record["cpu_s"] = _cpu_seconds() - cpu0
    record["versions"] = _versions()
    return record


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    return time.process_time()


# ----------------------------------------------------------------------------- workers

_WORKER_QUEUE = None


def _exit_with_parent(parent: int, interval: float = 0.5) -> None:
    """Start a daemon thread that ends this process when ``parent`` is no longer its parent.

    A process whose parent dies is re-parented (to PID 1 or a subreaper), so ``os.getppid()``
    changes; polling it works on every POSIX system and whatever thread started the process
    (Linux's ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, which a
    pool's manager thread may do long before the driver).
    """
    import threading

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(interval)

    threading.Thread(target=watch, name="nclab-parent-watchdog", daemon=True).start()


def _init_local_worker(q, threads: int, parent: int | None = None) -> None:
    """Process-pool initializer: exit with the driver, ignore SIGINT, set thread counts, keep the
    progress queue."""
    global _WORKER_QUEUE
    if parent is not None:
        _exit_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    _WORKER_QUEUE = q


def _queue_report(key: str, epoch: int, total: int) -> None:
    if _WORKER_QUEUE is not None:
        _WORKER_QUEUE.put_nowait((key, epoch, total))


def _local_task(payload: Mapping[str, Any]) -> dict[str, Any]:
    return execute_cell(payload, _queue_report)


def _ray_task(payload: Mapping[str, Any], q) -> dict[str, Any]:
    def report(key: str, epoch: int, total: int) -> None:
        if q is not None:
            q.put_nowait((key, epoch, total))

    return execute_cell(payload, report)


# ----------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class ProgressEvent:
    """What the runner reports while it works; the CLI draws it (the library prints nothing).

    Attributes
    ----------
    kind : {"stage", "epoch", "cell_done", "stage_done"}
        ``stage``: a stage starts (``total`` cells, ``skipped`` already in the store);
        ``epoch``: cell ``key`` finished ``epoch`` of ``total`` epochs; ``cell_done``: cell
        ``key`` finished (stored, failed, or computed elsewhere); ``stage_done``: the stage ends.
    experiment, stage : str
    key : str, optional
    epoch, total, skipped : int
    """

    kind: str
    experiment: str
    stage: str
    key: str | None = None
    epoch: int = 0
    total: int = 0
    skipped: int = 0


class _Events:
    """Turns the runner's progress calls into :class:`ProgressEvent` for ``on_event``."""

    def __init__(self, on_event, experiment: str, stage: str, total: int, skipped: int):
        self.on_event = on_event
        self.enabled = on_event is not None
        self.experiment, self.stage = experiment, stage
        self._emit(ProgressEvent("stage", experiment, stage, total=total, skipped=skipped))

    def _emit(self, event: ProgressEvent) -> None:
        if self.enabled:
            try:
                self.on_event(event)
            except Exception:  # a drawing error must never stop a sweep
                pass

    def epoch(self, key: str, epoch: int, total: int) -> None:
        self._emit(ProgressEvent("epoch", self.experiment, self.stage, key, epoch, total))

    def cell_done(self, key: str) -> None:
        self._emit(ProgressEvent("cell_done", self.experiment, self.stage, key))

    def close(self) -> None:
        self._emit(ProgressEvent("stage_done", self.experiment, self.stage))


# ----------------------------------------------------------------------------- driver


def plan_experiment(
    experiment: Experiment | str,
    preset: str = "quick",
    overrides: Mapping[str, Any] | None = None,
) -> list[Cell]:
    """The cells of every stage that has no upstream (for ``--dry-run``; stages that need
    another stage's results are planned when those exist)."""
    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    config = exp.resolve(preset, overrides)
    cells: list[Cell] = []
    for st in exp.stages:
        if st.needs is None:
            cells.extend(expand_grid(exp, config, st))
    return cells


def run_experiment(
    experiment: Experiment | str,
    *,
    preset: str = "quick",
    overrides: Mapping[str, Any] | None = None,
    store: str | os.PathLike | None = None,
    backend: str = "serial",
    workers: int | None = None,
    address: str | None = None,
    on_event: Callable[[ProgressEvent], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> SweepSummary:
    """Run every not-yet-done cell of an experiment and write each result to the store.

    Parameters
    ----------
    experiment : Experiment or str
    preset : {"quick", "paper", "tiny"}, default="quick"
    overrides : mapping, optional
        ``--set`` values (strings are coerced and validated).
    store : path-like, optional
        The results store (default :func:`nclab.store.default_store_path`).
    backend : {"serial", "local", "ray"}, default="serial"
    workers : int, optional
        Parallel cells for ``local`` (default: number of CPUs) and the CPUs of a local Ray
        instance.
    address : str, optional
        Ray cluster address (``"auto"``, ``"ray://host:10001"``); default starts a local one.
    on_event : callable, optional
        Called with every :class:`ProgressEvent` (stage start, epoch of a cell, cell done,
        stage end); the CLI draws them as progress bars. The runner itself prints nothing.
    on_record : callable, optional
        Called with each record after it is written.

    Returns
    -------
    SweepSummary

    Raises
    ------
    SpecError
        Unknown experiment/preset/setting/backend, a missing required library, or Ray not
        installed for ``backend="ray"``.
    """
    from nclab import store as st

    if backend not in BACKENDS:
        raise SpecError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if workers is not None and workers < 1:
        raise SpecError(f"workers must be >= 1; got {workers}")
    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    config = exp.resolve(preset, overrides)
    preflight = getattr(config, "preflight", None)
    if callable(preflight):
        preflight()
    missing = exp.missing()
    if missing:
        raise SpecError(
            f"experiment {exp.name!r} needs {', '.join(missing)}, which is not installed or "
            "not written yet"
        )
    conn = st.connect(store)
    store_path = str(store if store is not None else st.default_store_path())
    previous_term = _raise_on_sigterm()
    t0 = time.time()
    total = skipped = done = failed = elsewhere = 0
    failures: list[tuple[str, str]] = []
    runner = _Runner(backend, workers, address)
    claimant = st.new_claimant()
    beat = None if store_path == ":memory:" else _Heartbeat(store_path, claimant)

    def claim(payload: Mapping[str, Any]) -> str:
        if beat is None:
            return "claimed"
        return st.claim_cell(conn, payload["experiment"], payload["key"], claimant, since=t0)

    try:
        for stage in exp.stages:
            inputs = None
            if stage.needs is not None:
                # the upstream cells of *this* configuration (not of another preset)
                upstream = {c.key for c in expand_grid(exp, config, stage.needs)}
                inputs = {}
                for run in st.fetch_runs(conn, exp.name, stage=stage.needs):
                    if run.cell_key in upstream:
                        inputs[tuple(run.axes.get(a) for a in stage.match)] = run.extras.get(
                            "downstream", run.extras)
            try:
                cells = expand_grid(exp, config, stage, inputs=inputs)
            except SpecError:
                if failed:  # upstream cells failed: this stage cannot run
                    continue
                raise
            finished = st.completed_cell_keys(conn, exp.name)
            todo = [c for c in cells if c.key not in finished]
            total += len(cells)
            skipped += len(cells) - len(todo)
            bars = _Events(on_event, exp.name, stage.name, len(cells), len(cells) - len(todo))
            try:
                payloads = [
                    {"experiment": exp.name, "preset": preset, "stage": stage.name,
                     "fn": stage.fn, "key": c.key, "config": dict(c.config),
                     "axes": dict(c.axes), "cpus": stage.cpus}
                    for c in todo
                ]
                for record in runner.run(payloads, bars, claim):
                    if record.get("elsewhere"):  # computed by another driver meanwhile
                        elsewhere += 1
                        bars.cell_done(record["cell_key"])
                        continue
                    st.write_run(conn, _to_run_record(record))
                    bars.cell_done(record["cell_key"])
                    if record["status"] == "done":
                        done += 1
                    else:
                        failed += 1
                        failures.append((record["cell_key"], record["error"] or ""))
                    if on_record is not None:
                        on_record(record)
            finally:
                bars.close()
    except BaseException:
        runner.abort()
        raise
    finally:
        runner.close()
        if beat is not None:
            beat.stop()
            try:
                st.release_claims(conn, claimant)
            except (st.StoreError, OSError):
                pass  # the claims expire by themselves; never hide the error being raised
        conn.close()
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return SweepSummary(exp.name, preset, store_path, total, skipped, done, failed,
                        time.time() - t0, tuple(failures), elsewhere)


class _Heartbeat:
    """Background thread refreshing this driver's claims every ``LEASE_S / 4`` seconds, on its
    own connection (a SQLite connection belongs to one thread)."""

    def __init__(self, store_path: str, claimant, interval: float | None = None):
        import threading

        from nclab import store as st

        self._stop = threading.Event()
        self._interval = st.LEASE_S / 4 if interval is None else interval
        self._path, self._claimant = store_path, claimant
        self._thread = threading.Thread(target=self._run, name="nclab-claim-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from nclab import store as st

        conn = None
        try:
            while not self._stop.wait(self._interval):
                try:
                    conn = conn or st.connect(self._path)
                    st.heartbeat(conn, self._claimant)
                except Exception:  # noqa: BLE001 - the driver meets store errors itself
                    pass
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _raise_on_sigterm():
    """In the main thread, turn SIGTERM into ``SystemExit(143)`` so that a terminated sweep
    stops its workers like an interrupted one; returns the previous handler (None elsewhere)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, handler)


def _to_run_record(record: Mapping[str, Any]):
    from nclab.store import RunRecord

    return RunRecord(
        experiment=record["experiment"], preset=record["preset"], stage=record["stage"],
        cell_key=record["cell_key"], config=record["config"], axes=record["axes"],
        status=record["status"], started_at=record["started_at"],
        finished_at=record["finished_at"], versions=record["versions"], host=record["host"],
        final=record["final"], history=record["history"], extras=record["extras"],
        error=record["error"], cpu_s=record.get("cpu_s"),
    )


class _Runner:
    """Holds the backend (pool or Ray connection) across the stages of one experiment."""

    def __init__(self, backend: str, workers: int | None, address: str | None):
        self.backend = backend
        self.workers = workers
        self.address = address
        self._pool = None
        self._queue = None
        self._ray_started = False
        self._ray_queue = None
        self._ray_slots: int | None = None
        self._pending: list = []

    #: Seconds between two attempts at cells that another driver holds.
    poll_s = 1.0

    def run(self, payloads, bars, claim: Callable[[Mapping[str, Any]], str] | None = None) -> Iterable[dict]:
        """Yield the record of every payload: each is claimed (``claim(payload)``) just before it
        is handed to a worker; a cell held by another driver is retried every ``poll_s`` seconds
        until it is done there (then ``{"cell_key": key, "elsewhere": True}`` is yielded) or its
        claim expires (then it runs here)."""
        import collections

        claim = claim or (lambda p: "claimed")
        waiting = collections.deque(payloads)
        deferred: list = []
        retry_at = 0.0
        while waiting or deferred or self._busy():
            if deferred and (not waiting) and time.time() >= retry_at:
                waiting.extend(deferred)
                deferred = []
            while waiting and self._free() > 0:
                p = waiting.popleft()
                state = claim(p)
                if state == "claimed":
                    self._submit(p, bars)
                elif state == "done":
                    yield {"cell_key": p["key"], "elsewhere": True}
                else:
                    if not deferred:
                        retry_at = time.time() + self.poll_s
                    deferred.append(p)
            if self._busy():
                yield from self._collect(bars)
            elif deferred and not waiting:
                time.sleep(max(0.0, min(self.poll_s, retry_at - time.time())))

    # -- backend primitives: free slots, submit, collect finished records
    def _free(self) -> int:
        return self._slots() - len(self._pending)

    def _busy(self) -> bool:
        return bool(self._pending)

    def _slots(self) -> int:
        if self.backend == "serial":
            return 1
        if self.backend == "local":
            return self.workers or _cpus()
        if self._ray_slots is None:
            ray = self._ensure_ray()
            self._ray_slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return self._ray_slots

    def _submit(self, payload, bars) -> None:
        if self.backend == "serial":
            self._pending.append(payload)  # run in _collect, after the claim was made
        elif self.backend == "local":
            self._pending.append(self._ensure_pool().submit(_local_task, payload))
        else:
            ray = self._ensure_ray()
            if self._ray_queue is None and bars.enabled:
                from ray.util.queue import Queue

                self._ray_queue = Queue(actor_options={"num_cpus": 0})
            task = ray.remote(max_retries=0)(_ray_task)
            self._pending.append(task.options(num_cpus=payload.get("cpus", 1.0)).remote(payload, self._ray_queue))

    def _collect(self, bars) -> Iterable[dict]:
        if self.backend == "serial":
            p = self._pending.pop(0)
            yield execute_cell(p, bars.epoch)
        elif self.backend == "local":
            from concurrent.futures import FIRST_COMPLETED, wait

            finished, pending = wait(self._pending, timeout=0.2, return_when=FIRST_COMPLETED)
            self._pending = list(pending)
            self._drain(self._queue, bars)
            for fut in finished:
                yield fut.result()
        else:
            ray = self._ensure_ray()
            ready, pending = ray.wait(self._pending, num_returns=1, timeout=0.2)
            self._pending = list(pending)
            if self._ray_queue is not None:
                self._drain(self._ray_queue, bars)
            for ref in ready:
                yield ray.get(ref)

    # -- local process pool
    def _ensure_pool(self):
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            ctx = mp.get_context("spawn")
            workers = self.workers or _cpus()
            threads = max(1, _cpus() // workers)
            self._queue = ctx.Queue()
            self._pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_init_local_worker,
                initargs=(self._queue, threads, os.getpid()),
            )
        return self._pool

    def _drain(self, q, bars) -> None:
        while True:
            try:
                key, epoch, total = q.get_nowait()
            except (queue_mod.Empty, EOFError, OSError):
                return
            except Exception:  # ray queue raises its own Empty
                return
            bars.epoch(key, epoch, total)

    # -- ray
    def _ensure_ray(self):
        try:
            import ray
        except ImportError:
            raise SpecError(
                "the ray backend needs Ray; install it with `pip install nclab[ray]` or use "
                "--backend local"
            ) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "logging_level": "ERROR"}
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.workers or _cpus(), **kwargs)
            self._ray_started = True
        return ray

    def abort(self) -> None:
        """Stop running cells now (an interrupted sweep); their results are not written."""
        if self.backend == "ray" and self._pending:
            import ray

            for ref in self._pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - best effort while stopping
                    pass
        self._pending = []
        if self._pool is not None:
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=False, cancel_futures=True)
            for proc in procs:
                if proc.is_alive():
                    proc.terminate()
            for proc in procs:
                proc.join(timeout=5)
            self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._ray_queue is not None:
            try:
                self._ray_queue.shutdown(force=True)
            except Exception:
                pass
            self._ray_queue = None
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False
