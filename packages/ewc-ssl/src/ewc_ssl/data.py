"""Data with a spurious attribute: the offline "Waterbirds-digits" generator and the Waterbirds/CelebA layout.

**Waterbirds-digits** (offline, procedural). scikit-learn's bundled 8x8 digits, upsampled to 16x16, label
``y = 1[digit >= 5]``, on one of two background textures (the spurious attribute ``a``: 0 = horizontal stripes,
1 = checkerboard). In a *biased* split ``a = y`` with probability ``correlation`` (Waterbirds: 95%); *balanced*
splits draw ``a`` independently of ``y``. Groups are ``g = 2 y + a`` (label x attribute), as in Sagawa et al.
Splits are made of disjoint sets of digit images (:func:`digit_splits`), so no image is shared between
pretraining, train, validation and test.

**Waterbirds layout** (real data). A folder with ``metadata.csv`` whose columns name the image file, the label, the
attribute and the split (Waterbirds: ``img_filename, y, place, split`` with split 0/1/2 = train/val/test;
CelebA-style files with other column names are accepted via ``columns=``). :func:`metadata_image_list` hands a
split to the core's streaming pipeline (:mod:`paperkit.streaming`), so the set never has to fit in memory.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from paperkit.config import ConfigError

SIDE = 16
SPLITS = ("pretrain", "train", "val", "test")


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (read once: ``load_digits`` parses a CSV on every call)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32) / 16.0, d.target.astype(np.int64)


def digit_splits(fractions: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Disjoint index sets into the 1,797 digit images, one per split name, in the given proportions
    (they may sum to less than 1). The same ``seed`` gives the same partition."""
    images, _ = _digits()
    n = len(images)
    if sum(fractions.values()) > 1 + 1e-9:
        raise ConfigError(f"split fractions sum to {sum(fractions.values()):.3f} > 1")
    perm = np.random.default_rng(seed).permutation(n)
    out, start = {}, 0
    for name, frac in fractions.items():
        k = int(round(frac * n))
        out[name] = perm[start : start + k]
        start += k
    return out


def texture(kind: np.ndarray, rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """Background textures ``[N, side, side]`` in {0, 1}: kind 0 horizontal stripes (period 4), kind 1 a
    checkerboard of 2x2 cells; each with a random phase."""
    n = len(kind)
    r = np.arange(side)
    ph_r = rng.integers(0, 4, n)[:, None, None]
    ph_c = rng.integers(0, 4, n)[:, None, None]
    rows = (r[None, :, None] + ph_r) // 2 % 2
    cols = (r[None, None, :] + ph_c) // 2 % 2
    stripes = np.broadcast_to(rows, (n, side, side))
    checker = (rows + cols) % 2
    return np.where(kind[:, None, None] == 1, checker, stripes).astype(np.float32)


@dataclass
class GroupData:
    """Images ``x [N, side*side]`` in [0, 1+amp], ``y`` (label), ``a`` (attribute), ``digit`` (0..9)."""

    x: torch.Tensor
    y: torch.Tensor
    a: torch.Tensor
    digit: torch.Tensor

    @property
    def group(self) -> torch.Tensor:
        return 2 * self.y + self.a

    def __len__(self) -> int:
        return len(self.y)


def waterbirds_digits(
    indices: np.ndarray,
    *,
    correlation: float | None,
    seed: int,
    amplitude: float = 0.4,
    repeats: int = 1,
) -> GroupData:
    """Compose the digit images ``indices`` (each used ``repeats`` times) with background textures.

    ``correlation``: P(a = y) in a biased split (0.95 for Waterbirds-like training data, 0.5 for none);
    ``None`` draws ``a`` uniformly, independent of ``y`` (balanced pretraining data). For ``correlation`` set,
    groups get exactly ``round(correlation * n_y)`` majority examples per label (no sampling noise in the
    minority counts). Validation and test splits should be group-balanced: use :func:`balanced_groups`.
    """
    if correlation is not None and not 0.0 <= correlation <= 1.0:
        raise ConfigError(f"correlation must lie in [0, 1], got {correlation}")
    images, target = _digits()
    idx = np.tile(np.asarray(indices), repeats)
    rng = np.random.default_rng(seed)
    digit = target[idx]
    y = (digit >= 5).astype(np.int64)
    if correlation is None:
        a = rng.integers(0, 2, len(idx))
    else:
        a = np.empty(len(idx), dtype=np.int64)
        for label in (0, 1):
            where = np.flatnonzero(y == label)
            rng.shuffle(where)
            k = int(round(correlation * len(where)))
            a[where[:k]] = label
            a[where[k:]] = 1 - label
    return _compose(images[idx], digit, y, a, rng, amplitude)


def balanced_groups(indices: np.ndarray, *, seed: int, amplitude: float = 0.4) -> GroupData:
    """Every digit image twice, once on each texture: all four groups have the label's full count."""
    images, target = _digits()
    idx = np.repeat(np.asarray(indices), 2)
    a = np.tile(np.array([0, 1]), len(indices))
    digit = target[idx]
    y = (digit >= 5).astype(np.int64)
    return _compose(images[idx], digit, y, a, np.random.default_rng(seed), amplitude)


def _compose(img8, digit, y, a, rng, amplitude) -> GroupData:
    img = np.repeat(np.repeat(img8, 2, axis=1), 2, axis=2)  # 8x8 -> 16x16, nearest
    bg = amplitude * texture(a, rng)
    x = np.clip(img + bg * (1.0 - img), 0.0, 1.0)  # the texture shows where the digit is not
    return GroupData(
        x=torch.from_numpy(x.reshape(len(x), -1).astype(np.float32)),
        y=torch.from_numpy(y),
        a=torch.from_numpy(np.asarray(a, dtype=np.int64)),
        digit=torch.from_numpy(digit),
    )


def redraw_background(indices: np.ndarray, gen: torch.Generator, *, amplitude: float = 0.4) -> torch.Tensor:
    """The digit images ``indices`` on freshly drawn backgrounds (random texture kind and phase per image): a
    label-free SSL augmentation that randomises the background between views, as colour jitter and crops do
    for natural images. ``[N, 256]``."""
    images, _ = _digits()
    seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 2, len(indices))
    zeros = np.zeros(len(indices), dtype=np.int64)
    return _compose(images[np.asarray(indices)], zeros, zeros, kind, rng, amplitude).x


