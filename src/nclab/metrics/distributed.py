r"""Exact reduction of :class:`~nclab.metrics.ClassStats` across a ``torch.distributed`` process group.

Every rank r holds, per class c, the count :math:`n_{rc}`, the mean :math:`m_{rc}`, the sum of
squared deviations :math:`s_{rc}`, the unit-vector sum :math:`u_{rc}` and the pooled within-class
scatter :math:`S_r`. With all-reduce (sum) only, never gathering a rank's state:

1. :math:`n_c = \sum_r n_{rc}` and :math:`m_c = \frac{1}{n_c}\sum_r n_{rc} m_{rc}` (0 for an empty class);
2. by the parallel-axis theorem (the k-way form of Chan, Golub & LeVeque's merge)

   .. math::

      s_c = \sum_r \big(s_{rc} + n_{rc}\|m_{rc} - m_c\|^2\big), \qquad
      S = \sum_r \Big(S_r + \sum_c n_{rc}(m_{rc} - m_c)(m_{rc} - m_c)^\top\Big);

3. :math:`u_c = \sum_r u_{rc}`.

Each rank computes its bracket and one all-reduce sums them, so every rank ends with the same
state, equal to :meth:`ClassStats.merge` of all ranks' states up to rounding. Three collectives in
all (a metadata check, the counts and sums, the centred second moments); traffic O(C d + d^2).
Works with every backend that sums float64 (gloo on CPU, NCCL on GPUs).
"""

from __future__ import annotations

import math

import torch

from nclab.errors import ShapeError
from nclab.metrics.stats import ClassStats

__all__ = ["all_reduce_stats", "all_reduce_decisions", "is_distributed", "world"]


