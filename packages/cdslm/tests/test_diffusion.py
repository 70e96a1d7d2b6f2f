import math

import pytest
import torch
from cdslm.diffusion import (
    alpha_sigma,
    ddim_sample,
    diffusion_loss,
    eps_from_v,
    guided_v,
    min_snr_weight,
    sample_t,
    snr,
    v_target,
    x0_from_v,
)


def test_schedule_is_variance_preserving():
    t = torch.linspace(0, 1, 101, dtype=torch.float64)
    a, s = alpha_sigma(t)
    assert torch.allclose(a**2 + s**2, torch.ones_like(t))
    assert a[0] == 1 and abs(float(a[-1])) < 1e-12 and s[0] == 0
    assert torch.all(a[1:] <= a[:-1])  # monotone: signal falls as t grows


def test_v_target_inverts_to_x0_and_eps():
    g = torch.Generator().manual_seed(0)
    x0, eps = (
        torch.randn(4, 6, 10, generator=g, dtype=torch.float64),
        torch.randn(4, 6, 10, generator=g, dtype=torch.float64),
    )
    t = torch.rand(4, generator=g, dtype=torch.float64)
    a, s = alpha_sigma(t)
    xt = a[:, None, None] * x0 + s[:, None, None] * eps
    v = v_target(x0, eps, t)
    assert torch.allclose(x0_from_v(xt, v, t), x0, atol=1e-12)
    assert torch.allclose(eps_from_v(xt, v, t), eps, atol=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_weights_match_their_formula(gamma):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    r = (torch.cos(math.pi * t / 2) / torch.sin(math.pi * t / 2)) ** 2
    assert torch.allclose(snr(t), r)
    assert torch.allclose(min_snr_weight(t, gamma, "v"), torch.minimum(r, torch.tensor(gamma)) / (r + 1))
    assert torch.allclose(min_snr_weight(t, gamma, "eps"), torch.minimum(r, torch.tensor(gamma)) / r)
    assert torch.allclose(min_snr_weight(t, gamma, "x0"), torch.minimum(r, torch.tensor(gamma)))
    assert torch.equal(min_snr_weight(t, 0.0), torch.ones_like(t))
    with pytest.raises(ValueError):
        min_snr_weight(t, gamma, "score")


def _oracle(x0):
    """A denoiser that knows the data: v = alpha eps - sigma x0 with eps = (x_t - alpha x0) / sigma."""

    def model(ctx, xt, t, drop=None):
        a, s = alpha_sigma(t)
        a, s = a[:, None, None], s[:, None, None]
        eps = (xt - a * x0[: len(xt)]) / s.clamp(min=1e-12)
        return a * eps - s * x0[: len(xt)]

    return model


def test_ddim_with_the_true_noise_recovers_the_data():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 5, 8, generator=g, dtype=torch.float64)
    ctx = torch.zeros(3, 2, 8, dtype=torch.float64)
    for steps in (1, 4, 16):
        out = ddim_sample(_oracle(x0), ctx, x0.shape, steps=steps, generator=g)
        assert torch.allclose(out, x0, atol=1e-9), steps


def test_ddim_is_deterministic_given_the_noise():
    noise = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    model = lambda c, x, t, drop=None: 0.3 * x + t[:, None, None]  # noqa: E731
    a = ddim_sample(model, torch.zeros(2, 1, 4), noise.shape, steps=8, noise=noise.clone())
    b = ddim_sample(model, torch.zeros(2, 1, 4), noise.shape, steps=8, noise=noise.clone())
    assert torch.equal(a, b)
    assert not torch.allclose(a, noise)


def test_guidance_combines_the_two_branches():
    def model(ctx, x, t, drop=None):
        d = torch.zeros(len(x), dtype=torch.bool) if drop is None else drop
        return torch.where(d[:, None, None], torch.full_like(x, 1.0), torch.full_like(x, 3.0))

    x, ctx, t = torch.zeros(2, 3, 4), torch.zeros(2, 1, 4), torch.full((2,), 0.5)
    assert torch.allclose(guided_v(model, ctx, x, t, 1.0), torch.full_like(x, 3.0))
    assert torch.allclose(guided_v(model, ctx, x, t, 0.0), torch.full_like(x, 1.0))
    assert torch.allclose(guided_v(model, ctx, x, t, 2.5), torch.full_like(x, 1.0 + 2.5 * 2.0))


def test_loss_is_the_weighted_v_error_on_the_continuation_with_a_clean_context():
    g = torch.Generator().manual_seed(3)
    ctx, x0 = torch.randn(4, 2, 6, generator=g), torch.randn(4, 3, 6, generator=g)
    eps, t = torch.randn(4, 3, 6, generator=g), torch.rand(4, generator=g)
    seen = {}

    def model(c, xt, tt, drop=None):
        seen["ctx"], seen["xt"] = c, xt
        return 0.5 * xt

    got = diffusion_loss(model, ctx, x0, t, eps, gamma=5.0, reduce=False)
    a, s = alpha_sigma(t)
    xt = a[:, None, None] * x0 + s[:, None, None] * eps
    v = a[:, None, None] * eps - s[:, None, None] * x0
    want = ((0.5 * xt - v) ** 2).mean((1, 2)) * min_snr_weight(t, 5.0)
    assert torch.allclose(got, want)
    assert torch.equal(seen["ctx"], ctx)  # the context is never noised
    assert torch.allclose(diffusion_loss(model, ctx, x0, t, eps), want.mean())


def test_time_sampling_stays_inside_the_open_interval():
    g = torch.Generator().manual_seed(0)
    for sched in ("uniform", "logit-normal"):
        t = sample_t(10000, g, schedule=sched)
        assert 0 < float(t.min()) and float(t.max()) < 1
    with pytest.raises(ValueError):
        sample_t(3, g, schedule="cosine")
