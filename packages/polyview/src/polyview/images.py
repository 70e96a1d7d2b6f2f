"""Poly-view contrastive learning on an image folder with a timm backbone (the ``paper`` preset).

SimCLR's recipe at the paper's poly-view operating point (ResNet-50, M = 8 views of K = 256 samples per step):
LARS (momentum 0.9, trust coefficient 0.001; no weight decay and no adaptation on biases and norm layers),
learning rate ``base_lr * K / 256`` with a linear warm-up and a cosine decay, per step. BatchNorm becomes
SyncBatchNorm under torchrun on CUDA (SimCLR's global BN); the loss gathers every rank's embeddings.

The images stream from disk through the core's pipeline (:mod:`paperkit.streaming`): only the file list is in
memory, DataLoader workers decode, and a :class:`~paperkit.streaming.ResumableSampler` gives every rank its
disjoint slice of a per-epoch permutation. The sampler's position is saved in every checkpoint, so ``--resume``
continues on the very next batch. The M views are made either on the workers (``views_on="workers"``: each
view's random-resized-crop, flip and colour jitter from a generator seeded by (seed, epoch, image), the same on
any rank or resume) or on the device (``"device"``: the workers decode one resized image, and polyview's batched
``image_views`` adds grayscale and blur, from a per-(step, rank) generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from paperkit.device import autocast, step_generator
from paperkit.distributed import DistEnv, all_reduce_mean, unwrap, wrap_ddp
from paperkit.evaluation import knn_accuracy, linear_probe
from paperkit.optim import LARS, lars_param_groups
from paperkit.streaming import ImageList, StreamingImages, StreamingLoader, collate_skip, streaming_loader
from torch import nn

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
    load_size: int = 256  # views on the device: images are decoded at this size, then cropped
    views_on: str = "workers"  # or "device"
    workers: int = 0  # DataLoader decode workers per rank
    probe_images: int = 50_000  # at most this many training images feed the probe (a fixed random subset)


def _normalise(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Float images in [0, 1] (any leading dims, then ``[3, H, W]``) to ImageNet-normalised, on ``device``."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    return (x.to(device, non_blocking=True).float() - mean) / std


def make_loader(arm: ImageArm, images: ImageList, env: DistEnv) -> StreamingLoader:
    """The training stream: this rank's ``K / world`` samples per step, M views each on the workers, or one
    decoded image each for views on the device."""
    on_workers = arm.views_on == "workers"
    return streaming_loader(
        images,
        batch_size=arm.k // env.world_size,
        size=arm.size if on_workers else arm.load_size,
        views=arm.m if on_workers else 0,
        seed=arm.seed,
        rank=env.rank,
        world_size=env.world_size,
        workers=arm.workers,
        pin_memory=env.device.type == "cuda",
    )


def make_views(arm: ImageArm, x: torch.Tensor, step: int, env: DistEnv) -> torch.Tensor:
    """Normalised views ``[k, M, 3, size, size]`` on the device from what the loader gave."""
    if arm.views_on == "workers":
        return _normalise(x, env.device)  # [k, M, 3, s, s] already
    gen = step_generator(arm.seed, 13, step, env.rank, device=env.device)
    return image_views(
        x.to(env.device, non_blocking=True),
        arm.m,
        gen,
        size=arm.size,
        normalize=(IMAGENET_MEAN, IMAGENET_STD),
    )


def _common_size(n: int, env: DistEnv) -> int:
    """The smallest per-rank batch over ranks (the all-gather needs equal sizes when images were skipped)."""
    if not env.distributed:
        return n
    import torch.distributed as dist

    t = torch.tensor([n], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


def features(
    model: ContrastiveModel, images: ImageList, arm: ImageArm, env: DistEnv, chunk: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen backbone features of the central ``size`` square of every readable image, with their labels
    (streamed in file order; unreadable images are left out)."""
    model = unwrap(model)
    model.eval()
    loader = torch.utils.data.DataLoader(
        StreamingImages(images, size=arm.size, views=0, seed=arm.seed),
        batch_size=chunk,
        collate_fn=collate_skip,
        num_workers=arm.workers,
    )
    out, labels = [], []
    with torch.no_grad(), autocast(env.device):
        for x, y, _ in loader:
            if x.shape[0]:
                out.append(model.encode(_normalise(x.float() / 255.0, env.device)).float().cpu())
                labels.append(y)
    model.train()
    return torch.cat(out), torch.cat(labels)


