"""A differentiable all-gather, so that contrastive negatives can come from every rank.

Each rank holds ``k`` samples of a global batch of ``K = k * world`` samples (contiguous slices, rank order: the
layout :func:`paperkit.distributed.rank_slice` produces). :func:`gather_with_grad` returns the whole global batch
and the offset of this rank's slice in it. Its backward sums, over ranks, the gradients every rank's loss sends to
each slice, and hands each rank the sum for its own slice: rank ``r`` then holds ``d(sum_q L_q)/d z_r``. With each
rank's loss the mean over its own anchors, DDP's averaging of parameter gradients over ranks gives exactly the
gradient of the mean over all anchors, the loss of one process holding the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, size = world()
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x)
        ctx.rank, ctx.n = rank, x.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        if dist.get_backend() == "nccl":
            out = torch.empty((ctx.n, *grad.shape[1:]), dtype=grad.dtype, device=grad.device)
            dist.reduce_scatter_tensor(out, grad, op=dist.ReduceOp.SUM)
            return out
        total = grad.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no reduce_scatter
        return total[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' ``x`` concatenated along dim 0 (rank order), and this rank's offset in it.

    Every rank must pass the same shape. Gradients flow back to the rank that owns each slice (summed over the
    ranks whose loss used it). In one process this is ``(x, 0)``.
    """
    rank, size = world()
    if size == 1:
        return x, 0
    return _AllGather.apply(x), rank * x.shape[0]
