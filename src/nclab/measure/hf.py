"""A Hugging Face ``transformers.TrainerCallback``: collapse metrics after every evaluation.

Needs ``transformers`` (``pip install "nclab[hf]"``). After the ``Trainer``'s evaluation loop the
callback runs :func:`~nclab.measure.measure` over the evaluation loader (dict batches with
``input_ids`` / ``pixel_values``, ``attention_mask`` and ``labels``; causal LMs shift the labels),
and logs the values with ``trainer.log``, so that every integration of ``report_to`` (TensorBoard,
MLflow, W&B) and ``trainer.state.log_history`` receive them.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from transformers import TrainerCallback

from nclab.measure.loggers import scalars
from nclab.measure.model import measure

__all__ = ["CollapseTrainerCallback"]


class CollapseTrainerCallback(TrainerCallback):
    """Measure collapse on every ``Trainer.evaluate``.

    Parameters
    ----------
    trainer : transformers.Trainer, optional
        The trainer whose ``log`` receives the values (pass it, or register with :meth:`attach`).
        Without one the values are only kept in :attr:`history` and sent to ``logger``.
    loader : iterable, optional
        Batches to measure on; default: the evaluation loader of the current evaluation.
    layers, head : see :func:`~nclab.measure.measure`
    prefix : str, default="nc/"
    logger : object with ``log(metrics, step)``, optional
    **measure_kwargs
        Passed to :func:`~nclab.measure.measure`.
    """

    def __init__(self, trainer: Any = None, loader: Iterable | None = None, *, layers: Sequence[str] = (),
                 head: str | None = None, prefix: str = "nc/", logger: Any = None, **measure_kwargs) -> None:
        self.trainer, self.loader, self.layers, self.head = trainer, loader, tuple(layers), head
        self.prefix, self.logger, self.measure_kwargs = prefix, logger, measure_kwargs
        self.history: list[dict] = []

    def attach(self, trainer: Any) -> "CollapseTrainerCallback":
        """Register with ``trainer`` and log through it. Returns ``self``."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    def on_evaluate(self, args, state, control, model=None, eval_dataloader=None, **kwargs):
        loader = self.loader if self.loader is not None else eval_dataloader
        if model is None or loader is None:
            return
        res = measure(model, loader, layers=self.layers, head=self.head, **self.measure_kwargs)
        flat = scalars(res, self.prefix)
        self.history.append({"epoch": state.epoch, "step": state.global_step, **flat})
        if self.trainer is not None:
            self.trainer.log(flat)
        if self.logger is not None:
            self.logger.log(flat, step=state.global_step)
