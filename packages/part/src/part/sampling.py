"""Off-grid patch sampling: continuous boxes, differentiable crops by ``grid_sample``, and the canvas stitch.

PART (Sec. 3, "off-grid sampling") draws N patches per image at continuous positions (optionally with random
scale and aspect ratio), resizes each to a fixed patch size and feeds them to a ViT as if they were the N patches
of a grid. Boxes are ``[B, N, 4]`` float tensors ``(x0, y0, w, h)`` in pixels of the source image (``x`` along
the width). A patch of size ``(ph, pw)`` samples the image at ``(x0 + (u + 0.5) w / pw, y0 + (v + 0.5) h / ph)``
(pixel-edge coordinates), so an integer box of the patch's size reads exactly the pixels ``unfold`` would.

Time series are images of height 1: ``[B, C, 1, T]`` with patches ``(1, L)`` and boxes ``(t0, 0, len, 1)``
(:func:`sample_windows`, :func:`crop_windows`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Size = int | tuple[int, int]


def pair(v: Size) -> tuple[int, int]:
    """``v`` as ``(height, width)``."""
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def sample_boxes(
    batch: int,
    n: int,
    size: Size,
    patch: Size,
    *,
    scale: tuple[float, float] = (1.0, 1.0),
    aspect: bool = False,
    integer: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n`` boxes per image, drawn independently (with replacement, so patches overlap and some regions are
    never seen: "masking occurs naturally").

    ``scale`` bounds each side as a multiple of the patch side (log-uniform); with ``aspect`` the width and height
    scales are drawn independently (the reference's ``v3`` sampling), otherwise they share one draw. ``integer``
    rounds the top-left corner to whole pixels (the reference's ``v2``). Every box lies inside the image. An axis
    whose patch spans the whole image (a time series' height) gets boxes that span it too."""
    (h_img, w_img), (ph, pw) = pair(size), pair(patch)
    lo, hi = scale
    if not 0 < lo <= hi:
        raise ValueError(f"scale must satisfy 0 < low <= high, got {scale}")
    full = torch.tensor([pw >= w_img, ph >= h_img], device=device)
    fits = [hi * p <= s or p >= s for p, s in ((ph, h_img), (pw, w_img))]
    if not all(fits):
        raise ValueError(f"boxes up to {hi} x ({ph}, {pw}) px do not fit in a {h_img} x {w_img} image")
    u = torch.rand((batch, n, 4), generator=generator, device=device)
    log_s = math.log(lo) + (math.log(hi) - math.log(lo)) * u[..., 2:]
    if not aspect:
        log_s = log_s[..., :1].expand(-1, -1, 2)
    base = torch.tensor([pw, ph], device=device, dtype=torch.float32)
    wh = base * log_s.exp() if lo != hi else (base * lo).expand(batch, n, 2)
    wh = torch.where(full, base, wh)
    room = (torch.tensor([w_img, h_img], device=device, dtype=torch.float32) - wh).clamp(min=0)
    xy = u[..., :2] * room
    if integer:
        xy = torch.minimum(torch.floor(xy + 0.5), room.floor())
    return torch.cat([xy, wh], dim=-1)


