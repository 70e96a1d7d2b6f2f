"""Decoding throughput and state memory against sequence length: the Mamba (recurrent state) vs the teacher
(softmax attention with a KV cache), in one process.

For each total length ``L`` (prompt + generated tokens), a 64-token prompt is consumed in one pass and
``L - 64`` tokens are decoded greedily one at a time (:func:`attn2mamba.generate`). Printed per length: tokens/s
of the decoding loop for each model, their ratio, and the bytes of each model's decoding state at the end (the
teacher's KV cache grows with ``L``; the Mamba's SSM + convolution state does not). Models are the default
preset's shape (4 layers, width 64, 4 heads; Mamba state 32 per head) with random weights (speed does not depend
on training); the teacher's ``max_seq_len`` is raised to the longest length.

    uv run --package attn2mamba python packages/attn2mamba/bench/bench_decode.py [--lengths 256,1024,4096,8192]

Goal (issue 14): the Mamba faster than the teacher beyond 1,024 tokens, its state flat in length.
"""

from __future__ import annotations

import argparse
import time

import torch
from attn2mamba import (
    GPTNeoX,
    HedgehogConfig,
    HedgehogLM,
    LMConfig,
    MambaConfig,
    generate,
    mamba_from_hedgehog,
)
from attn2mamba.lm import LMState


def state_bytes(state: LMState) -> int:
    total = 0
    for layer in state.layers:
        for t in vars(layer).values():
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def decode(model, prompt: torch.Tensor, new: int) -> tuple[float, int]:
    """Seconds of the token-by-token loop (prompt pass excluded) and the final state's bytes."""
    with torch.no_grad():
        state = model.init_state(prompt.shape[0])
        logits, state = model.step(prompt, state)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        t = time.perf_counter()
        for _ in range(new):
            logits, state = model.step(nxt, state)
            nxt = logits[:, -1].argmax(-1, keepdim=True)
        return time.perf_counter() - t, state_bytes(state)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="256,1024,4096,8192")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    cfg = LMConfig(256, 64, 4, 4, 256, max_seq_len=max(lengths))
    torch.manual_seed(0)
    teacher = GPTNeoX(cfg)
    teacher.init_weights()
    s1 = HedgehogLM.from_teacher(
        teacher.eval(), HedgehogConfig(feature_dim=16, normalize="ratio", rotary=True)
    )
    mamba = mamba_from_hedgehog(s1, MambaConfig()).eval()
    prompt = torch.randint(0, 256, (args.batch, 64), generator=torch.Generator().manual_seed(0))
    assert generate(mamba, prompt, 8, temperature=0).shape == (args.batch, 72)  # the public API on this model
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, float32")
    print(
        f"{'length':>7} {'teacher tok/s':>14} {'mamba tok/s':>12} {'mamba/teacher':>14} "
        f"{'teacher state':>14} {'mamba state':>12}"
    )
    for L in lengths:
        new = L - prompt.shape[1]
        tt, tb = decode(teacher, prompt, new)
        mt, mb = decode(mamba, prompt, new)
        n = new * args.batch
        print(
            f"{L:>7} {n / tt:>14.0f} {n / mt:>12.0f} {tt / mt:>14.2f} {tb / 1024:>12.0f}kB {mb / 1024:>10.0f}kB",
            flush=True,
        )


if __name__ == "__main__":
    main()
