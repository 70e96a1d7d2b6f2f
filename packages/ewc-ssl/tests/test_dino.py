"""DINO pieces: Sinkhorn-Knopp targets, the loss against a hand computation, the core's EMA teacher."""

import torch
import torch.nn.functional as F
from ewc_ssl import DINO, MLPBackbone, SSLModel, dino_loss, sinkhorn_knopp


def test_sinkhorn_targets_are_distributions_with_equal_prototype_mass():
    torch.manual_seed(0)
    q = sinkhorn_knopp(torch.randn(64, 8), temp=0.5, iterations=50)
    torch.testing.assert_close(q.sum(1), torch.ones(64))
    torch.testing.assert_close(q.sum(0), torch.full((8,), 64 / 8), rtol=1e-3, atol=1e-3)


def test_dino_loss_by_hand():
    torch.manual_seed(1)
    s = [torch.randn(4, 5), torch.randn(4, 5)]
    t = [torch.randn(4, 5), torch.randn(4, 5)]
    c = torch.randn(5)
    got = dino_loss(s, t, c, student_temp=0.1, teacher_temp=0.05)
    h = lambda ti, sj: (-(F.softmax((ti - c) / 0.05, -1) * F.log_softmax(sj / 0.1, -1)).sum(-1)).mean()  # noqa: E731
    torch.testing.assert_close(got, (h(t[0], s[1]) + h(t[1], s[0])) / 2)


def test_teacher_is_an_ema_of_the_student():
    torch.manual_seed(2)
    model = SSLModel(MLPBackbone(256, 32, 16), 16, hidden=32, bottleneck=8, prototypes=6)
    dino = DINO(model, momentum=0.9, total_samples=1e9, base_batch_size=8)
    t0 = dino.teacher.module.backbone.net[0].weight.clone()
    with torch.no_grad():
        model.backbone.net[0].weight.add_(1.0)
    dino.update(batch_size=8)
    # rho = 0.9 at the start of the cosine schedule: the teacher moved 10% of the way
    torch.testing.assert_close(dino.teacher.module.backbone.net[0].weight, t0 + 0.1, rtol=1e-4, atol=1e-4)
    x = torch.rand(8, 256)
    loss = dino.loss(x, x + 0.01)
    loss.backward()
    assert model.backbone.net[0].weight.grad is not None
    assert dino.teacher.module.backbone.net[0].weight.grad is None
    lp = model.log_prob(x)
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(8))