def is_distributed(group=None) -> bool:
    """True when ``torch.distributed`` is initialised with more than one process in ``group``."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def world(group=None) -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without ``torch.distributed``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(group), dist.get_world_size(group)
    return 0, 1


def _comm_device(device: torch.device | None, group) -> torch.device:
    """The device collectives run on: the state's device, or CUDA for NCCL when the state is empty."""
    import torch.distributed as dist

    if device is not None:
        return device
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_stats(stats: ClassStats, group=None) -> ClassStats:
    """Replace ``stats`` on every rank by the exact merge of all ranks' states. Returns ``stats``.

    Parameters
    ----------
    stats : ClassStats
        This rank's accumulator (it may be empty: a rank with no sample contributes nothing).
    group : ProcessGroup, optional
        Default: the world.

    Raises
    ------
    ShapeError
        When the ranks disagree on the number of classes, the feature dimension or whether the
        scatter is tracked.

    Notes
    -----
    Without an initialised process group (or with one process) ``stats`` is returned unchanged.
    """
    import torch.distributed as dist

    if not is_distributed(group):
        return stats
    C = stats.num_classes
    dev = _comm_device(None if stats.count is None else stats.count.device, group)
    dim = -1 if stats.dim is None else int(stats.dim)
    big = 1 << 62
    exp = math.frexp(stats.scale)[1] if stats.dim is not None else -(1 << 20)  # state in units of 2^(exp-1)
    meta = torch.tensor([C, -C, dim, -(dim if dim >= 0 else big), int(stats.track_scatter), -int(stats.track_scatter),
                         exp], dtype=torch.int64, device=dev)
    dist.all_reduce(meta, op=dist.ReduceOp.MAX, group=group)
    c_max, c_min, d_max, d_min = int(meta[0]), -int(meta[1]), int(meta[2]), -int(meta[3])
    if c_max != c_min:
        raise ShapeError(f"the ranks disagree on the number of classes (from {c_min} to {c_max}); "
                         "pass the same num_classes (the same classifier) on every rank.")
    if d_max < 0:
        return stats  # no rank has seen a sample
    if d_min != big and d_min != d_max:
        raise ShapeError(f"the ranks disagree on the feature dimension (from {d_min} to {d_max}); "
                         "every rank must measure the same layer.")
    if int(meta[4]) != -int(meta[5]):
        raise ShapeError("some ranks track the within-class scatter and others do not; use the same "
                         "track_scatter on every rank.")
    d = d_max
    scale = math.ldexp(1.0, int(meta[6]) - 1)  # the largest power-of-two scale of the ranks: no overflow
    if stats.dim is not None and stats.scale != scale:  # to common units (powers of two: exact)
        f = stats.scale / scale
        stats.mean = stats.mean * f
        stats.sq_dev = stats.sq_dev * (f * f)
        if stats.scatter is not None:
            stats.scatter = stats.scatter * (f * f)
        stats.scale = scale
    if stats.dim is None:  # an empty shard: the zero state of the right shape
        opts = dict(dtype=torch.float64, device=dev)
        stats.dim, stats.device, stats.scale = d, dev, scale
        stats.count, stats.mean = torch.zeros(C, **opts), torch.zeros(C, d, **opts)
        stats.sq_dev, stats.unit_sum = torch.zeros(C, **opts), torch.zeros(C, d, **opts)
        stats.scatter = torch.zeros(d, d, **opts) if stats.track_scatter else None
    n_r, m_r = stats.count, stats.mean
    # 1. counts and sums -> global means
    first = torch.cat([n_r, (m_r * n_r[:, None]).flatten()])
    dist.all_reduce(first, op=dist.ReduceOp.SUM, group=group)
    n = first[:C]
    m = first[C:].view(C, d) / torch.where(n > 0, n, torch.ones_like(n))[:, None]
    # 2. this rank's centred second moments about the global means, summed over ranks
    delta = m_r - m
    parts = [stats.sq_dev + n_r * (delta * delta).sum(1), stats.unit_sum.flatten()]
    if stats.track_scatter:
        active = (n_r > 0).nonzero().flatten()
        S = stats.scatter.clone()
        if active.numel():
            da = delta[active]
            S += da.T @ (da * n_r[active, None])
        parts.append(S.flatten())
    second = torch.cat(parts)
    dist.all_reduce(second, op=dist.ReduceOp.SUM, group=group)
    stats.count = n
    stats.mean = m
    stats.sq_dev = second[:C].clone()
    stats.unit_sum = second[C: C + C * d].view(C, d).clone()
    if stats.track_scatter:
        stats.scatter = second[C + C * d:].view(d, d).clone()
    return stats


def all_reduce_decisions(dp, group=None):
    """Reduce a :class:`~nclab.metrics.DecisionPass` over the ranks (each accumulator of
    :meth:`~nclab.metrics.DecisionPass.state` by its declared reduction, sum or min), made on the same
    reduced moments: every rank then holds the pass over the union of the shards. Returns ``dp``."""
    import torch.distributed as dist

    if not is_distributed(group):
        return dp
    dev = dp._count.device
    # a rank that saw no row has not set up its products: take the precision of the others
    code = {None: 0, torch.float32: 1, torch.float64: 2}[dp.compute_dtype]
    meta = torch.tensor([code], dtype=torch.int64, device=dev)
    dist.all_reduce(meta, op=dist.ReduceOp.MAX, group=group)
    if int(meta[0]) == 0:
        return dp
    dp.prepare({1: torch.float32, 2: torch.float64}[int(meta[0])])
    state = dp.state()
    reduced = {}
    for op_name, op in (("sum", dist.ReduceOp.SUM), ("min", dist.ReduceOp.MIN)):
        names = [k for k, (_, how) in state.items() if how == op_name]
        flat = torch.cat([state[k][0].to(torch.float64).flatten() for k in names])
        dist.all_reduce(flat, op=op, group=group)
        i = 0
        for k in names:
            n = state[k][0].numel()
            reduced[k] = flat[i : i + n]
            i += n
    dp.load_state(reduced)
    return dp
