"""The EWC penalty (Eq. 2): zero at theta*, gradient lambda F (theta - theta*), equal to the per-parameter
reference, the fused in-place gradient and proximal step, L2-SP as F = 1, the flat batched form."""

import torch
from ewc_ssl import EWCPenalty, flat_penalty, reference_penalty
from ewc_ssl.finetune import flatten_params
from torch import nn


def setup(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 3))
    anchor = {n: p.detach().clone() for n, p in model.named_parameters()}
    fisher = {n: torch.rand_like(p) + 0.1 for n, p in model.named_parameters()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model, anchor, fisher


def test_zero_at_the_anchor_with_zero_gradient():
    model, _, fisher = setup()
    pen = EWCPenalty(model, fisher, lam=5.0)  # anchored at the current weights
    value = pen(model)
    assert float(value.detach()) == 0.0
    value.backward()
    assert all(float(p.grad.abs().max()) == 0.0 for p in model.parameters())


def test_value_and_gradient_match_eq2_and_its_closed_form():
    model, anchor, fisher = setup()
    pen = EWCPenalty(anchor, fisher, lam=3.5)
    value = pen(model)
    ref = reference_penalty(dict(model.named_parameters()), anchor, fisher, 3.5)
    torch.testing.assert_close(value, ref)
    value.backward()
    for (n, p), g in zip(model.named_parameters(), pen.gradient(model)):
        want = 3.5 * fisher[n] * (p.detach() - anchor[n])
        torch.testing.assert_close(p.grad, want)
        torch.testing.assert_close(g, want)


def test_add_grad_equals_autograd_and_l2sp_is_f_equal_one():
    model, anchor, fisher = setup(1)
    pen = EWCPenalty(anchor, fisher, lam=2.0)
    pen(model).backward()
    auto = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    pen.add_grad_(model)
    for a, p in zip(auto, model.parameters()):
        torch.testing.assert_close(p.grad, a)
    ones = {n: torch.ones_like(f) for n, f in fisher.items()}
    l2 = EWCPenalty.l2sp(anchor, lam=2.0)
    torch.testing.assert_close(l2(model), EWCPenalty(anchor, ones, lam=2.0)(model))
    torch.testing.assert_close(
        l2(model), reference_penalty(dict(model.named_parameters()), anchor, None, 2.0)
    )


def test_prox_step_is_the_exact_minimiser():
    model, anchor, fisher = setup(2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, lam = 0.1, 40.0
    EWCPenalty(anchor, fisher, lam).prox_(model, lr)
    for n, p in model.named_parameters():
        # optimality of min_t lam/2 F (t - a)^2 + (t - b)^2 / (2 lr):  lam F (t - a) + (t - b) / lr = 0
        resid = lam * fisher[n] * (p - anchor[n]) + (p - before[n]) / lr
        assert float(resid.detach().abs().max()) < 1e-4


def test_flat_batched_penalty_equals_the_per_parameter_one():
    model, anchor, fisher = setup(3)
    names, _, theta = flatten_params(model)
    a = torch.cat([anchor[n].reshape(-1) for n in names])
    f = torch.cat([fisher[n].reshape(-1) for n in names])
    stacked = torch.stack([theta, a, theta])
    vals = flat_penalty(stacked, a, f, torch.tensor([1.5, 1.5, 0.0]))
    torch.testing.assert_close(vals[0], EWCPenalty(anchor, fisher, 1.5)(model))
    assert float(vals[1]) == 0.0 and float(vals[2]) == 0.0
