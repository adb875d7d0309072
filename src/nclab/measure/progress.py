"""Progress bars for :func:`nclab.measure` on a terminal (``progress=True``).

The library prints nothing unless asked: ``measure(..., progress=True)`` draws one rich bar per pass
on stderr when stderr is a terminal (nothing otherwise); any callable ``progress(pass_name,
batches_done)`` replaces it.
"""

from __future__ import annotations

import sys
from typing import Callable


class TerminalBars:
    """A callable ``(pass_name, batches_done)`` drawing a rich progress bar per pass on stderr."""

    def __init__(self, total: int | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.total = total
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        self._tasks: dict[str, int] = {}
        self._progress.start()

    def __call__(self, name: str, done: int) -> None:
        if name not in self._tasks:
            self._tasks[name] = self._progress.add_task(f"nclab.measure {name}", total=self.total)
        self._progress.update(self._tasks[name], completed=done)

    def close(self) -> None:
        self._progress.stop()


def resolve(progress, loader) -> tuple[Callable[[str, int], None] | None, Callable[[], None]]:
    """``(callback, close)`` for the ``progress`` argument: True draws bars on a terminal."""
    if progress is True:
        if not sys.stderr.isatty():
            return None, lambda: None
        try:
            total = len(loader)
        except TypeError:
            total = None
        bars = TerminalBars(total)
        return bars, bars.close
    if progress in (None, False):
        return None, lambda: None
    if not callable(progress):
        from nclab.errors import SpecError

        raise SpecError(f"progress must be True, False or a callable (pass_name, batches_done); got {progress!r}.")
    return progress, lambda: None
