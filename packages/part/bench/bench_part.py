"""PART's hot paths against their anchors, in one process, printing ratios.

1. Off-grid patch sampling: ``crop_patches`` (one ``grid_sample`` over the batch) against ``crop_patches_loop``
   (one ``grid_sample`` per box, a Python loop), with variable scale and aspect ratio.
2. Pretraining throughput (forward + backward + AdamW) with the same encoder: a PART step against an MAE step
   (mask 0.75), images per second; and the sampler's share of a PART step (box sampling + crop + stitch).

Medians of ``torch.utils.benchmark.Timer.blocked_autorange`` over alternating rounds; threads from
``OMP_NUM_THREADS`` (default 1).

    python packages/part/bench/bench_part.py       # or: nox -s "bench(package='part')"
"""

from __future__ import annotations

import os
import platform
import statistics

import torch
from part import MAE, PART, Encoder, Layout, crop_patches, crop_patches_loop, sample_boxes, stitch
from torch.utils import benchmark


def timed(fn, rounds: int = 5, min_run_time: float = 0.5) -> float:
    return statistics.median(
        benchmark.Timer("fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median
        for _ in range(rounds)
    )


def sampling(batch: int, n: int, size: int, patch: int) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size)
    boxes = sample_boxes(batch, n, size, patch, scale=(0.5, 2.0), aspect=True, generator=g)
    assert torch.allclose(crop_patches(x, boxes, patch), crop_patches_loop(x, boxes, patch), atol=1e-5)
    vec = timed(lambda: crop_patches(x, boxes, patch))
    loop = timed(lambda: crop_patches_loop(x, boxes, patch), rounds=3)
    return {"vectorized_ms": 1e3 * vec, "loop_ms": 1e3 * loop, "speedup": loop / vec}


def steps(batch: int, size: int, patch: int, dim: int, depth: int, pairs: int) -> dict:
    lay = Layout.image(size, patch)
    x = torch.rand(batch, 3, size, size)
    out = {}
    for name, make in (
        ("part", lambda e: PART(e, pairs=pairs)),
        ("mae", lambda e: MAE(e, decoder_dim=dim)),
    ):
        torch.manual_seed(0)
        obj = make(Encoder(lay, dim, depth, 4))
        opt = torch.optim.AdamW(obj.parameters(), 1e-3)
        g = torch.Generator().manual_seed(0)

        def step(obj=obj, opt=opt, g=g):
            loss, _ = obj.loss(x, g)
            opt.zero_grad()
            loss.backward()
            opt.step()

        out[name] = timed(step, rounds=3)
    g = torch.Generator().manual_seed(1)
    sampler = timed(
        lambda: stitch(crop_patches(x, sample_boxes(batch, lay.n, size, patch, generator=g), patch))
    )
    return {
        "part_img_per_s": batch / out["part"],
        "mae_img_per_s": batch / out["mae"],
        "part_over_mae_speed": out["mae"] / out["part"],
        "sampler_share_of_part_step": sampler / out["part"],
    }


def main() -> None:
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {threads} thread(s)")
    for b, n, s, p in ((32, 16, 32, 8), (64, 64, 64, 8)):
        r = sampling(b, n, s, p)
        print(
            f"sampling B={b} N={n} S={s} P={p}: vectorized {r['vectorized_ms']:.2f} ms, loop {r['loop_ms']:.1f} ms, "
            f"speed-up x{r['speedup']:.0f}"
        )
    for b, s, p, d, depth, pairs in ((32, 32, 8, 48, 2, 64), (32, 64, 8, 96, 4, 256)):
        r = steps(b, s, p, d, depth, pairs)
        print(
            f"step B={b} S={s} P={p} D={d} depth={depth} pairs={pairs}: PART {r['part_img_per_s']:.0f} img/s, "
            f"MAE {r['mae_img_per_s']:.0f} img/s, PART/MAE speed {r['part_over_mae_speed']:.2f}, "
            f"sampler share of a PART step {100 * r['sampler_share_of_part_step']:.1f}%"
        )


if __name__ == "__main__":
    main()
