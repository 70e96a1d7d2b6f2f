"""Forward + backward time of the poly-view losses, in one process, against two anchors.

1. M = 2, K = 256, d = 128: ``pvc_loss`` against lightly's ``NTXentLoss`` (goal: at least as fast).
2. M * K = 256, d = 128, M in {4, 8}: ``pvc_loss`` against a looped reference with the structure of the paper's
   appendix pseudo-code (one masked K x MK cross-entropy per ordered view pair, O(M^2) Python iterations; goal at
   M = 8: at least 5 times faster).

Medians over 7 alternating rounds of ``torch.utils.benchmark.Timer.blocked_autorange``; threads from ``OMP_NUM_THREADS`` (default 2).
Prints ms per call, samples (anchors' source images, K) per second and the ratios.

    python packages/polyview/bench/bench_losses.py            # or: nox -s "bench(package='polyview')"
"""

from __future__ import annotations

import math
import os
import platform
import statistics

import torch
import torch.nn.functional as F
from polyview import pvc_loss
from torch.utils import benchmark

TAU = 0.2


def looped_reference(z: torch.Tensor, tau: float, method: str = "geometric") -> torch.Tensor:
    """One masked cross-entropy per ordered view pair (a, b): the anchor (i, a) ranks the M K candidates (j, n)
    with the sample's other views (i, n != b) masked out; then over b the mean (geometric), logsumexp - log K
    (harmonic: the appendix pseudo-code) or -logsumexp(-.) + log(M - 1) (arithmetic)."""
    k, m, _ = z.shape
    z = F.normalize(z, dim=-1)
    scores = torch.einsum("iad,jnd->ianj", z, z) / tau  # [K, M(a), M(n), K(j)]
    eye_k = torch.eye(k, dtype=torch.bool)
    per_a = []
    for a in range(m):
        per_b = []
        for b in range(m):
            if a == b:
                continue
            drop = eye_k[:, None, :].expand(k, m, k).clone()  # same sample ...
            drop[:, b, :] = False  # ... except the positive view b
            logits = scores[:, a].masked_fill(drop, float("-inf")).reshape(k, m * k)
            target = torch.arange(k) + b * k
            per_b.append(F.cross_entropy(logits, target, reduction="none"))  # [K], not the mean
        stacked = torch.stack(per_b, dim=-1)
        if method == "geometric":
            per_a.append(stacked.mean(-1))
        elif method == "harmonic":
            per_a.append(torch.logsumexp(stacked, -1) - math.log(k))
        else:  # arithmetic
            per_a.append(-torch.logsumexp(-stacked, -1) + math.log(m - 1))
    return torch.stack(per_a, -1).mean()


def fwd_bwd(fn, z: torch.Tensor):
    def step():
        z.grad = None
        fn(z).backward()

    return step


def race(fns: dict, z: torch.Tensor, rounds: int = 7) -> dict[str, float]:
    """Median seconds per forward + backward of each function. The functions are timed in alternation, round
    after round, so that load from other processes on a shared machine hits them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    steps = {name: fwd_bwd(fn, z) for name, fn in fns.items()}
    for _ in range(rounds):
        for name, step in steps.items():
            timer = benchmark.Timer(
                stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads()
            )
            times[name].append(timer.blocked_autorange(min_run_time=0.2).median)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, {threads} threads, {platform.processor() or platform.machine()}")
    gen = torch.Generator().manual_seed(0)

    # 1. M = 2 against lightly's NT-Xent
    from lightly.loss import NTXentLoss

    k, d = 256, 128
    z = torch.randn(k, 2, d, generator=gen).requires_grad_(True)
    ntxent = NTXentLoss(temperature=TAU)
    theirs = ntxent(z[:, 0], z[:, 1])
    ours = pvc_loss(z, TAU)
    assert torch.allclose(theirs, ours, rtol=1e-5), (theirs.item(), ours.item())
    t = race({"theirs": lambda t: ntxent(t[:, 0], t[:, 1]), "ours": lambda t: pvc_loss(t, TAU)}, z)
    t_theirs, t_ours = t["theirs"], t["ours"]
    print(f"\nM=2 K={k} d={d} (loss {ours.item():.4f} both)")
    print(f"  lightly NTXentLoss  {1e3 * t_theirs:8.3f} ms  {k / t_theirs:10.0f} samples/s")
    print(f"  pvc_loss            {1e3 * t_ours:8.3f} ms  {k / t_ours:10.0f} samples/s")
    print(f"  ratio lightly / ours = {t_theirs / t_ours:.2f}  (goal >= 1)")

    # 2. poly-view against the looped reference at M * K = 256
    for m in (4, 8):
        k = 256 // m
        z = torch.randn(k, m, d, generator=gen).requires_grad_(True)
        for method in ("geometric", "arithmetic", "harmonic"):
            ref = looped_reference(z, TAU, method)
            ours = pvc_loss(z, TAU, method)
            assert torch.allclose(ref, ours, rtol=1e-5, atol=1e-6), (method, ref.item(), ours.item())
        t = race({"looped": lambda t: looped_reference(t, TAU), "ours": lambda t: pvc_loss(t, TAU)}, z)
        t_ref, t_ours = t["looped"], t["ours"]
        print(f"\nM={m} K={k} d={d} geometric (values equal to the looped reference)")
        print(f"  looped reference    {1e3 * t_ref:8.3f} ms  {k / t_ref:10.0f} samples/s")
        print(f"  pvc_loss            {1e3 * t_ours:8.3f} ms  {k / t_ours:10.0f} samples/s")
        goal = "  (goal >= 5)" if m == 8 else ""
        print(f"  ratio looped / ours = {t_ref / t_ours:.2f}{goal}")


if __name__ == "__main__":
    main()
