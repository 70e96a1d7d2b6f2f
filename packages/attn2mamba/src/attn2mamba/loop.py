"""The step loop every training phase shares (learning-rate schedule, micro-batches, clipping, curve points,
checkpoints and resume through the core's ``run.steps``), and the optimiser it is used with."""

from __future__ import annotations

import contextlib
import math

from .context import Context


def lr_factor(step: int, total: int, warmup_frac: float) -> float:
    """Linear warm-up, then cosine from 1 to 0.1."""
    warm = int(round(warmup_frac * total))
    if warm and step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, t)))


def curve_steps(total: int, points: int) -> set[int]:
    """Steps after which to evaluate: ``points`` evenly spaced, the last one at ``total``."""
    return {max(1, round(total * (i + 1) / points)) for i in range(points)}


def adamw(params_groups, lr: float, weight_decay: float):
    import torch

    groups = []
    for g in params_groups:
        decay = [p for p in g["params"] if p.dim() >= 2]
        flat = [p for p in g["params"] if p.dim() < 2]
        mult = g.get("lr_mult", 1.0)
        if decay:
            groups.append({"params": decay, "weight_decay": weight_decay, "lr_mult": mult})
        if flat:
            groups.append({"params": flat, "weight_decay": 0.0, "lr_mult": mult})
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def train_loop(
    ctx: Context,
    key: str,
    phase_id: int,
    *,
    model,
    opt,
    steps: int,
    lr: float,
    loss_fn,
    evaluate,
    token_offset: int,
    trainable: list,
    manual_sync: bool,
    mode: str = "ddp",
    seed: int = 0,
) -> list[dict]:
    """The step loop shared by every phase: lr schedule, micro-batches, clipping, curve points, checkpoints."""
    import torch

    from . import parallel

    cfg, run, env = ctx.cfg, ctx.run, ctx.env
    ckpt = run.checkpoint(key)
    curve: list[dict] = []
    running: list[float] = []  # losses since the last curve point
    start = 0
    if ckpt.exists():
        _, weights, state = ckpt.load()
        parallel.load_model_state(model, weights["model"], env, mode)
        parallel.load_optim_state(model, opt, state["optimizer"], env, mode)
        start, curve, running = int(state["step"]), list(state["curve"]), list(state["running"])

    def trainable_state() -> dict:
        full = parallel.model_state(model, env, mode)
        names = {n for n, p in parallel.base(model).named_parameters() if p.requires_grad}
        return {k: v for k, v in full.items() if k in names}

    def save(done: int) -> None:
        weights = trainable_state()
        optim = parallel.optim_state(model, opt, env, mode)
        ckpt.save(done, {"model": weights}, {"optimizer": optim, "curve": curve, "running": running})

    if start == 0:
        point = {"phase": key, "step": 0, "tokens": token_offset, "ppl": evaluate()}
        curve.append(point)
        run.log(**point)
    evals = curve_steps(steps, cfg.curve_points)
    n_micro = ctx.per_rank // ctx.micro
    for step in run.steps(steps, start=start, desc=key, save=save):
        f = lr_factor(step, steps, cfg.warmup_frac)
        for g in opt.param_groups:
            g["lr"] = lr * f * g.get("lr_mult", 1.0)
        batch = ctx.batch(phase_id, step, seed)
        total = 0.0
        for i in range(n_micro):
            mb = batch[i * ctx.micro : (i + 1) * ctx.micro]
            sync = contextlib.nullcontext()
            if hasattr(model, "no_sync") and i < n_micro - 1:
                sync = model.no_sync()
            with sync:
                with ctx.autocast():
                    loss = loss_fn(mb)
                (loss / n_micro).backward()
            total += loss.detach().float() / n_micro
        from paperkit.distributed import all_reduce_mean

        value = all_reduce_mean(total).item()
        run.check_finite(value, where=f"{key} step {step}")
        if manual_sync:
            parallel.allreduce_grads(trainable)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        running.append(value)
        done = step + 1
        if done in evals:
            point = {
                "phase": key,
                "step": done,
                "tokens": token_offset + done * ctx.tokens_per_step,
                "loss": sum(running) / len(running),
                "lr": lr * f,
                "ppl": evaluate(),
            }
            running.clear()
            curve.append(point)
            run.log(**point)
    save(steps)
    return curve
