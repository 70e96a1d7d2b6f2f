"""Streaming image pipeline vs torchvision's ImageFolder: images per second and peak memory.

    python shared/core/bench/bench_streaming.py [--sizes 2000,20000] [--workers 2] [--batches 40]

Writes folders of 256 px JPEGs (10 classes) under a temporary directory, then for each folder size runs, each in
a fresh process (so peak RSS is its own), (a) paperkit.streaming (decode on workers, 2 views of random resized
crop 224 + flip + colour jitter) and (b) torchvision.datasets.ImageFolder with the same two views from
torchvision.transforms.v2, the same workers and batch size. Prints images/s, the ratio, and peak RSS (process
plus workers) at both sizes: the goals are ratio >= 1 and RSS that does not grow with the folder.
A GPU decode path (torchvision.io.decode_jpeg on CUDA) would move the decode off the CPU workers; it is not
measured here (no GPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_folder(root: Path, n: int, size: int = 256) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    for i in range(n):
        c = i % 10
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        img = np.roll(base, shift=(i * 7) % size, axis=1)
        img[..., c % 3] = (img[..., c % 3] // 2 + 40 * (c // 3)).astype(np.uint8)
        Image.fromarray(img).save(d / f"{i}.jpg", quality=90)
    return root


def child(kind: str, folder: str, workers: int, batches: int, batch: int) -> dict:
    import torch

    torch.set_num_threads(1)
    if kind == "paperkit":
        from paperkit.streaming import ImageList, streaming_loader

        loader = streaming_loader(
            ImageList.from_folder(folder), batch_size=batch, size=224, views=2, seed=0, workers=workers
        )
    else:
        from torchvision import datasets
        from torchvision.transforms import v2

        view = v2.Compose(
            [
                v2.PILToTensor(),
                v2.RandomResizedCrop(224, antialias=True),
                v2.RandomHorizontalFlip(),
                v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4)], p=0.8),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

        def two_views(img):
            return torch.stack([view(img), view(img)])

        ds = datasets.ImageFolder(folder, transform=two_views)
        kwargs = {"num_workers": workers, "prefetch_factor": 4} if workers else {}
        loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, **kwargs)
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not timed
    t0 = time.perf_counter()
    seen = 0
    for _ in range(batches):
        try:
            x = next(it)[0]
        except StopIteration:
            break
        seen += x.shape[0]
    dt = time.perf_counter() - t0
    rss = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    return {"images_per_s": seen / dt, "peak_rss_mb": rss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="2000,20000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--child", nargs=2, metavar=("KIND", "FOLDER"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.workers, a.batches, a.batch)))
        return
    print(f"workers {a.workers}, batch {a.batch}, {a.batches} batches of 2 views at 224 px from 256 px JPEGs")
    print(
        f"{'images':>7} {'paperkit img/s':>15} {'ImageFolder img/s':>18} {'ratio':>6} {'RSS paperkit MB':>16} {'RSS IF MB':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for n in map(int, a.sizes.split(",")):
            folder = write_folder(Path(tmp) / f"n{n}", n)
            res = {}
            for kind in ("paperkit", "torchvision"):
                out = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        kind,
                        str(folder),
                        "--workers",
                        str(a.workers),
                        "--batches",
                        str(a.batches),
                        "--batch",
                        str(a.batch),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res[kind] = json.loads(out.stdout.strip().splitlines()[-1])
            p, t = res["paperkit"], res["torchvision"]
            print(
                f"{n:>7} {p['images_per_s']:>15.1f} {t['images_per_s']:>18.1f} "
                f"{p['images_per_s'] / t['images_per_s']:>6.2f} {p['peak_rss_mb']:>16.0f} {t['peak_rss_mb']:>10.0f}"
            )


if __name__ == "__main__":
    main()
