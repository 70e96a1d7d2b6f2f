"""The model EMA and the EMA Scaling Rule against closed forms and timm's ModelEmaV3."""

import math

import pytest
import torch
from ema_scale import Constant, Cosine, ScaledEMA, Warmup, scale_momentum
from torch import nn


def scalar_model(v: float = 0.0) -> nn.Module:
    m = nn.Linear(1, 1, bias=False)
    m.weight.data.fill_(v)
    return m


def test_closed_form_geometric_weights():
    """zeta_T = rho^T zeta_0 + sum_t (1 - rho) rho^(T - t) theta_t."""
    rho, thetas = 0.9, torch.randn(30, dtype=torch.float64)
    model = scalar_model().double()
    ema = ScaledEMA(model, rho)
    for th in thetas:
        model.weight.data.fill_(th)
        ema.update(model)
    T = len(thetas)
    expected = sum((1 - rho) * rho ** (T - 1 - t) * thetas[t] for t in range(T))  # zeta_0 = 0
    assert ema.module.weight.item() == pytest.approx(float(expected), abs=1e-12)


@pytest.mark.parametrize("kappa", [2, 4, 7, 16])
def test_kappa_unit_updates_equal_one_scaled_update(kappa):
    """Toward a fixed target, kappa updates at the base batch == one update at kappa x the batch."""
    rho = 0.97
    target = scalar_model(1.0).double()
    a = ScaledEMA(scalar_model(-2.0).double(), rho, base_batch_size=8)
    b = ScaledEMA(scalar_model(-2.0).double(), rho, base_batch_size=8)
    for _ in range(kappa):
        a.update(target, batch_size=8)
    b.update(target, batch_size=8 * kappa)
    assert a.module.weight.item() == pytest.approx(b.module.weight.item(), abs=1e-12)
    assert float(a.samples_seen) == float(b.samples_seen) == 8 * kappa


def test_rules_equal_their_formulas():
    assert scale_momentum(0.99, 4) == pytest.approx(0.99**4)
    assert scale_momentum(0.99, 4, "linear") == pytest.approx(1 - 4 * 0.01)
    assert scale_momentum(0.99, 400, "linear") == 0.0  # clamped
    assert scale_momentum(0.99, 4, "none") == 0.99
    assert scale_momentum(0.99, 0.25) == pytest.approx(0.99**0.25)  # smaller batches too


@pytest.mark.parametrize(
    "schedule", [Cosine(0.99, 1.0, 10_000), Warmup(0.999, base_batch_size=32, gamma=3.0), Constant(0.9)]
)
def test_schedules_in_samples_are_batch_independent(schedule):
    """At the same number of samples seen, every kappa sees the same base momentum."""
    model = scalar_model()
    emas = {k: ScaledEMA(model, schedule, base_batch_size=32) for k in (1, 4, 16)}
    for step in range(32):
        for k, ema in emas.items():
            if (step * 32) % (32 * k) == 0:  # kappa=k takes one step every k base steps
                s = float(ema.samples_seen)
                assert ema.momentum_at(32 * k) == pytest.approx(schedule(s) ** k)
                ema.update(model, batch_size=32 * k)
    assert {float(e.samples_seen) for e in emas.values()} == {1024.0}


def test_bias_correction_equals_zero_init_debiased():
    rho, thetas = 0.8, torch.randn(12, dtype=torch.float64)
    model = scalar_model(123.0).double()
    ema = ScaledEMA(model, rho, bias_correction=True)
    raw = 0.0
    for t, th in enumerate(thetas, 1):
        model.weight.data.fill_(th)
        ema.update(model)
        raw = rho * raw + (1 - rho) * th
        assert ema.module.weight.item() == pytest.approx(float(raw / (1 - rho**t)), abs=1e-12)


def test_buffer_policies():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    net(torch.randn(8, 3))  # move the running stats
    lerp = ScaledEMA(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), 0.5, buffers="ema")
    copy = ScaledEMA(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), 0.5, buffers="copy")
    lerp.update(net)
    copy.update(net)
    assert torch.allclose(copy.module[1].running_mean, net[1].running_mean)
    assert torch.allclose(lerp.module[1].running_mean, 0.5 * net[1].running_mean)
    assert lerp.module[1].num_batches_tracked.item() == net[1].num_batches_tracked.item() == 1


def test_state_dict_round_trip_keeps_updating():
    model = scalar_model(1.0)
    ema = ScaledEMA(scalar_model(0.0), 0.5)
    ema.update(model)
    fresh = ScaledEMA(scalar_model(0.0), 0.5)
    fresh.load_state_dict(ema.state_dict())
    fresh.update(model)
    ema.update(model)
    assert fresh.module.weight.item() == ema.module.weight.item() == 0.75
    assert int(fresh.updates) == 2


@pytest.mark.parametrize("rho", [1.0, -0.1, 1.5, float("nan")])
def test_momentum_outside_unit_interval_is_an_error(rho):
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\)"):
        scale_momentum(rho, 2)
    with pytest.raises(ValueError, match="momentum"):
        ScaledEMA(scalar_model(), rho)


@pytest.mark.parametrize("kappa", [0, -1, float("inf")])
def test_bad_kappa_is_an_error(kappa):
    with pytest.raises(ValueError, match="kappa"):
        scale_momentum(0.9, kappa)


def test_bad_rule_policy_batch():
    with pytest.raises(ValueError, match="unknown EMA scaling rule"):
        ScaledEMA(scalar_model(), 0.9, rule="sqrt")
    with pytest.raises(ValueError, match="buffer policy"):
        ScaledEMA(scalar_model(), 0.9, buffers="mean")
    with pytest.raises(ValueError, match="batch_size must be positive"):
        ScaledEMA(scalar_model(), 0.9).update(scalar_model(), batch_size=0)


def test_matches_timm_model_ema_v3_over_100_updates():
    timm_ema = pytest.importorskip("timm.utils.model_ema")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)
    )
    ours = ScaledEMA(model, 0.99)
    ref = timm_ema.ModelEmaV3(model, decay=0.99)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(100):
        loss = model(torch.randn(4, 3, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours.update(model)
        ref.update(model)
    for (k, a), b in zip(ours.module.state_dict().items(), ref.module.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), atol=1e-6, rtol=0), k


def test_kappa_scaled_matches_timm_with_scaled_decay():
    """timm has no batch awareness; fed rho**kappa by hand it must agree with ours at batch kappa*B."""
    timm_ema = pytest.importorskip("timm.utils.model_ema")
    model = nn.Linear(5, 5)
    ours = ScaledEMA(model, 0.999, base_batch_size=64)
    ref = timm_ema.ModelEmaV3(model, decay=0.999**8)
    for _ in range(100):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ours.update(model, batch_size=512)
        ref.update(model)
    assert torch.allclose(ours.module.weight, ref.module.weight, atol=1e-6)
    assert math.isclose(ours.momentum_at(512), 0.999**8)


def test_tied_weights_and_replaced_buffers_are_followed():
    net = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3), nn.BatchNorm1d(3))
    net[1].weight = net[0].weight  # tied: one tensor, averaged once
    ema = ScaledEMA(net, 0.5, buffers="copy")
    assert len(ema._ema_float) == len(list(net.parameters()))
    ema.update(net)
    net[2].running_mean = torch.full((3,), 7.0)  # a new tensor object in the same slot
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    ema.update(net)
    assert torch.equal(ema.module[2].running_mean, torch.full((3,), 7.0))
    assert ema.module[0].weight is ema.module[1].weight
