"""Forward+backward throughput of the scans, against transformers' pure-PyTorch paths, in one process.

1. SSD (Mamba-2) scan at L=1024, ours (``ssd_chunked``) vs transformers' Mamba-1 ``mamba_selective_scan``
   (its torch path: a loop over tokens) and vs transformers' Mamba-2 ``mamba2_chunk_scan`` (chunked SSD).
   Goals (issue 5): at least 20x the former, at least as fast as the latter.
2. Causal linear attention at L=2048: ours chunked vs the quadratic (masked L x L) form. Goal: at least 2x.
3. Achieved GFLOP/s of our SSD scan (analytic matmul FLOPs, backward counted as twice the forward) against the
   machine's measured single-precision matrix-multiply rate.

    uv run --package attn2mamba python packages/attn2mamba/bench/bench_scan.py [--threads 2] [--repeats 5]

Shapes follow the research notes: Mamba-2 12 heads x 64, state 64, one group, chunk 64; Mamba-1 d_inner 768,
state 16; linear attention 12 heads, 128 features, head dim 64. Batch 1, float32. Prints tokens/s and ratios;
on a shared machine trust the ratios (every contender is timed interleaved, best of ``--repeats``).
"""

from __future__ import annotations

import argparse
import time

import torch
from attn2mamba import linear_attention_chunked, linear_attention_quadratic, ssd_chunked
from transformers.models.mamba.modeling_mamba import mamba_selective_scan
from transformers.models.mamba2.modeling_mamba2 import mamba2_chunk_scan


def timed(fn, make, repeats: int) -> float:
    """Best wall time of ``fn(*make())`` forward + backward over ``repeats`` runs (fresh inputs each time)."""
    best = float("inf")
    for _ in range(repeats):
        args = make()
        t = time.perf_counter()
        out = fn(*args)
        out = out[0] if isinstance(out, tuple) else out
        out.float().square().mean().backward()
        best = min(best, time.perf_counter() - t)
    return best


def ssd_inputs(L: int, H=12, P=64, N=64, G=1, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make():
        x = torch.randn(1, L, H, P, generator=g).requires_grad_()
        dt = (torch.rand(1, L, H, generator=g) * 0.1 + 0.001).requires_grad_()
        A = (-torch.rand(H, generator=g) * 8 - 1).requires_grad_()
        B = torch.randn(1, L, G, N, generator=g).requires_grad_()
        C = torch.randn(1, L, G, N, generator=g).requires_grad_()
        return x, dt, A, B, C

    return make


def mamba1_inputs(L: int, D=768, N=16, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make():
        u = torch.randn(1, D, L, generator=g).requires_grad_()
        dt = (torch.rand(1, D, L, generator=g) * 0.1 + 0.001).requires_grad_()
        A = (-torch.rand(D, N, generator=g) * 8 - 1).requires_grad_()
        B = torch.randn(1, N, L, generator=g).requires_grad_()
        C = torch.randn(1, N, L, generator=g).requires_grad_()
        return u, dt, A, B, C

    return make


def la_inputs(L: int, H=12, F=128, P=64, seed=0):
    g = torch.Generator().manual_seed(seed)

    def make():
        qf = torch.rand(1, H, L, F, generator=g).requires_grad_()
        kf = torch.rand(1, H, L, F, generator=g).requires_grad_()
        v = torch.randn(1, H, L, P, generator=g).requires_grad_()
        return qf, kf, v

    return make


def ssd_flops(L: int, H=12, P=64, N=64, G=1, T=64) -> float:
    """Matmul FLOPs of one forward pass of our chunked scan (the elementwise work is not counted)."""
    c = L // T
    per_chunk = 2 * (G * T * T * N + H * T * T * P + H * N * T * P + H * T * N * P)
    inter = 2 * H * (c + 1) ** 2 * N * P
    return c * per_chunk + inter


def sgemm_rate(n: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads (0: leave as set, e.g. by OMP_NUM_THREADS)"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--length", type=int, default=1024, help="sequence length for the SSD comparison")
    ap.add_argument("--m1-length", type=int, default=1024, help="length for the Mamba-1 token loop (slow)")
    ap.add_argument("--la-length", type=int, default=2048)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    L = args.length
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, batch 1")

    ours = lambda x, dt, A, B, C: ssd_chunked(x, dt, A, B, C, chunk_size=64)  # noqa: E731
    hf2 = lambda x, dt, A, B, C: mamba2_chunk_scan(x, dt, A, B, C, 64)  # noqa: E731
    make = ssd_inputs(L)
    x, dt, A, B, C = make()
    err = (ours(x, dt, A, B, C) - hf2(x, dt, A, B, C)).abs().max().item()
    t_ours, t_hf2 = [], []
    for _ in range(2):  # interleaved, so contention hits both
        t_ours.append(timed(ours, make, args.repeats))
        t_hf2.append(timed(hf2, make, args.repeats))
    t_ours, t_hf2 = min(t_ours), min(t_hf2)
    t_m1 = timed(
        lambda u, dt, A, B, C: mamba_selective_scan(u, dt, A, B, C), mamba1_inputs(args.m1_length), 1
    )
    ours_tps, hf2_tps, m1_tps = L / t_ours, L / t_hf2, args.m1_length / t_m1
    print(
        f"\n1. SSD scan, forward+backward, L={L} (ours vs transformers 5.x; max |ours - mamba2_chunk_scan| {err:.1e})"
    )
    print(f"   ours ssd_chunked (12x64, N=64)          {ours_tps:12,.0f} tokens/s")
    print(
        f"   transformers mamba2_chunk_scan          {hf2_tps:12,.0f} tokens/s   ours / it = {ours_tps / hf2_tps:.2f}  (goal >= 1)"
    )
    print(
        f"   transformers mamba_selective_scan (M1)  {m1_tps:12,.0f} tokens/s   ours / it = {ours_tps / m1_tps:,.0f}"
        f"  (goal >= 20; d_inner 768, N=16, token loop, L={args.m1_length})"
    )

    la_make = la_inputs(args.la_length)
    chunked = lambda q, k, v: linear_attention_chunked(q, k, v, chunk_size=64)[0]  # noqa: E731
    t_c, t_q = [], []
    for _ in range(2):
        t_c.append(timed(chunked, la_make, args.repeats))
        t_q.append(timed(linear_attention_quadratic, la_make, args.repeats))
    t_c, t_q = min(t_c), min(t_q)
    La = args.la_length
    print(f"\n2. causal linear attention, forward+backward, L={La} (12 heads, 128 features, head dim 64)")
    print(f"   chunked (T=64)   {La / t_c:10,.0f} tokens/s")
    print(
        f"   quadratic        {La / t_q:10,.0f} tokens/s   chunked / quadratic = {t_q / t_c:.2f}  (goal >= 2)"
    )

    rate = sgemm_rate()
    achieved = 3 * ssd_flops(L) / t_ours / 1e9
    print("\n3. achieved rate of our SSD scan (matmul FLOPs, backward = 2 x forward)")
    print(
        f"   measured sgemm 1024^3: {rate:.1f} GFLOP/s; our scan: {achieved:.1f} GFLOP/s = {achieved / rate:.0%} of it"
    )


if __name__ == "__main__":
    main()
