"""EMA update time: ours (ScaledEMA, one foreach lerp) vs timm ModelEmaV3.update vs a per-parameter loop.

Parameter sets of timm's ``vit_tiny_patch16_224`` (many small tensors) and ``resnet50`` (fewer, larger ones),
built offline (pretrained=False). All in one process; prints microseconds per update, ratios to timm, and the
effective bandwidth (bytes read + written per update / time) as a fraction of a plain copy of the same bytes.

    uv run --package ema-scale python packages/ema-scale/bench/bench_ema.py [--threads 2] [--device cpu]

Goals (issue 3): at least timm's speed on both models, at least half the copy bandwidth.
"""

from __future__ import annotations

import argparse
import copy

import timm
import torch
from ema_scale import ScaledEMA
from timm.utils.model_ema import ModelEmaV3
from torch.utils.benchmark import Timer


def loop_update(ema_model: torch.nn.Module, model: torch.nn.Module, rho: float) -> None:
    """The per-parameter loop many codebases use (in place, no temporaries)."""
    with torch.no_grad():
        for e, m in zip(ema_model.state_dict().values(), model.state_dict().values()):
            if e.is_floating_point():
                e.mul_(rho).add_(m, alpha=1 - rho)
            else:
                e.copy_(m)


def measure(stmt, min_run_time: float) -> float:
    t = Timer("f()", globals={"f": stmt})
    return t.blocked_autorange(min_run_time=min_run_time).median


def bench(name: str, device: torch.device, min_run_time: float) -> dict:
    model = timm.create_model(name, pretrained=False).to(device)
    rho = 0.9998
    ours = ScaledEMA(model, rho)
    ref = ModelEmaV3(model, decay=rho)
    naive = copy.deepcopy(model)
    floats = [t for t in model.state_dict().values() if t.is_floating_point()]
    nbytes = sum(t.numel() * t.element_size() for t in floats)
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run(fn):
        def go():
            fn()
            sync()

        return go

    times = {
        "ours": measure(run(lambda: ours.update(model)), min_run_time),
        "timm_v3": measure(run(lambda: ref.update(model)), min_run_time),
        "loop": measure(run(lambda: loop_update(naive, model, rho)), min_run_time),
        "copy": measure(run(lambda: dst.copy_(src)), min_run_time),
    }
    # correctness: the three EMAs saw the same number of updates? They saw different counts; check one update
    a, b = ScaledEMA(model, rho), ModelEmaV3(model, decay=rho)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    a.update(model)
    b.update(model)
    err = max(
        (x.float() - y.float()).abs().max().item()
        for x, y in zip(a.module.state_dict().values(), b.module.state_dict().values())
    )
    ema_bw = 3 * nbytes / times["ours"]  # read EMA + read model + write EMA
    copy_bw = 2 * nbytes / times["copy"]  # read + write
    return {
        "model": name,
        "tensors": len(floats),
        "MB": nbytes / 2**20,
        **times,
        "bw_fraction": ema_bw / copy_bw,
        "max_abs_diff_vs_timm": err,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--min-run-time", type=float, default=2.0)
    ap.add_argument("--models", default="vit_tiny_patch16_224,resnet50")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, timm {timm.__version__}, device {device}, threads {args.threads}")
    print(
        f"{'model':24s} {'tensors':>7s} {'MB':>7s} {'ours us':>9s} {'timm us':>9s} {'loop us':>9s} "
        f"{'timm/ours':>9s} {'loop/ours':>9s} {'bw/copy':>8s}"
    )
    for name in args.models.split(","):
        r = bench(name, device, args.min_run_time)
        print(
            f"{r['model']:24s} {r['tensors']:7d} {r['MB']:7.1f} {r['ours'] * 1e6:9.0f} {r['timm_v3'] * 1e6:9.0f} "
            f"{r['loop'] * 1e6:9.0f} {r['timm_v3'] / r['ours']:9.2f} {r['loop'] / r['ours']:9.2f} "
            f"{r['bw_fraction']:8.2f}   (max |ours - timm| after one update: {r['max_abs_diff_vs_timm']:.1e})"
        )


if __name__ == "__main__":
    main()
