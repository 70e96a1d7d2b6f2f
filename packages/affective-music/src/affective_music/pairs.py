"""Pairs of (music clip, image) balanced between true and false correspondence, over disjoint item splits.

A pair is *true* when the clip and the image carry the same emotion label. Each pair draws a clip uniformly, then
with probability 1/2 an image of the clip's label, otherwise an image of one of the two other labels (uniformly):
chance accuracy is 1/2 whatever the class balance. Splits are made per item (clip or image), never per pair, so no
clip or image of the test pairs is seen in training::

    split = split_items(n_clips, (0.6, 0.2, 0.2), seed)          # {"train": idx, "val": idx, "test": idx}
    a, v, y = sample_pairs(clip_labels, image_labels, clips["train"], images["train"], 64, generator)
"""

from __future__ import annotations

import numpy as np
import torch

SPLITS = ("train", "val", "test")


def split_items(n: int, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """Disjoint train/val/test index arrays covering ``range(n)`` (a seeded permutation cut by ``fractions``)."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float, float], seed: int
) -> dict[str, np.ndarray]:
    """:func:`split_items` within each label, so that every split holds every label."""
    labels = np.asarray(labels)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        sub = split_items(len(idx), fractions, seed + 7919 * int(c))
        for s in SPLITS:
            parts[s].append(idx[sub[s]])
    return {s: np.sort(np.concatenate(parts[s])) for s in SPLITS}


def _by_label(labels: torch.Tensor, pool: torch.Tensor, n_labels: int) -> list[torch.Tensor]:
    groups = [pool[labels[pool] == c] for c in range(n_labels)]
    for c, g in enumerate(groups):
        if len(g) == 0:
            raise ValueError(f"no image with label {c} in this split: cannot build balanced pairs")
    return groups


def sample_pairs(
    clip_labels: torch.Tensor,
    image_labels: torch.Tensor,
    clip_pool: torch.Tensor,
    image_pool: torch.Tensor,
    batch: int,
    generator: torch.Generator,
    n_labels: int = 3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``batch`` pairs: clip indices, image indices (into the full arrays) and targets (1 = same label)."""
    clip_labels, image_labels = torch.as_tensor(clip_labels), torch.as_tensor(image_labels)
    clip_pool, image_pool = torch.as_tensor(clip_pool), torch.as_tensor(image_pool)
    clips = clip_pool[torch.randint(len(clip_pool), (batch,), generator=generator)]
    target = (torch.rand(batch, generator=generator) < 0.5).long()
    shift = torch.randint(1, n_labels, (batch,), generator=generator)
    want = torch.where(target.bool(), clip_labels[clips], (clip_labels[clips] + shift) % n_labels)
    u = torch.rand(batch, generator=generator)
    images = torch.empty(batch, dtype=torch.long)
    for c, group in enumerate(_by_label(image_labels, image_pool, n_labels)):
        sel = want == c
        images[sel] = group[(u[sel] * len(group)).long().clamp(max=len(group) - 1)]
    return clips, images, target


def fixed_pairs(
    clip_labels, image_labels, clip_pool, image_pool, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed evaluation set of ``count`` pairs (seeded): every clip of the pool is used about equally often."""
    return sample_pairs(
        clip_labels, image_labels, clip_pool, image_pool, count, torch.Generator().manual_seed(seed)
    )
