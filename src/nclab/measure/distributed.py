"""The exact reduction across a ``torch.distributed`` process group lives with the accumulators it
reduces, in :mod:`nclab.metrics.distributed`; re-exported here for the measuring code."""

from nclab.metrics.distributed import all_reduce_decisions, all_reduce_stats, is_distributed, world

__all__ = ["all_reduce_stats", "all_reduce_decisions", "is_distributed", "world"]