def train_images(run, key: str, arm: ImageArm, data: dict, env: DistEnv) -> dict:
    """Train on the streamed ``data["train"]`` (an :class:`ImageList`); probe on ``data["test"]``; resume from
    checkpoints (weights, optimiser and the sampler's position)."""
    if arm.k % env.world_size:
        raise ValueError(f"K = {arm.k} samples per step is not divisible by {env.world_size} ranks")
    loader = make_loader(arm, data["train"], env)
    per_epoch = loader.sampler.batches_per_epoch
    steps = max(1, round(arm.epochs * per_epoch))
    warmup = round(arm.warmup_epochs * per_epoch)
    torch.manual_seed(arm.seed)
    model = timm_model(arm.model, proj_hidden=arm.proj_hidden, proj_dim=arm.proj_dim)
    if env.distributed and env.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(env.device)
    peak = arm.base_lr * arm.k / 256
    opt = LARS(lars_param_groups(model, arm.weight_decay), lr=peak)
    ckpt = run.checkpoint(key)
    start, curve, window, short = 0, [], [], 0
    if ckpt.exists():
        start, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        opt.load_state_dict(state["optimizer"])
        curve, window, short = list(state["curve"]), list(state["window"]), int(state.get("short_steps", 0))
        loader.load_state_dict(state["sampler"])
    ddp = wrap_ddp(model, env)

    def save(step: int) -> None:
        # the sampler's position counts the batches the loop has taken: exactly ``step`` of them
        ckpt.save(
            step,
            {"model": model},
            {
                "optimizer": opt.state_dict(),
                "curve": curve,
                "window": window,
                "sampler": loader.state_dict(),
                "short_steps": short,
            },
        )

    def batches():
        while True:  # one epoch after another; the loader moves its sampler to the next epoch
            yield from loader

    stream = batches()
    log_every = max(1, min(50, steps // 20))
    for step in run.steps(steps, start=start, desc=key, save=save):
        lr = lr_at(step, steps, warmup, peak)
        for group in opt.param_groups:
            group["lr"] = lr
        x, _ = next(stream)
        n = _common_size(x.shape[0], env)
        if n < x.shape[0]:
            short += 1  # an unreadable image was dropped on some rank: every rank uses the common size
        if n < 2:
            continue  # (almost) every image of this batch was unreadable: no contrast to make
        views = make_views(arm, x[:n], step, env)
        with autocast(env.device):
            z = ddp(views).float()  # [k, M, proj]
        loss = pvc_loss(z, arm.tau, arm.method, gather=True)
        value = all_reduce_mean(loss.detach()).item()
        run.check_finite(value, where=f"{key} step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(value)
        if window and ((step + 1) % log_every == 0 or step + 1 == steps):
            point = {"arm": key, "step": step + 1, "lr": lr, "loss": sum(window) / len(window)}
            window = []
            curve.append(point)
            run.log(**point)
    save(steps)
    probe_train = data["train"]
    if len(probe_train) > arm.probe_images:
        _, probe_train = probe_train.split(arm.probe_images / len(probe_train), arm.seed + 1)
    ftr, ytr = features(model, probe_train, arm, env)
    fte, yte = features(model, data["test"], arm, env)
    return {
        "steps": steps,
        "steps_per_epoch": per_epoch,
        "curve": curve,
        "skipped_images": loader.skipped,
        "short_steps": short,
        "probe_images": len(ytr),
        "probe_acc": linear_probe(ftr, ytr, fte, yte),
        "knn_acc": knn_accuracy(ftr, ytr, fte, yte, k=min(20, len(ftr))),
    }
