"""Run small dense linear algebra single-threaded (torch and OpenBLAS), restoring the settings after.

The UFM solvers multiply matrices of a few hundred thousand entries thousands of times; on a shared
or loaded machine, BLAS threads then cost up to 100x more than they save (measured: 126 ms vs 0.8 ms
per objective evaluation for K=10, n=100, d=64 with 2 busy cores). OpenBLAS is reached through
ctypes, as threadpoolctl does, so no extra dependency is needed; where that fails it is a no-op.
"""

from __future__ import annotations

import contextlib
import ctypes
from typing import Iterator

_PAIRS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)
_cache: list | None = None


def _openblas_controls() -> list:
    global _cache
    if _cache is not None:
        return _cache
    controls = []
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower() and ".so" in line}
    except OSError:
        paths = set()
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in _PAIRS:
            if hasattr(lib, get) and hasattr(lib, set_):
                controls.append((getattr(lib, get), getattr(lib, set_)))
                break
    _cache = controls
    return controls


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Context manager: torch and OpenBLAS use one thread inside, their previous counts after."""
    import numpy  # noqa: F401  - make sure numpy's OpenBLAS is loaded before looking for it
    import scipy.linalg  # noqa: F401
    import torch

    threads = torch.get_num_threads()
    controls = _openblas_controls()
    before = [get() for get, _ in controls]
    torch.set_num_threads(1)
    for _, set_ in controls:
        set_(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for (_, set_), n in zip(controls, before):
            set_(max(int(n), 1))
