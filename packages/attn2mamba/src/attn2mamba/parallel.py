"""Data parallelism for the trainer: DDP, or FSDP2 (``fully_shard`` per block, then the root) for models that
outgrow one GPU's optimizer memory; full (unsharded) state dicts for checkpoints either way.

In one process every helper is the identity. Stage 1 trains only the small feature maps: its gradients are
averaged with :func:`allreduce_grads` instead of wrapping a module.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from paperkit.distributed import DistEnv, unwrap, wrap_ddp
from torch import nn


def wrap(model: nn.Module, env: DistEnv, mode: str) -> nn.Module:
    """``mode="ddp"``: DistributedDataParallel; ``"fsdp"``: shard each block and the root (in place)."""
    if not env.distributed:
        return model
    if mode == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        fully_shard(model)
        return model
    return wrap_ddp(model, env)


def base(model: nn.Module) -> nn.Module:
    """The module whose forward needs no collective: DDP's inner module (FSDP models stay as they are)."""
    return unwrap(model)


def _fsdp(env: DistEnv, mode: str) -> bool:
    return env.distributed and mode == "fsdp"


def model_state(model: nn.Module, env: DistEnv, mode: str) -> dict[str, torch.Tensor]:
    """The full state dict (a collective under FSDP; there only rank 0 receives the tensors)."""
    if _fsdp(env, mode):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return unwrap(model).state_dict()


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], env: DistEnv, mode: str) -> None:
    """Load a full (possibly partial: only the trained parameters) state dict into a wrapped model."""
    if _fsdp(env, mode):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True, strict=False))
    else:
        unwrap(model).load_state_dict(state, strict=False)


def optim_state(model: nn.Module, opt: torch.optim.Optimizer, env: DistEnv, mode: str) -> dict:
    if _fsdp(env, mode):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    return opt.state_dict()


def load_optim_state(
    model: nn.Module, opt: torch.optim.Optimizer, state: dict, env: DistEnv, mode: str
) -> None:
    if _fsdp(env, mode):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True))
    else:
        opt.load_state_dict(state)


def allreduce_grads(params: list[nn.Parameter]) -> None:
    """Average gradients over ranks (identity in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world
