"""nclab.ufm._threads.single_thread: torch and every threadpoolctl-visible pool at one thread inside,
the previous counts after (also after an exception)."""

from __future__ import annotations

import pytest
import torch
from threadpoolctl import threadpool_info, threadpool_limits

from nclab.ufm._threads import single_thread


def _pools():
    return {(p["internal_api"], p["filepath"]): p["num_threads"] for p in threadpool_info()}


@pytest.fixture
def torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_single_thread_limits_and_restores_every_pool(torch_threads):
    import scipy.linalg  # noqa: F401  - every BLAS the solvers use is loaded before the snapshot

    torch.set_num_threads(2)
    with threadpool_limits(limits=2):  # a known state with more than one thread
        torch_before, before = torch.get_num_threads(), _pools()
        assert torch_before == 2 and before and all(n == 2 for n in before.values())
        with single_thread():
            assert torch.get_num_threads() == 1
            inside = _pools()
            assert set(inside) >= set(before) and all(n == 1 for n in inside.values())
        assert torch.get_num_threads() == torch_before
        assert {k: v for k, v in _pools().items() if k in before} == before
        with pytest.raises(RuntimeError):
            with single_thread():
                raise RuntimeError("boom")
        assert torch.get_num_threads() == torch_before and _pools() == before


def test_single_thread_reaches_numpy_blas():
    import numpy  # noqa: F401

    assert any(p["user_api"] == "blas" for p in threadpool_info()), "NumPy's BLAS not visible"
    with single_thread():
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
