"""Optimizer scaling rules beside the EMA Scaling Rule (LARS itself lives in ``paperkit.optim``).

When the batch grows from ``B`` to ``kappa * B`` (Busbridge et al. 2023, Sec. 2 and Table 1):

=========  ==========================================================================================
SGD        lr * kappa (linear scaling rule, Goyal et al. 2017); SGD momentum and weight decay unchanged
Adam(W)    lr * sqrt(kappa), 1 - beta_i -> kappa * (1 - beta_i), eps / sqrt(kappa)
           (square-root rule, Malladi et al. 2022); weight decay unchanged
LARS       lr * kappa by default (BYOL's ``base_lr * batch / 256``); ``lars_rule="sqrt"`` for lr * sqrt(kappa)
model EMA  rho ** kappa (the EMA Scaling Rule)
=========  ==========================================================================================

:func:`scale_hparams` takes the base hyperparameters and kappa and returns the scaled ones;
:func:`build_optimizer` builds the optimizer and :func:`apply_hparams` updates it in place when kappa changes
(progressive scaling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from paperkit.ema import scale_momentum
from paperkit.optim import LARS

OPTIMIZERS = ("sgd", "adam", "adamw", "lars")


@dataclass(frozen=True)
class Hparams:
    """Hyperparameters at the base batch size (or, from :func:`scale_hparams`, at kappa times it)."""

    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9  # SGD / LARS heavy-ball momentum
    betas: tuple[float, float] = (0.9, 0.999)  # Adam(W)
    eps: float = 1e-8  # Adam(W)
    weight_decay: float = 0.0
    trust_coefficient: float = 1e-3  # LARS eta
    ema_momentum: float | None = None  # the model EMA's rho, if there is one
    kappa: float = 1.0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"unknown optimizer rule {self.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"weight decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        if self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        if self.ema_momentum is not None and not 0 <= self.ema_momentum < 1:
            raise ValueError(f"EMA momentum must lie in [0, 1), got {self.ema_momentum}")


def scale_hparams(
    base: Hparams, kappa: float, *, ema_rule: str = "exp", lars_rule: str = "linear"
) -> Hparams:
    """The hyperparameters for ``kappa`` times the base batch (``base.kappa`` must be 1)."""
    kappa = float(kappa)
    if not (kappa > 0 and math.isfinite(kappa)):
        raise ValueError(f"kappa (batch scale) must be a positive finite number, got {kappa}")
    if base.kappa != 1.0:
        raise ValueError("scale_hparams takes the base hyperparameters (kappa = 1)")
    if lars_rule not in ("linear", "sqrt"):
        raise ValueError(f"unknown LARS rule {lars_rule!r}; expected linear or sqrt")
    ema = None if base.ema_momentum is None else scale_momentum(base.ema_momentum, kappa, ema_rule)
    if base.optimizer == "sgd" or (base.optimizer == "lars" and lars_rule == "linear"):
        return replace(base, lr=base.lr * kappa, ema_momentum=ema, kappa=kappa)
    if base.optimizer == "lars":
        return replace(base, lr=base.lr * math.sqrt(kappa), ema_momentum=ema, kappa=kappa)
    betas = tuple(max(0.0, 1.0 - kappa * (1.0 - b)) for b in base.betas)
    return replace(
        base,
        lr=base.lr * math.sqrt(kappa),
        betas=betas,
        eps=base.eps / math.sqrt(kappa),
        ema_momentum=ema,
        kappa=kappa,
    )


def _group_kwargs(hp: Hparams) -> dict:
    if hp.optimizer in ("sgd", "lars"):
        return {"lr": hp.lr, "momentum": hp.momentum, "weight_decay": hp.weight_decay}
    return {"lr": hp.lr, "betas": tuple(hp.betas), "eps": hp.eps, "weight_decay": hp.weight_decay}


def build_optimizer(params, hp: Hparams) -> torch.optim.Optimizer:
    """The optimizer named by ``hp`` with its (already scaled) hyperparameters."""
    kw = _group_kwargs(hp)
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, **kw)
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, **kw)
    if hp.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    return LARS(params, trust_coefficient=hp.trust_coefficient, **kw)


def apply_hparams(optimizer: torch.optim.Optimizer, hp: Hparams, lr_factor: float = 1.0) -> None:
    """Set every param group's scaled hyperparameters (``lr_factor`` multiplies the lr, for schedules)."""
    kw = _group_kwargs(hp)
    kw["lr"] = hp.lr * lr_factor
    for group in optimizer.param_groups:
        for k, v in kw.items():
            if k == "weight_decay" and group.get("exclude_from_wd"):
                continue
            group[k] = v


@dataclass(frozen=True)
class BatchSchedule:
    """Progressive scaling: the (global) batch size as a function of samples seen.

    ``stages`` is ``((start_sample, batch_size), ...)`` with the first start at 0, e.g. ``((0, 32), (50_000,
    256))``. Every scaled hyperparameter is recomputed from ``kappa = batch / base_batch_size`` at each change.
    """

    base_batch_size: int
    stages: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if self.base_batch_size <= 0:
            raise ValueError(f"base batch size must be positive, got {self.base_batch_size}")
        if not self.stages or self.stages[0][0] != 0:
            raise ValueError("a batch schedule's first stage must start at sample 0")
        starts = [s for s, _ in self.stages]
        if starts != sorted(set(starts)):
            raise ValueError("batch schedule stages must start at increasing sample counts")
        if any(b <= 0 for _, b in self.stages):
            raise ValueError("batch sizes must be positive")

    @classmethod
    def constant(cls, base_batch_size: int, kappa: int = 1) -> BatchSchedule:
        return cls(base_batch_size, ((0, base_batch_size * kappa),))

    def batch_at(self, samples_seen: int) -> int:
        batch = self.stages[0][1]
        for start, b in self.stages:
            if samples_seen >= start:
                batch = b
        return batch

    def kappa_at(self, samples_seen: int) -> float:
        return self.batch_at(samples_seen) / self.base_batch_size
