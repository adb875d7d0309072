"""Run small dense linear algebra single-threaded (torch, and every BLAS/OpenMP pool through
threadpoolctl), restoring the settings after.

The UFM solvers multiply matrices of a few hundred thousand entries thousands of times; on a shared
or loaded machine, BLAS threads then cost up to 100x more than they save (measured: 126 ms vs 0.8 ms
per objective evaluation for K=10, n=100, d=64 with 2 busy cores). torch's intra-op pool is set with
``torch.set_num_threads``; NumPy's and SciPy's BLAS (OpenBLAS, MKL, BLIS) and OpenMP runtimes with
:class:`threadpoolctl.ThreadpoolController`, created once per process after NumPy, SciPy and torch
are loaded (its library scan costs milliseconds; :meth:`~threadpoolctl.ThreadpoolController.limit`
on the cached controller costs microseconds).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

__all__ = ["single_thread"]

_controller = None


def _threadpools():
    global _controller
    if _controller is None:
        import numpy  # noqa: F401  - load every BLAS the solvers use before scanning
        import scipy.linalg  # noqa: F401
        import torch  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Context manager: torch and every BLAS/OpenMP pool use one thread inside, their previous
    counts after (also when the body raises)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _threadpools().limit(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)
