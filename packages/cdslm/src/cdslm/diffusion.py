"""Continuous diffusion on log-mel tokens: the VP cosine schedule, v-prediction, min-SNR-gamma weights, the
training loss over continuation tokens, classifier-free guidance, and DDIM sampling.

    x_t = alpha_t x_0 + sigma_t eps,   alpha_t = cos(pi t / 2),  sigma_t = sin(pi t / 2),  SNR = alpha^2 / sigma^2
    v   = alpha_t eps - sigma_t x_0                        (Salimans & Ho 2022)
    x_0 = alpha_t x_t - sigma_t v,     eps = sigma_t x_t + alpha_t v
    w(t) = min(SNR, gamma) / (SNR + 1)                      (min-SNR-gamma for v-prediction, Hang et al. 2023)
    L   = E_t w(t) || v_hat - v ||^2  over continuation tokens only (the context stays clean)
    CFG: v = v_null + w (v_ctx - v_null);  DDIM (eta = 0) from t = 1 to t = 0 in K steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

T_EPS = 1e-4  # keep SNR finite at the ends of t ~ U(0, 1)


def alpha_sigma(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VP cosine schedule: ``alpha = cos(pi t / 2)``, ``sigma = sin(pi t / 2)`` (so alpha^2 + sigma^2 = 1)."""
    return torch.cos(0.5 * math.pi * t), torch.sin(0.5 * math.pi * t)


def snr(t: torch.Tensor) -> torch.Tensor:
    a, s = alpha_sigma(t)
    return a**2 / s**2


def v_target(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a, s = _bcast(alpha_sigma(t), x0)
    return a * eps - s * x0


def x0_from_v(xt: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a, s = _bcast(alpha_sigma(t), xt)
    return a * xt - s * v


def eps_from_v(xt: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a, s = _bcast(alpha_sigma(t), xt)
    return s * xt + a * v


def min_snr_weight(t: torch.Tensor, gamma: float = 5.0, target: str = "v") -> torch.Tensor:
    """min-SNR-gamma loss weight for the ``target`` parameterisation: eps ``min(SNR, g) / SNR``,
    x0 ``min(SNR, g)``, v ``min(SNR, g) / (SNR + 1)``. ``gamma <= 0`` gives the unweighted loss (w = 1)."""
    if gamma <= 0:
        return torch.ones_like(t)
    r = snr(t)
    clipped = torch.clamp(r, max=gamma)
    if target == "v":
        return clipped / (r + 1)
    if target == "eps":
        return clipped / r
    if target == "x0":
        return clipped
    raise ValueError(f"unknown target {target!r}; expected v, eps or x0")


def _bcast(pair: tuple[torch.Tensor, torch.Tensor], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = pair[0].shape + (1,) * (like.dim() - pair[0].dim())
    return pair[0].reshape(shape), pair[1].reshape(shape)


def sample_t(
    n: int, generator: torch.Generator | None = None, *, schedule: str = "uniform", device=None
) -> torch.Tensor:
    """Diffusion times: ``uniform`` U(0, 1) or ``logit-normal`` (sigmoid of N(0, 1)), kept in [T_EPS, 1 - T_EPS]."""
    if schedule == "uniform":
        t = torch.rand(n, generator=generator, device=device)
    elif schedule == "logit-normal":
        t = torch.sigmoid(torch.randn(n, generator=generator, device=device))
    else:
        raise ValueError(f"unknown time schedule {schedule!r}")
    return t.clamp(T_EPS, 1 - T_EPS)


def diffusion_loss(
    model: Callable,
    ctx: torch.Tensor,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    *,
    gamma: float = 5.0,
    drop: torch.Tensor | None = None,
    reduce: bool = True,
) -> torch.Tensor:
    """Min-SNR-weighted v-prediction loss on the continuation ``x0`` (B, T, P) given the clean context ``ctx``;
    ``drop`` (B,) bool replaces the context with the model's null token (classifier-free guidance training).
    Returns the batch mean, or per-example losses with ``reduce=False``."""
    a, s = _bcast(alpha_sigma(t), x0)
    xt = a * x0 + s * eps
    v = a * eps - s * x0
    v_hat = model(ctx, xt, t, drop=drop)
    per = (v_hat - v).pow(2).mean(dim=(1, 2)) * min_snr_weight(t, gamma)
    return per.mean() if reduce else per


@torch.no_grad()
def ddim_sample(
    model: Callable,
    ctx: torch.Tensor,
    shape: tuple[int, ...],
    *,
    steps: int = 16,
    guidance: float = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """DDIM (eta = 0) from x_1 ~ N(0, I) to x_0 in ``steps`` uniform steps of t, with classifier-free guidance
    ``guidance`` (1: conditional only; 0: unconditional only)."""
    x = noise if noise is not None else torch.randn(shape, generator=generator, device=ctx.device)
    ts = torch.linspace(1.0, 0.0, steps + 1, device=ctx.device)
    b = shape[0]
    for i in range(steps):
        t = ts[i].expand(b)
        v = guided_v(model, ctx, x, t, guidance)
        x0 = x0_from_v(x, v, t)
        eps = eps_from_v(x, v, t)
        a_next, s_next = alpha_sigma(ts[i + 1])
        x = a_next * x0 + s_next * eps
    return x


def guided_v(
    model: Callable, ctx: torch.Tensor, x: torch.Tensor, t: torch.Tensor, guidance: float
) -> torch.Tensor:
    """``v_null + w (v_ctx - v_null)``; one batched call for both branches."""
    b = x.shape[0]
    if guidance == 1.0:
        return model(ctx, x, t)
    if guidance == 0.0:
        return model(ctx, x, t, drop=torch.ones(b, dtype=torch.bool, device=x.device))
    drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    v = model(torch.cat([ctx, ctx]), torch.cat([x, x]), torch.cat([t, t]), drop=drop)
    v_ctx, v_null = v[:b], v[b:]
    return v_null + guidance * (v_ctx - v_null)
