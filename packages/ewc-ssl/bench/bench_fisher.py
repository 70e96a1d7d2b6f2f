"""Fisher and penalty costs: per-sample gradients with torch.func vs a one-sample loop vs minibatch squaring;
the EWC penalty (foreach) vs a per-parameter Python loop, and its cost next to a fine-tuning step.

    uv run --package ewc-ssl python packages/ewc-ssl/bench/bench_fisher.py [--threads 1] [--quick]

Models: the default experiment's DINO model (MLP backbone 256-256-256-128 plus prototype head, 6 backbone
tensors) and timm's ``vit_tiny_patch16_224`` backbone at 32x32 (about 150 tensors, stresses per-tensor overhead),
built offline. All in one process; prints samples/s and microseconds per call, and the ratios.

Goals (issue 17): vectorised Fisher at least 10 times the loop's samples/s; the penalty a small part of a step.
"""

from __future__ import annotations

import argparse

import torch
from ewc_ssl import EWCPenalty, diagonal_fisher, linear_fisher, reference_penalty
from ewc_ssl.dino import MLPBackbone, SSLModel
from torch.utils.benchmark import Timer


def measure(fn, min_run_time: float) -> float:
    return Timer("f()", globals={"f": fn}).blocked_autorange(min_run_time=min_run_time).median


def loop_fisher(model: SSLModel, x: torch.Tensor, names: list[str], gen: torch.Generator) -> dict:
    """One sample at a time with autograd: the batch-size-1 loop GMvandeVen/continual-learning#16 calls slow."""
    params = dict(model.named_parameters())
    kept = [params[n] for n in names]
    total = [torch.zeros_like(p) for p in kept]
    for i in range(len(x)):
        logp = model.log_prob(x[i : i + 1])[0]
        y = torch.multinomial(logp.exp().detach(), 1, generator=gen)
        g = torch.autograd.grad(logp[y].sum(), kept)
        for t, gi in zip(total, g):
            t.add_(gi * gi)
    return {n: t / len(x) for n, t in zip(names, total)}


def bench_fisher(n: int, min_run_time: float) -> dict:
    torch.manual_seed(0)
    model = SSLModel(MLPBackbone(256, 256, 128), 128)
    names = [f"backbone.{k}" for k, _ in model.backbone.named_parameters()]
    x = torch.rand(n, 256)
    batches = [x[i : i + 256] for i in range(0, n, 256)]
    g = torch.Generator().manual_seed(0)
    t_vmap = measure(
        lambda: diagonal_fisher(model, batches, params=names, log_prob=model.output_log_prob, generator=g),
        min_run_time,
    )
    t_loop = measure(lambda: loop_fisher(model, x, names, g), min_run_time)
    t_outer = measure(
        lambda: linear_fisher(model, batches, params=names, log_prob=model.output_log_prob, generator=g),
        min_run_time,
    )
    t_mb = measure(
        lambda: diagonal_fisher(
            model,
            [x[i : i + 32] for i in range(0, n, 32)],
            variant="minibatch",
            params=names,
            log_prob=model.output_log_prob,
            generator=g,
        ),
        min_run_time,
    )
    f_ps = diagonal_fisher(
        model,
        [x[i : i + 32] for i in range(0, n, 32)],
        params=names,
        log_prob=model.output_log_prob,
        generator=g,
    )
    f_mb = diagonal_fisher(
        model,
        [x[i : i + 32] for i in range(0, n, 32)],
        variant="minibatch",
        params=names,
        log_prob=model.output_log_prob,
        generator=g,
    )
    ratio_mb = float(sum(v.sum() for v in f_mb.values()) / sum(v.sum() for v in f_ps.values()))
    return {
        "samples": n,
        "vmap_samples_per_s": n / t_vmap,
        "loop_samples_per_s": n / t_loop,
        "minibatch_samples_per_s": n / t_mb,
        "vmap_over_loop": t_loop / t_vmap,
        "outer_samples_per_s": n / t_outer,
        "outer_over_loop": t_loop / t_outer,
        "F_minibatch_over_F_per_sample_at_B32": ratio_mb,
    }


