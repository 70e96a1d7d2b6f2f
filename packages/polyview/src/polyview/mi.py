"""Mutual information at known truth: Gaussian views with a closed-form one-vs-rest MI.

Data: ``x ~ N(0, I_d)``, views ``v_a = x + sigma * e_a`` (``e_a ~ N(0, I_d)``, independent). The mean of the other
``M - 1`` views is sufficient for them, ``x + sigma * ebar`` with noise variance ``s = sigma^2 / (M - 1)``, so::

    I(v_a; V_{!=a}) = d/2 * log[ (1 + sigma^2) / (sigma^2 + s / (1 + s)) ]        (one-vs-rest, rises with M)
    I(v_a; v_b)     = the same with M = 2                                         (two-view, constant in M)

A small MLP critic ``g`` is trained with each objective at each M; on fresh batches we then report

- ``loss_estimate``: log(number of candidates) minus the objective's per-anchor loss, the InfoNCE reading of the
  loss. For the appendix code's (``harmonic``) form the per-anchor loss is ``logsumexp_b l[i, a, b] - log(M - 1)``
  (its definition without the constant ``-log K``, so that equal pairwise terms give the Geometric value);
- ``ovr_estimate``: the one-vs-rest InfoNCE lower bound with the critic aggregated over the other views,
  ``F(v_a, V_{!=a}) = mean_b g(v_a) . g(v_b) / tau`` (the geometric mean of the pairwise density ratios) and
  the K samples' rest-sets as candidates: ``log K - CE``. This one is a valid lower bound on the one-vs-rest MI
  for any critic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .losses import num_candidates, pairwise_terms, pvc_loss


def true_ovr_mi(d: int, sigma: float, m: int) -> float:
    """``I(v_a; V_{!=a})`` in nats for ``M = m`` Gaussian views with noise std ``sigma`` in ``d`` dims."""
    if m < 2:
        raise ValueError(f"one-vs-rest MI needs M >= 2, got {m}")
    s = sigma**2 / (m - 1)
    return d * 0.5 * math.log((1 + sigma**2) / (sigma**2 + s / (1 + s)))


def gaussian_views(k: int, m: int, d: int, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """``[K, M, d]``: K samples ``x ~ N(0, I)``, M views ``x + sigma * noise`` each."""
    x = torch.randn(k, 1, d, generator=gen)
    return x + sigma * torch.randn(k, m, d, generator=gen)


@dataclass(frozen=True)
class MIArm:
    method: str
    m: int
    k: int = 128
    d: int = 5
    sigma: float = 0.5
    steps: int = 400
    lr: float = 1e-3
    tau: float = 0.1
    hidden: int = 128
    out: int = 32
    eval_batches: int = 20
    seed: int = 0


def critic(arm: MIArm) -> nn.Module:
    torch.manual_seed(arm.seed)
    return nn.Sequential(
        nn.Linear(arm.d, arm.hidden),
        nn.ReLU(),
        nn.Linear(arm.hidden, arm.hidden),
        nn.ReLU(),
        nn.Linear(arm.hidden, arm.out),
    )


def per_anchor_loss(z: torch.Tensor, tau: float, method: str) -> float:
    """The objective's mean per-anchor loss; the ``harmonic`` form's constant ``-log K`` is put back (see above)."""
    if method != "harmonic":
        return pvc_loss(z, tau, method).item()
    m = z.shape[1]
    terms = pairwise_terms(z, tau)
    off = ~torch.eye(m, dtype=torch.bool)
    lse = torch.logsumexp(terms.masked_fill(~off, float("-inf")), dim=2)
    return (lse - math.log(m - 1)).mean().item()


def ovr_bound(z: torch.Tensor, tau: float) -> float:
    """One-vs-rest InfoNCE with the geometric aggregate critic: ``log K - CE`` over the K samples' rest-sets."""
    k, m, _ = z.shape
    z = F.normalize(z, dim=-1)
    rest = (z.sum(1, keepdim=True) - z) / (m - 1)  # mean of the other views' embeddings: [K, M, d]
    logits = torch.einsum("iad,jad->iaj", z, rest) / tau  # F(v_ia, V_j,!=a)
    target = torch.arange(k).repeat_interleave(m)
    return math.log(k) - F.cross_entropy(logits.reshape(k * m, k), target).item()


def train_and_estimate(arm: MIArm) -> dict:
    """Train the critic with ``arm.method`` at ``arm.m`` views; return the estimates and the truth."""
    net = critic(arm)
    opt = torch.optim.Adam(net.parameters(), lr=arm.lr)
    gen = torch.Generator().manual_seed(arm.seed * 7919 + arm.m)
    for _ in range(arm.steps):
        loss = pvc_loss(net(gaussian_views(arm.k, arm.m, arm.d, arm.sigma, gen)), arm.tau, arm.method)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    held_out = torch.Generator().manual_seed(10_000 + arm.seed)
    losses, ovr = [], []
    with torch.no_grad():
        for _ in range(arm.eval_batches):
            z = net(gaussian_views(arm.k, arm.m, arm.d, arm.sigma, held_out))
            losses.append(per_anchor_loss(z, arm.tau, arm.method))
            ovr.append(ovr_bound(z, arm.tau))
    loss = sum(losses) / len(losses)
    return {
        "method": arm.method,
        "m": arm.m,
        "true_ovr_mi": true_ovr_mi(arm.d, arm.sigma, arm.m),
        "true_pair_mi": true_ovr_mi(arm.d, arm.sigma, 2),
        "loss": loss,
        "candidates": num_candidates(arm.method, arm.k, arm.m),
        "loss_estimate": math.log(num_candidates(arm.method, arm.k, arm.m)) - loss,
        "ovr_estimate": sum(ovr) / len(ovr),
    }


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (no ties expected)."""

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        for rank, i in enumerate(order):
            r[i] = float(rank)
        return r

    rx, ry = ranks(x), ranks(y)
    n = len(x)
    if n < 2:
        return float("nan")
    return 1 - 6 * sum((a - b) ** 2 for a, b in zip(rx, ry)) / (n * (n**2 - 1))
