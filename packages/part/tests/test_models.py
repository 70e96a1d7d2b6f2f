"""The encoder (timm ViT without position embedding), the continuous position embedding, and the objectives."""

import torch
from part import MAE, PART, DropPos, Encoder, Layout, sincos_embed
from part.probe import FineTuner
from part.sampling import grid_boxes


def small(layout: Layout) -> Encoder:
    torch.manual_seed(0)
    return Encoder(layout, dim=16, depth=1, heads=2).eval()


def test_without_position_embedding_the_encoder_is_permutation_equivariant():
    enc = small(Layout.image(16, 4))
    tokens = torch.randn(2, 16, 16)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    z, cls = enc.encode(tokens)
    zp, clsp = enc.encode(tokens[:, perm])
    assert torch.allclose(zp, z[:, perm], atol=1e-5) and torch.allclose(clsp, cls, atol=1e-5)
    # with the continuous position embedding the same permutation changes what each token sees
    pos = sincos_embed(torch.rand(2, 16, 2), 16)
    a, _ = enc.encode(tokens, pos)
    b, _ = enc.encode(tokens[:, perm], pos)
    assert not torch.allclose(b, a[:, perm], atol=1e-3)


def test_embedding_is_the_timm_conv_on_each_patch():
    enc = small(Layout.image(16, 4))
    patches = torch.randn(2, 16, 3, 4, 4)
    w, b = enc.vit.patch_embed.proj.weight, enc.vit.patch_embed.proj.bias
    ref = patches.flatten(2) @ w.flatten(1).T + b
    assert torch.allclose(enc.embed(patches), ref, atol=1e-5)


def test_sincos_embedding_on_grid_matches_the_2d_table_and_is_continuous():
    lay = Layout.image(16, 4)
    c = lay.centres(grid_boxes(16, 4))[0]  # [16, 2]
    e = sincos_embed(c, 16)
    assert e.shape == (16, 16) and torch.allclose(
        e[:, :4],
        torch.sin(2 * torch.pi * c[:, :1] * torch.tensor([1, 10000**-0.25, 10000**-0.5, 10000**-0.75])),
        atol=1e-5,
    )
    near = sincos_embed(c + 1e-4, 16)
    assert (near - e).abs().max() < 1e-2 and len({tuple(r) for r in e.round(decimals=4).tolist()}) == 16


def test_encoder_forward_at_off_grid_boxes_uses_their_positions():
    enc = small(Layout.image(16, 4))
    x = torch.randn(1, 3, 16, 16)
    boxes = grid_boxes(16, 4) + torch.tensor([0.5, 0.25, 0.0, 0.0])
    assert enc(x, boxes).shape == (1, 16, 16)
    assert not torch.allclose(enc(x, boxes), enc(x, boxes, pos=False))


def test_objectives_give_finite_losses_and_gradients_reaching_the_encoder():
    torch.manual_seed(0)
    for lay, x in (
        (Layout.image(16, 4), torch.rand(4, 3, 16, 16)),
        (Layout.series(64, 8, 2), torch.randn(4, 2, 64)),
    ):
        for cls in (PART, MAE, DropPos):
            enc = Encoder(lay, dim=16, depth=1, heads=2)
            obj = cls(enc)
            loss, stats = obj.loss(x, torch.Generator().manual_seed(0))
            loss.backward()
            assert torch.isfinite(loss)
            assert enc.vit.patch_embed.proj.weight.grad.abs().sum() > 0
            if cls is PART:
                assert obj.channels == lay.axes and 0.5 < stats["floor_ratio"] < 5


def test_droppos_soft_targets_peak_at_the_true_position():
    d = DropPos(Encoder(Layout.image(16, 4), dim=16, depth=1, heads=2), sigma=1.0)
    t = d.soft_targets
    assert torch.allclose(t.sum(1), torch.ones(16)) and torch.equal(t.argmax(1), torch.arange(16))


def test_mae_loss_closed_form_with_a_zero_decoder():
    """Targets are per-patch normalised pixels (unbiased variance, as MAE), so a decoder that outputs zeros scores
    their mean square, (d - 1) / d for d = 3 * 4 * 4 pixels (up to the epsilon), whatever is masked."""
    torch.manual_seed(0)
    mae = MAE(Encoder(Layout.image(16, 4), dim=16, depth=1, heads=2), decoder_dim=16, heads=2)
    torch.nn.init.zeros_(mae.to_pixels.weight)
    torch.nn.init.zeros_(mae.to_pixels.bias)
    loss, _ = mae.loss(torch.rand(3, 3, 16, 16), torch.Generator().manual_seed(0))
    assert abs(float(loss.detach()) - 47 / 48) < 1e-3


def test_finetuner_sees_positions_and_trains_the_encoder():
    torch.manual_seed(0)
    ft = FineTuner(Encoder(Layout.image(16, 4), dim=16, depth=1, heads=2), 3)
    x = torch.rand(2, 3, 16, 16)
    grid = grid_boxes(16, 4, batch=2)
    assert ft(x).shape == (2, 3) and torch.allclose(ft(x), ft(x, grid))
    # the same pixels cropped at the same boxes but coded as shifted positions: only position differs
    shifted = grid + torch.tensor([0.5, 0.0, 0.0, 0.0])
    assert not torch.allclose(ft(x, grid), ft(x, shifted), atol=1e-5)
    ft(x).sum().backward()
    assert ft.encoder.vit.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
