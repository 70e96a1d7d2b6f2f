"""Offline data: what every package may use without a download, and loaders for formats users bring.

- :func:`digits`: scikit-learn's bundled 8x8 digits (1,797 images), as float tensors in [0, 1], split.
- :func:`image_folder`: an ImageFolder layout (``root/CLASS/*.png|jpg``) read into one uint8 tensor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .config import ConfigError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def digits(*, test_fraction: float = 0.2, seed: int = 0) -> dict[str, torch.Tensor]:
    """scikit-learn's digits, shuffled with ``seed`` and split: x in [0, 1] shaped [N, 64], y in 0..9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(len(x) * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


def image_folder(root: str | Path, *, size: int = 32, max_per_class: int | None = None) -> dict:
    """Read ``root/CLASS/IMAGE`` into ``{"images": uint8 [N, 3, size, size], "labels": [N], "classes": [...]}``.

    Images are converted to RGB and resized (bilinear) to ``size``; for data that does not fit in memory, stream
    it with a dataset of your own instead.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"image folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ConfigError(f"image folder {root} has no class sub-folders (expected root/CLASS/IMAGE)")
    images, labels = [], []
    for ci, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for p in files[:max_per_class]:
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy())
            except (OSError, UnidentifiedImageError) as e:
                raise ConfigError(f"cannot read image {p}: {e}") from None
            labels.append(ci)
    if not images:
        raise ConfigError(f"image folder {root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return {"images": torch.from_numpy(np.stack(images)), "labels": torch.tensor(labels), "classes": classes}
