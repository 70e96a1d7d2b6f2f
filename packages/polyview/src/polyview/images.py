"""Poly-view contrastive learning on an image folder with a timm backbone (the ``paper`` preset).

SimCLR's recipe at the paper's poly-view operating point (ResNet-50, M = 8 views of K = 256 samples per step):
LARS (momentum 0.9, trust coefficient 0.001; no weight decay and no adaptation on biases and norm layers),
learning rate ``base_lr * K / 256`` with a linear warm-up and a cosine decay, per step. Views are made on each
rank's device from a per-(step, rank) generator; the loss gathers every rank's embeddings. BatchNorm becomes
SyncBatchNorm under torchrun on CUDA (SimCLR's global BN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from paperkit.device import autocast, step_generator
from paperkit.distributed import DistEnv, all_reduce_mean, unwrap, wrap_ddp
from paperkit.evaluation import knn_accuracy, linear_probe
from paperkit.optim import LARS, lars_param_groups
from torch import nn

from .digits import sample_indices
from .encoders import ContrastiveModel, timm_model
from .losses import pvc_loss
from .views import IMAGENET_MEAN, IMAGENET_STD, image_views


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to ``peak`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class ImageArm:
    model: str
    m: int
    k: int  # global samples per step
    epochs: float
    base_lr: float
    weight_decay: float
    warmup_epochs: float
    tau: float
    method: str
    size: int
    proj_hidden: int
    proj_dim: int
    seed: int


def _normalise(x: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    x = F.interpolate(x.to(device).float() / 255.0, size=size, mode="bilinear", antialias=True)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def features(
    model: ContrastiveModel, x: torch.Tensor, size: int, env: DistEnv, chunk: int = 256
) -> torch.Tensor:
    model = unwrap(model)
    model.eval()
    out = []
    with torch.no_grad(), autocast(env.device):
        for i in range(0, x.shape[0], chunk):
            out.append(model.encode(_normalise(x[i : i + chunk], size, env.device)).float().cpu())
    model.train()
    return torch.cat(out)


def train_images(run, key: str, arm: ImageArm, data: dict, env: DistEnv) -> dict:
    """Train on ``data["x_train"]`` (uint8 ``[N, 3, H, W]``); probe on ``x_test``; resume from checkpoints."""
    if arm.k % env.world_size:
        raise ValueError(f"K = {arm.k} samples per step is not divisible by {env.world_size} ranks")
    x_train = data["x_train"]
    n = x_train.shape[0]
    steps = max(1, round(arm.epochs * n / arm.k))
    warmup = round(arm.warmup_epochs * n / arm.k)
    torch.manual_seed(arm.seed)
    model = timm_model(arm.model, proj_hidden=arm.proj_hidden, proj_dim=arm.proj_dim)
    if env.distributed and env.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(env.device)
    peak = arm.base_lr * arm.k / 256
    opt = LARS(lars_param_groups(model, arm.weight_decay), lr=peak)
    ckpt = run.checkpoint(key)
    start, curve, window = 0, [], []
    if ckpt.exists():
        start, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        opt.load_state_dict(state["optimizer"])
        curve, window = list(state["curve"]), list(state["window"])
    ddp = wrap_ddp(model, env)
    per_rank = arm.k // env.world_size

    def save(step: int) -> None:
        ckpt.save(step, {"model": model}, {"optimizer": opt.state_dict(), "curve": curve, "window": window})

    log_every = max(1, min(50, steps // 20))
    for step in run.steps(steps, start=start, desc=key, save=save):
        lr = lr_at(step, steps, warmup, peak)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = sample_indices(arm.seed, 1, n, step * arm.k, arm.k)[0]
        idx = idx[env.rank * per_rank : (env.rank + 1) * per_rank]
        gen = step_generator(arm.seed, 13, step, env.rank, device=env.device)
        views = image_views(
            x_train[idx].to(env.device), arm.m, gen, size=arm.size, normalize=(IMAGENET_MEAN, IMAGENET_STD)
        )
        with autocast(env.device):
            z = ddp(views).float()  # [k, M, proj]
        loss = pvc_loss(z, arm.tau, arm.method, gather=True)
        value = all_reduce_mean(loss.detach()).item()
        run.check_finite(value, where=f"{key} step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(value)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            point = {"arm": key, "step": step + 1, "lr": lr, "loss": sum(window) / len(window)}
            window = []
            curve.append(point)
            run.log(**point)
    save(steps)
    ftr = features(model, x_train, arm.size, env)
    fte = features(model, data["x_test"], arm.size, env)
    return {
        "steps": steps,
        "curve": curve,
        "probe_acc": linear_probe(ftr, data["y_train"], fte, data["y_test"]),
        "knn_acc": knn_accuracy(ftr, data["y_train"], fte, data["y_test"], k=min(20, len(ftr))),
    }
