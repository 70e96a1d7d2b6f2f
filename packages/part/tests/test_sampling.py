"""Off-grid sampling: the unfold identity, bounds, differentiability, the loop reference, stitch, 1-D windows."""

import pytest
import torch
import torch.nn.functional as F
from part import (
    crop_patches,
    crop_patches_loop,
    crop_windows,
    grid_boxes,
    sample_boxes,
    sample_windows,
    stitch,
    unstitch,
)


def unfold_patches(x: torch.Tensor, p: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return F.unfold(x, p, stride=p).reshape(b, c, p, p, -1).permute(0, 4, 1, 2, 3)


# grid_sample maps normalised coordinates back to pixels in float32: an exact pixel centre comes back within ~1e-7
# of a pixel, so a sample mixes in ~1e-6 of its neighbour (seen up to 4e-6 on randn images)
ATOL = 2e-5


def test_on_grid_scale_one_boxes_reproduce_unfold():
    x = torch.randn(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    out = crop_patches(x, grid_boxes(24, 6, batch=3), 6)
    assert torch.allclose(out, unfold_patches(x, 6), atol=ATOL)


def test_integer_off_grid_boxes_read_exact_pixels():
    x = torch.randn(2, 1, 20, 20, generator=torch.Generator().manual_seed(1))
    boxes = sample_boxes(2, 30, 20, 5, integer=True, generator=torch.Generator().manual_seed(0))
    out = crop_patches(x, boxes, 5)
    for b in range(2):
        for n in range(30):
            x0, y0 = int(boxes[b, n, 0]), int(boxes[b, n, 1])
            assert torch.allclose(out[b, n], x[b, :, y0 : y0 + 5, x0 : x0 + 5], atol=ATOL)


def test_boxes_stay_inside_and_respect_scale_and_aspect():
    g = torch.Generator().manual_seed(1)
    b = sample_boxes(64, 16, 32, 8, scale=(0.5, 2.0), aspect=True, generator=g)
    assert (b[..., :2] >= 0).all() and (b[..., 0] + b[..., 2] <= 32 + 1e-5).all()
    assert (b[..., 1] + b[..., 3] <= 32 + 1e-5).all()
    assert b[..., 2:].min() >= 4 - 1e-5 and b[..., 2:].max() <= 16 + 1e-5
    assert not torch.allclose(b[..., 2], b[..., 3])  # independent width and height
    fixed = sample_boxes(8, 16, 32, 8, generator=g)
    assert torch.equal(fixed[..., 2:], torch.full_like(fixed[..., 2:], 8.0))
    with pytest.raises(ValueError):
        sample_boxes(1, 1, 16, 8, scale=(1.0, 3.0))


def test_vectorized_crop_equals_the_per_patch_loop_and_is_differentiable():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    boxes = sample_boxes(
        2, 9, 16, 4, scale=(0.5, 2.0), aspect=True, generator=torch.Generator().manual_seed(2)
    )
    boxes.requires_grad_(True)
    out = crop_patches(x, boxes, 4)
    assert torch.allclose(out, crop_patches_loop(x, boxes, 4), atol=1e-6)
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0 and boxes.grad.abs().sum() > 0


def test_stitch_and_unstitch_are_inverse_and_row_major():
    p = torch.randn(2, 16, 3, 4, 4)
    canvas = stitch(p)
    assert canvas.shape == (2, 3, 16, 16)
    assert torch.equal(unstitch(canvas, 4), p)
    assert torch.equal(canvas[:, :, 0:4, 4:8], p[:, 1])  # the second patch sits right of the first
    assert torch.equal(unfold_patches(canvas, 4), p)


def test_windows_read_the_series():
    s = torch.arange(64, dtype=torch.float32).reshape(1, 1, 64).repeat(2, 2, 1)
    w = sample_windows(2, 5, 64, 8, generator=torch.Generator().manual_seed(0))
    assert (w[..., 1] == 0).all() and (w[..., 3] == 1).all() and (w[..., 0] + w[..., 2] <= 64).all()
    out = crop_windows(s, w, 8)  # linear ramp: window k starts at t0 (pixel centre t0 + 0.5 - 0.5)
    assert out.shape == (2, 5, 2, 8)
    expect = w[..., :1] + torch.arange(8.0)
    assert torch.allclose(out[:, :, 0], expect.clamp(max=63), atol=1e-4)
