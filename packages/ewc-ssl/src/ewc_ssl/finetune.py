"""Fine-tuning a pretrained backbone plus a new linear head with the EWC / L2-SP penalty, several arms at once.

An *arm* is one fine-tuning run: a penalty weight ``lam`` and a per-parameter weight vector (the normalised
Fisher for EWC, ones for L2-SP; ``lam = 0`` is plain fine-tuning). All arms start from the same SSL weights,
see the same batches in the same order and the same head initialisation, and are trained together as one
stacked model: the backbone's parameters live in one flat tensor ``theta [A, P]``, unflattened into views for
``torch.func.functional_call`` under ``vmap`` over arms, and the penalty is one fused expression over
``theta`` (:func:`ewc_ssl.penalty.flat_penalty`). A arms cost about one batched pass instead of A runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from .penalty import flat_penalty


@dataclass(frozen=True)
class Arm:
    """``kind``: "ft" (lam = 0), "ewc" (Fisher-weighted) or "l2sp" (F = 1)."""

    kind: str
    lam: float

    @property
    def name(self) -> str:
        return "ft" if self.kind == "ft" else f"{self.kind}/{self.lam:g}"


def flatten_params(module: nn.Module) -> tuple[list[str], list[torch.Size], torch.Tensor]:
    names, shapes, flat = [], [], []
    for n, p in module.named_parameters():
        names.append(n)
        shapes.append(p.shape)
        flat.append(p.detach().reshape(-1))
    return names, shapes, torch.cat(flat)


def flatten_like(names: list[str], tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensors[n].reshape(-1) for n in names])


class StackedFinetune(nn.Module):
    """A arms of (backbone copy + linear head) over one flat parameter tensor per arm."""

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        arms: list[Arm],
        fisher: dict[str, torch.Tensor] | None,
        *,
        classes: int = 2,
        seed: int = 0,
    ):
        super().__init__()
        self.backbone = backbone
        self.arms = list(arms)
        names, shapes, anchor = flatten_params(backbone)
        self.names, self.shapes = names, shapes
        self.sizes = [s.numel() for s in shapes]
        self.buffers_ = dict(backbone.named_buffers())
        A = len(arms)
        self.register_buffer("anchor", anchor.clone())
        self.theta = nn.Parameter(anchor.repeat(A, 1))
        ones = torch.ones_like(anchor)
        if any(a.kind == "ewc" for a in arms) and fisher is None:
            raise ValueError("an EWC arm needs a Fisher")
        f_flat = flatten_like(names, fisher) if fisher is not None else ones
        self.register_buffer("weights", torch.stack([f_flat if a.kind == "ewc" else ones for a in arms]))
        self.register_buffer("lam", torch.tensor([0.0 if a.kind == "ft" else a.lam for a in arms]))
        g = torch.Generator().manual_seed(seed)
        bound = 1.0 / feat_dim**0.5
        w = (torch.rand(feat_dim, classes, generator=g) * 2 - 1) * bound
        self.head_w = nn.Parameter(w.repeat(A, 1, 1))
        self.head_b = nn.Parameter(torch.zeros(A, 1, classes))

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, torch.split(flat, self.sizes), self.shapes)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[A, B, feat]``: every arm's backbone on the same inputs ``x [B, ...]``."""

        def one(flat):
            return functional_call(self.backbone, ({**self.unflatten(flat), **self.buffers_},), (x,))

        return vmap(one)(self.theta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.head_b, self.features(x), self.head_w)

    def penalty(self) -> torch.Tensor:
        """``[A]``: each arm's (lam/2) sum_i w_i (theta_i - theta*_i)^2."""
        return flat_penalty(self.theta, self.anchor, self.weights, self.lam)

    def loss(
        self, x: torch.Tensor, y: torch.Tensor, *, with_penalty: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(sum over arms of ce + penalty, ce [A], penalty [A])``. With ``with_penalty=False`` the penalty is
        left out of the differentiated sum (for :meth:`prox_`, the proximal form)."""
        logits = self(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(len(self.arms)), reduction="none")
        ce = ce.view(len(self.arms), -1).mean(1)
        pen = self.penalty() if with_penalty else self.penalty().detach()
        total = (ce + pen).sum() if with_penalty else ce.sum()
        return total, ce.detach(), pen.detach()

    @torch.no_grad()
    def prox_(self, lr: float) -> None:
        """The proximal step of the penalty after an optimizer step of size ``lr`` on the task loss:
        ``theta <- theta* + (theta - theta*) / (1 + lr lam w)``, the exact minimiser of
        ``penalty(theta') + ||theta' - theta||^2 / (2 lr)``. Stable for every lambda (an explicit gradient step
        diverges once ``lr lam max(F) > 2``); same fixed points as gradient descent on loss + penalty."""
        scale = 1.0 + lr * self.lam[:, None] * self.weights
        self.theta.sub_(self.anchor).div_(scale).add_(self.anchor)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        return torch.cat([self(x[i : i + chunk]).argmax(-1) for i in range(0, len(x), chunk)], dim=1)

    @torch.no_grad()
    def embed(self, x: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        return torch.cat([self.features(x[i : i + chunk]) for i in range(0, len(x), chunk)], dim=1)

    @torch.no_grad()
    def distance(self) -> torch.Tensor:
        """``[A]``: ||theta - theta*|| per arm."""
        return (self.theta - self.anchor).norm(dim=-1)
