"""The Ray backend runs a two-cell sweep on a local Ray instance and writes the same rows as
the serial backend."""

from __future__ import annotations

import pytest

from nclab.experiments import run_experiment

from .test_runner import dump

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_two_cell_sweep_matches_serial(local_ray, tmp_path):
    a, b = tmp_path / "ray.sqlite", tmp_path / "serial.sqlite"
    s = run_experiment("synthetic-smoke", preset="tiny", store=a, backend="ray",
                       on_event=lambda event: None)
    assert (s.total, s.done, s.failed) == (2, 2, 0)
    assert ray.is_initialized()  # the runner leaves an instance it did not start running
    run_experiment("synthetic-smoke", preset="tiny", store=b, backend="serial")
    assert dump(a) == dump(b)
    again = run_experiment("synthetic-smoke", preset="tiny", store=a, backend="ray")
    assert (again.skipped, again.done) == (2, 0)
