import torch
from paperkit.optim import LARS, lars_param_groups


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


def test_lars_param_groups_split_weights_from_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    decay, plain = lars_param_groups(model, 1e-4)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 3])]
    assert len(plain["params"]) == 3 and plain["exclude_from_wd"] and plain["weight_decay"] == 0.0
    assert decay["weight_decay"] == 1e-4
