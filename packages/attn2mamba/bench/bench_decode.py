"""Decoding throughput and peak memory against sequence length: the Mamba (recurrent state) vs the teacher
(softmax attention with a KV cache).

For each total length ``L`` (prompt + generated tokens), each model and each decoding path, a fresh process builds
the model, consumes a 64-token prompt in one pass and decodes ``L - 64`` tokens greedily one at a time, state on
the model's device. Two paths per model: ``lean``, the one-token step :func:`attn2mamba.generate` uses
(``model.decode_step()``: :class:`attn2mamba.decoding.MambaStep`, and for the teacher
:class:`attn2mamba.decoding.TeacherStep` with a preallocated KV cache), and ``general``, ``model.step`` (the
teacher's cache concatenated every token). The headline ratio is lean against lean. Printed per length and model: tokens/s of the decoding loop (wall clock, and per
CPU-second, the honest number on a shared machine), the bytes of the decoding state at the end (the teacher's KV
cache grows with ``L``; the Mamba's SSM + convolution state does not), and the peak memory of decoding: the growth
of the process's peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``, a high-water mark, hence one fresh
process per measurement) from just before the prompt pass to the end. ``tracemalloc`` would not see torch's
tensor allocations (they bypass Python's allocator), so the resident set is what is measured. Models are the default
preset's shape (4 layers, width 64, 4 heads; Mamba state 32 per head, rotary B/C; ``--no-rotary``: without) with random
weights (speed does not depend on training); the teacher's ``max_seq_len`` is raised to the longest length.

    uv run --package attn2mamba python packages/attn2mamba/bench/bench_decode.py [--lengths 256,1024,4096,8192]
        [--batch 1] [--no-rotary] [--paths lean,general] [--repeat 1]
        [--compile]   # both models' lean steps through torch.compile (compile time reported apart)

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


def build(name: str, max_len: int, rotary: bool = False):
    import torch
    from attn2mamba import GPTNeoX, HedgehogConfig, HedgehogLM, LMConfig, MambaConfig, mamba_from_hedgehog

    cfg = LMConfig(256, 64, 4, 4, 256, max_seq_len=max_len)
    torch.manual_seed(0)
    teacher = GPTNeoX(cfg)
    teacher.init_weights()
    if name == "teacher":
        return teacher.eval()
    s1 = HedgehogLM.from_teacher(
        teacher.eval(), HedgehogConfig(feature_dim=16, normalize="ratio", rotary=rotary)
    )
    return mamba_from_hedgehog(s1, MambaConfig()).eval()


def one(
    name: str, path: str, length: int, threads: int, batch: int, rotary: bool, compile_step: bool
) -> dict:
    """One measurement, in this (fresh) process."""
    import torch
    from attn2mamba import generate

    torch.set_num_threads(threads)
    model = build(name, length, rotary)
    prompt = torch.randint(0, 256, (batch, PROMPT), generator=torch.Generator().manual_seed(0))
    step = model.decode_step() if path == "lean" else model.step
    compile_s = 0.0
    if compile_step:
        step = torch.compile(step, dynamic=True)
        c0 = time.process_time()
        generate(model, prompt, 8, temperature=0, step=step)  # compiles
        compile_s = time.process_time() - c0
    new = length - PROMPT
    with torch.no_grad():
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        state = model.init_state(batch)
        logits, state = model.step(prompt, state)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        one_step = step
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(new):
            logits, state = one_step(nxt, state)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    n = new * batch
    return {
        "model": name,
        "path": path,
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
    ap.add_argument(
        "--rotary",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="rotary B/C in the Mamba (the trainer's default, --stage1-rotary)",
    )
    ap.add_argument(
        "--paths", default="lean,general", help="lean (model.decode_step()) and/or general (model.step)"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="fresh processes per measurement, interleaved; the fastest is kept",
    )
    ap.add_argument("--compile", action="store_true", help="torch.compile every measured step")
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "PATH", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        name, path, length = args.one[0], args.one[1], int(args.one[2])
        print(json.dumps(one(name, path, length, args.threads, args.batch, args.rotary, args.compile)))
        return
    import torch

    paths = [p for p in args.paths.split(",") if p]
    if not paths or any(p not in ("lean", "general") for p in paths):
        ap.error(f"--paths takes lean and/or general, got {args.paths!r}")
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, float32, prompt {PROMPT}, "
        f"Mamba B/C {'rotary' if args.rotary else 'not rotary'}"
    )
    cols = [f"{m} {p} tok/s" for p in paths for m in ("teacher", "Mamba")]
    print(
        "| length | "
        + " | ".join(cols)
        + " | Mamba/teacher (wall) | Mamba/teacher (CPU) | teacher state | Mamba state | teacher peak | Mamba peak |"
    )
    print("|---:" * (len(cols) + 7) + "|")
    for L in (int(x) for x in args.lengths.split(",")):
        res: dict = {}
        for _ in range(
            max(1, args.repeat)
        ):  # interleaved, so that a slow spell of the machine hits every model
            for path in paths:
                for name in ("teacher", "mamba"):
                    cmd = [
                        sys.executable,
                        __file__,
                        "--one",
                        name,
                        path,
                        str(L),
                        "--threads",
                        str(args.threads),
                    ]
                    cmd += ["--batch", str(args.batch), "--rotary" if args.rotary else "--no-rotary"]
                    cmd += ["--compile"] * args.compile
                    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
                    if (name, path) not in res or out["tok_s"] > res[name, path]["tok_s"]:
                        res[name, path] = out
        t, m = res["teacher", paths[0]], res["mamba", paths[0]]  # the headline: the first path (lean)
        rates = " | ".join(f"{res[n, p]['tok_s']:,.0f}" for p in paths for n in ("teacher", "mamba"))
        print(
            f"| {L:,} | {rates} | {m['tok_s'] / t['tok_s']:.2f} | {m['tok_cpu_s'] / t['tok_cpu_s']:.2f} | "
            f"{t['state_kb']:,.0f} kB | {m['state_kb']:,.0f} kB | {t['peak_mb']:,.1f} MB | {m['peak_mb']:,.1f} MB |",
            flush=True,
        )
        if args.compile:
            print(f"  (compile: teacher {t['compile_cpu_s']:.1f}, Mamba {m['compile_cpu_s']:.1f} CPU-s)")


if __name__ == "__main__":
    main()