def augment(x: torch.Tensor, gen: torch.Generator, *, shift: int = 2, noise: float = 0.1) -> torch.Tensor:
    """A view of ``[N, 256]`` 16x16 images: random translation by up to ``shift`` pixels (wrap-around, so the
    texture stays a texture), Gaussian noise, random contrast in [0.7, 1.3]. Batched tensor ops."""
    n = x.shape[0]
    img = x.reshape(n, SIDE, SIDE)
    dy = torch.randint(-shift, shift + 1, (n,), generator=gen)
    dx = torch.randint(-shift, shift + 1, (n,), generator=gen)
    r = torch.arange(SIDE)
    rows = (r[None, :] - dy[:, None]) % SIDE
    cols = (r[None, :] - dx[:, None]) % SIDE
    img = img[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    scale = 0.7 + 0.6 * torch.rand(n, 1, 1, generator=gen)
    img = img * scale + noise * torch.randn(img.shape, generator=gen)
    return img.reshape(n, -1)


# -- the Waterbirds / CelebA metadata layout ------------------------------------------------------------------


WATERBIRDS_COLUMNS = {"file": "img_filename", "label": "y", "attribute": "place", "split": "split"}
SPLIT_CODES = {"train": ("0", "train"), "val": ("1", "val", "valid", "validation"), "test": ("2", "test")}


@dataclass(frozen=True)
class MetadataRecord:
    path: Path
    y: int
    a: int


def read_metadata(
    root: str | Path, split: str, *, columns: dict[str, str] | None = None
) -> list[MetadataRecord]:
    """Rows of ``root/metadata.csv`` for ``split`` (train/val/test). Bad layouts are one-line ConfigErrors."""
    root = Path(root)
    cols = {**WATERBIRDS_COLUMNS, **(columns or {})}
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise ConfigError(
            f"{root}: no metadata.csv (expected the Waterbirds layout: {', '.join(cols.values())})"
        )
    if split not in SPLIT_CODES:
        raise ConfigError(f"unknown split {split!r}; expected train, val or test")
    with open(meta, newline="") as f:
        reader = csv.DictReader(f)
        absent = [c for c in cols.values() if c not in (reader.fieldnames or [])]
        if absent:
            raise ConfigError(
                f"{meta}: no column {absent[0]!r} (columns: {', '.join(reader.fieldnames or [])})"
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            if str(row[cols["split"]]).strip().lower() not in SPLIT_CODES[split]:
                continue
            try:
                y, a = int(float(row[cols["label"]])), int(float(row[cols["attribute"]]))
            except ValueError:
                raise ConfigError(f"{meta}:{line}: label and attribute must be integers") from None
            if y not in (0, 1) or a not in (0, 1):
                raise ConfigError(f"{meta}:{line}: label and attribute must be 0 or 1, got {y}, {a}")
            rows.append(MetadataRecord(root / row[cols["file"]], y, a))
    if not rows:
        raise ConfigError(f"{meta}: no rows for split {split!r}")
    return rows


def metadata_image_list(root: str | Path, split: str, *, columns: dict[str, str] | None = None):
    """A split of a Waterbirds-layout folder as the core's streaming :class:`paperkit.streaming.ImageList`,
    with the **group** ``2 y + a`` as its integer label (``y = label // 2``, ``a = label % 2``): decode-on-demand
    loading, resumable sampling across ranks and skipping of unreadable images come from the core."""
    from paperkit.streaming import ImageList

    rows = read_metadata(root, split, columns=columns)
    return ImageList(
        [str(r.path) for r in rows], [2 * r.y + r.a for r in rows], ["y0-a0", "y0-a1", "y1-a0", "y1-a1"]
    )
