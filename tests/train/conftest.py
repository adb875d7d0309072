"""Training tests run single-threaded: results depend on the thread count (float reduction
order), and on a shared 2-core machine one thread is also much faster."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
