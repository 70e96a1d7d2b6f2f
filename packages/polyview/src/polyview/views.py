"""M augmented views per sample, generated in batches on the tensor's device.

- :func:`image_views`: random resized crop and horizontal flip (one ``affine_grid``/``grid_sample`` for all
  views), colour jitter (brightness, contrast, saturation), random grayscale and Gaussian blur (one grouped
  convolution with a per-view kernel). Images ``[K, C, H, W]`` (uint8 or float in [0, 1]) become
  ``[K, M, C, size, size]``.
- :func:`vector_views`: additive Gaussian noise and random feature masking for vectors ``[K, D]``.

Randomness comes from ``generator`` (a ``torch.Generator`` on any device; the per-view parameters and noise are
drawn there and moved to the images' device). The same generator state gives the same views, whatever the
device of the data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _rand(shape, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    src = gen.device if gen is not None else device
    return torch.rand(shape, generator=gen, device=src).to(device)


def _randn(shape, gen: torch.Generator | None, device: torch.device) -> torch.Tensor:
    src = gen.device if gen is not None else device
    return torch.randn(shape, generator=gen, device=src).to(device)


def _check_views(m: int) -> None:
    if int(m) != m or m < 1:
        raise ValueError(f"the number of views must be an integer >= 1, got {m}")


def vector_views(
    x: torch.Tensor,
    m: int,
    generator: torch.Generator | None = None,
    *,
    noise: float = 0.1,
    mask: float = 0.2,
) -> torch.Tensor:
    """``m`` views of vectors ``[K, D]``: each feature zeroed with probability ``mask``, plus ``N(0, noise^2)``.

    Returns ``[K, m, D]``.
    """
    _check_views(m)
    if x.dim() != 2:
        raise ValueError(f"vector_views takes [K, D] vectors, got shape {tuple(x.shape)}")
    if not 0 <= mask < 1 or noise < 0:
        raise ValueError(f"need 0 <= mask < 1 and noise >= 0, got mask={mask}, noise={noise}")
    k, d = x.shape
    v = x[:, None, :].expand(k, m, d).float()
    if mask > 0:
        v = v * (_rand((k, m, d), generator, x.device) >= mask)
    if noise > 0:
        v = v + noise * _randn((k, m, d), generator, x.device)
    return v


def _blur(img: torch.Tensor, sigma: torch.Tensor, apply: torch.Tensor, ksize: int) -> torch.Tensor:
    """Separable Gaussian blur of ``[N, C, H, W]`` with one sigma per image, as grouped convolutions."""
    n, c, h, w = img.shape
    r = torch.arange(ksize, device=img.device, dtype=img.dtype) - ksize // 2
    kern = torch.exp(-0.5 * (r[None, :] / sigma[:, None]) ** 2)
    kern = kern / kern.sum(1, keepdim=True)
    identity = torch.zeros_like(kern)
    identity[:, ksize // 2] = 1.0
    kern = torch.where(apply[:, None], kern, identity)  # [N, ksize]
    weight = kern.repeat_interleave(c, dim=0)  # [N*C, ksize]
    flat = img.reshape(1, n * c, h, w)
    pad = ksize // 2
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), weight[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), weight[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def image_views(
    x: torch.Tensor,
    m: int,
    generator: torch.Generator | None = None,
    *,
    size: int | None = None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: float = 0.5,
    jitter: float = 0.4,
    jitter_p: float = 0.8,
    gray: float = 0.2,
    blur: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
) -> torch.Tensor:
    """``m`` SimCLR-style views of images ``[K, C, H, W]`` (uint8 in 0..255 or float in [0, 1]).

    Random resized crop (area fraction in ``scale``, aspect ratio in ``ratio``) resampled to ``size``
    (default: the input size); horizontal flip with probability ``flip``; with probability ``jitter_p``
    brightness, contrast and saturation each scaled by a factor in ``[1 - jitter, 1 + jitter]``; grayscale with
    probability ``gray``; Gaussian blur with probability ``blur``, sigma in ``blur_sigma`` (pixels at the output
    size, kernel about 10% of the size). ``normalize=(mean, std)`` standardises the channels last. Colour
    operations apply to 3-channel images only. Returns float ``[K, m, C, size, size]``.
    """
    _check_views(m)
    if x.dim() != 4:
        raise ValueError(f"image_views takes images [K, C, H, W], got shape {tuple(x.shape)}")
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"crop scale must satisfy 0 < low <= high <= 1, got {scale}")
    k, c, h, w = x.shape
    size = size or h
    dev = x.device
    img = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    n = k * m

    def u(lo: float, hi: float) -> torch.Tensor:
        return _rand((n,), generator, dev) * (hi - lo) + lo

    # crop + flip as one affine map of the normalised [-1, 1] coordinates
    area = u(*scale)
    aspect = torch.exp(u(math.log(ratio[0]), math.log(ratio[1])))
    cw = torch.sqrt(area * aspect).clamp(max=1.0)
    ch = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (u(0, 1) * 2 - 1) * (1 - cw)
    cy = (u(0, 1) * 2 - 1) * (1 - ch)
    sign = torch.where(u(0, 1) < flip, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2] = cw * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    src = img[:, None].expand(k, m, c, h, w).reshape(n, c, h, w)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def per_view(t: torch.Tensor) -> torch.Tensor:
        return t.view(n, 1, 1, 1)

    if jitter > 0:
        on = u(0, 1) < jitter_p
        factors = [torch.where(on, u(1 - jitter, 1 + jitter), torch.ones(n, device=dev)) for _ in range(3)]
        out = out * per_view(factors[0])  # brightness
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * per_view(factors[1]) + mean  # contrast
        if c == 3:
            lum = (out * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(
                1, keepdim=True
            )
            out = (out - lum) * per_view(factors[2]) + lum  # saturation
        out = out.clamp(0, 1)
    if c == 3 and gray > 0:
        lum = (out * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
        out = torch.where(per_view(u(0, 1) < gray), lum.expand_as(out), out)
    if blur > 0:
        ksize = max(3, int(0.1 * size) // 2 * 2 + 1)
        out = _blur(out, u(*blur_sigma), u(0, 1) < blur, ksize)
    if normalize is not None:
        mean_t = torch.tensor(normalize[0], device=dev).view(1, c, 1, 1)
        std_t = torch.tensor(normalize[1], device=dev).view(1, c, 1, 1)
        out = (out - mean_t) / std_t
    return out.view(k, m, c, size, size)
