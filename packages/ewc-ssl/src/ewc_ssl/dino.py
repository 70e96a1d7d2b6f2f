"""DINO-style self-distillation (Caron et al. 2021) with a prototype head, so that the SSL model *is* a
classifier ``p_theta(y | x)`` over K prototypes and has a Fisher (Ovsianas et al. 2022, Sec. 2).

    model = SSLModel(MLPBackbone(256, 512, 128), feat_dim=128, prototypes=64)
    dino = DINO(model, momentum=0.99, total_samples=steps * batch, base_batch_size=batch)
    loss = dino.loss(view1, view2); loss.backward(); opt.step(); dino.update(batch_size=batch)
    log_p = model.log_prob(x)            # log softmax(prototype scores / student temperature)

The teacher is the core's :class:`paperkit.ema.ScaledEMA` of the student (backbone and head), with DINO's cosine
momentum schedule from ``momentum`` to 1 over the run, in samples seen (so it follows the EMA Scaling Rule when the
batch changes). The teacher's outputs are centred (a running mean, momentum ``center_momentum``) and sharpened
(temperature ``teacher_temp`` < ``student_temp``), DINO's two guards against collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from paperkit.ema import Cosine, ScaledEMA
from torch import nn


class MLPBackbone(nn.Module):
    """``in_dim -> hidden -> ... -> out_dim`` with GELU and LayerNorm (no batch statistics, so per-sample
    gradients and evaluation do not depend on the batch)."""

    def __init__(self, in_dim: int = 256, hidden: int = 512, out_dim: int = 128, depth: int = 3):
        super().__init__()
        dims = [in_dim] + [hidden] * (depth - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Linear(a, b))
            if i < depth - 1:
                layers += [nn.LayerNorm(b), nn.GELU()]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PrototypeHead(nn.Module):
    """DINO's head: an MLP to a bottleneck, L2-normalised, then cosine scores against K unit prototypes
    (DINO's weight-normalised last layer). Output in [-1, 1]; temperatures are applied by the caller."""

    def __init__(self, feat_dim: int, hidden: int = 256, bottleneck: int = 64, prototypes: int = 64):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(feat_dim, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.prototypes = nn.Parameter(torch.randn(prototypes, bottleneck) / bottleneck**0.5)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(h), dim=-1)
        return z @ F.normalize(self.prototypes, dim=-1).T


class SSLModel(nn.Module):
    """Backbone + prototype head. ``forward`` gives prototype scores; ``log_prob`` the model
    ``log p_theta(y | x) = log softmax(scores / student_temp)`` whose Fisher EWC uses."""

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        *,
        hidden: int = 256,
        bottleneck: int = 64,
        prototypes: int = 64,
        student_temp: float = 0.1,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = PrototypeHead(feat_dim, hidden, bottleneck, prototypes)
        self.student_temp = student_temp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x) / self.student_temp

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_log_prob(self(x))

    def output_log_prob(self, scores: torch.Tensor) -> torch.Tensor:
        """``log p(y | x)`` from ``forward``'s scores: pass as ``diagonal_fisher(..., log_prob=...)``."""
        return torch.log_softmax(scores / self.student_temp, dim=-1)


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, temp: float, iterations: int = 3) -> torch.Tensor:
    """Teacher targets with equal mass on every prototype over the batch (DINOv2's/SwAV's centring):
    ``exp(scores / temp)`` alternately normalised over prototypes and samples; rows sum to 1."""
    q = torch.exp((scores - scores.max()) / temp).T  # [K, B]
    k, b = q.shape
    q /= q.sum()
    for _ in range(iterations):
        q /= q.sum(dim=1, keepdim=True) * k
        q /= q.sum(dim=0, keepdim=True) * b
    return (q * b).T


def dino_loss(
    student: list[torch.Tensor],
    teacher: list[torch.Tensor],
    center: torch.Tensor | None,
    *,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO's loss: the mean over ordered pairs of *different* views (i, j) of the cross-entropy
    ``H(softmax((t_i - c) / tau_t), softmax(s_j / tau_s))``, averaged over the batch. ``center=None`` uses
    Sinkhorn-Knopp targets instead of the running centre (DINOv2)."""
    if center is None:
        targets = [sinkhorn_knopp(t, teacher_temp) for t in teacher]
    else:
        targets = [F.softmax((t - center) / teacher_temp, dim=-1).detach() for t in teacher]
    logs = [F.log_softmax(s / student_temp, dim=-1) for s in student]
    total, pairs = 0.0, 0
    for i, t in enumerate(targets):
        for j, ls in enumerate(logs):
            if i != j:
                total = total + (-(t * ls).sum(-1)).mean()
                pairs += 1
    return total / pairs


class DINO(nn.Module):
    """Student, EMA teacher (the core's ScaledEMA, cosine momentum to 1) and output centre."""

    def __init__(
        self,
        student: SSLModel,
        *,
        momentum: float = 0.99,
        total_samples: float,
        base_batch_size: int,
        teacher_temp: float = 0.04,
        center_momentum: float = 0.9,
        centering: str = "sinkhorn",
    ):
        super().__init__()
        if centering not in ("sinkhorn", "mean"):
            raise ValueError(f"centering must be 'sinkhorn' or 'mean', got {centering!r}")
        self.centering = centering
        self.student = student
        self.teacher = ScaledEMA(
            student, Cosine(momentum, 1.0, total_samples), base_batch_size=base_batch_size, buffers="copy"
        )
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(student.head.prototypes.shape[0]))

    def loss(self, *views: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t_out = [self.teacher(v) for v in views]
        s_out = [self.student(v) for v in views]
        loss = dino_loss(
            s_out,
            t_out,
            self.center if self.centering == "mean" else None,
            student_temp=self.student.student_temp,
            teacher_temp=self.teacher_temp,
        )
        with torch.no_grad():
            batch_center = torch.cat(t_out).mean(0)
            self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
        return loss

    def update(self, batch_size: int) -> float:
        """Move the teacher after an optimizer step on a (global) batch of ``batch_size``."""
        return self.teacher.update(self.student, batch_size=batch_size)
