"""Retrieval at IMAC size and the audio front end, in one process, printing ratios.

1. Music-to-image queries per second over an IMAC-sized database (85,000 x 128, unit vectors around three emotion
   clusters): torch matmul + top-k (the anchor) vs faiss exact (IndexFlatIP), HNSW (efSearch sweep) and IVF (nprobe
   sweep), with recall@10 against exact search and the build time.
2. The log-mel front end: clips per second, one batched ``torch.stft`` call vs a per-clip loop (the anchor).

    uv run --package affective-music python packages/affective-music/bench/bench_retrieval.py [--n 85000]
        [--queries 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np
import torch
from affective_music import retrieval
from affective_music.frontend import LogMel


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_retrieval(n: int, d: int, queries: int, k: int, threads: int) -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, d)).astype(np.float32)
    lb, lq = rng.integers(0, 3, n), rng.integers(0, 3, queries)
    xb = retrieval.normalize(
        centers[lb] * 0.15 + rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d) * 3
    )
    xq = retrieval.normalize(
        centers[lq] * 0.15 + rng.standard_normal((queries, d)).astype(np.float32) / np.sqrt(d) * 3
    )
    tq, tb = torch.from_numpy(xq), torch.from_numpy(xb)
    t_torch, (_, exact) = timed(lambda: [a.numpy() for a in torch.topk(tq @ tb.T, k, dim=1)])
    print(f"database {n} x {d}, {queries} queries, k={k}, threads={threads} (torch and faiss)")
    print(f"{'method':28s} {'build s':>8s} {'QPS':>9s} {'x torch':>8s} {'recall@k':>9s} {'P@k':>6s}")
    print(
        f"{'torch matmul + topk':28s} {0:8.2f} {queries / t_torch:9.0f} {1:8.2f} {1:9.3f} "
        f"{retrieval.precision_at_k(exact, lq, lb):6.3f}"
    )
    rows = [("faiss exact (FlatIP)", "exact", {})]
    rows += [(f"faiss HNSW32 ef={ef}", "hnsw", {"ef_search": ef}) for ef in (16, 64, 128)]
    rows += [(f"faiss IVF nprobe={p}", "ivf", {"nprobe": p}) for p in (1, 8, 32)]
    built: dict = {}
    for name, kind, kw in rows:
        key = kind
        if key not in built:
            t0 = time.perf_counter()
            built[key] = retrieval.build_index(
                kind, xb, threads=threads, **({"nprobe": 1} if kind == "ivf" else {})
            )
            built[key + "_t"] = time.perf_counter() - t0
        index = built[key]
        if kind == "hnsw":
            index.hnsw.efSearch = kw["ef_search"]
        if kind == "ivf":
            index.nprobe = kw["nprobe"]
        t, (_, ids) = timed(lambda index=index: retrieval.search(index, xq, k))
        print(
            f"{name:28s} {built[key + '_t']:8.2f} {queries / t:9.0f} {t_torch / t:8.2f} "
            f"{retrieval.recall_at_k(ids, exact):9.3f} {retrieval.precision_at_k(ids, lq, lb):6.3f}"
        )


def bench_frontend(clips: int, seconds: float, sr: int) -> None:
    front = LogMel(sr, 512, 256, 32)
    x = torch.randn(clips, int(seconds * sr))
    t_batched, _ = timed(lambda: front(x))
    t_loop, _ = timed(lambda: [front(x[i][None]) for i in range(clips)])
    print(
        f"log-mel front end, {clips} clips of {seconds:g} s at {sr} Hz: batched {clips / t_batched:.0f} clips/s, "
        f"per-clip loop {clips / t_loop:.0f} clips/s, ratio {t_loop / t_batched:.2f}x"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=85000, help="database size (IMAC: about 85,000 images)")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clips", type=int, default=256)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    bench_frontend(a.clips, 3.0, 8000)
    bench_retrieval(a.n, a.d, a.queries, a.k, a.threads)


if __name__ == "__main__":
    main()
