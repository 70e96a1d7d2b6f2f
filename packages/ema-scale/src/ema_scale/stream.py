"""BYOL on an image folder (the ``paper`` preset) through the core's streaming pipeline.

Only the file list lives in memory (:class:`paperkit.streaming.ImageList`); images are decoded on DataLoader
workers into two augmented views each (:class:`~paperkit.streaming.StreamingImages`, random resized crop, flip,
colour jitter, per-view random parameters from ``(seed, epoch, index)``), and a
:class:`~paperkit.streaming.ResumableSampler` gives every rank its slice of each global batch of a per-epoch
permutation. The sampler's position goes into the checkpoint with the weights, the EMA and the optimizer, so an
interrupted run resumes on the very next batch (a test checks that resume equals an uninterrupted run).

Hyperparameters follow BYOL (LARS, linear warm-up then cosine decay of the learning rate, target momentum cosine
from ``img_rho`` to 1, all in samples seen) with the scaling rules at ``kappa = img_kappa``: lr x kappa (LARS,
linear) and ``rho ** kappa``. A corrupt image met mid-epoch is dropped from its batch and counted
(``skipped``); with DDP every rank must keep at least one image per batch (one whose whole per-rank batch is
unreadable stops the run with that message).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from paperkit import ConfigError, Run
from paperkit.device import autocast
from paperkit.distributed import DistEnv, all_reduce_mean, unwrap, wrap_ddp
from paperkit.ema import Cosine, ScaledEMA
from paperkit.evaluation import knn_accuracy, linear_probe
from paperkit.optim import lars_param_groups
from paperkit.streaming import ImageList, StreamingImages, collate_skip, streaming_loader

from .config import Config
from .digits import byol_loss_per_seed
from .images import MEAN, STD, ImageBYOL
from .rules import Hparams, apply_hparams, build_optimizer, scale_hparams

KEY = "byol-images"


def open_images(cfg: Config) -> tuple[ImageList, ImageList]:
    """The folder (or file list) checked up front, split into ``(train, test)``: every bad-input error is one
    line (:class:`~paperkit.ConfigError`) before any training."""
    images = ImageList.open(cfg.data).check()
    train, test = images.split(cfg.img_test_fraction, cfg.seed)
    if len(train) < cfg.img_base_batch * cfg.img_kappa:
        raise ConfigError(
            f"--data {cfg.data}: {len(train)} training images, fewer than one global batch "
            f"({cfg.img_base_batch} x {cfg.img_kappa})"
        )
    return train, test


def lr_factor(samples: int, batch: int, warmup: int, total: int) -> float:
    """BYOL's learning-rate schedule at the step that ends at ``samples + batch``: linear warm-up over
    ``warmup`` samples, then cosine decay to 0 at ``total`` (both in samples seen, so every kappa shares it)."""
    end = samples + batch
    if warmup and end <= warmup:
        return end / warmup
    t = min(1.0, (samples - warmup) / max(1, total - warmup)) if total > warmup else 1.0
    return 0.5 * (1.0 + math.cos(math.pi * max(0.0, t)))


def train_images(cfg: Config, env: DistEnv, run: Run, train: ImageList, test: ImageList) -> dict:
    batch = cfg.img_base_batch * cfg.img_kappa
    if batch % env.world_size:
        raise ConfigError(f"global batch {batch} is not divisible by {env.world_size} ranks")
    per_rank = batch // env.world_size
    loader = streaming_loader(
        train,
        batch_size=per_rank,
        size=cfg.image_size,
        views=2,
        seed=cfg.seed,
        rank=env.rank,
        world_size=env.world_size,
        workers=cfg.img_workers,
        pin_memory=env.device.type == "cuda",
    )
    steps_total = max(1, round(cfg.img_epochs * loader.sampler.batches_per_epoch))
    total = steps_total * batch
    warmup = int(round(cfg.img_warmup_epochs * loader.sampler.batches_per_epoch)) * batch

    torch.manual_seed(cfg.seed)
    model = ImageBYOL(cfg.model).to(env.device)
    # BYOL's target normalises with batch statistics (train mode), as BYOL and solo-learn do
    ema = ScaledEMA(
        model.ema_source(), Cosine(cfg.img_rho, 1.0, total), base_batch_size=cfg.img_base_batch, mode="train"
    )
    base = Hparams(
        cfg.img_optimizer,
        lr=cfg.img_lr,
        momentum=0.9,
        weight_decay=cfg.img_weight_decay,
        ema_momentum=cfg.img_rho,
    )
    hp = scale_hparams(base, cfg.img_kappa)
    params = lars_param_groups(model, hp.weight_decay) if cfg.img_optimizer == "lars" else model.parameters()
    opt = build_optimizer(params, hp)
    ckpt = run.checkpoint(KEY)
    samples, curve, losses = 0, [], []
    if ckpt.exists():
        _, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        ema.load_state_dict(weights["ema"])
        opt.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])  # the next batch is the one after the checkpoint's
        samples, curve, losses = int(state["samples"]), list(state["curve"]), list(state["losses"])
    ddp = wrap_ddp(model, env)
    mean, std = MEAN.to(env.device), STD.to(env.device)

    def save(step: int) -> None:
        ckpt.save(
            step,
            {"model": model, "ema": ema},
            {
                "optimizer": opt.state_dict(),
                "loader": loader.state_dict(),
                "samples": samples,
                "curve": curve,
                "losses": losses,
            },
        )

    batches = iter(loader)

    def next_batch() -> torch.Tensor:
        nonlocal batches
        for _ in range(2):  # at an epoch's end the iterator stops once; the next epoch starts a new one
            try:
                return next(batches)[0]
            except StopIteration:
                batches = iter(loader)
        raise RuntimeError("the streaming loader gave no batch for a whole epoch")

    for step in run.steps(steps_total, start=samples // batch, desc=KEY, save=save):
        apply_hparams(opt, hp, lr_factor=lr_factor(samples, batch, warmup, total))
        x = next_batch()  # [b, 2, 3, H, W] in [0, 1]; b < per_rank when unreadable images were dropped
        if x.shape[0] == 0:
            raise RuntimeError(f"{KEY} step {step}: every image of this rank's batch was unreadable")
        x = x.to(env.device, non_blocking=True)
        views = ((torch.cat([x[:, 0], x[:, 1]]) - mean) / std)[None]  # [1, 2b, 3, H, W], view-major
        with autocast(env.device):
            with torch.no_grad():
                z1, z2 = ema(views).float().chunk(2, dim=1)
            p1, p2 = ddp(views).float().chunk(2, dim=1)
        loss = (byol_loss_per_seed(p1, z2) + byol_loss_per_seed(p2, z1)).sum()
        value = all_reduce_mean(loss.detach()).item()
        run.check_finite(value, where=f"{KEY} step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(unwrap(ddp).ema_source(), batch_size=batch)
        samples += batch
        losses.append(value)
        if (step + 1) % cfg.img_log_every == 0 or step + 1 == steps_total:
            point = {
                "arm": KEY,
                "samples": samples,
                "epoch": loader.epoch,
                "kappa": cfg.img_kappa,
                "global_batch": batch,
                "per_rank_batch": per_rank,
                "loss": sum(losses) / len(losses),
                "ema_momentum": ema.momentum_at(batch),
                "lr": opt.param_groups[0]["lr"],
                "skipped": loader.skipped,
            }
            losses = []
            curve.append(point)
            run.log(**point)
    save(steps_total)  # the final weights (model and EMA) stay in checkpoints/byol-images/
    final = {**(curve[-1] if curve else {}), **probe(unwrap(ddp), train, test, cfg, env)}
    return {
        "curve": curve,
        "final": final,
        "classes": train.classes,
        "train_images": len(train),
        "test_images": len(test),
        "steps": steps_total,
        "loader": loader.state_dict(),
    }


def features(
    model: ImageBYOL, images: ImageList, cfg: Config, env: DistEnv
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen online-encoder features of (up to ``img_probe_images`` of) ``images``: the central square at
    ``image_size``, no augmentation, streamed like the training data."""
    if len(images) > cfg.img_probe_images:
        pick = np.random.default_rng(cfg.seed).permutation(len(images))[: cfg.img_probe_images]
        images = images.subset(np.sort(pick))
    loader = torch.utils.data.DataLoader(
        StreamingImages(images, size=cfg.image_size, views=0),
        batch_size=256,
        num_workers=cfg.img_workers,
        collate_fn=collate_skip,
    )
    mean, std = MEAN.to(env.device), STD.to(env.device)
    feats, labels = [], []
    model.eval()
    with torch.no_grad(), autocast(env.device):
        for x, y, _ in loader:
            xb = (x.to(env.device).float() / 255.0 - mean) / std
            feats.append(model.encode(xb[None])[0].float().cpu())
            labels.append(y)
    model.train()
    return torch.cat(feats), torch.cat(labels)


def probe(model: ImageBYOL, train: ImageList, test: ImageList, cfg: Config, env: DistEnv) -> dict:
    """Linear-probe and kNN accuracy of the online encoder on the held-out split."""
    ftr, ytr = features(model, train, cfg, env)
    fte, yte = features(model, test, cfg, env)
    return {"probe_acc": linear_probe(ftr, ytr, fte, yte), "knn_acc": knn_accuracy(ftr, ytr, fte, yte)}
