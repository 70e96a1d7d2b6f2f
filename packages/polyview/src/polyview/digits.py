"""Poly-view contrastive learning on scikit-learn's digits: one arm = (M views, K samples per step), S seeds.

The seeds are independent MLPs trained as one batched model (:class:`polyview.encoders.SeedMLP`), each with its
own data order, augmentations and initialisation. Every step draws the *global* batch of K samples per seed from
a per-step generator and makes its M views; under torchrun each rank keeps its contiguous slice of the K samples
and the loss gathers the others' embeddings, so the run is the same (up to float reduction order) whatever the
number of ranks. A checkpoint after every ``checkpoint_every`` steps and on Ctrl-C lets ``--resume`` continue to
the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from paperkit.device import autocast, step_generator
from paperkit.distributed import DistEnv, all_reduce_mean, unwrap, wrap_ddp
from paperkit.evaluation import knn_accuracy, linear_probe

from .encoders import SeedMLP
from .losses import pvc_loss
from .views import image_views


@dataclass(frozen=True)
class DigitArm:
    """One training run: M views of K samples per step, for ``steps`` steps, ``seeds`` seeds at once."""

    m: int
    k: int
    steps: int
    seeds: int
    seed: int
    method: str = "geometric"
    tau: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    hidden: int = 256
    feat: int = 128
    proj: int = 64
    crop_scale: float = 0.5  # smallest crop area fraction
    noise: float = 0.1
    mask: float = 0.1
    log_every: int = 50


def sample_indices(seed: int, seeds: int, n: int, start: int, count: int) -> torch.Tensor:
    """Positions ``start .. start+count`` of each seed's endless stream of epoch permutations: ``[S, count]``."""
    out = []
    for s in range(seeds):
        first, last = start // n, (start + count - 1) // n
        perm = torch.cat(
            [torch.randperm(n, generator=step_generator(seed, s, e)) for e in range(first, last + 1)]
        )
        out.append(perm[start - first * n : start - first * n + count])
    return torch.stack(out)


def digit_views(x: torch.Tensor, m: int, gen: torch.Generator, arm: DigitArm) -> torch.Tensor:
    """M views of 8x8 digits ``[..., 64]``: random resized crop (no flip: digits are not mirror-symmetric),
    brightness/contrast jitter, blur, then pixel masking and Gaussian noise. Returns ``[..., m, 64]``."""
    lead = x.shape[:-1]
    img = x.reshape(-1, 1, 8, 8)
    v = image_views(
        img, m, gen, scale=(arm.crop_scale, 1.0), ratio=(0.8, 1.25), flip=0.0, jitter=0.3, gray=0.0, blur=0.3
    )
    v = v.reshape(-1, m, 64)
    keep = torch.rand(v.shape, generator=gen, device=gen.device).to(v.device) >= arm.mask
    v = v * keep + arm.noise * torch.randn(v.shape, generator=gen, device=gen.device).to(v.device)
    return v.reshape(*lead, m, 64)


def build(arm: DigitArm) -> SeedMLP:
    return SeedMLP(arm.seeds, (64, arm.hidden, arm.feat), (arm.hidden, arm.proj), seed=arm.seed)


def features(model: SeedMLP, x: torch.Tensor, env: DistEnv, chunk: int = 1024) -> torch.Tensor:
    """Frozen backbone features ``[S, N, feat]`` of clean (un-augmented) inputs."""
    model = unwrap(model)
    s = model.seeds
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], chunk):
            xb = x[i : i + chunk].to(env.device)
            out.append(model.encode(xb.expand(s, *xb.shape)).float().cpu())
    return torch.cat(out, dim=1)


def evaluate(model: SeedMLP, data: dict, env: DistEnv) -> dict:
    """Linear-probe and kNN test accuracy per seed (logistic regression and faiss kNN on frozen features)."""
    ftr, fte = features(model, data["x_train"], env), features(model, data["x_test"], env)
    lin = [linear_probe(ftr[s], data["y_train"], fte[s], data["y_test"]) for s in range(ftr.shape[0])]
    knn = [knn_accuracy(ftr[s], data["y_train"], fte[s], data["y_test"]) for s in range(ftr.shape[0])]
    return {
        "probe_acc_seeds": lin,
        "knn_acc_seeds": knn,
        "probe_acc": sum(lin) / len(lin),
        "knn_acc": sum(knn) / len(knn),
    }


def train_arm(run, key: str, arm: DigitArm, data: dict, env: DistEnv) -> dict:
    """Train one arm (resuming from its checkpoint after an interruption); return its curve and accuracies."""
    if arm.k % env.world_size:
        raise ValueError(f"{key}: K = {arm.k} samples per step is not divisible by {env.world_size} ranks")
    x_train = data["x_train"].to(env.device)
    n = x_train.shape[0]
    model = build(arm).to(env.device)
    opt = torch.optim.AdamW(model.parameters(), lr=arm.lr, weight_decay=arm.weight_decay)
    ckpt = run.checkpoint(key)
    start, curve, window = 0, [], []
    if ckpt.exists():
        start, weights, state = ckpt.load()
        model.load_state_dict(weights["model"])
        opt.load_state_dict(state["optimizer"])
        curve, window = list(state["curve"]), list(state["window"])
    ddp = wrap_ddp(model, env)
    per_rank = arm.k // env.world_size
    mine = slice(env.rank * per_rank, (env.rank + 1) * per_rank)

    def save(step: int) -> None:
        ckpt.save(step, {"model": model}, {"optimizer": opt.state_dict(), "curve": curve, "window": window})

    for step in run.steps(arm.steps, start=start, desc=key, save=save):
        idx = sample_indices(arm.seed, arm.seeds, n, step * arm.k, arm.k)  # [S, K]: the global batch
        gen = step_generator(arm.seed, 7, step)
        views = digit_views(x_train[idx.to(env.device)], arm.m, gen, arm)[:, mine]  # [S, k, M, 64]
        with autocast(env.device):
            z = ddp(views).float()
        loss = sum(pvc_loss(z[s], arm.tau, arm.method, gather=True) for s in range(arm.seeds))
        value = all_reduce_mean(loss.detach()).item() / arm.seeds  # the global batch's loss, mean over seeds
        run.check_finite(value, where=f"{key} step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(value)
        if (step + 1) % arm.log_every == 0 or step + 1 == arm.steps:
            point = {"arm": key, "step": step + 1, "m": arm.m, "k": arm.k, "loss": sum(window) / len(window)}
            window = []
            curve.append(point)
            run.log(**point)
    save(arm.steps)
    return {"curve": curve, **evaluate(model, data, env)}
