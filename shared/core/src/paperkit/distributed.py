"""torchrun support: process group from the environment, DDP, rank slices of a global batch, rank-0 I/O.

One process (no torchrun) is the world of size 1 and every helper here is then the identity. The *global* batch
(per-rank batch times world size) is what scaling rules see: :func:`global_batch`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import resolve_device


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> DistEnv:
    """Read torchrun's environment; start the process group (nccl on CUDA, gloo on the CPU) when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, local, dev)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def global_batch(per_rank: int, env: DistEnv) -> int:
    """The global batch size: per-rank batch times the number of processes."""
    return per_rank * env.world_size


def rank_slice(batch: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This rank's contiguous part of a global batch (split along dim 0, which must divide evenly)."""
    if env.world_size == 1:
        return batch
    n = batch.shape[0]
    if n % env.world_size:
        raise ValueError(f"global batch {n} is not divisible by world size {env.world_size}")
    part = n // env.world_size
    return batch[env.rank * part : (env.rank + 1) * part]


def wrap_ddp(model: torch.nn.Module, env: DistEnv) -> torch.nn.Module:
    """DistributedDataParallel when world > 1 (gradients averaged over ranks), else the model itself."""
    if not env.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (in place on a copy); identity in one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return t
    out = t.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return (
        model.module
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel)
        else model
    )
