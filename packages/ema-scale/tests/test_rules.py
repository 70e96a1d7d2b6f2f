import math

import pytest
import torch
from ema_scale import LARS, BatchSchedule, Hparams, apply_hparams, build_optimizer, scale_hparams


def test_sgd_linear_rule():
    hp = scale_hparams(Hparams("sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, ema_momentum=0.99), 8)
    assert hp.lr == pytest.approx(0.8) and hp.momentum == 0.9 and hp.weight_decay == 1e-4
    assert hp.ema_momentum == pytest.approx(0.99**8) and hp.kappa == 8


@pytest.mark.parametrize("opt", ["adam", "adamw"])
def test_adam_square_root_rule(opt):
    base = Hparams(opt, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, ema_momentum=0.999)
    hp = scale_hparams(base, 4)
    assert hp.lr == pytest.approx(2e-3)
    assert hp.betas == pytest.approx((1 - 4 * 0.1, 1 - 4 * 0.001))
    assert hp.eps == pytest.approx(0.5e-8)
    assert hp.ema_momentum == pytest.approx(0.999**4)
    assert scale_hparams(base, 20).betas[0] == 0.0  # 1 - 20 * 0.1 clamps at zero


def test_lars_rules():
    base = Hparams("lars", lr=0.2, ema_momentum=0.996)
    assert scale_hparams(base, 16).lr == pytest.approx(3.2)
    assert scale_hparams(base, 16, lars_rule="sqrt").lr == pytest.approx(0.8)
    assert scale_hparams(base, 16, ema_rule="none").ema_momentum == 0.996


def test_errors():
    with pytest.raises(ValueError, match="unknown optimizer rule 'rmsprop'"):
        Hparams("rmsprop")
    with pytest.raises(ValueError, match="kappa"):
        scale_hparams(Hparams(), 0)
    with pytest.raises(ValueError, match="kappa"):
        scale_hparams(Hparams(), -2)
    with pytest.raises(ValueError, match="learning rate must be positive"):
        Hparams(lr=-0.1)
    with pytest.raises(ValueError, match="EMA momentum"):
        Hparams(ema_momentum=1.0)
    with pytest.raises(ValueError, match="LARS rule"):
        scale_hparams(Hparams("lars"), 2, lars_rule="cubic")


def test_build_and_apply():
    p = [torch.nn.Parameter(torch.randn(3))]
    opt = build_optimizer(p, scale_hparams(Hparams("adamw", lr=1e-3), 4))
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == pytest.approx(2e-3)
    apply_hparams(opt, scale_hparams(Hparams("adamw", lr=1e-3), 16), lr_factor=0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-3) and opt.param_groups[0]["betas"][0] == 0.0


def lars_reference(params, grads, bufs, lr, momentum, wd, eta):
    """LARS written per tensor from You et al. (2017)."""
    for p, g, b in zip(params, grads, bufs):
        g = g + wd * p
        wn, gn = p.norm(), g.norm()
        trust = eta * wn / (gn + 1e-9) if wn > 0 and gn > 0 else 1.0
        b.mul_(momentum).add_(trust * g)
        p.sub_(lr * b)


def test_lars_matches_reference():
    torch.manual_seed(0)
    params = [torch.randn(4, 3), torch.randn(5), torch.zeros(2)]
    ours = [torch.nn.Parameter(p.clone()) for p in params]
    ref = [p.clone() for p in params]
    bufs = [torch.zeros_like(p) for p in params]
    opt = LARS(ours, lr=0.5, momentum=0.9, weight_decay=1e-2, trust_coefficient=0.01)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for p, g in zip(ours, grads):
            p.grad = g.clone()
        opt.step()
        lars_reference(ref, grads, bufs, 0.5, 0.9, 1e-2, 0.01)
    for a, b in zip(ours, ref):
        assert torch.allclose(a.detach(), b, atol=1e-6)


def test_lars_excluded_group_is_plain_sgd_momentum():
    p = torch.nn.Parameter(torch.ones(3))
    opt = LARS([{"params": [p], "exclude_from_wd": True, "weight_decay": 0.0}], lr=0.1, momentum=0.0)
    p.grad = torch.full((3,), 2.0)
    opt.step()
    assert torch.allclose(p.detach(), torch.full((3,), 0.8))


def test_batch_schedule():
    s = BatchSchedule(32, ((0, 32), (1000, 256)))
    assert s.batch_at(0) == 32 and s.batch_at(999) == 32 and s.batch_at(1000) == 256
    assert s.kappa_at(5000) == 8
    assert BatchSchedule.constant(16, 4).batch_at(10**9) == 64
    with pytest.raises(ValueError, match="start at sample 0"):
        BatchSchedule(32, ((10, 32),))
    with pytest.raises(ValueError, match="increasing"):
        BatchSchedule(32, ((0, 32), (100, 64), (50, 128)))
    assert math.isclose(BatchSchedule(3, ((0, 3), (6, 9))).kappa_at(6), 3.0)
