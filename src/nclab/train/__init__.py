"""Training with per-epoch neural-collapse tracking, checkpoints and exact resume.

``train(TrainConfig.quick(classes=2, eta=0.1, loss="ls", alpha=0.1))`` trains the quick
preset; :meth:`TrainConfig.paper` is the 9 x 2048 BN MLP of seed 001, App. A.1.1.
"""

from __future__ import annotations

from nclab.train.config import TrainConfig, TrainResult
from nclab.train.loop import CHECKPOINT_NAME, load_config_dataset, resolve_device, train
from nclab.train.tracking import suboptimal_collapse, tracked_evaluation

__all__ = [
    "CHECKPOINT_NAME",
    "TrainConfig",
    "TrainResult",
    "load_config_dataset",
    "resolve_device",
    "suboptimal_collapse",
    "tracked_evaluation",
    "train",
]
