"""Offline data for the trainer (no download): digit scenes on photographs, and signals with an event.

* :class:`DigitScenes`: an S x S image = a random resized crop of one of scikit-image's bundled photographs, with
  one scikit-learn digit glyph (8 x 8) rendered by ``grid_sample`` at a continuous position, size and aspect ratio
  in a random colour. Labels: the glyph's box ``(cx, cy, w, h) / S`` (the spatial task), the photograph it was
  cropped from (``scene``, 18-way: the global task) and the digit class (``y``; at this scale no frozen feature,
  raw pixels included, reads it linearly above chance, so the trainer uses ``scene``). The glyph pool is split once (fixed seed) into disjoint pretrain+train / validation / test glyphs.
* :class:`Signals`: 2 channels x T samples: a rhythm (one of ``classes`` frequencies) + random-walk drift + a
  Gaussian-windowed burst at a continuous onset; labels: the onset (the temporal task), the rhythm class (the
  global task) and the next ``horizon`` samples (forecasting). Splits draw from disjoint generator streams.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "camera",
    "brick",
    "grass",
    "gravel",
    "moon",
    "coins",
    "text",
    "page",
    "clock",
    "cat",
    "colorwheel",
    "retina",
)
SPLITS = ("train", "val", "test")


@functools.lru_cache(maxsize=2)
def photographs(max_side: int = 160) -> list[torch.Tensor]:
    """scikit-image's bundled photographs (in its wheel: no download) as RGB float ``[3, h, w]`` in [0, 1],
    downsampled (antialiased) so that the longer side is at most ``max_side``."""
    import skimage.data

    out = []
    for name in PHOTOS:
        im = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
        if im.max() > 1:
            im = im / 255.0
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, -1)
        t = torch.from_numpy(np.ascontiguousarray(im[..., :3])).permute(2, 0, 1)
        s = max_side / max(t.shape[1:])
        if s < 1:
            size = (max(8, round(t.shape[1] * s)), max(8, round(t.shape[2] * s)))
            t = F.interpolate(t[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        out.append(t.clamp(0, 1))
    return out


def glyph_split(seed: int = 0, fractions: tuple[float, float] = (0.6, 0.2)) -> dict[str, torch.Tensor]:
    """Indices into scikit-learn's 1,797 digits, split once into disjoint train / val / test sets."""
    from sklearn.datasets import load_digits

    n = len(load_digits().target)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    a, b = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
    return {"train": perm[:a], "val": perm[a:b], "test": perm[b:]}


