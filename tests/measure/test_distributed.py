"""all_reduce_stats and measure() under torchrun (2 processes, gloo, CPU, uneven shards) == one process."""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nclab.measure import all_reduce_stats, measure
from nclab.metrics import ClassStats

sys.path.insert(0, str(Path(__file__).parent))
import _dist_worker as worker  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def torchrun_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", str(Path(__file__).parent / "_dist_worker.py"), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert exe is None or exe  # torchrun is the same launcher as python -m torch.distributed.run
    return out


def test_all_reduce_equals_union(torchrun_out):
    x, y = worker.data()
    want = ClassStats(4).update(x, y)
    for r in (0, 1):
        got = torch.load(torchrun_out / f"stats{r}.pt")
        torch.testing.assert_close(got["count"], want.count, rtol=0, atol=0)
        for k in ("mean", "sq_dev", "unit_sum", "scatter"):
            torch.testing.assert_close(got[k], getattr(want, k), rtol=1e-12, atol=1e-12)
        # a rank that saw nothing takes the other's state
        x1, y1 = worker.shard(1, x, y)
        one = ClassStats(4).update(x1, y1)
        torch.testing.assert_close(got["empty_count"], one.count, rtol=0, atol=0)
        torch.testing.assert_close(got["empty_mean"], one.mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got["empty_scatter"], one.scatter, rtol=1e-12, atol=1e-12)


def test_all_reduce_is_merge_and_not_one_shard(torchrun_out):
    x, y = worker.data()
    x0, y0 = worker.shard(0, x, y)
    x1, y1 = worker.shard(1, x, y)
    merged = ClassStats(4).update(x0, y0).merge(ClassStats(4).update(x1, y1))
    got = torch.load(torchrun_out / "stats0.pt")
    torch.testing.assert_close(got["scatter"], merged.scatter, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(got["scatter"], ClassStats(4).update(x1, y1).scatter)


def test_measure_every_rank_equals_one_process(torchrun_out):
    x, y = worker.data()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double()
    loader = [(x[i:i + 7], y[i:i + 7]) for i in range(0, len(x), 7)]
    one = measure(model, loader, layers=["1"], max_feature_bytes=0)  # float64 class statistics, as the ranks
    kept = measure(model, loader, layers=["1"])  # kept features, the one-pass engine
    ranks = [json.loads((torchrun_out / f"measure{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["result"] == ranks[1]["result"]  # every rank returns the same
    got = ranks[0]["result"]
    assert got["num_samples"] == one["num_samples"] == 50
    shared = [k for k in got if isinstance(got[k], float)]
    assert {"nc1", "nc2_etf", "nc3_duality", "cdnv", "nc4_ncc_mismatch", "accuracy", "margin_min"} <= set(shared)
    assert set(got) == set(one)
    for k in shared:
        assert math.isclose(got[k], one[k], rel_tol=1e-9, abs_tol=1e-12), k
        assert math.isclose(got[k], kept[k], rel_tol=1e-9, abs_tol=1e-12), k
    for k in shared:
        assert math.isclose(ranks[0]["streamed"][k], one[k], rel_tol=1e-9, abs_tol=1e-12), k
    assert ranks[0]["streamed"]["passes"] == 2
    for k, v in got["layers"]["1"].items():
        if isinstance(v, float):
            assert math.isclose(v, one["layers"]["1"][k], rel_tol=1e-9, abs_tol=1e-12), k


def test_ranks_disagreeing_on_classes(torchrun_out):
    for r in (0, 1):
        msg = json.loads((torchrun_out / f"measure{r}.json").read_text())["disagree"]
        assert msg is not None and "disagree on the number of classes" in msg


def test_single_process_is_identity():
    x, y = worker.data()
    st = ClassStats(4).update(x, y)
    before = st.scatter.clone()
    assert all_reduce_stats(st) is st
    assert torch.equal(st.scatter, before)


def test_collapse_tracker_every_rank_equals_one_process(torchrun_out):
    # CollapseTracker under torch.distributed: kept features (two reduced passes) and streaming
    from nclab.metrics import CollapseTracker, collapse_metrics

    x, y = worker.data()
    W = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    ranks = [json.loads((torchrun_out / f"measure{r}.json").read_text())["trackers"] for r in (0, 1)]
    want = {"True": collapse_metrics(x, y, weights=W),
            "False": CollapseTracker(4, weights=W, keep_features=False).update(x, y).compute()}
    for keep in ("True", "False"):
        assert ranks[0][keep] == ranks[1][keep]
        assert set(ranks[0][keep]) == set(want[keep]), keep
        for k, v in want[keep].items():
            assert math.isclose(ranks[0][keep][k], v, rel_tol=1e-9, abs_tol=1e-12), (keep, k)
    assert "nc4_ncc_mismatch" in ranks[0]["True"] and "nc4_ncc_mismatch" not in ranks[0]["False"]
