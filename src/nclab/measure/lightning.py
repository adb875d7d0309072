"""A PyTorch Lightning callback: collapse metrics at the end of each validation epoch, logged by the trainer.

Needs ``lightning`` (``pip install "nclab[lightning]"``). The callback runs
:func:`~nclab.measure.measure` over the validation loader (or a loader it is given) after Lightning's
own validation loop: one more forward pass over that loader, with the same batches.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import lightning.pytorch as pl

from nclab.measure.loggers import scalars
from nclab.measure.model import measure

__all__ = ["CollapseCallback"]


class CollapseCallback(pl.Callback):
    """Measure collapse at the end of every ``every_n_epochs``-th validation epoch.

    Parameters
    ----------
    loader : iterable, optional
        Batches to measure on; default: the trainer's (first) validation loader.
    layers : sequence of str, default=()
        Further layers (names in ``pl_module.named_modules()``).
    head : str, optional
        The classifier's name in ``pl_module`` when it cannot be found automatically.
    prefix : str, default="nc/"
        Prefix of the logged names (``nc/nc1``, ``nc/layers/<layer>/nc1``, ...).
    every_n_epochs : int, default=1
    logger : object with ``log(metrics, step)``, optional
        An extra logger (:func:`~nclab.measure.make_logger`); the trainer's loggers always receive
        the values through ``pl_module.log_dict``.
    **measure_kwargs
        Passed to :func:`~nclab.measure.measure` (``classes``, ``max_feature_bytes``, ...).

    Attributes
    ----------
    history : list of (epoch, dict)
        Every measurement made.
    """

    def __init__(self, loader: Iterable | None = None, *, layers: Sequence[str] = (), head: str | None = None,
                 prefix: str = "nc/", every_n_epochs: int = 1, logger: Any = None, **measure_kwargs) -> None:
        super().__init__()
        from nclab.errors import SpecError

        if not (isinstance(every_n_epochs, int) and every_n_epochs >= 1):
            raise SpecError(f"every_n_epochs must be an integer >= 1; got {every_n_epochs!r}.")
        self.loader, self.layers, self.head, self.prefix = loader, tuple(layers), head, prefix
        self.every_n_epochs, self.logger, self.measure_kwargs = every_n_epochs, logger, measure_kwargs
        self.history: list[tuple[int, dict]] = []

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        loader = self.loader
        if loader is None:
            loader = trainer.val_dataloaders
            if isinstance(loader, (list, tuple)):
                loader = loader[0]
        res = measure(pl_module, loader, layers=self.layers, head=self.head, device=pl_module.device,
                      **self.measure_kwargs)
        self.history.append((trainer.current_epoch, res))
        flat = scalars(res, self.prefix)
        pl_module.log_dict(flat, on_epoch=True, on_step=False, sync_dist=False)
        if self.logger is not None:
            self.logger.log(flat, step=trainer.current_epoch)
