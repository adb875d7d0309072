"""Run under ``torchrun --nproc_per_node=2``: each rank measures an uneven shard; writes its results.

Usage: torchrun ... _dist_worker.py OUT_DIR
"""

import json
import sys

import torch
import torch.distributed as dist
from torch import nn

from nclab.errors import ShapeError
from nclab.measure import all_reduce_stats, measure
from nclab.metrics import ClassStats


def data():
    g = torch.Generator().manual_seed(0)
    n, d, C = 50, 6, 4
    y = torch.arange(n) % C
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 3 * torch.eye(C, d, dtype=torch.float64)[y]
    return x, y


def shard(rank, x, y):
    # uneven: rank 0 has 13 samples and no sample of class 3; rank 1 the rest
    idx0 = torch.nonzero(y != 3).flatten()[:13]
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[idx0] = False
    idx = idx0 if rank == 0 else torch.nonzero(mask).flatten()
    return x[idx], y[idx]


def main(out_dir):
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    x, y = data()
    xs, ys = shard(rank, x, y)
    st = ClassStats(4)
    for i in range(0, len(xs), 5):
        st.update(xs[i:i + 5], ys[i:i + 5])
    all_reduce_stats(st)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double()  # float64: rank-independent rows
    res = measure(model, [(xs[i:i + 4], ys[i:i + 4]) for i in range(0, len(xs), 4)], layers=["1"])
    empty = ClassStats(4)  # a rank with nothing on rank 0
    if rank == 1:
        empty.update(xs, ys)
    all_reduce_stats(empty)
    try:
        all_reduce_stats(ClassStats(4 + rank).update(xs, ys.clamp_max(3)))
        disagree = None
    except ShapeError as e:
        disagree = str(e)
    torch.save({"count": st.count, "mean": st.mean, "sq_dev": st.sq_dev, "unit_sum": st.unit_sum,
                "scatter": st.scatter, "empty_count": empty.count, "empty_mean": empty.mean,
                "empty_scatter": empty.scatter}, f"{out_dir}/stats{rank}.pt")
    streamed = measure(model, [(xs[i:i + 4], ys[i:i + 4]) for i in range(0, len(xs), 4)], layers=["1"],
                       max_feature_bytes=0)  # two passes over each rank's shard
    from nclab.metrics import CollapseTracker

    W = torch.randn(4, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    trackers = {}
    for keep in (True, False):
        tr = CollapseTracker(4, weights=W, keep_features=keep)
        for i in range(0, len(xs), 6):
            tr.update(xs[i:i + 6], ys[i:i + 6])
        trackers[str(keep)] = dict(tr.compute())
    with open(f"{out_dir}/measure{rank}.json", "w") as f:
        json.dump({"result": res, "streamed": streamed, "disagree": disagree, "trackers": trackers}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
