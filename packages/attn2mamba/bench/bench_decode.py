"""Decoding throughput and peak memory against sequence length: the Mamba (recurrent state) vs the teacher
(softmax attention with a KV cache).

For each total length ``L`` (prompt + generated tokens) and each model, a fresh process builds the model, consumes
a 64-token prompt in one pass and decodes ``L - 64`` tokens greedily one at a time (:func:`attn2mamba.generate`,
state on the model's device). Printed per length and model: tokens/s of the decoding loop (wall clock, and per
CPU-second, the honest number on a shared machine), the bytes of the decoding state at the end (the teacher's KV
cache grows with ``L``; the Mamba's SSM + convolution state does not), and the peak memory of decoding: the growth
of the process's peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``, a high-water mark, hence one fresh
process per measurement) from just before the prompt pass to the end. ``tracemalloc`` would not see torch's
tensor allocations (they bypass Python's allocator), so the resident set is what is measured. Models are the default
preset's shape (4 layers, width 64, 4 heads; Mamba state 32 per head, rotary B/C) with random weights (speed does
not depend on training); the teacher's ``max_seq_len`` is raised to the longest length.

    uv run --package attn2mamba python packages/attn2mamba/bench/bench_decode.py [--lengths 256,1024,4096,8192]
        [--compile]   # the Mamba's per-token step through torch.compile (compile time reported apart)

Goal (issue 14): the Mamba faster than the teacher beyond 1,024 tokens, its memory flat in length.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

PROMPT = 64


def state_bytes(state) -> int:
    import torch

    total = 0
    for layer in state.layers:
        for t in vars(layer).values():
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def build(name: str, max_len: int):
    import torch
    from attn2mamba import GPTNeoX, HedgehogConfig, HedgehogLM, LMConfig, MambaConfig, mamba_from_hedgehog

    cfg = LMConfig(256, 64, 4, 4, 256, max_seq_len=max_len)
    torch.manual_seed(0)
    teacher = GPTNeoX(cfg)
    teacher.init_weights()
    if name == "teacher":
        return teacher.eval()
    s1 = HedgehogLM.from_teacher(
        teacher.eval(), HedgehogConfig(feature_dim=16, normalize="ratio", rotary=True)
    )
    return mamba_from_hedgehog(s1, MambaConfig()).eval()


def one(name: str, length: int, threads: int, batch: int, compile_step: bool) -> dict:
    """One measurement, in this (fresh) process."""
    import torch
    from attn2mamba import generate

    torch.set_num_threads(threads)
    model = build(name, length)
    prompt = torch.randint(0, 256, (batch, PROMPT), generator=torch.Generator().manual_seed(0))
    step, compile_s = None, 0.0
    if compile_step:
        step = torch.compile(model.step, dynamic=True)
        c0 = time.process_time()
        generate(model, prompt, 8, temperature=0, step=step)  # compiles
        compile_s = time.process_time() - c0
    new = length - PROMPT
    with torch.no_grad():
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        state = model.init_state(batch)
        logits, state = model.step(prompt, state)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        one_step = step or model.decode_step()
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(new):
            logits, state = one_step(nxt, state)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = new * batch
    return {
        "model": name,
        "length": length,
        "tok_s": n / wall,
        "tok_cpu_s": n / cpu,
        "state_kb": state_bytes(state) / 1024,
        "peak_mb": (rss1 - rss0) / 1024,  # ru_maxrss is in kB on Linux
        "compile_cpu_s": compile_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="256,1024,4096,8192")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="torch.compile the Mamba's per-token step")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        name, length = args.one[0], int(args.one[1])
        print(json.dumps(one(name, length, args.threads, args.batch, args.compile and name == "mamba")))
        return
    import torch

    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, float32, prompt {PROMPT}"
    )
    print(
        "| length | teacher tok/s | Mamba tok/s | Mamba/teacher (wall) | Mamba/teacher (CPU) | teacher state | "
        "Mamba state | teacher peak | Mamba peak |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for L in (int(x) for x in args.lengths.split(",")):
        res = {}
        for name in ("teacher", "mamba"):
            cmd = [sys.executable, __file__, "--one", name, str(L), "--threads", str(args.threads)]
            cmd += ["--batch", str(args.batch)] + (["--compile"] if args.compile else [])
            res[name] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        t, m = res["teacher"], res["mamba"]
        print(
            f"| {L:,} | {t['tok_s']:,.0f} | {m['tok_s']:,.0f} | {m['tok_s'] / t['tok_s']:.2f} | "
            f"{m['tok_cpu_s'] / t['tok_cpu_s']:.2f} | {t['state_kb']:,.0f} kB | {m['state_kb']:,.0f} kB | "
            f"{t['peak_mb']:,.1f} MB | {m['peak_mb']:,.1f} MB |",
            flush=True,
        )
        if args.compile:
            print(f"  (Mamba step compile: {m['compile_cpu_s']:.1f} CPU-s)")


if __name__ == "__main__":
    main()
