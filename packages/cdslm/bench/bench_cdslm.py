"""Benchmark: training tokens/s of the two-stream MM-DiT against a one-stream DiT of the same width, depth and
FLOPs (shared weights: its anchor), and the sampling real-time factor (seconds of audio continued per second of
compute, DDIM with CFG). One process, interleaved repeats, medians; prints ratios (trust them, not absolutes).

    uv run --package cdslm python packages/cdslm/bench/bench_cdslm.py [--width 128 --depth 4 --repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from cdslm.diffusion import ddim_sample, diffusion_loss
from cdslm.model import MMDiT


def train_step_time(model, opt, batch, ctx_tok, cont_tok, token_dim, steps, g):
    ctx = torch.randn(batch, ctx_tok, token_dim, generator=g)
    x0 = torch.randn(batch, cont_tok, token_dim, generator=g)
    eps = torch.randn_like(x0)
    t = torch.rand(batch, generator=g)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = diffusion_loss(model, ctx, x0, t, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ctx-tokens", type=int, default=16)
    p.add_argument("--cont-tokens", type=int, default=16)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--mels", type=int, default=80)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sample-steps", type=int, default=16)
    a = p.parse_args()
    token_dim = a.patch * a.mels
    g = torch.Generator().manual_seed(0)
    models = {}
    for name, two in (("two-stream MM-DiT", True), ("one-stream DiT", False)):
        torch.manual_seed(0)
        m = MMDiT(
            token_dim,
            a.width,
            a.depth,
            heads=max(1, a.width // 32),
            max_ctx=a.ctx_tokens,
            max_cont=a.cont_tokens,
            two_stream=two,
        )
        models[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-4))
    times = {k: [] for k in models}
    for m, opt in models.values():  # warm-up
        train_step_time(m, opt, a.batch, a.ctx_tokens, a.cont_tokens, token_dim, 2, g)
    for _ in range(a.repeats):
        for k, (m, opt) in models.items():
            times[k].append(
                train_step_time(m, opt, a.batch, a.ctx_tokens, a.cont_tokens, token_dim, a.steps, g)
            )
    tokens = a.batch * (a.ctx_tokens + a.cont_tokens)
    print(
        f"threads {torch.get_num_threads()}, width {a.width}, depth {a.depth}, batch {a.batch}, "
        f"{a.ctx_tokens}+{a.cont_tokens} tokens of {a.patch} frames x {a.mels} mels"
    )
    rate = {}
    for k, (m, _) in models.items():
        rate[k] = tokens / statistics.median(times[k])
        print(f"  {k:18s} N={m.num_params():>9,}  train {rate[k]:>10,.0f} tokens/s (median of {a.repeats})")
    print(
        f"  ratio two-stream / one-stream tokens/s: {rate['two-stream MM-DiT'] / rate['one-stream DiT']:.2f}"
    )
    # sampling real-time factor: audio seconds of continuation per second of compute (10 ms frames)
    m = models["two-stream MM-DiT"][0].eval()
    ctx = torch.randn(a.batch, a.ctx_tokens, token_dim, generator=g)
    shape = (a.batch, a.cont_tokens, token_dim)
    audio_s = a.batch * a.cont_tokens * a.patch * 0.01
    for guidance in (1.0, 2.0):
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            ddim_sample(m, ctx, shape, steps=a.sample_steps, guidance=guidance, generator=g)
            ts.append(time.perf_counter() - t0)
        rtf = audio_s / statistics.median(ts)
        print(
            f"  sampling {a.sample_steps} DDIM steps, guidance {guidance}: {rtf:,.1f} s of audio per s "
            f"(real-time factor {1 / rtf:.4f})"
        )


if __name__ == "__main__":
    main()
