"""The Mamba-2 (SSD) mixer with Hedgehog-featured B and C ("HedgeMamba"), and the Mamba LM around it.

One mixer, per token ``h`` (``heads`` SSM heads of size ``P``, ``groups`` sharing B/C, state ``N = 2f``)::

    [z, x, b, c, dt_raw] = in_proj(h)
    [x, b, c]            = causal depthwise conv1d([x, b, c])            (kernel ``conv_kernel``)
    x  <- x + x_mix * (SiLU(x) - x)                                      (x_mix = 1: Mamba-2's SiLU)
    B  = phi(b), C = phi(c)          phi(u) = [softmax(u), softmax(-u)] per group over f features
    dt = softplus(dt_raw + dt_bias),  A = -decay  (decay >= 0)
    y  = SSD(x, dt, A, B, C) + D x                                        (:mod:`attn2mamba.ssd`)
    g  = 1 + gate_mix * (SiLU(z) - 1)                                    (gate_mix = 1: Mamba-2's gate)
    out = out_proj(RMSNorm_per_head(y * g))          normalize="rms"
    out = out_proj((y_num / y_den) * g)              normalize="ratio" (x gets a constant-1 channel)

With ``rotary_dim > 0`` (the stage-1 maps read rotary-embedded q, k) the b and c rows of in_proj are head-sized
(``P`` per group), the teacher's rotary embedding turns them at each token's absolute position, and a per-group
Hedgehog map gives the features: ``B = phi_B(R_t b_t)``, ``C = phi_C(R_t c_t)``.

``num_b_groups < num_groups`` shares each B group among ``num_groups / num_b_groups`` C groups: a grouped-query
teacher (Llama's ``num_kv_heads``) maps its shared keys to grouped B and its per-head queries to per-head C. Decoding carries the position;
there is no length limit (the rotation is computed for any position).

With ``x_mix = gate_mix = 1``, ``D = 1`` and random weights this is a Mamba-2 layer whose B/C activation is the
Hedgehog pair of softmaxes instead of SiLU (the naive baseline). With ``x_mix = gate_mix = 0``, ``decay = 0``,
``dt = 1``, an identity convolution and ``D = 0`` it is exactly a stage-1 Hedgehog layer
(:func:`attn2mamba.mamba_from_hedgehog`); stage 2 then trains everything, which releases decay, convolution, the
SiLU and the gate from those starting values (all of them receive gradients at the start).

``decay`` is the rate itself (``A = -decay``), not ``log(-A)`` as in Mamba-2: a log parameter cannot start at
``A = 0`` and still move. It is kept non-negative with a straight-through clamp (the forward pass uses
``max(decay, 0)``, the gradient passes as if unclamped).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels
from .hedgehog import NORMALIZE, rms_norm_heads
from .linear_attention import HedgehogFeatureMap, feature_pair
from .lm import DecoderLM, LMConfig
from .ssd import ssd_chunked, ssd_step
from .teacher import Rotary


@dataclass
class MambaConfig:
    """Mixer settings of a :class:`MambaLM` (the backbone is an :class:`LMConfig`). ``None`` sizes follow the
    backbone: ``num_heads`` and ``head_dim`` as the attention it replaces, one B/C group per head."""

    feature_dim: int = 32  # f; the state has N = 2f
    num_heads: int | None = None
    head_dim: int | None = None
    num_groups: int | None = None  # groups of C (and of B unless num_b_groups says otherwise)
    # groups of B: fewer than num_groups when the keys are shared (a grouped-query teacher's key/value heads);
    # each B group then serves num_groups / num_b_groups C groups. None: num_groups (stock Mamba-2)
    num_b_groups: int | None = None
    conv_kernel: int = 4
    chunk_size: int = 64
    normalize: str = "rms"
    norm_eps: float = 1e-5
    ratio_eps: float = 1e-6
    dt_min: float = 1e-3  # random init: dt log-uniform in [dt_min, dt_max]
    dt_max: float = 0.1
    decay_min: float = 1.0  # random init: decay (-A) uniform in [decay_min, decay_max]
    decay_max: float = 16.0
    use_kernels: str = "auto"  # "auto": mamba-ssm / causal-conv1d on CUDA when they import; "torch": never
    rotary_dim: int = 0  # > 0: rotary on the first rotary_dim channels of head-sized b, c, then Hedgehog maps
    rotary_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZE)}, got {self.normalize!r}")
        if self.use_kernels not in ("auto", "torch"):
            raise ValueError("use_kernels must be auto or torch")

    def resolved(self, cfg: LMConfig) -> MambaConfig:
        heads = self.num_heads or cfg.num_heads
        groups = self.num_groups or heads
        return MambaConfig(
            **{
                **asdict(self),
                "num_heads": heads,
                "head_dim": self.head_dim or cfg.head_dim,
                "num_groups": groups,
                "num_b_groups": self.num_b_groups or groups,
            }
        )


@dataclass
class MambaState:
    conv: torch.Tensor  # [b, conv_dim, conv_kernel - 1]: the last inputs of the convolution
    ssm: torch.Tensor  # [b, heads, P (+1 with ratio), N]


def _straight_through_relu(t: torch.Tensor) -> torch.Tensor:
    return t + (t.clamp(min=0) - t).detach()


class Mamba2Mixer(nn.Module):
    def __init__(self, d_model: int, mc: MambaConfig):
        super().__init__()
        self.mc = mc
        H, P, G, f = mc.num_heads, mc.head_dim, mc.num_groups, mc.feature_dim
        Gb = mc.num_b_groups or G
        if H % G:
            raise ValueError(f"{H} heads are not divisible into {G} groups")
        if G % Gb:
            raise ValueError(f"{G} C groups are not divisible into {Gb} B groups")
        self.b_groups = Gb
        self.d_inner = H * P
        self.bc_dim = P if mc.rotary_dim else f  # per group: head-sized b, c when they are rotated first
        if mc.rotary_dim:
            if mc.rotary_dim > P:
                raise ValueError(f"rotary_dim {mc.rotary_dim} is larger than the head dim {P}")
            self.rotary = Rotary(mc.rotary_dim, mc.rotary_base)
            self.feature_b = HedgehogFeatureMap(Gb, P, f, "identity")
            self.feature_c = HedgehogFeatureMap(G, P, f, "identity")
        self.conv_dim = self.d_inner + (Gb + G) * self.bc_dim
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner + (Gb + G) * self.bc_dim + H, bias=True)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, mc.conv_kernel, groups=self.conv_dim, bias=True)
        self.dt_bias = nn.Parameter(torch.zeros(H))
        self.decay = nn.Parameter(torch.ones(H))
        self.D = nn.Parameter(torch.ones(H))
        self.x_mix = nn.Parameter(torch.ones(self.d_inner))
        self.gate_mix = nn.Parameter(torch.ones(self.d_inner))
        if mc.normalize == "rms":
            self.norm_weight = nn.Parameter(torch.ones(H, P))
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=True)
        self.reset_special_parameters()

    def reset_special_parameters(self) -> None:
        """Mamba-2's random init: dt log-uniform in [dt_min, dt_max] (through the inverse softplus), decay
        uniform in [decay_min, decay_max], D = 1, the SiLU and the gate fully on, default conv init."""
        mc = self.mc
        with torch.no_grad():
            H = mc.num_heads
            u = torch.rand(H)
            dt = torch.exp(u * (math.log(mc.dt_max) - math.log(mc.dt_min)) + math.log(mc.dt_min))
            self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))
            self.decay.uniform_(mc.decay_min, mc.decay_max)
            self.D.fill_(1.0)
            self.x_mix.fill_(1.0)
            self.gate_mix.fill_(1.0)
            if mc.normalize == "rms":
                self.norm_weight.fill_(1.0)
            self.conv1d.reset_parameters()

    @property
    def A(self) -> torch.Tensor:
        return -_straight_through_relu(self.decay)

    def _conv(self, xbc: torch.Tensor, state: MambaState | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Causal depthwise convolution over ``xbc [b, L, conv_dim]``; carries the last K-1 inputs."""
        K = self.mc.conv_kernel
        u = xbc.transpose(1, 2)  # [b, conv_dim, L]
        w = self.conv1d.weight.squeeze(1)
        if state is None:
            fast = (
                kernels.causal_conv1d()
                if kernels.wanted(self.mc.use_kernels, u, kernels.causal_conv1d)
                else None
            )
            if fast is not None:
                return fast(u.contiguous(), w, self.conv1d.bias).transpose(1, 2), None
            out = F.conv1d(F.pad(u, (K - 1, 0)), self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)
            return out.transpose(1, 2), None
        full = torch.cat((state.conv.to(u.dtype), u), dim=-1)
        out = F.conv1d(full, self.conv1d.weight, self.conv1d.bias, groups=self.conv_dim)
        return out.transpose(1, 2), full[..., full.shape[-1] - (K - 1) :]

    def forward(
        self, h: torch.Tensor, state: MambaState | None = None, pos=0, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Any]:
        """``mask [b, L]`` (False: left padding): padded tokens enter neither the convolution (their inputs are
        zeros, as the initial convolution state) nor the SSM state (``dt = 0``: no input, no decay)."""
        mc = self.mc
        H, P, G, f = mc.num_heads, mc.head_dim, mc.num_groups, mc.feature_dim
        b, L, _ = h.shape
        z, xbc, dt_raw = self.in_proj(h).split((self.d_inner, self.conv_dim, H), dim=-1)
        if mask is not None:
            xbc = xbc * mask[..., None].to(xbc.dtype)
        xbc, conv_state = self._conv(xbc, state)
        Gb = self.b_groups
        x, bp, cp = xbc.split((self.d_inner, Gb * self.bc_dim, G * self.bc_dim), dim=-1)
        x = x + self.x_mix * (F.silu(x) - x)
        if mc.rotary_dim:
            bp, cp = bp.view(b, L, Gb, P).transpose(1, 2), cp.view(b, L, G, P).transpose(1, 2)  # [b, G, L, P]
            bp, cp = self.rotary(bp, cp, pos)
            Bm = self.feature_b(bp).transpose(1, 2)
            Cm = self.feature_c(cp).transpose(1, 2)
        else:
            Bm = feature_pair(bp.view(b, L, Gb, f))
            Cm = feature_pair(cp.view(b, L, G, f))
        if Gb != G:  # shared keys: each B group serves G / Gb groups of C
            Bm = Bm.repeat_interleave(G // Gb, dim=2)
        acc = torch.promote_types(dt_raw.dtype, torch.float32)  # float64 models stay float64
        dt = F.softplus(dt_raw.to(acc) + self.dt_bias.to(acc))
        if mask is not None:
            dt = dt * mask[..., None].to(dt.dtype)
        xh = x.view(b, L, H, P)
        if mc.normalize == "ratio":
            xh = torch.cat((xh, torch.ones_like(xh[..., :1])), dim=-1)
        A = self.A
        new_state = None
        if state is not None and L == 1:
            y, ssm = ssd_step(state.ssm, xh[:, 0], dt[:, 0], A, Bm[:, 0], Cm[:, 0])
            y = y[:, None]
            new_state = MambaState(conv_state, ssm)
        elif state is None and kernels.wanted(mc.use_kernels, h, kernels.mamba_chunk_scan):
            y = kernels.mamba_chunk_scan()(xh, dt.to(xh.dtype), A, Bm, Cm, chunk_size=mc.chunk_size)
        else:
            init = None if state is None else state.ssm
            y, ssm = ssd_chunked(
                xh, dt, A, Bm, Cm, chunk_size=mc.chunk_size, initial_state=init, return_final_state=True
            )
            if state is not None:
                new_state = MambaState(conv_state, ssm)
        if mc.normalize == "ratio":
            y = y[..., :-1] / (y[..., -1:] + mc.ratio_eps)
        y = y + xh[..., :P] * self.D.to(y.dtype)[:, None]
        g = 1 + self.gate_mix * (F.silu(z) - 1)
        y = y * g.view(b, L, H, P)
        if mc.normalize == "rms":
            y = rms_norm_heads(y, self.norm_weight, mc.norm_eps)
        return self.out_proj(y.reshape(b, L, self.d_inner)), new_state

    def init_state(self, batch: int, device=None, dtype=None) -> MambaState:
        mc = self.mc
        P = mc.head_dim + (1 if mc.normalize == "ratio" else 0)
        return MambaState(
            torch.zeros(batch, self.conv_dim, mc.conv_kernel - 1, device=device, dtype=dtype),
            torch.zeros(batch, mc.num_heads, P, 2 * mc.feature_dim, device=device, dtype=dtype),
        )


class MambaLM(DecoderLM):
    """The Mamba LM: the GPT-NeoX backbone (embeddings, norms, MLPs, head) with a :class:`Mamba2Mixer` in place of
    every attention. ``MambaLM(cfg, mc)`` is randomly initialised (call ``init_weights()``); stage 2 builds it
    from a stage-1 model with :func:`attn2mamba.mamba_from_hedgehog`."""

    kind = "mamba"
    length_limited = False  # a recurrent state: no positional limit

    def __init__(self, cfg: LMConfig, mc: MambaConfig | None = None):
        mc = (mc or MambaConfig()).resolved(cfg)
        super().__init__(cfg, [Mamba2Mixer(cfg.hidden_size, mc) for _ in range(cfg.num_layers)])
        self.mamba = mc

    def config_dict(self) -> dict:
        return {**self.config.to_dict(), "mamba": asdict(self.mamba)}

    def decode_step(self):
        """The lean one-token step (:class:`attn2mamba.decoding.MambaStep`), built from the current weights."""
        from .decoding import MambaStep

        return MambaStep(self)
