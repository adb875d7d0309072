"""Memory checks made before a large allocation: refuse a size that cannot fit, naming what it needs.

Used by the entry points whose allocations grow with user-chosen sizes (``UFMProblem`` and
``solve`` in :mod:`nclab.ufm`, ``solve_md`` and ``md_objective`` in :mod:`nclab.md`). The
estimates are lower bounds of the working set (the arrays an entry point must hold at once),
so a refused problem could never have run; a problem that passes may still be slow.
"""

from __future__ import annotations

import os
from pathlib import Path

from nclab.errors import SpecError

__all__ = ["memory_limit_bytes", "format_bytes", "check_memory"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def memory_limit_bytes() -> int | None:
    """Physical memory of this machine, or this process's cgroup (v2 or v1) limit when lower.

    None where neither can be read (the checks are then skipped).
    """
    limits: list[int] = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # not on every platform
        pass
    for f in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(f).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            limits.append(int(text))
    return min(limits) if limits else None


def format_bytes(n: float) -> str:
    """``7.1 PiB``-style size (binary units)."""
    n = float(n)
    for unit in _UNITS:
        if abs(n) < 1024.0 or unit == _UNITS[-1]:
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.1f} {_UNITS[-1]}"  # pragma: no cover - the loop always returns


def check_memory(nbytes: float, what: str, advice: str) -> None:
    """Raise :class:`SpecError` when ``nbytes`` exceeds this machine's memory, before any allocation.

    The message reads ``{what} needs at least {size} of memory; this machine has {limit}. {advice}``.
    """
    limit = memory_limit_bytes()
    if limit is not None and nbytes > limit:
        raise SpecError(
            f"{what} needs at least {format_bytes(nbytes)} of memory; this machine has {format_bytes(limit)}. "
            f"{advice}"
        )
