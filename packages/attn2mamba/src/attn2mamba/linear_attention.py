"""Hedgehog feature maps and causal linear attention in three equivalent forms.

Hedgehog (Zhang et al. 2024) replaces ``softmax(q k^T)`` by ``phi(q) phi(k)^T`` with a learnable, per-head map

    phi(x) = [softmax(x W + b), softmax(-(x W + b))]          (W: d x f, softmax over the f features)

so ``phi`` has ``2f`` positive features. Causal linear attention is then

    y_t = sum_{s <= t} (phi(q_t) . phi(k_s)) v_s = phi(q_t)^T S_t,       S_t = sum_{s <= t} phi(k_s) v_s^T

and these functions compute that numerator for any ``v`` (append a column of ones to ``v`` to get the softmax-style
denominator ``phi(q_t)^T z_t`` in the same pass). Shapes: ``qf, kf [batch, heads, L, F]``, ``v [batch, heads, L,
P]``, state ``S [batch, heads, F, P]``.

- :func:`linear_attention_quadratic`: the masked ``L x L`` form (the definition; O(L^2)).
- :func:`linear_attention_chunked`: chunks of ``T`` tokens, quadratic inside a chunk, the state ``S`` carried
  across chunks by a cumulative sum of per-chunk ``phi(K)^T V`` (O(L T) + O(L F P)); the training form.
- :func:`linear_attention_recurrent`: one token at a time (the generation form and a test reference).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class HedgehogFeatureMap(nn.Module):
    """``phi(x) = [softmax(xW + b), softmax(-(xW + b))]`` per head; ``x [batch, heads, L, head_dim]`` ->
    ``[batch, heads, L, 2 * feature_dim]``. ``init="identity"`` starts from ``W = I`` (truncated or zero-padded
    when ``feature_dim != head_dim``), ``"kaiming"`` from random weights."""

    def __init__(self, num_heads: int, head_dim: int, feature_dim: int, init: str = "identity"):
        super().__init__()
        self.num_heads, self.head_dim, self.feature_dim, self.init = num_heads, head_dim, feature_dim, init
        self.weight = nn.Parameter(torch.empty(num_heads, head_dim, feature_dim))
        self.bias = nn.Parameter(torch.zeros(num_heads, feature_dim))
        self.reset_special_parameters()

    def reset_special_parameters(self) -> None:
        with torch.no_grad():
            if self.init == "identity":
                self.weight.copy_(torch.eye(self.head_dim, self.feature_dim).expand_as(self.weight))
            elif self.init == "kaiming":
                bound = 1 / math.sqrt(self.head_dim)
                self.weight.uniform_(-bound, bound)
            else:
                raise ValueError(f"feature-map init {self.init!r} is not identity or kaiming")
            self.bias.zero_()

    def pre(self, x: torch.Tensor) -> torch.Tensor:
        """``xW + b`` (the argument of the two softmaxes)."""
        return torch.einsum("bhld,hdf->bhlf", x, self.weight) + self.bias[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return feature_pair(self.pre(x))


def feature_pair(u: torch.Tensor) -> torch.Tensor:
    """``[softmax(u), softmax(-u)]`` over the last dimension (the Hedgehog nonlinearity)."""
    return torch.cat((u.softmax(-1), (-u).softmax(-1)), dim=-1)


def linear_attention_quadratic(qf: torch.Tensor, kf: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``y_t = sum_{s<=t} (qf_t . kf_s) v_s`` through the masked ``L x L`` score matrix."""
    L = qf.shape[-2]
    scores = qf @ kf.transpose(-1, -2)
    mask = torch.ones(L, L, dtype=torch.bool, device=qf.device).tril()
    return scores.masked_fill(~mask, 0.0) @ v


def linear_attention_weights(qf: torch.Tensor, kf: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Normalised causal attention weights ``a_ts = qf_t . kf_s / sum_{s'<=t} qf_t . kf_s'`` ``[b, h, L, L]``."""
    L = qf.shape[-2]
    scores = (qf @ kf.transpose(-1, -2)).float()
    mask = torch.ones(L, L, dtype=torch.bool, device=qf.device).tril()
    scores = scores.masked_fill(~mask, 0.0)
    return scores / (scores.sum(-1, keepdim=True) + eps)


def linear_attention_chunked(
    qf: torch.Tensor,
    kf: torch.Tensor,
    v: torch.Tensor,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked causal linear attention; returns ``(y [b, h, L, P], final state S [b, h, F, P])``."""
    b, h, L, Fd = qf.shape
    P = v.shape[-1]
    T = min(chunk_size, L)
    pad = (-L) % T
    if pad:  # zero keys and values add nothing; zero queries read nothing; the padding is cut off
        qf, kf, v = (F.pad(t, (0, 0, 0, pad)) for t in (qf, kf, v))
    c = (L + pad) // T
    q = qf.reshape(b, h, c, T, Fd)
    k = kf.reshape(b, h, c, T, Fd)
    vv = v.reshape(b, h, c, T, P)
    mask = torch.ones(T, T, dtype=torch.bool, device=qf.device).tril()
    y = (q @ k.transpose(-1, -2)).masked_fill(~mask, 0.0) @ vv  # inside each chunk
    kv = k.transpose(-1, -2) @ vv  # [b, h, c, F, P]: each chunk's contribution to the state
    S = kv.cumsum(2)
    if initial_state is not None:
        S = S + initial_state[:, :, None]
    S_before = torch.cat(
        (
            (initial_state if initial_state is not None else torch.zeros_like(kv[:, :, 0]))[:, :, None],
            S[:, :, :-1],
        ),
        dim=2,
    )
    y = y + q @ S_before  # what earlier chunks left in the state
    y = y.reshape(b, h, c * T, P)[:, :, :L]
    return y, S[:, :, -1]


def linear_attention_recurrent(
    qf: torch.Tensor, kf: torch.Tensor, v: torch.Tensor, *, initial_state: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token at a time: ``S_t = S_{t-1} + kf_t v_t^T``, ``y_t = qf_t^T S_t``."""
    b, h, L, Fd = qf.shape
    S = initial_state if initial_state is not None else qf.new_zeros(b, h, Fd, v.shape[-1])
    ys = []
    for t in range(L):
        S = S + kf[:, :, t, :, None] * v[:, :, t, None, :]
        ys.append((qf[:, :, t, None, :] @ S).squeeze(-2))
    return torch.stack(ys, dim=2), S
