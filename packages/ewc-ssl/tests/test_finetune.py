"""Stacked fine-tuning arms equal separate models: same features, penalties, gradients per arm."""

import torch
from ewc_ssl import Arm, EWCPenalty, MLPBackbone, StackedFinetune


def make(seed=0):
    torch.manual_seed(seed)
    bb = MLPBackbone(256, 32, 16)
    fisher = {n: torch.rand_like(p) + 0.05 for n, p in bb.named_parameters()}
    arms = [Arm("ft", 0.0), Arm("ewc", 3.0), Arm("l2sp", 3.0)]
    return bb, fisher, StackedFinetune(bb, 16, arms, fisher, seed=seed)


def test_every_arm_is_the_backbone_at_its_own_weights():
    bb, fisher, sf = make()
    with torch.no_grad():
        sf.theta[1].add_(0.05 * torch.randn_like(sf.theta[1]))
    x = torch.rand(5, 256)
    feats = sf.features(x)
    torch.testing.assert_close(feats[0], bb(x))
    moved = MLPBackbone(256, 32, 16)
    moved.load_state_dict(sf.unflatten(sf.theta[1].detach()))
    torch.testing.assert_close(feats[1], moved(x), rtol=1e-5, atol=1e-6)
    pen = sf.penalty()
    assert float(pen[0].detach()) == 0.0
    torch.testing.assert_close(pen[1], EWCPenalty(bb, fisher, 3.0)(moved))


def test_arms_do_not_interact():
    _, _, sf = make(1)
    with torch.no_grad():
        sf.theta.add_(0.05 * torch.randn_like(sf.theta))
    x, y = torch.rand(6, 256), torch.randint(0, 2, (6,))
    loss, _, _ = sf.loss(x, y)
    loss.backward()
    g_all = sf.theta.grad[2].clone()
    # arm 2 alone: perturb the other arms and the gradient of arm 2 does not change
    sf.zero_grad()
    with torch.no_grad():
        sf.theta[0].add_(1.0)
        sf.theta[1].mul_(0.5)
    loss, _, _ = sf.loss(x, y)
    loss.backward()
    torch.testing.assert_close(sf.theta.grad[2], g_all)
