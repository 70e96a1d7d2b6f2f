"""The ``paper`` preset: EWC on a Waterbirds-layout folder with a timm backbone and a released Fisher.

The backbone's SSL weights (``--backbone-weights``, e.g. DINO ViT-B/16 or ResNet-50) and its diagonal Fisher
(``--fisher``: a file from :func:`ewc_ssl.save_fisher`, checked against the weights, or a released
``{name: tensor}`` FIM imported with :func:`ewc_ssl.import_fisher`) are local files: nothing is downloaded. Each
arm (plain fine-tuning, EWC and L2-SP over ``--lams``) fine-tunes the whole backbone plus a new linear head with
AdamW, streaming images from disk; lambda is chosen on validation worst-group accuracy and the claims are
measured on test, over ``--seeds``. Arms run one after another (a ViT-B/16 per arm does not stack like the
default experiment's MLPs); each arm is a checkpointed phase, so ``--resume`` continues where a run stopped.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from paperkit import ConfigError, Run
from paperkit.device import autocast, resolve_device
from torch import nn

from .data import metadata_image_list
from .finetune import Arm
from .fisher import FORMAT, import_fisher, load_fisher, normalise, read_fisher_metadata
from .groups import group_accuracy
from .penalty import EWCPenalty


def load_backbone(cfg) -> nn.Module:
    import timm

    try:
        backbone = timm.create_model(cfg.model, pretrained=False, num_classes=0, img_size=cfg.image_size)
    except TypeError:  # CNNs take no img_size
        backbone = timm.create_model(cfg.model, pretrained=False, num_classes=0)
    path = Path(cfg.backbone_weights)
    if not path.is_file():
        raise ConfigError(f"--backbone-weights {path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("teacher", "state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    prefixes = ("module.", "backbone.", "encoder.")
    clean = {}
    for k, v in state.items():
        for p in prefixes:
            if k.startswith(p):
                k = k[len(p) :]
        clean[k] = v
    missing, _ = backbone.load_state_dict(clean, strict=False)
    if missing:
        raise ConfigError(
            f"--backbone-weights {path}: no weights for {missing[0]!r} ({len(missing)} missing)"
        )
    return backbone


def load_backbone_fisher(cfg, backbone: nn.Module) -> dict:
    path = Path(cfg.fisher)
    if path.suffix == ".safetensors" and read_fisher_metadata(path).get("format") == FORMAT:
        raw = load_fisher(path, backbone)
    else:
        raw = import_fisher(path, backbone)
    return normalise(raw, cfg.fisher_norm, floor=cfg.fisher_floor)


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, classes: int = 2):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def to_input(images: torch.Tensor, device) -> torch.Tensor:
    """uint8 ``[B, 3, S, S]`` from the streaming loader -> ImageNet-normalised float on ``device``."""
    x = images.to(device, non_blocking=True).float() / 255.0
    return (x - MEAN.to(device)) / STD.to(device)


@torch.no_grad()
def predict(model: nn.Module, images, cfg, device) -> dict:
    """Group accuracy over a whole split (every image once, in order; unreadable ones are skipped)."""
    from paperkit.streaming import StreamingImages, collate_skip

    model.eval()
    loader = torch.utils.data.DataLoader(
        StreamingImages(images, size=cfg.image_size),
        batch_size=cfg.wb_batch,
        num_workers=cfg.wb_workers,
        collate_fn=collate_skip,
    )
    preds, groups = [], []
    for x, g, _ in loader:
        if len(x):
            with autocast(device):
                preds.append(model(to_input(x, device)).argmax(-1).cpu())
            groups.append(g)
    model.train()
    g = torch.cat(groups)
    return group_accuracy(torch.cat(preds), g // 2, g)


def finetune_arm(cfg, run: Run, key: str, seed: int, arm: Arm, backbone, fisher, splits, device) -> dict:
    from paperkit.streaming import streaming_loader

    torch.manual_seed(seed)
    model = Classifier(copy.deepcopy(backbone)).to(device)
    penalty = None
    if arm.kind != "ft":
        penalty = EWCPenalty(backbone, fisher if arm.kind == "ewc" else None, arm.lam)
    opt = torch.optim.AdamW(
        [
            {"params": model.backbone.parameters(), "lr": cfg.ft_lr},
            {"params": model.head.parameters(), "lr": cfg.head_lr},
        ],
        weight_decay=0.0,
    )
    loader = streaming_loader(
        splits["train"], batch_size=cfg.wb_batch, size=cfg.image_size, seed=seed, workers=cfg.wb_workers
    )
    per_epoch = loader.sampler.batches_per_epoch
    total = cfg.ft_epochs * per_epoch
    ck = run.checkpoint(key)
    start = 0
    if ck.exists():
        start, w, st = ck.load(restore_rng=False)
        model.load_state_dict(w["model"])
        opt.load_state_dict(st["opt"])
        loader.load_state_dict(st["loader"])

    def save(done: int) -> None:
        ck.save(done, {"model": model}, {"opt": opt.state_dict(), "loader": loader.state_dict()})

    base_lrs = [g["lr"] for g in opt.param_groups]
    batches = iter(loader)
    for step in run.steps(total, start=start, desc=key, save=save):
        try:
            images, groups = next(batches)
        except StopIteration:  # the epoch ended: the loader moved to the next one
            batches = iter(loader)
            images, groups = next(batches)
        factor = 0.5 * (1 + math.cos(math.pi * step / total))
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * factor
        with autocast(device):
            loss = F.cross_entropy(model(to_input(images, device)).float(), (groups // 2).to(device))
        if penalty is not None:
            loss = loss + penalty(model.backbone)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = run.check_finite(loss.item(), where=f"{key} step {step}")
        if step % max(1, total // 50) == 0:
            run.log(phase="finetune", arm=arm.name, seed=seed, step=step, loss=value)
    if start < total:
        save(total)
    val, test = predict(model, splits["val"], cfg, device), predict(model, splits["test"], cfg, device)
    return {
        "kind": arm.kind,
        "lam": arm.lam,
        "val_worst": val["worst"],
        "val_average": val["average"],
        "test_worst": test["worst"],
        "test_average": test["average"],
        "test_per_group": test["per_group"],
    }


def run_waterbirds(cfg, run: Run) -> dict:
    from .experiment import select

    device = resolve_device(cfg.device)
    backbone = load_backbone(cfg).to(device)
    fisher = load_backbone_fisher(cfg, backbone)
    splits = {s: metadata_image_list(cfg.data, s).check() for s in ("train", "val", "test")}
    arms = [Arm("ft", 0.0)] + [Arm(k, lam) for k in ("ewc", "l2sp") for lam in cfg.lams]
    per_seed = {}
    for seed in (cfg.seed + i for i in range(cfg.seeds)):
        per_seed[str(seed)] = {
            arm.name: run.phase(
                f"wb/s{seed}/{arm.name}",
                lambda arm=arm, seed=seed: finetune_arm(
                    cfg, run, f"wb/s{seed}/{arm.name}", seed, arm, backbone, fisher, splits, device
                ),
            )
            for arm in arms
        }
    ft = [100 * r["ft"]["test_worst"] for r in per_seed.values()]
    ewc = [100 * r[select(r, "ewc")]["test_worst"] for r in per_seed.values()]
    l2sp = [100 * r[select(r, "l2sp")]["test_worst"] for r in per_seed.values()]
    run.claim_difference(
        "ewc_worst_group",
        "EWC (lambda chosen on validation) beats plain fine-tuning on Waterbirds test worst-group accuracy (points)",
        method=ewc,
        control=ft,
        control_name="plain fine-tuning (lambda = 0)",
    )
    run.claim_difference(
        "fisher_vs_l2sp",
        "Fisher-weighted EWC beats L2-SP (F = 1, same lambda grid) on test worst-group accuracy (points; reported)",
        method=ewc,
        control=l2sp,
        control_name="L2-SP (F = 1)",
    )
    return {"test_worst_group": {"ft": ft, "ewc": ewc, "l2sp": l2sp}, "arms": per_seed}
