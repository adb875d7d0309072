"""The nclab error hierarchy.

Every error a user can cause derives from :class:`NCLabError`; the CLI prints its message on one
line and exits with status 2. Degenerate-but-legal numerical states warn instead
(:class:`DegenerateWarning`, :class:`ConvergenceWarning`).
"""

from __future__ import annotations

__all__ = [
    "NCLabError",
    "ShapeError",
    "LabelError",
    "NonFiniteError",
    "InputFileError",
    "SpecError",
    "MissingExtraError",
    "ConvergenceWarning",
    "DegenerateWarning",
]


class NCLabError(Exception):
    """Base class of every error a user of nclab can cause and fix."""


class ShapeError(NCLabError, ValueError):
    """Arrays whose shapes do not fit together."""


class LabelError(NCLabError, ValueError):
    """Labels out of range, empty classes, too few classes."""


class NonFiniteError(NCLabError, ValueError):
    """NaN or infinite values where finite numbers are required."""


class InputFileError(NCLabError, OSError):
    """A file that is missing, unreadable or lacks a required entry."""


class SpecError(NCLabError, ValueError):
    """An invalid option, configuration or experiment specification."""


class MissingExtraError(NCLabError, ModuleNotFoundError):
    """An optional dependency that is not installed; the message names the ``pip install "nclab[...]"``
    that brings it (see :mod:`nclab._extras`)."""


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its tolerance."""


class DegenerateWarning(UserWarning):
    """A legal but degenerate configuration (e.g. all class means coincide)."""
