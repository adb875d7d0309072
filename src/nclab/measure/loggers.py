"""Metric loggers for experiment trackers: TensorBoard and MLflow (a local directory or any tracking URI).

An MLflow directory holds a local SQLite store (``mlflow.db``) and the run artifacts; read it with
``mlflow ui --backend-store-uri sqlite:///DIR/mlflow.db`` or ``MlflowClient(tracking_uri=...)``.

Each logger takes flat ``{name: float}`` dicts with a step (:func:`scalars` flattens a
:func:`~nclab.measure.measure` result, per-layer metrics included). The tracker packages are
optional extras (``pip install "nclab[track]"``), imported when a logger is made.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from nclab.errors import SpecError

__all__ = ["MLflowLogger", "TensorBoardLogger", "make_logger", "scalars", "LOGGERS"]

LOGGERS = ("tensorboard", "mlflow")


def scalars(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Flat ``{prefix + name: float}`` of the numbers in ``result``; ``layers`` become ``layers/<name>/<metric>``."""
    out: dict[str, float] = {}
    for k, v in result.items():
        if isinstance(v, Mapping):
            for kk, vv in scalars(v, "").items():
                out[f"{prefix}{k}/{kk}"] = vv
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = float(v)
    return out


class TensorBoardLogger:
    """Scalars to a TensorBoard event file in ``log_dir`` (``torch.utils.tensorboard``)."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = Path(log_dir)
        self._writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for k, v in metrics.items():
            self._writer.add_scalar(k, v, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class MLflowLogger:
    """Metrics to one MLflow run; ``tracking_uri`` a directory (local SQLite store) or any MLflow URI."""

    def __init__(self, tracking_uri: str | os.PathLike, *, experiment: str = "nclab", run_name: str | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        from mlflow.tracking import MlflowClient

        uri = str(tracking_uri)
        artifacts = None
        if ":" not in uri:  # a directory: MLflow's local SQLite store (its plain file store is deprecated)
            root = Path(uri).resolve()
            root.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()
        self.tracking_uri = uri
        self._client = MlflowClient(tracking_uri=uri)
        exp = self._client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp is not None else self._client.create_experiment(experiment, artifacts)
        self.run_id = self._client.create_run(exp_id, run_name=run_name).info.run_id
        for k, v in (params or {}).items():
            self._client.log_param(self.run_id, k, v)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric
        import time

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step) for k, v in metrics.items() if math.isfinite(v)]
        if batch:
            self._client.log_batch(self.run_id, metrics=batch)

    def close(self) -> None:
        self._client.set_terminated(self.run_id)


def make_logger(kind: str, directory: str | os.PathLike, *, run_name: str | None = None,
                params: Mapping[str, Any] | None = None):
    """A :class:`TensorBoardLogger` or :class:`MLflowLogger` writing under ``directory``."""
    if kind == "tensorboard":
        return TensorBoardLogger(directory)
    if kind == "mlflow":
        return MLflowLogger(directory, run_name=run_name, params=params)
    raise SpecError(f"log must be one of {', '.join(LOGGERS)}; got {kind!r}.")


def epoch_logger(logger, inner: Callable | None = None) -> Callable[[int, dict | None], None]:
    """A training callback ``(epoch, record)`` that logs each tracked epoch's numbers, then calls ``inner``."""

    def cb(epoch: int, rec: dict | None) -> None:
        if rec is not None:
            logger.log(scalars(rec), step=epoch)
        if inner is not None:
            inner(epoch, rec)

    return cb
