import math

import pytest
import torch
from ema_scale import BatchSchedule, Hparams, apply_hparams, build_optimizer, scale_hparams


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