def grid_boxes(
    size: Size, patch: Size, *, batch: int = 1, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """The on-grid boxes in row-major order (as ``unfold`` and a ViT order patches): ``[batch, N, 4]``."""
    (h_img, w_img), (ph, pw) = pair(size), pair(patch)
    if h_img % ph or w_img % pw:
        raise ValueError(f"a {h_img} x {w_img} image does not divide into {ph} x {pw} patches")
    ys, xs = torch.meshgrid(
        torch.arange(0, h_img, ph, dtype=torch.float32),
        torch.arange(0, w_img, pw, dtype=torch.float32),
        indexing="ij",
    )
    xs, ys = xs.flatten(), ys.flatten()
    b = torch.stack([xs, ys, torch.full_like(xs, pw), torch.full_like(ys, ph)], -1)
    return b.to(device).unsqueeze(0).expand(batch, -1, -1).clone()


def box_grid(boxes: torch.Tensor, patch: Size, size: Size) -> torch.Tensor:
    """The ``grid_sample`` grid for ``boxes`` ``[B, N, 4]``: ``[B, N * ph, pw, 2]``, normalised coordinates
    for ``align_corners=False``."""
    (h_img, w_img), (ph, pw) = pair(size), pair(patch)
    x0, y0, w, h = boxes.unbind(-1)  # [B, N]
    su = (torch.arange(pw, device=boxes.device, dtype=boxes.dtype) + 0.5) / pw
    sv = (torch.arange(ph, device=boxes.device, dtype=boxes.dtype) + 0.5) / ph
    gx = ((x0[..., None] + su * w[..., None]) / w_img * 2 - 1)[:, :, None, :].expand(-1, -1, ph, -1)
    gy = ((y0[..., None] + sv * h[..., None]) / h_img * 2 - 1)[:, :, :, None].expand(-1, -1, -1, pw)
    b, n = boxes.shape[:2]
    return torch.stack([gx, gy], -1).reshape(b, n * ph, pw, 2)


def crop_patches(images: torch.Tensor, boxes: torch.Tensor, patch: Size) -> torch.Tensor:
    """Crop every box of every image and resize it to the patch size, in one ``grid_sample`` call (bilinear).

    ``images`` ``[B, C, H, W]``, ``boxes`` ``[B, N, 4]`` -> ``[B, N, C, ph, pw]``; differentiable in both."""
    if images.dim() != 4 or boxes.dim() != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != images.shape[0]:
        raise ValueError(
            f"crop_patches needs images [B, C, H, W] and boxes [B, N, 4], got {tuple(images.shape)} and "
            f"{tuple(boxes.shape)}"
        )
    b, c, h, w = images.shape
    ph, pw = pair(patch)
    grid = box_grid(boxes.to(images.dtype), (ph, pw), (h, w))
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.reshape(b, c, boxes.shape[1], ph, pw).transpose(1, 2)


def crop_patches_loop(images: torch.Tensor, boxes: torch.Tensor, patch: Size) -> torch.Tensor:
    """The per-patch reference: one ``grid_sample`` per box in a Python loop (the benchmark's anchor)."""
    b, c, h, w = images.shape
    ph, pw = pair(patch)
    out = images.new_empty(b, boxes.shape[1], c, ph, pw)
    for i in range(b):
        for j in range(boxes.shape[1]):
            g = box_grid(boxes[i : i + 1, j : j + 1].to(images.dtype), (ph, pw), (h, w))
            out[i, j] = F.grid_sample(
                images[i : i + 1], g, mode="bilinear", padding_mode="border", align_corners=False
            )[0]
    return out


def grid_rows(n: int) -> int:
    """Rows of the canvas that :func:`stitch` tiles ``n`` patches into (the largest divisor <= sqrt(n))."""
    r = math.isqrt(n)
    while n % r:
        r -= 1
    return r


def stitch(patches: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """Tile ``[B, N, C, ph, pw]`` row-major into a ``[B, C, rows * ph, (N / rows) * pw]`` canvas, the input of a
    stock conv patch embedding. With random boxes the canvas position carries no information."""
    b, n, c, ph, pw = patches.shape
    rows = grid_rows(n) if rows is None else rows
    cols = n // rows
    x = patches.reshape(b, rows, cols, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, rows * ph, cols * pw)


def unstitch(canvas: torch.Tensor, patch: Size) -> torch.Tensor:
    """The inverse of :func:`stitch` (and ``unfold`` in patch layout): ``[B, C, H, W]`` -> ``[B, N, C, ph, pw]``."""
    ph, pw = pair(patch)
    b, c, h, w = canvas.shape
    x = canvas.reshape(b, c, h // ph, ph, w // pw, pw).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // ph) * (w // pw), c, ph, pw)


def box_centres(boxes: torch.Tensor) -> torch.Tensor:
    """``(cx, cy)`` of ``[..., 4]`` boxes."""
    return boxes[..., :2] + boxes[..., 2:] / 2


# -- time series: images of height 1 ---------------------------------------------------------------------------


def sample_windows(
    batch: int,
    n: int,
    length: int,
    window: int,
    *,
    scale: tuple[float, float] = (1.0, 1.0),
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """``n`` windows per series at continuous offsets, as boxes ``(t0, 0, len, 1)``: ``[B, N, 4]``."""
    return sample_boxes(batch, n, (1, length), (1, window), scale=scale, generator=generator, device=device)


def crop_windows(series: torch.Tensor, windows: torch.Tensor, window: int) -> torch.Tensor:
    """``series`` ``[B, C, T]`` and windows ``[B, N, 4]`` -> ``[B, N, C, window]`` (linear interpolation)."""
    return crop_patches(series[:, :, None, :], windows, (1, window))[:, :, :, 0, :]
