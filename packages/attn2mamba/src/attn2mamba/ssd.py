"""Mamba-2's state-space dual (SSD) scan in pure PyTorch: chunked for training, recurrent for generation.

The selective SSM with a scalar decay per head (Dao & Gu 2024, "Transformers are SSMs"), per head ``h``:

    H_t = exp(dt_t A) H_{t-1} + dt_t x_t B_t^T          (state H: P x N)
    y_t = H_t C_t + D x_t

Shapes: ``x [b, L, heads, P]``, ``dt [b, L, heads]`` (positive, after softplus), ``A [heads]`` (<= 0),
``B, C [b, L, groups, N]`` (``heads`` divisible by ``groups``; heads of a group share B and C), ``D [heads]``,
states ``[b, heads, P, N]``.

:func:`ssd_chunked` splits the sequence into chunks of ``T`` tokens. Inside a chunk the recurrence is the masked
"attention" ``y = (C B^T * Lmask) (dt x)`` with ``Lmask_ts = exp(sum_{s<j<=t} dt_j A)``; across chunks only the
``c = L/T`` chunk-end states are carried, through a ``(c+1) x (c+1)`` matrix of decays. Every exponent is a sum of
non-positive terms, so nothing overflows; there is no loop over tokens (nor over chunks). :func:`ssd_recurrent`
runs the recurrence token by token (the reference); :func:`ssd_step` is one token of it (generation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _pad_len(t: torch.Tensor, pad: int) -> torch.Tensor:
    if not pad:
        return t
    widths = [0, 0] * (t.dim() - 2) + [0, pad]  # F.pad lists dims from the last; dim 1 is the length
    return F.pad(t, widths)


def ssd_chunked(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    *,
    chunk_size: int = 64,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
    return_final_state: bool = False,
):
    """The chunked SSD scan; returns ``y [b, L, heads, P]`` (and the final state ``[b, heads, P, N]``)."""
    b, L, H, P = x.shape
    G, N = B.shape[2], B.shape[3]
    if H % G:
        raise ValueError(f"{H} heads are not divisible into {G} groups")
    R = H // G
    T = min(chunk_size, L)
    pad = (-L) % T
    xdt = x * dt[..., None].to(x.dtype)
    acc = torch.promote_types(dt.dtype, torch.float32)  # decays in fp32 at least (bf16 under autocast)
    a = dt.to(acc) * A.to(acc)  # log-decay per token and head, <= 0
    # padded tokens: dt = 0, so they add nothing and decay nothing
    xdt, a, B, C = (_pad_len(t, pad) for t in (xdt, a, B, C))
    c = (L + pad) // T

    a = a.view(b, c, T, G, R).permute(0, 1, 3, 4, 2)  # [b, c, G, R, T]
    acum = a.cumsum(-1)
    Xc = xdt.view(b, c, T, G, R, P).permute(0, 1, 3, 4, 2, 5)  # [b, c, G, R, T, P]
    Bc = B.view(b, c, T, G, N).transpose(2, 3)  # [b, c, G, T, N]
    Cc = C.view(b, c, T, G, N).transpose(2, 3)

    # 1. inside each chunk: masked, decayed "attention"
    causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
    seg = (acum[..., :, None] - acum[..., None, :]).masked_fill(~causal, float("-inf"))
    CB = Cc @ Bc.transpose(-1, -2)  # [b, c, G, T, T], shared by the R heads of a group
    M = CB[:, :, :, None] * seg.exp().to(CB.dtype)  # [b, c, G, R, T, T]
    y = M @ Xc  # [b, c, G, R, T, P]

    # 2. each chunk's own contribution to the state at its end: sum_s exp(acum_end - acum_s) B_s (dt x)_s^T
    w = (acum[..., -1:] - acum).exp().to(Xc.dtype)  # [b, c, G, R, T]
    Xw = (Xc * w[..., None]).permute(0, 1, 2, 4, 3, 5).reshape(b, c, G, T, R * P)
    states = Bc.transpose(-1, -2) @ Xw  # [b, c, G, N, R*P]

    # 3. across chunks: S_in[c] = sum_{z <= c} exp(E_c - E_z) S'_z, with S'_0 the initial state, S'_{z+1} chunk
    #    z's contribution, and E the exclusive cumulative sum of the chunk totals. S_in[c] is the state entering
    #    chunk c; S_in[nc] is the final state.
    if initial_state is None:
        init = states.new_zeros(b, 1, G, N, R * P)
    else:
        init = (
            initial_state.to(states.dtype)
            .view(b, G, R, P, N)
            .permute(0, 1, 4, 2, 3)
            .reshape(b, 1, G, N, R * P)
        )
    S_all = torch.cat((init, states), dim=1)  # [b, c+1, G, N, R*P]
    E = F.pad(acum[..., -1].cumsum(1), (0, 0, 0, 0, 1, 0))  # [b, c+1, G, R]
    E = E.permute(0, 2, 3, 1)  # [b, G, R, c+1]
    causal_c = torch.ones(c + 1, c + 1, dtype=torch.bool, device=x.device).tril()
    decay_c = (
        (E[..., :, None] - E[..., None, :]).masked_fill(~causal_c, float("-inf")).exp()
    )  # [b,G,R,c+1,c+1]
    S_r = S_all.view(b, c + 1, G, N, R, P).permute(0, 2, 4, 1, 3, 5).reshape(b, G, R, c + 1, N * P)
    S_in = (decay_c.to(S_r.dtype) @ S_r).view(b, G, R, c + 1, N, P)

    # 4. what the state entering each chunk contributes to its outputs: exp(acum_t) C_t^T S_in[c]
    S_prev = S_in[:, :, :, :c].permute(0, 3, 1, 4, 2, 5).reshape(b, c, G, N, R * P)
    y_off = (Cc @ S_prev).view(b, c, G, T, R, P).permute(0, 1, 2, 4, 3, 5)  # [b, c, G, R, T, P]
    y = y + y_off * acum.exp().to(y_off.dtype)[..., None]

    y = y.permute(0, 1, 4, 2, 3, 5).reshape(b, c * T, H, P)[:, :L]
    if D is not None:
        y = y + x * D.to(x.dtype)[:, None]
    if not return_final_state:
        return y
    final = S_in[:, :, :, c].permute(0, 1, 2, 4, 3).reshape(b, H, P, N)
    return y, final


def ssd_step(
    state: torch.Tensor,
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One token: ``x [b, heads, P]``, ``dt [b, heads]``, ``B, C [b, groups, N]``, state ``[b, heads, P, N]``;
    returns ``(y [b, heads, P], new state)``."""
    H, G = x.shape[1], B.shape[1]
    Bh = B.repeat_interleave(H // G, dim=1)
    Ch = C.repeat_interleave(H // G, dim=1)
    acc = torch.promote_types(dt.dtype, torch.float32)
    decay = torch.exp(dt.to(acc) * A.to(acc)).to(state.dtype)
    # the state keeps its dtype (a bf16 model's state stays bf16; dt may be wider)
    inp = (x * dt[..., None]).to(state.dtype)
    state = state * decay[..., None, None] + inp[..., :, None] * Bh.to(state.dtype)[..., None, :]
    y = (state @ Ch.to(state.dtype)[..., :, None]).squeeze(-1)
    if D is not None:
        y = y + x * D[:, None]
    return y, state


def ssd_recurrent(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    *,
    D: torch.Tensor | None = None,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence token by token (the reference for :func:`ssd_chunked`); returns ``(y, final state)``."""
    b, L, H, P = x.shape
    N = B.shape[-1]
    state = initial_state if initial_state is not None else x.new_zeros(b, H, P, N)
    ys = []
    for t in range(L):
        y, state = ssd_step(state, x[:, t], dt[:, t], A, B[:, t], C[:, t], D)
        ys.append(y)
    return torch.stack(ys, dim=1), state
