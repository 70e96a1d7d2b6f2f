import pytest
import torch
from cdslm.model import MMDiT, patchify, timestep_embedding, unpatchify


def _model(**kw):
    torch.manual_seed(0)
    m = MMDiT(token_dim=12, dim=16, depth=2, heads=2, max_ctx=4, max_cont=3, **kw)
    for p in m.parameters():  # leave adaLN-Zero's zero init so that every path is exercised
        torch.nn.init.normal_(p, std=0.2)
    return m.double()


def test_adaln_zero_outputs_zero_at_initialisation():
    m = MMDiT(token_dim=12, dim=16, depth=2, heads=2, max_ctx=4, max_cont=3)
    out = m(torch.randn(2, 4, 12), torch.randn(2, 3, 12), torch.rand(2))
    assert out.shape == (2, 3, 12) and torch.count_nonzero(out) == 0


def test_the_continuation_attends_to_the_context_and_the_null_token_removes_it():
    m = _model()
    g = torch.Generator().manual_seed(1)
    ctx, ctx2 = (
        torch.randn(2, 4, 12, generator=g, dtype=torch.float64),
        torch.randn(2, 4, 12, generator=g, dtype=torch.float64),
    )
    x, t = (
        torch.randn(2, 3, 12, generator=g, dtype=torch.float64),
        torch.rand(2, generator=g, dtype=torch.float64),
    )
    assert not torch.allclose(m(ctx, x, t), m(ctx2, x, t))
    drop = torch.ones(2, dtype=torch.bool)
    assert torch.allclose(m(ctx, x, t, drop=drop), m(ctx2, x, t, drop=drop))
    # dropping is per example
    mixed = m(ctx, x, t, drop=torch.tensor([True, False]))
    assert torch.allclose(mixed[0], m(ctx2, x, t, drop=drop)[0]) and torch.allclose(mixed[1], m(ctx, x, t)[1])


def test_examples_do_not_interact_and_the_noise_level_matters():
    m = _model()
    g = torch.Generator().manual_seed(2)
    ctx, x = (
        torch.randn(3, 4, 12, generator=g, dtype=torch.float64),
        torch.randn(3, 3, 12, generator=g, dtype=torch.float64),
    )
    t = torch.rand(3, generator=g, dtype=torch.float64)
    full = m(ctx, x, t)
    assert torch.allclose(full[1:2], m(ctx[1:2], x[1:2], t[1:2]))
    assert not torch.allclose(full, m(ctx, x, t * 0.5))


def test_two_streams_have_their_own_weights():
    two, one = _model(), _model(two_stream=False)
    assert two.num_params() > one.num_params()
    blk = two.blocks[0]
    assert blk.ctx.qkv.weight.data_ptr() != blk.x.qkv.weight.data_ptr()
    assert one.blocks[0].ctx is one.blocks[0].x


def test_gradients_reach_every_parameter():
    m = _model()
    out = m(
        torch.randn(2, 4, 12, dtype=torch.float64),
        torch.randn(2, 3, 12, dtype=torch.float64),
        torch.rand(2, dtype=torch.float64),
    )
    out.square().sum().backward()
    missing = [
        n for n, p in m.named_parameters() if n != "null_ctx" and (p.grad is None or p.grad.abs().sum() == 0)
    ]
    assert not missing


def test_bad_shapes_are_rejected():
    m = _model()
    with pytest.raises(ValueError):
        m(
            torch.randn(1, 5, 12, dtype=torch.float64),
            torch.randn(1, 3, 12, dtype=torch.float64),
            torch.rand(1),
        )
    with pytest.raises(ValueError):
        MMDiT(token_dim=4, dim=10, heads=3)
    with pytest.raises(ValueError):
        patchify(torch.randn(1, 10, 3), 4)


def test_patchify_round_trip_and_layout():
    x = torch.arange(2 * 8 * 3, dtype=torch.float32).reshape(2, 8, 3)
    tok = patchify(x, 4)
    assert tok.shape == (2, 2, 12)
    assert torch.equal(tok[0, 1, :3], x[0, 4])  # a token is consecutive frames
    assert torch.equal(unpatchify(tok, 4), x)


def test_timestep_embedding_is_bounded_and_distinguishes_times():
    e = timestep_embedding(torch.tensor([0.1, 0.2]), 15)
    assert e.shape == (2, 15) and e.abs().max() <= 1
    assert not torch.allclose(e[0], e[1])