def loop_penalty_grad(params, anchor, fisher, lam):
    loss = reference_penalty(params, anchor, fisher, lam)
    loss.backward()


def bench_penalty(model: torch.nn.Module, label: str, x: torch.Tensor, min_run_time: float) -> dict:
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    fisher = {n: torch.rand_like(p) for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-3 * torch.randn_like(p))
    pen = EWCPenalty(anchor, fisher, lam=10.0)
    params = dict(model.named_parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def ours():
        pen(model).backward()

    def fused():
        pen.add_grad_(model)

    def loop():
        loop_penalty_grad(params, anchor, fisher, 10.0)

    def step():
        opt.zero_grad(set_to_none=True)
        model(x).float().square().mean().backward()
        opt.step()

    from ewc_ssl import flat_penalty

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()]).requires_grad_(True)
    a_flat = torch.cat([anchor[n].reshape(-1) for n, _ in model.named_parameters()])
    f_flat = torch.cat([fisher[n].reshape(-1) for n, _ in model.named_parameters()])

    def flat():
        theta.grad = None
        flat_penalty(theta, a_flat, f_flat, 10.0).backward()

    t_ours, t_fused, t_loop, t_step, t_flat = (
        measure(f, min_run_time) for f in (ours, fused, loop, step, flat)
    )
    return {
        "model": label,
        "tensors": len(anchor),
        "parameters": sum(p.numel() for p in anchor.values()),
        "foreach_us": 1e6 * t_ours,
        "fused_add_grad_us": 1e6 * t_fused,
        "loop_us": 1e6 * t_loop,
        "step_us": 1e6 * t_step,
        "flat_us": 1e6 * t_flat,
        "loop_over_foreach": t_loop / t_ours,
        "loop_over_fused": t_loop / t_fused,
        "foreach_over_step": t_ours / t_step,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="fewer samples, shorter timings")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    mrt = 0.3 if a.quick else 1.0
    fisher = bench_fisher(256 if a.quick else 1024, mrt)
    print(f"Fisher, default DINO model ({fisher['samples']} samples, {a.threads} thread(s)):")
    print(
        f"  vmap per-sample {fisher['vmap_samples_per_s']:.0f} samples/s, loop {fisher['loop_samples_per_s']:.0f}, "
        f"minibatch-squared {fisher['minibatch_samples_per_s']:.0f}"
    )
    print(f"  vmap / loop speed ratio: {fisher['vmap_over_loop']:.1f}x (goal >= 10)")
    print(
        f"  outer-product identity for linear layers (linear_fisher) {fisher['outer_samples_per_s']:.0f} samples/s: "
        f"{fisher['outer_over_loop']:.1f}x the loop"
    )
    print(
        f"  F_minibatch / F_per_sample at B = 32: {fisher['F_minibatch_over_F_per_sample_at_B32']:.4f} (1/B = {1 / 32:.4f})"
    )
    import timm

    torch.manual_seed(0)
    rows = [
        bench_penalty(MLPBackbone(256, 256, 128), "default MLP backbone", torch.rand(64, 256), mrt),
        bench_penalty(
            timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=0),
            "timm vit_tiny (32x32)",
            torch.rand(8, 3, 32, 32),
            mrt,
        ),
    ]
    print("EWC penalty value + gradient per step:")
    for r in rows:
        print(
            f"  {r['model']} ({r['tensors']} tensors, {r['parameters']} params): foreach {r['foreach_us']:.0f} us, "
            f"fused add_grad_ {r['fused_add_grad_us']:.0f} us, flat (one vector, the trainer's form) "
            f"{r['flat_us']:.0f} us, per-parameter loop {r['loop_us']:.0f} us, training step {r['step_us']:.0f} us"
        )
        print(
            f"    loop / foreach {r['loop_over_foreach']:.2f}x, loop / fused {r['loop_over_fused']:.2f}x, "
            f"foreach / step {r['foreach_over_step']:.3f}"
        )


if __name__ == "__main__":
    main()
