"""Moved to :mod:`nclab.measure.model`; this alias keeps ``from nclab.hooks import measure`` working."""

from nclab.measure.model import find_head, measure

__all__ = ["measure", "find_head"]
