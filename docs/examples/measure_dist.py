"""torchrun --nproc_per_node=2 docs/examples/measure_dist.py: every rank prints the same metrics."""

import torch
import torch.distributed as dist
from torch import nn

import nclab

dist.init_process_group("gloo")  # "nccl" on GPUs
rank, world = dist.get_rank(), dist.get_world_size()
g = torch.Generator().manual_seed(0)
y = torch.arange(90) % 3
x = torch.randn(90, 6, generator=g) + 2 * torch.eye(3, 6)[y]
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
shard = range(rank * 40, 90) if rank else range(0, 40)  # uneven shards: 40 and 50 samples
loader = [(x[i : i + 10], y[i : i + 10]) for i in range(shard.start, shard.stop, 10)]
res = nclab.measure(model, loader)
print(f"rank {rank}/{world}: n {res['num_samples']}, nc1 {res['nc1']:.6g}, nc2_etf {res['nc2_etf']:.6g}, "
      f"accuracy {res['accuracy']:.4g}")
dist.destroy_process_group()
