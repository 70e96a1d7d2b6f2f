"""The two-stream diffusion transformer (MM-DiT): a clean *context* stream and a noisy *continuation* stream,
each with its own embedding, QKV, output and MLP weights, attending jointly (bidirectionally) over the
concatenated sequence, with adaLN-Zero modulation from the noise level on every block (Peebles & Xie 2023;
Esser et al. 2024). ``two_stream=False`` shares one set of weights between the streams (a one-stream DiT of the
same width, depth and FLOPs; the benchmark's anchor).

    model = MMDiT(token_dim=320, dim=128, depth=4, heads=4, max_ctx=16, max_cont=16)
    v = model(ctx, x_t, t)              # ctx (B, Tc, 320) clean tokens, x_t (B, Tx, 320), t (B,) -> v (B, Tx, 320)
    v_uncond = model(ctx, x_t, t, drop=torch.ones(B, dtype=torch.bool))   # context replaced by the null token
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as in DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class StreamWeights(nn.Module):
    """One stream's weights in a block: adaLN (6 modulations), QKV, attention output, MLP. ``pre_only`` keeps
    only what the keys and values need (the context stream of the last block, whose output nothing reads)."""

    def __init__(self, dim: int, mlp_ratio: float, pre_only: bool = False):
        super().__init__()
        self.pre_only = pre_only
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.ada = nn.Linear(dim, (2 if pre_only else 6) * dim)
        if not pre_only:
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.proj = nn.Linear(dim, dim)
            hidden = int(dim * mlp_ratio)
            self.mlp = nn.Sequential(
                nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim)
            )
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)


class JointBlock(nn.Module):
    def __init__(
        self, dim: int, heads: int, mlp_ratio: float = 4.0, two_stream: bool = True, last: bool = False
    ):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.last = last
        self.ctx = StreamWeights(dim, mlp_ratio, pre_only=last and two_stream)
        self.x = StreamWeights(dim, mlp_ratio) if two_stream else self.ctx

    def forward(
        self, c: torch.Tensor, x: torch.Tensor, cond: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tc = c.shape[1]
        s = F.silu(cond)
        mods = [self.ctx.ada(s).chunk(2 if self.ctx.pre_only else 6, dim=-1), self.x.ada(s).chunk(6, dim=-1)]
        qkv = []
        for w, h, m in ((self.ctx, c, mods[0]), (self.x, x, mods[1])):
            qkv.append(w.qkv(modulate(w.norm1(h), m[0], m[1])))
        qkv = torch.cat(qkv, dim=1)
        b, t, _ = qkv.shape
        q, k, v = qkv.view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, -1)
        out = []
        streams = ((self.x, x, mods[1], a[:, tc:]),) if self.last else ()
        if not self.last:
            streams = ((self.ctx, c, mods[0], a[:, :tc]), (self.x, x, mods[1], a[:, tc:]))
        for w, h, m, ah in streams:
            h = h + m[2][:, None] * w.proj(ah)
            h = h + m[5][:, None] * w.mlp(modulate(w.norm2(h), m[3], m[4]))
            out.append(h)
        return (c, out[0]) if self.last else (out[0], out[1])


class MMDiT(nn.Module):
    """Two-stream diffusion transformer over patches of log-mel frames (see the module docstring)."""

    def __init__(
        self,
        token_dim: int,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        max_ctx: int = 16,
        max_cont: int = 16,
        two_stream: bool = True,
    ):
        super().__init__()
        self.token_dim, self.dim, self.max_ctx, self.max_cont = token_dim, dim, max_ctx, max_cont
        self.embed_ctx = nn.Linear(token_dim, dim)
        self.embed_x = nn.Linear(token_dim, dim) if two_stream else self.embed_ctx
        self.pos = nn.Parameter(torch.randn(max_ctx + max_cont, dim) * 0.02)
        self.null_ctx = nn.Parameter(torch.randn(dim) * 0.02)
        self.t_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.blocks = nn.ModuleList(
            JointBlock(dim, heads, mlp_ratio, two_stream, last=i == depth - 1) for i in range(depth)
        )
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(dim, 2 * dim)
        self.final = nn.Linear(dim, token_dim)
        for m in (self.final_ada, self.final):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    def num_params(self) -> int:
        """N: parameters without the positional table (the Chinchilla convention drops embeddings)."""
        return sum(p.numel() for n, p in self.named_parameters() if n != "pos")

    def forward(
        self, ctx: torch.Tensor, x: torch.Tensor, t: torch.Tensor, drop: torch.Tensor | None = None
    ) -> torch.Tensor:
        tc, tx = ctx.shape[1], x.shape[1]
        if tc > self.max_ctx or tx > self.max_cont:
            raise ValueError(
                f"sequence ({tc} context, {tx} continuation) exceeds ({self.max_ctx}, {self.max_cont})"
            )
        c = self.embed_ctx(ctx)
        if drop is not None:
            c = torch.where(drop[:, None, None], self.null_ctx.to(c.dtype).expand_as(c), c)
        c = c + self.pos[:tc]
        h = self.embed_x(x) + self.pos[self.max_ctx : self.max_ctx + tx]
        cond = self.t_mlp(timestep_embedding(t, self.dim).to(h.dtype))
        for blk in self.blocks:
            c, h = blk(c, h, cond)
        shift, scale = self.final_ada(F.silu(cond)).chunk(2, dim=-1)
        return self.final(modulate(self.final_norm(h), shift, scale))


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, M) log-mel frames -> (B, T // patch, patch * M) tokens (T must be a multiple of patch)."""
    b, t, m = frames.shape
    if t % patch:
        raise ValueError(f"{t} frames are not a multiple of the patch size {patch}")
    return frames.reshape(b, t // patch, patch * m)


def unpatchify(tokens: torch.Tensor, patch: int) -> torch.Tensor:
    b, n, d = tokens.shape
    return tokens.reshape(b, n * patch, d // patch)
