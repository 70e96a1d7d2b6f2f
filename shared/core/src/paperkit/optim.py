"""Optimizers that more than one package uses: LARS (BYOL, SimCLR/poly-view) and its parameter groups."""

from __future__ import annotations

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as used by BYOL: SGD with momentum where each tensor's step is scaled by the trust
    ratio ``eta * ||w|| / ||g + wd * w||``. Param groups with ``exclude_from_wd=True`` (biases, norms) get
    neither weight decay nor adaptation. One vectorised pass per group (``torch._foreach_*``)."""

    def __init__(
        self,
        params,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
        eps: float = 1e-9,
    ):
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            trust_coefficient=trust_coefficient,
            eps=eps,
            exclude_from_wd=False,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if not group["exclude_from_wd"]:
                if group["weight_decay"]:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = torch.where(
                    (w_norm > 0) & (g_norm > 0),
                    group["trust_coefficient"] * w_norm / (g_norm + group["eps"]),
                    torch.ones_like(w_norm),
                )
                grads = torch._foreach_mul(grads, list(trust.unbind()))
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, grads)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss


def lars_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The BYOL/SimCLR convention: weights get weight decay and LARS adaptation; biases and normalisation
    parameters (tensors of one dimension or less) get neither."""
    decay, plain = [], []
    for p in model.parameters():
        if p.requires_grad:
            (plain if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0, "exclude_from_wd": True},
    ]