class DigitScenes:
    """Digit glyphs at continuous boxes on photograph crops; see the module docstring."""

    def __init__(self, size: int = 32, glyph_scale: tuple[float, float] = (0.4, 0.75), split_seed: int = 0):
        from sklearn.datasets import load_digits

        d = load_digits()
        self.size = size
        self.glyph_scale = glyph_scale
        self.glyphs = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0  # [1797, 1, 8, 8]
        self.labels = torch.tensor(d.target, dtype=torch.long)
        self.split = glyph_split(split_seed)
        self.photos = photographs()

    def sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` scenes from ``split``'s glyphs: ``x [n, 3, S, S]``, ``box [n, 4]`` (cx, cy, w, h in [0, 1]),
        ``y [n]``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        g, s = generator, self.size
        bg = torch.empty(n, 3, s, s)
        which = torch.randint(len(self.photos), (n,), generator=g)
        for k, p in enumerate(self.photos):
            idx = (which == k).nonzero().flatten()
            if len(idx) == 0:
                continue
            h, w = p.shape[1:]
            side = torch.empty(len(idx)).uniform_(0.25, 1.0, generator=g) * min(h, w)
            x0 = torch.rand(len(idx), generator=g) * (w - side)
            y0 = torch.rand(len(idx), generator=g) * (h - side)
            boxes = torch.stack([x0, y0, side, side], -1)[:, None]  # one box per image
            from .sampling import crop_patches

            crops = crop_patches(p[None].expand(len(idx), -1, -1, -1).contiguous(), boxes, s)[:, 0]
            bg[idx] = crops
        flip = torch.rand(n, generator=g) < 0.5
        bg[flip] = bg[flip].flip(-1)
        # the glyph: box of side glyph_scale * S, aspect 0.8..1.25, anywhere inside the image
        lo, hi = self.glyph_scale
        side = torch.empty(n).uniform_(lo, hi, generator=g)
        ar = torch.exp(torch.empty(n).uniform_(math.log(0.8), math.log(1.25), generator=g))
        w = (side * ar.sqrt()).clamp(max=0.95)
        h = (side / ar.sqrt()).clamp(max=0.95)
        cx = w / 2 + torch.rand(n, generator=g) * (1 - w)
        cy = h / 2 + torch.rand(n, generator=g) * (1 - h)
        pool = self.split[split]
        gi = pool[torch.randint(len(pool), (n,), generator=g)]
        # affine map from canvas to glyph coordinates (normalised, align_corners=False)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = 1 / w, -(2 * cx - 1) / w
        theta[:, 1, 1], theta[:, 1, 2] = 1 / h, -(2 * cy - 1) / h
        grid = F.affine_grid(theta, (n, 1, s, s), align_corners=False)
        alpha = F.grid_sample(
            self.glyphs[gi], grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        colour = torch.rand(n, 3, 1, 1, generator=g)
        mean = bg.mean((1, 2, 3), keepdim=True)
        colour = torch.where(mean > 0.5, colour * 0.35, 0.65 + colour * 0.35)  # contrast with the background
        x = bg * (1 - alpha) + colour * alpha
        box = torch.stack([cx, cy, w, h], -1)
        return {"x": x, "box": box, "y": self.labels[gi], "glyph": gi, "scene": which}


class Signals:
    """Two-channel signals with a burst at a continuous onset; see the module docstring."""

    def __init__(self, length: int = 256, horizon: int = 32, classes: int = 6, burst: float = 24.0):
        self.length, self.horizon, self.classes, self.burst = length, horizon, classes, burst
        self.freqs = torch.linspace(2.0, 7.0, classes)  # cycles per 64 samples

    def sample(self, n: int, split: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``x [n, 2, T]``, ``onset [n]`` (in samples), ``y [n]`` (rhythm class), ``future [n, 2, horizon]``."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        g = generator
        t_all = self.length + self.horizon
        t = torch.arange(t_all, dtype=torch.float32)
        y = torch.randint(self.classes, (n,), generator=g)
        f = self.freqs[y][:, None] / 64.0
        phase = torch.rand(n, 2, generator=g) * 2 * math.pi
        amp = 0.6 + 0.4 * torch.rand(n, 1, generator=g)
        rhythm = amp[:, :, None] * torch.sin(2 * math.pi * f[:, None] * t + phase[..., None])  # [n, 2, T]
        drift = torch.cumsum(torch.randn(n, 2, t_all, generator=g) * 0.03, -1)
        onset = self.burst + torch.rand(n, generator=g) * (self.length - 3 * self.burst)
        centre = onset + self.burst / 2
        env = torch.exp(-0.5 * ((t - centre[:, None]) / (self.burst / 3)) ** 2)  # [n, T]
        carrier = torch.sin(2 * math.pi * 0.1 * (t - onset[:, None]))
        burst = (1.5 * env * carrier)[:, None] * torch.tensor([1.0, -0.7])[None, :, None]
        noise = 0.1 * torch.randn(n, 2, t_all, generator=g)
        x = rhythm + drift + burst + noise
        return {
            "x": x[..., : self.length],
            "future": x[..., self.length :],
            "onset": onset,
            "y": y,
        }


def split_generator(seed: int, split: str, stream: int = 0) -> torch.Generator:
    """A generator for ``split`` of run ``seed``: different splits (and streams) never share a random stream."""
    return torch.Generator().manual_seed(
        1_000_003 * (seed + 1) + 7919 * SPLITS.index(split) + 104_729 * stream
    )
