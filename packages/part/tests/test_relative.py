"""Targets (closed form, antisymmetry, zero diagonal), pairs, the antisymmetry score, the floor, and the heads
fitting one batch."""

import pytest
import torch
from part import (
    CrossAttentionHead,
    PairwiseMLPHead,
    all_pairs,
    antisymmetry,
    floor_loss,
    relative_targets,
    sample_boxes,
    sample_pairs,
    shift_norm,
)


def test_targets_closed_form():
    boxes = torch.tensor([[[0.0, 0.0, 8.0, 4.0], [10.0, 6.0, 16.0, 2.0]]])
    t = relative_targets(boxes, torch.tensor([[0, 1], [1, 0]]), log_scale=True)
    # centres (4, 2) and (18, 7)
    assert torch.allclose(
        t[0, 0], torch.tensor([14 / 8, 5 / 4, torch.log(torch.tensor(2.0)), torch.log(torch.tensor(0.5))])
    )
    assert torch.allclose(
        t[0, 1], torch.tensor([-14 / 16, -5 / 2, torch.log(torch.tensor(0.5)), torch.log(torch.tensor(2.0))])
    )
    assert shift_norm(32, 8) == (3.0, 3.0)
    assert shift_norm((1, 256), (1, 16)) == (15.0, 1.0)


def test_equal_size_targets_are_antisymmetric_with_zero_diagonal():
    boxes = sample_boxes(4, 9, 32, 8, generator=torch.Generator().manual_seed(0))
    t = relative_targets(boxes, norm=shift_norm(32, 8)).reshape(4, 9, 9, 2)
    assert torch.allclose(t, -t.transpose(1, 2), atol=1e-6)
    assert torch.equal(t.diagonal(dim1=1, dim2=2), torch.zeros(4, 2, 9))
    assert t.abs().max() <= 1.0 + 1e-6  # shifts normalised by (S - P) / P
    var = boxes.new_tensor(1 / 6)  # Var(U1 - U2) for uniform centres on [0, 1]
    assert (
        abs(float(floor_loss(relative_targets(sample_boxes(512, 16, 32, 8), norm=(3.0, 3.0)))) - var) < 0.02
    )


def test_scale_channels_are_antisymmetric_for_any_boxes():
    boxes = sample_boxes(
        3, 6, 32, 8, scale=(0.5, 2.0), aspect=True, generator=torch.Generator().manual_seed(1)
    )
    t = relative_targets(boxes, log_scale=True).reshape(3, 6, 6, 4)
    assert torch.allclose(t[..., 2:], -t[..., 2:].transpose(1, 2), atol=1e-6)


def test_pairs():
    p = all_pairs(4)
    assert p.shape == (16, 2) and len({tuple(r) for r in p.tolist()}) == 16
    s = sample_pairs(10, 30, generator=torch.Generator().manual_seed(0))
    assert s.shape == (30, 2) and len({tuple(r) for r in s.tolist()}) == 30
    assert sample_pairs(3, 100).shape == (9, 2)


def test_antisymmetry_score_bounds():
    boxes = sample_boxes(2, 8, 32, 8, generator=torch.Generator().manual_seed(3))
    pairs = all_pairs(8)
    t = relative_targets(boxes, pairs)
    assert antisymmetry(t, pairs, 8) < 1e-6
    assert antisymmetry(torch.ones_like(t), pairs, 8) == pytest.approx(1.0)
    assert antisymmetry(t.abs(), pairs, 8) == pytest.approx(1.0)


@pytest.mark.parametrize("head_cls", [CrossAttentionHead, PairwiseMLPHead])
def test_heads_fit_one_batch(head_cls):
    """Fixed tokens that carry their boxes: both heads drive the loss far below the floor. Checked on seeds 0-4
    at 1 and 2 threads (identical values): cross-attention 0.0012-0.0019 x floor, pairwise linear 0.047-0.066."""
    torch.manual_seed(0)
    boxes = sample_boxes(6, 9, 32, 8, generator=torch.Generator().manual_seed(0))
    z = torch.cat([boxes / 32, torch.randn(6, 9, 28) * 0.1], -1)  # tokens carrying their box
    pairs = all_pairs(9)
    tgt = relative_targets(boxes, pairs, norm=(3.0, 3.0))
    head = head_cls(32, 2)
    opt = torch.optim.Adam(head.parameters(), 1e-2)
    for _ in range(150):
        loss = torch.nn.functional.mse_loss(head(z, pairs), tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    ratio = float(loss.detach() / floor_loss(tgt))
    assert ratio < (0.02 if head_cls is CrossAttentionHead else 0.2), ratio
