"""BYOL on real images (the ``paper`` preset): any timm backbone; batched augmentations on the tensor's device.

The trainer streams its views through ``paperkit.streaming`` (:mod:`ema_scale.stream`, augmentations on the
DataLoader workers); :func:`augment_images` is the batched alternative for images already on a GPU.

The augmentations are BYOL's family done as batched tensor ops: random resized crop (scale 0.08-1, aspect 3/4-4/3)
through one ``affine_grid``/``grid_sample``, horizontal flip, brightness/contrast/saturation jitter, random
grayscale, then ImageNet normalisation. Inputs are uint8 ``[..., 3, H, W]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def augment_images(
    x: torch.Tensor,
    gen: torch.Generator,
    *,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    jitter: float = 0.4,
    gray_p: float = 0.2,
) -> torch.Tensor:
    """One random view per image of uint8 ``[..., 3, H, W]``; returns float ``[..., 3, size, size]``."""
    lead = x.shape[:-3]
    img = x.reshape(-1, *x.shape[-3:]).float() / 255.0
    n = img.shape[0]

    def u(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(n, generator=gen) * (hi - lo) + lo

    area = u(*scale)
    log_r = u(math.log(3 / 4), math.log(4 / 3))
    ratio = torch.exp(log_r)
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - h)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    b, c, s = u(1 - jitter, 1 + jitter), u(1 - jitter, 1 + jitter), u(1 - jitter, 1 + jitter)
    gray = torch.rand(n, generator=gen) < gray_p
    theta = theta.to(img.device)
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    dev = out.device
    out = out * b.to(dev).view(n, 1, 1, 1)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * c.to(dev).view(n, 1, 1, 1) + mean
    lum = (out * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    out = (out - lum) * s.to(dev).view(n, 1, 1, 1) + lum
    out = torch.where(gray.to(dev).view(n, 1, 1, 1), lum.expand_as(out), out).clamp(0, 1)
    out = (out - MEAN.to(dev)) / STD.to(dev)
    return out.reshape(*lead, 3, size, size)


def _mlp(a: int, hidden: int, b: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(a, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, b)
    )


class Flat(nn.Module):
    """Apply ``inner`` to ``[S, B, ...]`` by folding S into the batch (timm models take ``[N, 3, H, W]``)."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s, b = x.shape[:2]
        return self.inner(x.reshape(s * b, *x.shape[2:])).reshape(s, b, -1)


class ImageBYOL(nn.Module):
    """BYOL with a timm backbone (``pretrained=False``: nothing is downloaded), BYOL's 2-layer heads.
    Takes ``[S, B, 3, H, W]`` (S = 1) like the digits models, so one training loop serves both."""

    def __init__(self, model_name: str = "resnet18", hidden: int = 4096, proj: int = 256):
        super().__init__()
        import timm

        encoder = timm.create_model(model_name, pretrained=False, num_classes=0)
        self.backbone = Flat(nn.Sequential(encoder, _mlp(encoder.num_features, hidden, proj)))
        self.predictor = Flat(_mlp(proj, hidden, proj))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.predictor(self.backbone(x))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        s, b = x.shape[:2]
        return self.backbone.inner[0](x.reshape(s * b, *x.shape[2:])).reshape(s, b, -1)

    def ema_source(self) -> nn.Module:
        return self.backbone
