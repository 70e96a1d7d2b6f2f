"""Slow references written directly from the formulas, one softmax at a time (loops over samples and views).

Each softmax is ``-log( exp(positive) / sum over candidates exp(candidate) )`` with the candidate list spelled
out, so the masks of the vectorized code are checked against an explicit enumeration.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _nll(
    anchor: torch.Tensor, positive: torch.Tensor, candidates: list[torch.Tensor], tau: float
) -> torch.Tensor:
    logits = torch.stack([anchor @ c for c in candidates]) / tau
    return torch.logsumexp(logits, 0) - anchor @ positive / tau


def pairwise(z: torch.Tensor, tau: float) -> dict[tuple[int, int, int], torch.Tensor]:
    """l[i, a, b]: candidates are (i, b) and every (j, n) with j != i."""
    z = F.normalize(z, dim=-1)
    k, m, _ = z.shape
    out = {}
    for i in range(k):
        for a in range(m):
            for b in range(m):
                if a == b:
                    continue
                cands = [z[i, b]] + [z[j, n] for j in range(k) if j != i for n in range(m)]
                assert len(cands) == m * k - (m - 1)
                out[i, a, b] = _nll(z[i, a], z[i, b], cands, tau)
    return out


def loss(z: torch.Tensor, tau: float, method: str) -> torch.Tensor:
    k, m, _ = z.shape
    if method == "all-pairs":
        zn = F.normalize(z, dim=-1)
        total = []
        for a in range(m):
            for b in range(m):
                if a == b:
                    continue
                for i in range(k):
                    cands = [zn[i, b]] + [zn[j, v] for j in range(k) if j != i for v in (a, b)]
                    assert len(cands) == 2 * k - 1
                    total.append(_nll(zn[i, a], zn[i, b], cands, tau))
        return torch.stack(total).mean()
    if method == "suffstats":
        zn = F.normalize(z, dim=-1)
        stat = {
            (j, a): F.normalize(sum(zn[j, b] for b in range(m) if b != a) / (m - 1), dim=0)
            for j in range(k)
            for a in range(m)
        }
        total = []
        for i in range(k):
            for a in range(m):
                cands = [stat[j, a] for j in range(k)] + [zn[j, a] for j in range(k) if j != i]
                total.append(_nll(zn[i, a], stat[i, a], cands, tau))
        return torch.stack(total).mean()
    terms = pairwise(z, tau)
    per_anchor = []
    for i in range(k):
        for a in range(m):
            ls = torch.stack([terms[i, a, b] for b in range(m) if b != a])
            if method == "geometric":
                per_anchor.append(ls.mean())
            elif method == "arithmetic":
                # -log of the arithmetic mean of the positives' softmax probabilities exp(-l)
                per_anchor.append(-torch.log(torch.exp(-ls).mean()))
            elif method == "harmonic":
                # the appendix pseudo-code: logsumexp of the pairwise losses, minus log K
                per_anchor.append(torch.logsumexp(ls, 0) - math.log(k))
            else:
                raise ValueError(method)
    return torch.stack(per_anchor).mean()


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR's NT-Xent from its published formula: 2K anchors, each against the 2K - 1 other embeddings."""
    z = F.normalize(torch.cat([z1, z2]), dim=-1)
    n = z1.shape[0]
    sim = z @ z.T / tau
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)
