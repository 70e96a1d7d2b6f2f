"""The core's model EMA: counters that survive dtype casts, structure changes, a float32 EMA of a bf16 model, the
copy's mode, and the CPU-offloaded EMA of a CUDA model. (Its arithmetic against timm is tested in ema-scale.)"""

import pytest
import torch
from paperkit.ema import ScaledEMA
from torch import nn


def test_counters_survive_a_bf16_cast_and_a_state_dict_round_trip():
    model = nn.Linear(4, 4).to(torch.bfloat16)
    ema = ScaledEMA(nn.Linear(4, 4), 0.99).to(torch.bfloat16)
    for _ in range(600):
        ema.update(model, batch_size=1)
    assert (
        ema.samples_seen.dtype == torch.float64 and float(ema.samples_seen) == 600.0
    )  # bf16 would read 512/608
    assert ema.module.weight.dtype == torch.bfloat16
    fresh = ScaledEMA(nn.Linear(4, 4), 0.99).to(torch.bfloat16)
    fresh.load_state_dict(ema.state_dict())
    assert fresh.samples_seen.dtype == torch.float64 and float(fresh.samples_seen) == 600.0
    assert int(fresh.updates) == 600


def test_a_replaced_submodule_is_followed():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    ema = ScaledEMA(model, 0.0)  # rho = 0: the EMA equals the model after every update
    ema.update(model)
    model[1] = nn.Linear(3, 3)
    with torch.no_grad():
        model[1].weight.fill_(7.0)
    ema.update(model)
    assert torch.equal(ema.module[1].weight, model[1].weight)


def test_float32_ema_of_a_bf16_model_keeps_small_steps():
    rho, n = 0.999, 1000
    model = nn.Linear(1, 1, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        model.weight.zero_()
    exact = ScaledEMA(model, rho, dtype=torch.float32)
    low = ScaledEMA(model, rho)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(n):
        exact.update(model)
        low.update(model)
    truth = 1 - rho**n
    assert exact.module.weight.dtype == torch.float32
    assert abs(float(exact.module.weight) - truth) < 1e-5
    assert abs(float(low.module.weight) - truth) > 0.1  # the bf16 EMA stalls where a step rounds away
    with pytest.raises(ValueError, match="floating-point"):
        ScaledEMA(model, rho, dtype=torch.int32)


def test_mode_is_the_callers_choice_and_survives_train_and_eval():
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    assert not ScaledEMA(net, 0.9).module.training
    target = ScaledEMA(net, 0.9, mode="train")
    outer = nn.ModuleDict({"target": target})
    outer.eval()
    assert target.module.training and target.module[1].training
    x = torch.randn(8, 3) * 5 + 3
    out = target(x)  # train-mode BatchNorm normalises with the batch's statistics
    assert out.mean(0).abs().max() < 1e-4 + target.module[1].bias.abs().max() + 1
    with pytest.raises(ValueError, match="mode"):
        ScaledEMA(net, 0.9, mode="frozen")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_ema_of_a_cuda_model_equals_the_cpu_reference():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.BatchNorm1d(256)).cuda()
    ema = ScaledEMA(model, 0.9, device="cpu")
    ref = ScaledEMA(model.cpu(), 0.9)
    model.cuda()
    for _ in range(20):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        ref.update(model.cpu())
        model.cuda()
    for a, b in zip(ema.module.state_dict().values(), ref.module.state_dict().values()):
        torch.testing.assert_close(a, b)
